"""Sizes an upstream request may have, checked before it is sent.

A caller may send up to ``grpc.max_receive_message_bytes`` (4 MiB); a vendor
URL or body that large fails far from its cause: httpx refuses URLs over 64 KiB
(``InvalidURL``), servers and proxies refuse request lines over ~8 KiB (414) and
bodies over their own cap (413), and aiohttp warns that a body over 1 MiB sent as
bytes blocks the event loop. So a request past ``upstreams.<name>.max_url_bytes``
or ``max_request_body_bytes`` is INVALID_ARGUMENT naming the field that made it
large, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from .errors import BindingError

__all__ = ["RequestLimits", "check_body", "check_url"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_url_bytes: int = 8 * 1024
    max_body_bytes: int = 1024 * 1024


def check_url(
    path: str, path_values: Mapping[str, str], query: Sequence[tuple[str, str]], limits: RequestLimits
) -> None:
    """Raises BindingError naming the largest contributor when path + query is too long."""
    size = len(path) + len(urlencode(query, quote_via=quote)) if query else len(path)
    if size <= limits.max_url_bytes:
        return
    parts = [(len(quote(v, safe="")), field) for field, v in path_values.items()]
    parts += [(len(quote(v, safe="")) + len(k), k) for k, v in query]
    _, field = max(parts, default=(0, ""))
    raise BindingError(
        field,
        f"makes the upstream URL {size} bytes long; at most {limits.max_url_bytes} are allowed",
    )


def check_body(
    body: bytes | None, body_field: str, limits: RequestLimits, *, parts: Mapping[str, Any] | None = None
) -> None:
    """Raises BindingError naming the body field: the largest one for ``body: "*"``
    or of ``parts`` (the body's values by request field, e.g. GraphQL variables)."""
    if body is None or len(body) <= limits.max_body_bytes:
        return
    field = body_field
    if body_field == "*" or parts is not None:
        document: Any = parts if parts is not None else orjson.loads(body)  # only on this refusal path
        sizes = [(len(orjson.dumps(v)), k) for k, v in document.items()] if isinstance(document, dict) else []
        field = max(sizes, default=(0, ""))[1]
    raise BindingError(
        field,
        f"makes the upstream request body {len(body)} bytes long; "
        f"at most {limits.max_body_bytes} are allowed",
    )
