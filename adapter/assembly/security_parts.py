"""The gRPC port's security, built once from ``settings.security``: the server
credentials (TLS/mTLS, following the certificate files), the authorization gate
(:class:`~adapter.security.authorizer.CallAuthorizer`, the first interceptor),
whether reflection is served, and the safe defaults.

Safe defaults: off loopback the adapter refuses to start without TLS and a
policy, unless ``security.insecure`` says a sidecar does that job (then it warns
at every start). Reflection follows ``grpc.reflection``; unset, it is on at
loopback only. The permission of every served method is read from the
descriptors before anything listens: a method without one stops the start.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from meshadapter.v1 import events_pb2

from adapter.config.security import JwtSettings
from adapter.config.settings import ConfigError, Settings, env_variable
from adapter.descriptors.permissions import topic_permission
from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.security.jwt_verifier import JwtVerifier
from adapter.security.policy import Policy, PolicyError, load_policy
from adapter.security.reloading import ReloadingFile
from adapter.security.tls import grpc_server_credentials, tls_files

from .tenants import checked_policy_loader

__all__ = [
    "SUBSCRIBE_METHOD",
    "GrpcSecurity",
    "build_grpc_security",
    "build_policy",
    "is_loopback",
    "subscribe_permissions",
]

logger = logging.getLogger(__name__)

RequestPermissions = Mapping[str, Callable[[Any], Sequence[str]]]
SUBSCRIBE_METHOD = "/meshadapter.v1.EventService/Subscribe"


def subscribe_permissions(served_topics: Sequence[str]) -> Callable[[Any], list[str]]:
    """``Subscribe`` needs ``events.<topic>.subscribe`` for each topic it streams
    (every served topic when the request names none)."""

    served = frozenset(served_topics)

    def of_request(request: Any) -> list[str]:
        if not isinstance(request, events_pb2.SubscribeRequest):
            return []  # undecodable: the decoding interceptor answers INVALID_ARGUMENT
        # Each topic once, and only served ones: the service refuses any other
        # (INVALID_ARGUMENT naming it) before Kafka is asked. So a request naming a
        # topic 200,000 times, or 200,000 topics, costs one check per served topic.
        named = dict.fromkeys(request.topics) if request.topics else served_topics
        return [topic_permission(t) for t in named if t in served]

    return of_request


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or a wildcard ("0.0.0.0", "::", "") reaches the network


@dataclass(frozen=True)
class GrpcSecurity:
    credentials: grpc.ServerCredentials | None
    #: None: no caller authentication (loopback, or ``insecure``): every call is ANONYMOUS.
    authorizer: CallAuthorizer | None
    policy: ReloadingFile[Policy] | None
    reflection: bool


def build_policy(settings: Settings) -> ReloadingFile[Policy] | None:
    """The policy file, followed (None without one). Its tenant bindings must name
    configured credential sets: at start a policy that does not refuses the start;
    a reloaded one is refused and the last good policy stays (adapter/assembly/tenants.py)."""
    path = settings.security.policy_file
    if path is None:
        return None
    try:
        return ReloadingFile(
            "authorization policy",
            [path],
            checked_policy_loader(lambda: load_policy(path), settings),
            interval=settings.security.reload_interval_seconds,
        )
    except PolicyError as exc:  # the start's message names the key, like every other
        raise PolicyError(f"security.policy_file ({env_variable('security.policy_file')}): {exc}") from None


def build_grpc_security(
    settings: Settings,
    *,
    permissions: Mapping[str, str],
    policy: ReloadingFile[Policy] | None,
    request_permissions: RequestPermissions | None = None,
) -> GrpcSecurity:
    """Raises ConfigError for an unsafe or inconsistent configuration, PolicyError
    (or OSError / ssl.SSLError) for unusable files at start."""
    sec = settings.security
    host = settings.grpc.host
    loopback = is_loopback(host)
    if sec.jwt is not None and sec.policy_file is None:
        raise ConfigError("security.jwt is set but security.policy_file is not: a token would grant nothing")
    if not loopback and (sec.tls is None or sec.policy_file is None):
        missing = " and ".join(
            k for k, v in (("security.tls", sec.tls), ("security.policy_file", sec.policy_file)) if v is None
        )
        if not sec.insecure:
            raise ConfigError(
                f"grpc.host={host} is not loopback and {missing} is not set: anyone on the network could "
                "call the vendors with the adapter's credentials. Configure them (docs/security.md), or set "
                "security.insecure=true when a sidecar authenticates callers in front of the adapter"
            )
    if sec.insecure:
        if not loopback and (sec.tls is None or sec.policy_file is None):
            logger.warning(
                "security.insecure is set: the gRPC port on %s listens without %s; only a sidecar "
                "in front of it keeps callers out",
                host,
                " and ".join(k for k, v in (("TLS", sec.tls), ("a policy", sec.policy_file)) if v is None),
            )
        else:
            logger.warning("security.insecure is set; it changes nothing (loopback, or TLS and a policy)")
    reflection = settings.grpc.reflection if settings.grpc.reflection is not None else loopback
    interval = sec.reload_interval_seconds
    authorizer: CallAuthorizer | None = None
    # Behind the envoy front this server listens on its private Unix socket: TLS ends
    # at Envoy, which hands the caller's certificate on (adapter/server/envoy_front).
    behind_envoy = settings.grpc.behind_envoy
    if policy is not None:
        jwt = _jwt_verifier(sec.jwt, interval) if sec.jwt is not None else None
        authorizer = CallAuthorizer(
            forwarded_certificate=behind_envoy and sec.tls is not None,
            forwarded_peer=behind_envoy,
            permissions=permissions,
            policy=policy.current,
            jwt=jwt,
            audit=AuditLog(),
            max_in_flight_per_principal=sec.limits.max_concurrent_rpcs_per_principal,
            request_permissions=request_permissions,
        )
    credentials = None
    if sec.tls is not None:
        try:
            if behind_envoy:  # Envoy serves them: read here only to refuse unusable files at start
                tls_files(sec.tls, interval=interval).current()
            else:
                credentials = grpc_server_credentials(sec.tls, interval=interval)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"security.tls: the certificate files are unusable: {exc}") from None
    logger.info(
        "gRPC port security: %s, %s, reflection %s",
        "mTLS" if sec.tls and sec.tls.client_auth == "require" else "TLS" if sec.tls else "plaintext",
        f"policy {sec.policy_file}" if sec.policy_file else "no caller authentication",
        "on" if reflection else "off",
    )
    return GrpcSecurity(credentials, authorizer, policy, reflection)


def _jwt_verifier(settings: JwtSettings, interval: float) -> JwtVerifier:
    try:
        return JwtVerifier(settings, reload_interval=interval)
    except (OSError, ValueError, jwt.PyJWTError) as exc:  # an unreadable or malformed JWKS file
        raise ConfigError(f"security.jwt.jwks_file: unusable: {exc}") from None
