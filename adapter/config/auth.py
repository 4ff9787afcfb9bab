"""How the adapter proves its identity to an upstream: one of four credential kinds.

``upstreams.<name>.auth`` is a union discriminated by ``type``; a table without
``type`` is an API key (the form every earlier configuration used). Each secret
can be given inline (``SecretStr``, masked in ``repr``) or as a ``*_file`` path,
which is re-read when the file changes, so a mounted secret can be rotated
without a restart.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = [
    "ApiKeyAuth",
    "JwtAuth",
    "OAuth2AuthorizationCodeAuth",
    "OAuth2ClientCredentialsAuth",
    "UpstreamAuth",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _one_of(model: BaseModel, inline: str, file: str, *, required: bool = True) -> None:
    given = [name for name in (inline, file) if getattr(model, name) is not None]
    if len(given) > 1:
        raise ValueError(f"set {inline} or {file}, not both")
    if required and not given:
        raise ValueError(f"{inline} or {file} is required")


class _FileReload(_Frozen):
    #: ``*_file`` secrets are re-checked at most this often (and at once after a 401).
    reload_interval_seconds: float = Field(default=5.0, gt=0)


class ApiKeyAuth(_FileReload):
    """A static API key sent in a header on every upstream request."""

    type: Literal["api_key"] = "api_key"
    api_key: SecretStr | None = None
    #: File holding the key (surrounding whitespace ignored); re-read when it changes.
    api_key_file: Path | None = None
    #: Header carrying the key: ``Authorization`` (documented) or e.g. ``X-API-Key``.
    header: str = "Authorization"
    #: Scheme before the key (``Bearer``); empty for a bare key as in ``X-API-Key``.
    scheme: str = "Bearer"

    @model_validator(mode="after")
    def _check(self) -> ApiKeyAuth:
        _one_of(self, "api_key", "api_key_file")
        return self


class _OAuth2(_FileReload):
    #: Absolute URL, or a path resolved against the upstream's ``base_url``.
    token_url: str
    client_id: str
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    #: How the client authenticates at the token endpoint (RFC 6749 2.3.1).
    client_auth: Literal["basic", "body"] = "basic"
    scope: str = ""
    #: A token is renewed this long before it expires (at most half its lifetime).
    refresh_margin_seconds: float = Field(default=30.0, ge=0)
    #: Bound of one token request.
    token_timeout_seconds: float = Field(default=10.0, gt=0)


class OAuth2ClientCredentialsAuth(_OAuth2):
    """OAuth2 client credentials grant (OCTOSPINE documents ``POST /oauth/token``)."""

    type: Literal["oauth2_client_credentials"]

    @model_validator(mode="after")
    def _check(self) -> OAuth2ClientCredentialsAuth:
        _one_of(self, "client_secret", "client_secret_file")
        return self


_LOOPBACK_FIELDS = ("redirect_host", "redirect_port", "redirect_path")


class OAuth2AuthorizationCodeAuth(_OAuth2):
    """OAuth2 authorization code + PKCE, then refresh tokens (OpenFrame).

    ``python -m adapter login <upstream>`` runs the one-time login and writes
    ``token_file``; the adapter then refreshes access tokens and stores each
    rotated refresh token back into it. The browser comes back to a loopback
    callback the login serves (``redirect_host``/``redirect_port``/``redirect_path``),
    or, with ``redirect_uri``, to the app's registered ``https://`` callback, whose
    address the user pastes into the login (out of band).
    """

    type: Literal["oauth2_authorization_code"]
    #: Absolute URL, or a path resolved against the upstream's ``base_url``.
    authorize_url: str
    #: Owner-only (0600) JSON file with the refresh token; written by the login command.
    token_file: Path
    #: The scopes OpenFrame documents (``read write``); empty sends none.
    scope: str = "read write"
    #: A registered redirect URI that is not loopback (``https://your-app.com/callback``):
    #: the login prints the authorization URL and reads the redirect URL (or the code)
    #: pasted from the browser. Unset: the loopback callback below.
    redirect_uri: str | None = None
    #: Loopback address of the login callback (RFC 8252: any port on a loopback IP).
    redirect_host: Literal["127.0.0.1", "localhost", "::1"] = "127.0.0.1"
    #: ``0`` = any free port (the vendor must accept any loopback port).
    redirect_port: int = Field(default=0, ge=0, le=65535)
    redirect_path: str = "/callback"

    @field_validator("redirect_uri")
    @classmethod
    def _registered(cls, uri: str | None) -> str | None:
        if uri is not None:
            _check_registered_redirect(uri)
        return uri

    @model_validator(mode="after")
    def _check(self) -> OAuth2AuthorizationCodeAuth:
        _one_of(self, "client_secret", "client_secret_file", required=False)  # public client + PKCE
        if self.redirect_uri is not None:
            both = sorted(set(_LOOPBACK_FIELDS) & self.model_fields_set)
            if both:
                raise ValueError(f"set redirect_uri (pasted) or {', '.join(both)} (loopback), not both")
        return self


def _check_registered_redirect(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"redirect_uri must be an absolute https:// URL, got {uri!r}")
    if parts.fragment:
        raise ValueError("redirect_uri must not have a fragment (RFC 6749 3.1.2)")
    host = parts.hostname
    if host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback):
        raise ValueError(
            "a loopback redirect_uri is the login's own callback: set redirect_host/redirect_port"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class JwtAuth(_FileReload):
    """A JWT bearer token: given as is (``token``/``token_file``) or minted and
    signed by the adapter from ``private_key``/``private_key_file``."""

    type: Literal["jwt"]
    token: SecretStr | None = None
    token_file: Path | None = None
    #: PEM key (RS*/ES*/PS*/EdDSA) or shared secret (HS*) to mint tokens with.
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    algorithm: Literal[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
        "HS256", "HS384", "HS512",
    ] = "RS256"  # fmt: skip
    key_id: str = ""
    issuer: str = ""
    subject: str = ""
    audience: str = ""
    #: Lifetime of a minted token; it is re-minted ``refresh_margin_seconds`` before expiry.
    lifetime_seconds: float = Field(default=300.0, gt=0)
    refresh_margin_seconds: float = Field(default=30.0, ge=0)
    #: Extra claims of a minted token.
    claims: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    header: str = "Authorization"
    scheme: str = "Bearer"

    @model_validator(mode="after")
    def _check(self) -> JwtAuth:
        static = self.token is not None or self.token_file is not None
        minted = self.private_key is not None or self.private_key_file is not None
        if static == minted:
            raise ValueError("set token/token_file (static) or private_key/private_key_file (minted)")
        _one_of(self, "token", "token_file", required=static)
        _one_of(self, "private_key", "private_key_file", required=minted)
        return self


def _default_type(value: Any) -> Any:
    # Configurations written before the union have no ``type``: they are API keys.
    if isinstance(value, dict) and "type" not in value:
        return {"type": "api_key", **value}
    return value


UpstreamAuth = Annotated[
    ApiKeyAuth | OAuth2ClientCredentialsAuth | OAuth2AuthorizationCodeAuth | JwtAuth,
    Field(discriminator="type"),
    BeforeValidator(_default_type),
]
