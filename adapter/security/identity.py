"""Who is calling: the principal of a call, from its mTLS peer certificate or its
bearer JWT.

Certificate principals, in this order of preference: the URI SAN as is (a SPIFFE
ID such as ``spiffe://corp/ns/billing/sa/api``), ``dns:<first DNS SAN>``,
``cn:<subject CN>``. A JWT's principal is ``jwt:<sub>`` (or the configured
claim). When a call carries both, the JWT names the caller (the end identity, as
behind a mesh sidecar) and the certificate is kept as its ``peer``.

The current call's principal is ``current_principal()`` (a context variable set
by the authorization interceptor), so the layers below can use it for per-tenant
credentials and quota shares without threading it through every call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["ANONYMOUS", "Principal", "current_principal", "principal_from_certificate"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    #: ``mtls``, ``jwt`` or ``none`` (no caller authentication configured: loopback only).
    source: str
    #: The certificate identity when a JWT named the caller over mTLS.
    peer: str = ""
    claims: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


#: The caller of an adapter without caller authentication (loopback only).
ANONYMOUS = Principal(name="anonymous", source="none")

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "mesh_adapter_principal", default=ANONYMOUS
)


class _CurrentPrincipal:
    """``current_principal()`` (or ``.get()``): the caller of the RPC being served,
    ANONYMOUS outside one or without caller authentication. ``set``/``reset`` are
    the gate's (a context variable's, so concurrent calls never see each other's)."""

    def __call__(self) -> Principal:
        return _principal.get()

    def get(self) -> Principal:
        return _principal.get()

    def set(self, principal: Principal) -> contextvars.Token[Principal]:
        return _principal.set(principal)

    def reset(self, token: contextvars.Token[Principal]) -> None:
        _principal.reset(token)


current_principal = _CurrentPrincipal()


def principal_from_certificate(pem: bytes) -> Principal | None:
    """The principal of a verified client certificate (PEM), or None when it names
    nothing usable."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris: Sequence[str] = san.get_values_for_type(x509.UniformResourceIdentifier)
        dns: Sequence[str] = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        uris, dns = [], []
    if uris:
        return Principal(name=uris[0], source="mtls")
    if dns:
        return Principal(name=f"dns:{dns[0]}", source="mtls")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return Principal(name=f"cn:{value if isinstance(value, str) else value.decode()}", source="mtls")
    return None
