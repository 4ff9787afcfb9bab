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
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx

from adapter.call_values import call_value
from adapter.config.settings import UpstreamSettings
from adapter.security.reloading import ReloadingFile

from .errors import UpstreamResponseTooLarge
from .response_headers import ResponseHeaders

__all__ = [
    "CA_BUNDLE_RELOAD_SECONDS",
    "Answer",
    "TlsVerification",
    "UpstreamTransport",
    "build_transport",
    "tls_verification",
    "too_large",
]

#: How often a new connection looks whether the ``ca_bundle`` file changed.
CA_BUNDLE_RELOAD_SECONDS = 5.0


@call_value
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
    return _trusting(settings.ca_bundle)


def _trusting(ca_bundle: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


class TlsVerification:
    """:func:`tls_verification` that follows the ``ca_bundle`` file: each new
    connection asks ``current()``, which re-reads the file when it changed (looked
    at most every ``interval`` seconds), so a private CA rotated by cert-manager or a
    proxy's new root reaches new connections without a restart; kept-alive ones stay
    as they were verified. A new version that does not load keeps the last good one,
    logged (:class:`~adapter.security.reloading.ReloadingFile`)."""

    def __init__(self, settings: UpstreamSettings, *, interval: float = CA_BUNDLE_RELOAD_SECONDS) -> None:
        bundle = settings.ca_bundle
        #: The verification a connection made now uses.
        self.current: Callable[[], ssl.SSLContext | bool]
        if settings.verify_tls and bundle is not None:
            load = lambda: _trusting(bundle)  # noqa: E731
            self.current = ReloadingFile(f"ca_bundle {bundle}", [bundle], load, interval=interval).current
        else:
            fixed = tls_verification(settings)
            self.current = lambda: fixed


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
