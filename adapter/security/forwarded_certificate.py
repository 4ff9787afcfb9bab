"""The caller's certificate as Envoy hands it on (``x-forwarded-client-cert``).

Behind the envoy front, TLS ends at Envoy: neither the front nor the grpc.aio server
behind it sees the caller's handshake, so the authorization gate reads the
certificate Envoy verified from the XFCC header instead. Envoy is configured to
``SANITIZE_SET`` it (adapter/server/envoy_front/envoy_config.py): a caller's own
header is dropped and Envoy's written, so the value can be trusted on that path
only; the grpc.aio server behind Envoy listens on a Unix socket in a private
directory that nothing else reaches.

Hand-written: the header's grammar (Envoy's docs, "x-forwarded-client-cert") is a
few lines, and no maintained Python library parses it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

__all__ = ["XFCC", "forwarded_certificates"]

XFCC = "x-forwarded-client-cert"


def forwarded_certificates(metadata: Sequence[tuple[str, str | bytes]] | None) -> list[bytes]:
    """The PEM certificate of the ``Cert`` field of the last XFCC element (the one
    the proxy next to the adapter wrote), or none. Elements are comma-separated,
    fields semicolon-separated, values optionally quoted and URL-encoded (a PEM's
    characters never include the separators once encoded)."""
    values = [v for k, v in metadata or () if k == XFCC]
    if not values:
        return []
    value = values[-1]
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    element = text.split(",")[-1]
    for field in element.split(";"):
        key, _, raw = field.strip().partition("=")
        if key.lower() == "cert" and raw:
            pem = urllib.parse.unquote(raw.strip('"'))
            return [pem.encode()] if pem.startswith("-----BEGIN CERTIFICATE-----") else []
    return []
