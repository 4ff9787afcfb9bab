"""Throwaway development certificates for `make run SECURE=1` and the tests.

    python scripts/dev_certs.py [DIR]        # default var/dev-certs

Writes a CA (``ca.pem``, ``ca-key.pem``), a server pair for 127.0.0.1/localhost
(``server.pem``, ``server-key.pem``) and client pairs, each with a SPIFFE URI SAN
``spiffe://mesh-adapter.dev/ns/demo/sa/<name>`` and the subject CN ``<name>``:
``reader`` (may read every resource), ``writer`` (may also create and update
alerts) and ``outsider`` (a valid certificate the policy grants nothing). Keys are
ECDSA P-256, files 0600. Existing files are kept unless ``--force``.

Never use these outside a developer machine: the CA key sits next to them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "spiffe://mesh-adapter.dev/ns/demo/sa"
CLIENTS = ("reader", "writer", "outsider")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(days: int = 30) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-adapter dev CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # Key identifiers let verifiers pick the right CA when two share a name (a
        # CA rotation, where clients trust the old and the new one for a while).
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
    uri: str | None = None,
    days: int = 30,
    not_after: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by ``ca`` (servers: localhost + 127.0.0.1)."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if uri:
        names.append(x509.UniformResourceIdentifier(uri))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pair(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write(directory / f"{stem}.pem", pem(cert))
    _write(directory / f"{stem}-key.pem", _pem_key(key))


def write_dev_certs(directory: Path, *, force: bool = False) -> bool:
    """Writes the set into ``directory``; returns False when it was already there."""
    if (directory / "ca.pem").exists() and not force:
        return False
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca, ca_key = make_ca()
    write_pair(directory, "ca", ca, ca_key)
    write_pair(directory, "server", *issue(ca, ca_key, "mesh-adapter", server=True))
    for name in CLIENTS:
        write_pair(directory, name, *issue(ca, ca_key, name, server=False, uri=f"{TRUST_DOMAIN}/{name}"))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", default="var/dev-certs", type=Path)
    parser.add_argument("--force", action="store_true", help="replace an existing set")
    args = parser.parse_args(argv)
    if write_dev_certs(args.directory, force=args.force):
        print(f"dev certificates written to {args.directory}: ca, server, {', '.join(CLIENTS)}")
    else:
        print(f"dev certificates already in {args.directory} (--force replaces them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
