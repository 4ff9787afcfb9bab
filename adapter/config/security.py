"""``security``: who may call the adapter, over what transport, with what limits.
See docs/security.md for the model and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

__all__ = ["JwtSettings", "LimitsSettings", "SecuritySettings", "TlsSettings"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsSettings(_Frozen):
    """Server certificate of the gRPC port (and of the webhook receiver, when its own
    ``tls`` is on). Files are re-read when they change: certificates rotate without a
    restart."""

    cert_file: Path
    key_file: Path
    #: CA bundle that client certificates must chain to; unset = no client certificates.
    client_ca_file: Path | None = None
    #: ``require``: mTLS, every caller presents a certificate that chains to
    #: ``client_ca_file``; ``none``: server-side TLS only (callers identify with JWTs).
    #: An "optional" client certificate is not offered: grpcio's Python API cannot ask
    #: for a certificate without requiring it (it maps "not required" to "not requested").
    client_auth: Literal["none", "require"] = "require"

    @model_validator(mode="after")
    def _check(self) -> TlsSettings:
        if self.client_auth == "require" and self.client_ca_file is None:
            raise ValueError(f"client_auth={self.client_auth!r} needs client_ca_file")
        return self


class JwtSettings(_Frozen):
    """Bearer JWTs in the ``authorization`` metadata, checked against a JWKS."""

    #: A JWKS file (re-read when it changes) or an ``https://`` URL (cached, refetched
    #: when a token names an unknown ``kid``): exactly one.
    jwks_file: Path | None = None
    jwks_url: HttpUrl | None = None
    #: Required ``iss``.
    issuer: str
    #: Accepted ``aud`` values (one must match).
    audiences: list[str] = Field(min_length=1)
    #: Asymmetric algorithms only: ``none`` and HMAC (``HS*``) are refused, since a
    #: public key must never verify a token.
    algorithms: list[
        Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
    ] = [
        "RS256",
        "ES256",
    ]
    #: Allowed clock skew for ``exp``/``nbf``/``iat``.
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    #: How long a fetched JWKS is used before it is fetched again.
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    #: The claim naming the caller; its principal is ``jwt:<value>``.
    principal_claim: str = "sub"

    @model_validator(mode="after")
    def _check(self) -> JwtSettings:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set jwks_file or jwks_url (exactly one)")
        return self


class LimitsSettings(_Frozen):
    """Caps that keep one caller, or many, from exhausting the adapter."""

    #: Concurrent RPCs in the whole server, health excepted (adapter/server/call_cap.py:
    #: RESOURCE_EXHAUSTED with RetryInfo past it); 0 = no cap. Off by default: bursts
    #: are already bounded by ``grpc.max_pending_calls``, each upstream's rate limit
    #: and the per-principal cap.
    max_concurrent_rpcs: int = Field(default=0, ge=0)
    #: Concurrent unary RPCs per principal; 0 = no cap.
    max_concurrent_rpcs_per_principal: int = Field(default=100, ge=0)
    #: Open ``EventService/Subscribe`` streams, in all and per principal; 0 = no cap.
    max_subscribe_streams: int = Field(default=200, ge=0)
    max_subscribe_streams_per_principal: int = Field(default=20, ge=0)
    #: Open ``grpc.health.v1.Health/Watch`` streams in all; 0 = no cap. Health is
    #: public (probes), and each Watch holds ~22 KB: without a cap anyone reaching the
    #: port could open them until memory ran out. ``Check`` is never capped.
    max_health_watchers: int = Field(default=1000, ge=0)
    #: Concurrent streams (calls) one HTTP/2 connection may open (its
    #: SETTINGS_MAX_CONCURRENT_STREAMS). A call waiting for its request message holds
    #: ~11 KB before the authorization gate can run, so this bounds what one
    #: connection can make the server hold. 0 = no cap, the default: clients are meant
    #: to queue calls past it, but with grpc core a burst larger than the cap on one
    #: connection gets many of them refused (RST_STREAM REFUSED_STREAM, UNAVAILABLE):
    #: 556 of 1,500 with a cap of 256, on a plain grpc.aio server.
    max_streams_per_connection: int = Field(default=0, ge=0)
    #: Client connections open at once; one more is closed as it arrives (the client
    #: sees UNAVAILABLE and tries another replica). Each holds a descriptor and buffers
    #: whether or not its caller is authorized. 0 = no cap.
    max_connections: int = Field(default=4096, ge=0)
    #: Clients may not ping more often than this while no call sends data (gRPC
    #: keepalive enforcement); a client that does is told ``too_many_pings`` and
    #: disconnected after ``max_ping_strikes`` such pings.
    min_client_ping_interval_seconds: float = Field(default=30.0, gt=0)
    max_ping_strikes: int = Field(default=2, ge=0)
    #: Whether clients may ping a connection with no call open at all (grpc's default:
    #: no, every such ping is a strike). Turn on for clients that keep idle
    #: connections warm (grpc-go's ``PermitWithoutStream``, Envoy's keepalive).
    permit_keepalive_without_calls: bool = False
    #: The server pings a connection idle this long, and drops it when the ping is
    #: not answered within ``keepalive_timeout_seconds``: a vanished client must not
    #: hold its Subscribe streams (and their caps) for ever.
    keepalive_time_seconds: float = Field(default=300.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    #: Connections are closed (gracefully) after this long, so load spreads after a
    #: scale-out and certificates are re-checked; 0 = never.
    max_connection_age_seconds: float = Field(default=1800.0, ge=0)
    max_connection_age_grace_seconds: float = Field(default=30.0, ge=0)
    #: A connection that has not finished its TLS handshake by then is closed (grpc's
    #: default): anyone can open one, with or without a certificate, and each counts
    #: against ``max_connections`` meanwhile.
    handshake_timeout_seconds: float = Field(default=120.0, gt=0)


class SecuritySettings(_Frozen):
    """Transport security, caller identity and authorization of the gRPC port."""

    tls: TlsSettings | None = None
    jwt: JwtSettings | None = None
    #: The authorization policy (TOML or YAML), re-read when it changes. Unset: no
    #: caller authentication at all, which is allowed on loopback only.
    policy_file: Path | None = None
    #: Listen off loopback without TLS and a policy anyway (logged as a warning at
    #: every start). For a mesh whose sidecar terminates mTLS in front of the adapter.
    insecure: bool = False
    limits: LimitsSettings = LimitsSettings()
    #: Seconds between checks of the policy, certificate and JWKS files for changes.
    reload_interval_seconds: float = Field(default=2.0, gt=0)
