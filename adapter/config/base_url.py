"""A base URL given with the API's own path prefix, as the vendors document it.

OpenFrame documents ``https://api.openframe.io/v1`` as its base URL, while every path in
its protos already starts with ``/v1`` (``/v1/devices``): taken as is, calls would go to
``/v1/v1/devices``. The trailing path segments of a base URL that every REST path of the
upstream starts with are therefore dropped (``.../v1`` -> ``...``), once, here, with a log
line naming the key; a real gateway prefix (``https://gw.example/openframe``) stays.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["common_path_prefix", "without_duplicated_prefix"]


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def common_path_prefix(paths: Iterable[str]) -> list[str]:
    """The leading path segments shared by every path (``/v1/a``, ``/v1/b`` -> ``["v1"]``);
    template variables never count."""
    common: list[str] | None = None
    for path in paths:
        segments = [s for s in _segments(path) if "{" not in s]
        if common is None:
            common = segments
            continue
        n = 0
        while n < min(len(common), len(segments)) and common[n] == segments[n]:
            n += 1
        common = common[:n]
    return common or []


def without_duplicated_prefix(base_url: str, paths: Iterable[str]) -> str:
    """``base_url`` without its trailing segments that begin every one of ``paths``."""
    prefix = common_path_prefix(paths)
    parts = urlsplit(base_url)
    base = _segments(parts.path)
    for k in range(min(len(base), len(prefix)), 0, -1):
        if base[len(base) - k :] == prefix[:k]:
            kept = base[: len(base) - k]
            return urlunsplit(parts._replace(path="/" + "/".join(kept) if kept else ""))
    return base_url
