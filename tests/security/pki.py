"""Certificates for the TLS tests, made with the demo's own script
(scripts/dev_certs.py): the dev set (CA, server, reader, writer, outsider), a
certificate from a CA nobody trusts, and server rotations written the way a
mesh's agent writes them (new file, then rename)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc

from scripts.dev_certs import TRUST_DOMAIN, issue, make_ca, pem, write_dev_certs, write_pair

__all__ = ["Pki"]


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        write_dev_certs(directory)
        stranger_ca, stranger_key = make_ca()
        write_pair(
            directory,
            "untrusted",
            *issue(stranger_ca, stranger_key, "reader", server=False, uri=f"{TRUST_DOMAIN}/reader"),
        )

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    def tls_settings(self, **extra: object) -> dict[str, object]:
        return {
            "cert_file": self.dir / "server.pem",
            "key_file": self.dir / "server-key.pem",
            "client_ca_file": self.ca,
            **extra,
        }

    def channel_credentials(self, client: str | None) -> grpc.ChannelCredentials:
        """Trusts the dev CA; presents ``client``'s certificate (None: none)."""
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=(self.dir / f"{client}-key.pem").read_bytes(),
            certificate_chain=(self.dir / f"{client}.pem").read_bytes(),
        )

    def channel(self, port: int, client: str | None) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            self.channel_credentials(client),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )

    def rotate_server(self, *, days: int = 30) -> bytes:
        """A new server certificate (same CA) replacing the files by rename; returns its PEM."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        ca = x509.load_pem_x509_certificate(self.ca.read_bytes())
        ca_key = serialization.load_pem_private_key((self.dir / "ca-key.pem").read_bytes(), password=None)
        cert, key = issue(
            ca,
            ca_key,  # type: ignore[arg-type]
            "mesh-adapter",
            server=True,
            not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
        )
        staging = self.dir / "staging"
        staging.mkdir(exist_ok=True)
        write_pair(staging, "server", cert, key)
        # Key first, then the certificate: a reader between the two renames sees a
        # mismatched pair, which the reload refuses (keeping the previous pair).
        (staging / "server-key.pem").replace(self.dir / "server-key.pem")
        (staging / "server.pem").replace(self.dir / "server.pem")
        return pem(cert)
