"""The HTTP transport under each upstream's httpx client.

httpx's own pool (httpcore) degrades badly under high concurrency (httpx issue
3215), so the default is aiohttp's connector through ``httpx-aiohttp``;
bench/upstream_transport.py measures both side by side.
"""

from __future__ import annotations

import ssl

import httpx
from httpx_aiohttp import AiohttpTransport

from adapter.config.settings import UpstreamSettings

__all__ = ["build_transport"]


def _verify(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    if not settings.verify_tls:
        return False
    context = ssl.create_default_context()
    if settings.ca_bundle is not None:
        context.load_verify_locations(cafile=str(settings.ca_bundle))
    return context


def build_transport(settings: UpstreamSettings) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=30.0,
    )
    verify = _verify(settings)
    if settings.transport == "aiohttp":
        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
