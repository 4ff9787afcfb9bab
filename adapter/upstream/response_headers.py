"""An upstream answer's headers: the mapping every layer above the transports reads.

Built with multidict (in C, and aiohttp's own header type) rather than
``httpx.Headers``: ~3 µs an answer against ~14 µs, paid on every call. The lookups
read as httpx reads them, which ``tests/upstream/test_transport_h1.py`` checks:
names in any case, values UTF-8 when they all decode so (else Latin-1), and a header
sent more than once as its values joined by ", " (RFC 9110, section 5.3), so that a
second ``Cache-Control: no-store`` is not missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["ResponseHeaders", "response_headers"]

#: An answer's headers, looked up by name in any case (``get("content-type")``).
#: The ``httpx`` transport hands over its ``httpx.Headers``, which reads the same.
ResponseHeaders: TypeAlias = Mapping[str, str]


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> ResponseHeaders:
    """The headers of an answer, from its ``(name, value)`` byte pairs as received."""
    # Loops, not comprehensions: on Python 3.11 each comprehension is a call of its own.
    pairs: list[tuple[str, str]] = []
    names: set[str] = set()
    try:
        for raw_name, raw_value in raw:
            text = raw_name.decode("latin-1")
            pairs.append((text, raw_value.decode()))
            names.add(text.lower())
    except UnicodeDecodeError:
        pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
        names = {name.lower() for name, _ in pairs}
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    if len(names) < len(pairs):
        merged: CIMultiDict[str] = CIMultiDict()
        for name in headers:
            if name not in merged:
                merged[name] = ", ".join(headers.getall(name))
        headers = merged
    return CIMultiDictProxy(headers)
