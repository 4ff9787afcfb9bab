"""TLS for the gRPC port and the webhook receiver, with certificates that rotate
without a restart.

gRPC: ``grpc.dynamic_ssl_server_credentials`` asks a fetcher for the certificate
configuration at every new handshake; the fetcher returns a new configuration only
when the files changed (:class:`~adapter.security.reloading.ReloadingFile`), so
connections made after a rotation present the new certificate and trust the new
client CA, and existing connections finish undisturbed (they are recycled by
``max_connection_age``).

Webhook receiver (aiohttp): an ``ssl.SSLContext`` whose chain is reloaded into the
same context when the files change (checked by a small task), which new
handshakes then use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass

import grpc

from adapter.config.security import TlsSettings

from .reloading import ReloadingFile

__all__ = ["ReloadingSslContext", "TlsMaterial", "grpc_server_credentials"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None


def _load(settings: TlsSettings) -> TlsMaterial:
    material = TlsMaterial(
        cert_chain=settings.cert_file.read_bytes(),
        private_key=settings.key_file.read_bytes(),
        client_ca=settings.client_ca_file.read_bytes() if settings.client_ca_file else None,
    )
    # Check the pair now: a broken rotation is refused here, not at the next handshake.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.client_ca_file:
        context.load_verify_locations(settings.client_ca_file)
    return material


def tls_files(settings: TlsSettings, *, interval: float) -> ReloadingFile[TlsMaterial]:
    paths = [
        settings.cert_file,
        settings.key_file,
        *([settings.client_ca_file] if settings.client_ca_file else []),
    ]
    return ReloadingFile("TLS certificate", paths, lambda: _load(settings), interval=interval)


def grpc_server_credentials(settings: TlsSettings, *, interval: float = 2.0) -> grpc.ServerCredentials:
    """Server credentials that follow the certificate files."""
    files = tls_files(settings, interval=interval)
    served = files.current()

    def configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(material.private_key, material.cert_chain)], root_certificates=material.client_ca
        )

    def fetch() -> grpc.ServerCertificateConfiguration:
        # Called by gRPC core at each handshake, on its own thread: only read state.
        nonlocal served
        current = files.current()
        if current is served:
            return None  # type: ignore[return-value]  # None keeps the configuration in use
        served = current
        logger.info("TLS: new certificate configuration in use for new connections")
        return configuration(current)

    return grpc.dynamic_ssl_server_credentials(
        configuration(served),
        fetch,
        require_client_authentication=settings.client_auth == "require",
    )


class ReloadingSslContext:
    """An ``SSLContext`` for aiohttp whose certificate follows the files."""

    def __init__(self, settings: TlsSettings, *, interval: float = 2.0) -> None:
        self._settings = settings
        self._files = tls_files(settings, interval=interval)
        self._interval = interval
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._apply()
        self._task: asyncio.Task[None] | None = None

    def _apply(self) -> None:
        self.context.load_cert_chain(self._settings.cert_file, self._settings.key_file)
        if self._settings.client_ca_file is not None:
            self.context.load_verify_locations(self._settings.client_ca_file)
        if self._settings.client_auth == "require":
            self.context.verify_mode = ssl.CERT_REQUIRED

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="tls-reload")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._files.check():
                try:
                    self._apply()
                except (OSError, ssl.SSLError) as exc:  # raced a half-written rotation
                    logger.error("webhook TLS: reload failed, keeping the previous certificate: %s", exc)
