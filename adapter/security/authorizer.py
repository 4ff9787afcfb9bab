"""The gate in front of every RPC: authenticate the caller, check the method's
permission against the policy, cap its concurrency, audit, and only then run the
handler. A refused call never reaches a handler, so no vendor request is made.

The request of a unary-request method is parsed only once its caller is
authenticated and holds the method's permission: grpc.aio parses it before any
handler runs, so the gate takes the parsing over (the handler is served raw
bytes). A caller without credentials thus costs no parsing of its request (up to
4 MiB, ~1 s of the event loop for a message of 300,000 map entries) nor its
diagnosis. Streamed requests are parsed as the handler reads them, after the gate.

Statuses (with ``ErrorInfo``, domain ``mesh-adapter``):

- UNAUTHENTICATED: no usable identity (an invalid, expired or wrong-audience JWT;
  a certificate naming nothing), reason per failure;
- PERMISSION_DENIED: the principal lacks the method's permission, which
  ``ErrorInfo.metadata`` names (``permission``, ``principal``);
- RESOURCE_EXHAUSTED: the principal has ``max_concurrent_rpcs_per_principal``
  calls in flight already.

Health (``grpc.health.v1.Health``) is public. Everything else needs a permission,
declared per RPC in the protos (``(meshadapter.options.v1.method).permission``);
the server refuses to start when a served method lacks one.
"""

from __future__ import annotations

import collections
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from adapter.status.call_ending import end_call
from adapter.status.mapping import ERROR_DOMAIN

from .audit import AuditLog, trace_id_of
from .forwarded_certificate import forwarded_certificates
from .forwarded_peer import PEER_HEADER, caller_peer
from .identity import ANONYMOUS, Principal, current_principal, principal_from_certificate
from .jwt_verifier import AuthenticationFailed, JwtVerifier
from .policy import Policy

__all__ = ["PUBLIC_METHODS", "CallAuthorizer"]

logger = logging.getLogger(__name__)

PUBLIC_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


# grpc-stubs lags behind grpc.aio (abort_with_status, handler._replace): the gate
# works on the runtime objects, typed loosely here on purpose.
Context = Any
Handler = Any
#: A handler's ``request_deserializer``: request bytes to the request.
Parse = Callable[[bytes], Any]


class _Refused(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str],
        principal: str = "",
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.metadata = code, reason, metadata
        #: The authenticated caller, when the refusal came after authentication.
        self.principal = principal

    def status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)
        packed = status_pb2.Status(code=self.code.value[0], message=str(self))
        packed.details.add().Pack(info)
        return rpc_status.to_status(packed)


class CallAuthorizer(aio.ServerInterceptor):  # type: ignore[type-arg]
    """``policy()`` returns the current policy, or None when caller authentication is
    off (loopback only: every call is ANONYMOUS and allowed)."""

    def __init__(
        self,
        *,
        permissions: Mapping[str, str],
        policy: Callable[[], Policy] | None,
        jwt: JwtVerifier | None,
        audit: AuditLog,
        max_in_flight_per_principal: int = 0,
        request_permissions: Mapping[str, Callable[[Any], Sequence[str]]] | None = None,
        forwarded_certificate: bool = False,
        forwarded_peer: bool = False,
    ) -> None:
        """``forwarded_certificate``: the caller's certificate is the one a trusted proxy
        (the envoy front's Envoy) verified and handed on in ``x-forwarded-client-cert``,
        not the connection's (adapter/security/forwarded_certificate.py);
        ``forwarded_peer``: a call over the front's Unix socket names the address that
        proxy forwarded as its caller (adapter/security/forwarded_peer.py)."""
        self._certificates = _forwarded if forwarded_certificate else _handshake
        self._peer = _forwarded_peer if forwarded_peer else _own_peer
        self._permissions = dict(permissions)
        self._request_permissions = dict(request_permissions or {})
        self._policy = policy
        self._jwt = jwt
        self._audit = audit
        self._cap = max_in_flight_per_principal
        self._in_flight: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()

    def permission_of(self, method: str) -> str | None:
        return self._permissions.get(method)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler: Handler = await continuation(details)
        method = details.method
        if handler is None or method in PUBLIC_METHODS:
            return handler
        parse = handler.request_deserializer
        if handler.unary_unary is not None:
            gate = self._unary(method, handler.unary_unary, parse)
            return handler._replace(unary_unary=gate, request_deserializer=None)
        if handler.unary_stream is not None:
            gate = self._streaming(method, handler.unary_stream, parse)
            return handler._replace(unary_stream=gate, request_deserializer=None)
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(method, handler.stream_stream, None))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(method, handler.stream_unary, None))
        return handler

    def _certificate_principal(self, context: Context) -> Principal | None:
        pems = self._certificates(context)
        if not pems:
            return None
        try:
            return principal_from_certificate(pems[0])
        except ValueError:
            return None

    def _who(self, context: Context) -> str:
        peer = self._certificate_principal(context)
        return peer.name if peer is not None else self._peer(context)

    # decision ------------------------------------------------------------------

    async def authorize(self, method: str, context: Context) -> Principal:
        """The caller of ``context`` if it holds ``method``'s permission; raises _Refused.
        Needs nothing of the request, so it runs before the request is parsed.

        Whatever else goes wrong while deciding refuses the call too (INTERNAL), so a
        fault here never lets a call through nor ends it UNKNOWN with the fault's text."""
        permission = self._permissions.get(method)
        if permission is None:  # not declared: default deny, even without a policy
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "NO_PERMISSION_DECLARED",
                f"{method} declares no permission",
                {"method": method},
            )
        if self._policy is None:
            return ANONYMOUS
        try:
            principal = await self._authenticate(context)
            self._check(self._policy(), principal, [permission])
            return principal
        except _Refused:
            raise
        except Exception as exc:
            raise _fault(method, exc) from None

    def authorize_request(self, method: str, principal: Principal, request: Any) -> None:
        """Raises _Refused unless ``principal`` holds the permissions ``request`` needs
        beyond its method's (``Subscribe``'s topics); nothing for other methods."""
        of_request = self._request_permissions.get(method)
        if of_request is None or self._policy is None:
            return
        try:
            self._check(self._policy(), principal, of_request(request))
        except _Refused:
            raise
        except Exception as exc:
            raise _fault(method, exc) from None

    @staticmethod
    def _check(policy: Policy, principal: Principal, needed: Sequence[str]) -> None:
        for wanted in needed:
            if not policy.allows(principal.name, wanted):
                raise _Refused(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "PERMISSION_DENIED",
                    f"{principal.name} lacks permission {wanted}",
                    {"permission": wanted, "principal": principal.name},
                    principal.name,
                )

    def allows(self, principal: Principal, permission: str) -> bool:
        """For checks inside a call (``Subscribe``'s topics)."""
        return self._policy is None or self._policy().allows(principal.name, permission)

    async def _authenticate(self, context: Context) -> Principal:
        peer = self._certificate_principal(context)
        token = _bearer(context)
        if token is not None:
            if self._jwt is None:
                raise _Refused(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "JWT_NOT_ACCEPTED",
                    "bearer tokens are not configured",
                    {},
                )
            try:
                principal = await self._jwt.verify(token)
            except AuthenticationFailed as exc:
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, exc.reason, exc.detail, {}) from None
            if peer is not None:
                return Principal(principal.name, principal.source, peer=peer.name, claims=principal.claims)
            return principal
        if peer is not None:
            return peer
        raise _Refused(
            grpc.StatusCode.UNAUTHENTICATED,
            "NO_CREDENTIALS",
            "no client certificate and no bearer token",
            {},
        )

    # wrappers ------------------------------------------------------------------

    def _admit(self, principal: Principal) -> None:
        if self._cap and self._in_flight[principal.name] >= self._cap:
            raise _Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_CONCURRENT_CALLS",
                f"{principal.name} has {self._cap} calls in flight already",
                {"principal": principal.name, "limit": str(self._cap)},
                principal.name,
            )
        self._in_flight[principal.name] += 1

    def _release(self, principal: Principal) -> None:
        self._in_flight[principal.name] -= 1
        if self._in_flight[principal.name] <= 0:
            del self._in_flight[principal.name]

    def _refuse(self, method: str, context: Context, refused: _Refused, principal: str) -> None:
        self.refused[refused.code.name] += 1
        self._audit.refused(
            method=method,
            principal=principal,
            code=refused.code.name,
            reason=refused.reason,
            trace_id=trace_id_of(_metadata_value(context, "traceparent")),
        )
        end_call(context, refused.status())

    async def _admitted(
        self, method: str, context: Context, request: Any, parse: Parse | None
    ) -> tuple[Principal, Any]:
        """The caller and the request: authorizes the call, then parses its request
        (when the gate took the parsing over) and checks what the request itself needs."""
        principal = await self.authorize(method, context)
        if parse is not None:
            request = parse(request)  # raw bytes until the caller was authorized
        self.authorize_request(method, principal, request)
        return principal, request

    def _unary(
        self, method: str, behavior: Callable[..., Awaitable[Any]], parse: Parse | None
    ) -> Callable[..., Awaitable[Any]]:
        audited = self._audit.is_audited(self._permissions.get(method, ""))

        async def gate(request: Any, context: Context) -> Any:
            try:
                principal, request = await self._admitted(method, context, request, parse)
                self._admit(principal)
            except _Refused as refused:
                self._refuse(method, context, refused, refused.principal or self._who(context))
                return None
            token = current_principal.set(principal)
            record = self._audit.begin() if audited else None
            outcome = "OK"
            try:
                response = await behavior(request, context)
                if record is not None:  # an error status is set on the context, not raised
                    outcome = _code_name(context, "OK")
                return response
            except BaseException:
                outcome = _code_name(context, "UNKNOWN")
                raise
            finally:
                current_principal.reset(token)
                self._release(principal)
                if record is not None:
                    self._audit.completed(record, method=method, principal=principal, outcome=outcome)

        return gate

    def _streaming(
        self, method: str, behavior: Callable[..., Any], parse: Parse | None
    ) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):
            # A streaming handler that writes with ``context.write`` (a coroutine, like
            # grpcio-health's Watch) rather than yielding: gate it as a unary one.
            return self._unary(method, behavior, parse)

        async def gate(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                principal, request = await self._admitted(method, context, request, parse)
            except _Refused as refused:
                self._refuse(method, context, refused, refused.principal or self._who(context))
                return
            # Admitted: the caller hears so at once (initial metadata), and a client
            # need not write into a call that may still be refused.
            await context.send_initial_metadata(())
            token = current_principal.set(principal)
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                current_principal.reset(token)

        return gate


def _fault(method: str, exc: Exception) -> _Refused:
    logger.error("authorizing a call of %s failed (%s); refused", method, type(exc).__name__)
    return _Refused(grpc.StatusCode.INTERNAL, "AUTHORIZATION_FAILED", "the call could not be authorized", {})


def _code_name(context: Context, default: str) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else default


def _handshake(context: Context) -> Sequence[bytes]:
    return context.auth_context().get("x509_pem_cert") or ()


def _own_peer(context: Context) -> str:
    peer: str = context.peer()
    return peer


def _forwarded_peer(context: Context) -> str:
    return caller_peer(_own_peer(context), _metadata_value(context, PEER_HEADER))


def _forwarded(context: Context) -> Sequence[bytes]:
    return forwarded_certificates(context.invocation_metadata())


def _metadata_value(context: Context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _bearer(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None
