"""The check of the policy's tenant bindings against the configuration.

A policy that binds principals to a credential set the upstream does not have
would refuse those callers on every call. At start that is a configuration
mistake: the adapter refuses to start and names each missing set. A reloaded
policy goes through the same check (:func:`checked_policy_loader`), so a bad edit
is refused and the last good policy stays in force; should a policy that names a
missing set reach the callers anyway, the tenant router refuses its calls
(PERMISSION_DENIED, see :mod:`adapter.upstream.tenant_router`).
"""

from __future__ import annotations

from collections.abc import Callable

from adapter.config.settings import ConfigError, Settings
from adapter.security.policy import Policy, PolicyError

__all__ = ["check_tenant_bindings", "checked_policy_loader", "unknown_bindings"]


def unknown_bindings(policy: Policy, settings: Settings) -> list[str]:
    """``<upstream>.<set>`` for every set the policy names and the settings lack."""
    missing = []
    for upstream, names in sorted(policy.credential_sets().items()):
        configured = settings.upstreams.get(upstream)
        for name in sorted(names):
            if configured is None or name not in configured.credential_sets:
                missing.append(f"{upstream}.{name}")
    return missing


def check_tenant_bindings(policy: Policy, settings: Settings) -> None:
    """Raises ConfigError naming each credential set the policy binds to and the
    configuration lacks."""
    missing = unknown_bindings(policy, settings)
    if missing:
        keys = _keys(missing)
        raise ConfigError(
            f"the policy {policy.source} binds principals to credential sets that are not configured: {keys}"
        )


def checked_policy_loader(load: Callable[[], Policy], settings: Settings) -> Callable[[], Policy]:
    """``load`` whose result must bind to configured sets only; raises PolicyError
    (which a :class:`~adapter.security.reloading.ReloadingFile` answers by keeping
    the last good policy)."""

    def checked() -> Policy:
        policy = load()
        missing = unknown_bindings(policy, settings)
        if missing:
            raise PolicyError(
                f"{policy.source}: binds principals to credential sets that are not configured: "
                + _keys(missing)
            )
        return policy

    return checked


def _keys(missing: list[str]) -> str:
    return ", ".join(f"upstreams.{m.replace('.', '.credential_sets.', 1)}" for m in missing)
