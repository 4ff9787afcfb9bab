"""Checks shared by the fuzz targets."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx

from adapter.descriptors.path_template import PathTemplate

__all__ = ["assert_stays_under_prefix", "literal_prefix"]

# Built like UpstreamClient builds its requests (base URL + relative path).
_CLIENT = httpx.Client(base_url="http://upstream.invalid/base")
_SEPARATORS = re.compile(r"[/\\]")


def literal_prefix(template: PathTemplate) -> str:
    """``/v1/devices/{device_id}`` -> ``/v1/devices``."""
    literals: list[str] = []
    for part in template.parts:
        if not isinstance(part, str):
            break
        literals.append(part)
    return "/" + "/".join(literals)


def assert_stays_under_prefix(template: PathTemplate, path: str) -> None:
    """The path, as httpx sends it and after one percent-decoding (a proxy), stays
    under the template's literal prefix and has no dot segment."""
    prefix = literal_prefix(template)
    assert path == prefix or path.startswith(prefix.rstrip("/") + "/") or not template.variables, (
        prefix,
        path,
    )
    sent = _CLIENT.build_request("GET", path).url.raw_path.decode("ascii").split("?", 1)[0]
    assert sent.startswith("/base" + prefix.rstrip("/")), (prefix, sent)
    decoded = unquote(sent)
    assert not any(s in (".", "..") for s in _SEPARATORS.split(decoded)), (path, decoded)
    assert decoded.startswith("/base" + unquote(prefix).rstrip("/")), (prefix, decoded)
