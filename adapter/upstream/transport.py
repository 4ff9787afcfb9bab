"""The HTTP exchange under each upstream client: one request out, one buffered
answer back (within the size cap), with the library's errors translated.

Three implementations behind one small protocol, picked by ``transport``:

- ``h1`` (default): see below.
- ``aiohttp``: aiohttp's client directly
  (:mod:`adapter.upstream.transport_aiohttp`). The peer bench measured the httpx
  API over aiohttp (httpx-aiohttp) at ~0.3 ms of CPU per call, a quarter of the
  adapter's whole cost; aiohttp alone does the same exchange in ~0.1 ms.
- ``httpx``: httpx's own pool (httpcore), or any ``httpx.AsyncBaseTransport``
  handed in (:mod:`adapter.upstream.transport_httpx`).
- ``h1``: lean HTTP/1.1 on an asyncio protocol with httptools' parser
  (:mod:`adapter.upstream.transport_h1`), ~150 µs of CPU a call cheaper than
  aiohttp inside grpc.aio (docs/benchmarks.md).

Redirects, credentials, deadlines and spans are the client's job
(:mod:`adapter.upstream.client`), the same over all three.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol

import httpx

from adapter.config.settings import UpstreamSettings

from .errors import UpstreamResponseTooLarge
from .response_headers import ResponseHeaders

__all__ = ["Answer", "UpstreamTransport", "build_transport", "tls_verification", "too_large"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: ResponseHeaders
    body: bytes


class UpstreamTransport(Protocol):
    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_bytes: int,
        upstream: str,
        route: str,
    ) -> Answer:
        """Sends one request (``url`` absolute and already percent-encoded) and
        reads its answer; never follows redirects. Raises
        :class:`~adapter.upstream.errors.UpstreamError` subclasses only."""
        ...

    async def aclose(self) -> None: ...


def too_large(cap: int, upstream: str, route: str, declared: int | None = None) -> UpstreamResponseTooLarge:
    what = (
        f"upstream answer of {declared} bytes exceeds" if declared is not None else "upstream answer exceeds"
    )
    return UpstreamResponseTooLarge(f"{what} the {cap}-byte cap", upstream=upstream, route=route)


def tls_verification(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    """False when verification is off, else a context trusting the system CAs (and ``ca_bundle``)."""
    if not settings.verify_tls:
        return False
    context = ssl.create_default_context()
    if settings.ca_bundle is not None:
        context.load_verify_locations(cafile=str(settings.ca_bundle))
    return context


def build_transport(
    settings: UpstreamSettings, *, httpx_transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamTransport:
    """The exchange ``settings.transport`` names; a given ``httpx_transport`` wins."""
    if settings.transport == "h1" and httpx_transport is None:
        from .transport_h1 import H1Exchange

        return H1Exchange(settings)
    if settings.transport == "aiohttp" and httpx_transport is None:
        from .transport_aiohttp import AiohttpExchange

        return AiohttpExchange(settings)
    from .transport_httpx import HttpxExchange

    return HttpxExchange(settings, transport=httpx_transport)
