"""Builds credential providers (and the login request) from ``upstreams.<name>.auth``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin

import httpx

from adapter.auth.api_key import ApiKeyCredentials
from adapter.config.settings import (
    ApiKeyAuth,
    JwtAuth,
    OAuth2AuthorizationCodeAuth,
    OAuth2ClientCredentialsAuth,
    UpstreamSettings,
)
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.secret_source import SecretSource, source_of
from adapter.upstream.transport import tls_verification

from .client_credentials import ClientCredentials
from .login import LoginRequest
from .refresh_token import RefreshTokenCredentials
from .token_endpoint import TokenEndpoint
from .token_file import TokenFile

__all__ = ["credentials_from_settings", "login_request_from_settings"]

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


def _url(settings: UpstreamSettings, url: str) -> str:
    """An absolute URL, or a path resolved against the upstream's base URL."""
    return urljoin(str(settings.base_url), url)


def _endpoint(
    name: str,
    settings: UpstreamSettings,
    auth: OAuth2ClientCredentialsAuth | OAuth2AuthorizationCodeAuth,
    transport_factory: TransportFactory | None,
) -> TokenEndpoint:
    return TokenEndpoint(
        _url(settings, auth.token_url),
        client_id=auth.client_id,
        client_secret=source_of(
            auth.client_secret, auth.client_secret_file, reload_interval=auth.reload_interval_seconds
        ),
        client_auth=auth.client_auth,
        upstream=name,
        timeout=auth.token_timeout_seconds,
        verify=tls_verification(settings),
        transport_factory=transport_factory,
        max_server_delay=settings.resilience.max_server_delay_seconds,
    )


def _required(source: SecretSource | None) -> SecretSource:
    assert source is not None, "the settings validator requires this secret"
    return source


def credentials_from_settings(
    name: str, settings: UpstreamSettings, *, token_transport: TransportFactory | None = None
) -> CredentialProvider:
    """The credential provider ``settings.auth`` describes. ``token_transport``
    lets tests put the token endpoint on a mock transport."""
    auth = settings.auth
    if isinstance(auth, ApiKeyAuth):
        key = source_of(auth.api_key, auth.api_key_file, reload_interval=auth.reload_interval_seconds)
        return ApiKeyCredentials(api_key=_required(key), header=auth.header, scheme=auth.scheme)
    if isinstance(auth, OAuth2ClientCredentialsAuth):
        return ClientCredentials(
            _endpoint(name, settings, auth, token_transport),
            scope=auth.scope,
            refresh_margin=auth.refresh_margin_seconds,
        )
    if isinstance(auth, OAuth2AuthorizationCodeAuth):
        return RefreshTokenCredentials(
            _endpoint(name, settings, auth, token_transport),
            TokenFile(auth.token_file),
            upstream=name,
            refresh_margin=auth.refresh_margin_seconds,
        )
    assert isinstance(auth, JwtAuth)
    static = source_of(auth.token, auth.token_file, reload_interval=auth.reload_interval_seconds)
    if static is not None:
        return ApiKeyCredentials(api_key=static, header=auth.header, scheme=auth.scheme)
    from .jwt_credentials import MintedJwtCredentials  # needs PyJWT (and cryptography for RS/ES/PS)

    return MintedJwtCredentials(
        _required(
            source_of(auth.private_key, auth.private_key_file, reload_interval=auth.reload_interval_seconds)
        ),
        algorithm=auth.algorithm,
        key_id=auth.key_id,
        issuer=auth.issuer,
        subject=auth.subject,
        audience=auth.audience,
        lifetime=auth.lifetime_seconds,
        refresh_margin=auth.refresh_margin_seconds,
        claims=auth.claims,
        header=auth.header,
        scheme=auth.scheme,
    )


def login_request_from_settings(
    name: str, settings: UpstreamSettings, *, token_transport: TransportFactory | None = None
) -> LoginRequest:
    """What ``python -m adapter login <name>`` does; ValueError when the upstream
    does not use the authorization code flow."""
    auth = settings.auth
    if not isinstance(auth, OAuth2AuthorizationCodeAuth):
        raise ValueError(
            f"upstreams.{name}.auth.type is {auth.type!r}; login needs 'oauth2_authorization_code'"
        )
    return LoginRequest(
        upstream=name,
        authorize_url=_url(settings, auth.authorize_url),
        endpoint=_endpoint(name, settings, auth, token_transport),
        token_file=TokenFile(auth.token_file),
        scope=auth.scope,
        redirect_host=auth.redirect_host,
        redirect_port=auth.redirect_port,
        redirect_path=auth.redirect_path,
        redirect_uri=auth.redirect_uri or "",
    )
