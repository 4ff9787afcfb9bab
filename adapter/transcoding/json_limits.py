"""Limits checked on parsed JSON before any message is built from it.

Deep nesting is the cheapest way for a third party to hurt a decoder: building a
``Struct`` from a 700-level object overflows Python's stack (``RecursionError``),
and a message nested past protobuf's 100-level parse limit is written fine but can
never be read back by a consumer. The check is iterative, so it cannot overflow
itself, and stops at the first level past the limit.
"""

from __future__ import annotations

from typing import Any

from .json_values import MalformedPayloadError

__all__ = ["DEFAULT_MAX_DEPTH", "check_json_depth", "json_depth"]

#: Objects and arrays inside each other, counted from the value itself (a scalar is 0).
DEFAULT_MAX_DEPTH = 64
#: Exact types of JSON leaves (a subclass of dict or list is looked into, as before).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_depth(value: Any, *, stop_after: int | None = None) -> int:
    """Nesting depth of ``value`` (dicts and lists); stops counting past ``stop_after``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        if set(map(type, children)) <= _SCALARS:  # all leaves (checked in C): nothing below
            continue
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def check_json_depth(value: Any, limit: int, path: str = "") -> None:
    """Raises MalformedPayloadError when ``value`` nests deeper than ``limit``."""
    if json_depth(value, stop_after=limit) > limit:
        raise MalformedPayloadError(path, f"nesting depth exceeds the limit of {limit} levels")
