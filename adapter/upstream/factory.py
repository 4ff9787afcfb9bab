"""Builds each upstream's credentials and caller from configuration.

The one place that decides what stands between a handler and the network, so
adding a layer (retries, rate limiting, circuit breaking, caching) is a change
here and nowhere else.
"""

from __future__ import annotations

import httpx
from opentelemetry.trace import TracerProvider

from adapter.config.settings import UpstreamSettings

from .caller import UpstreamCaller
from .client import UpstreamClient
from .credentials import ApiKeyCredentials, CredentialProvider

__all__ = ["build_credentials", "build_upstream_caller"]


def build_credentials(name: str, settings: UpstreamSettings) -> CredentialProvider:
    """The credential provider of upstream ``name`` (shared by REST and WebSocket)."""
    auth = settings.auth
    return ApiKeyCredentials(api_key=auth.api_key, header=auth.header, scheme=auth.scheme)


def build_upstream_caller(
    name: str,
    settings: UpstreamSettings,
    *,
    credentials: CredentialProvider,
    tracer_provider: TracerProvider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> UpstreamCaller:
    """The caller handlers use for upstream ``name``."""
    return UpstreamClient(
        name, settings, credentials=credentials, tracer_provider=tracer_provider, transport=transport
    )
