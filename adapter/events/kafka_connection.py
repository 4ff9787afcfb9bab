"""How the adapter's Kafka clients reach the brokers: addresses, TLS and SASL.

Every client (the sink's producer, the topic admin, Subscribe's consumers, the
replicas' lease groups and tails) is built with :func:`client_args` of one
:class:`KafkaConnection`, so a cluster that wants TLS or SASL is met the same way
everywhere. A plain ``str`` of addresses is a PLAINTEXT connection (tests, tools).

The files are followed, as the adapter's own certificates and the upstreams'
secret files are: each client built gets the current SASL password
(``sasl_password_file``) and a TLS context from the current ``ssl_*`` files (each
re-read when it changed, checked at most every 5 s; a bad new version keeps the
last good one, logged). So after a rotation (a new client certificate, a new
password) the next producer, which the sink builds after a refused start or a
delivery timeout, connects with the new one, and no restart is needed.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from adapter.auth.client_credentials import ClientCredentials
from adapter.auth.token_endpoint import TokenEndpoint
from adapter.config.events import KafkaSettings
from adapter.config.settings import ConfigError, env_variable
from adapter.security.reloading import ReloadingFile
from adapter.upstream.errors import CredentialError
from adapter.upstream.secret_source import SecretSource, source_of

from .kafka_oauth import KafkaTokenProvider

__all__ = ["FILES_RELOAD_SECONDS", "KafkaConnection", "KafkaTarget", "client_args"]

#: How often a client being built looks whether the password or TLS files changed.
FILES_RELOAD_SECONDS = 5.0


@dataclass(frozen=True)
class KafkaConnection:
    """Bootstrap addresses and the security options every client is given."""

    bootstrap_servers: str
    #: aiokafka's ``security_protocol`` and ``sasl_*`` arguments (but the password).
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: The SASL password (never in ``repr``), read when a client is built.
    password: SecretSource | None = field(default=None, repr=False, compare=False)
    #: The TLS context of the ``ssl_*`` files, rebuilt when they change.
    tls: ReloadingFile[ssl.SSLContext] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        protocol = self.options.get("security_protocol", "PLAINTEXT")
        return self.bootstrap_servers if protocol == "PLAINTEXT" else f"{self.bootstrap_servers} ({protocol})"

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> KafkaConnection:
        """Raises ConfigError naming the key when a TLS file or the password file is unusable."""
        options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
        tls = _tls(kafka) if kafka.security_protocol.endswith("SSL") else None
        password = None
        if kafka.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = kafka.sasl_mechanism
            if kafka.sasl_mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = _token_provider(kafka)
            else:
                options["sasl_plain_username"] = kafka.sasl_username
                password = _password(kafka)
        return cls(kafka.bootstrap_servers, options, password, tls)


#: What the clients accept: addresses alone (PLAINTEXT), or a configured connection.
KafkaTarget = str | list[str] | KafkaConnection


def client_args(target: KafkaTarget) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments for an aiokafka client."""
    if isinstance(target, KafkaConnection):
        args = {"bootstrap_servers": target.bootstrap_servers, **target.options}
        if target.password is not None:
            args["sasl_plain_password"] = target.password.get()
        if target.tls is not None:
            args["ssl_context"] = target.tls.current()
        return args
    return {"bootstrap_servers": target}


def _tls(kafka: KafkaSettings) -> ReloadingFile[ssl.SSLContext]:
    """The TLS context, loaded once here: unusable files stop the start."""

    def load() -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(
            cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile
        )
        return context

    files = [path for path in (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) if path is not None]
    try:
        return ReloadingFile("Kafka TLS files", files, load, interval=FILES_RELOAD_SECONDS)
    except OSError as exc:  # ssl.SSLError too
        keys = "events.kafka.ssl_cafile / ssl_certfile / ssl_keyfile"
        raise ConfigError(f"{keys}: cannot load the TLS files: {exc.strerror or exc}") from None


def _token_provider(kafka: KafkaSettings) -> KafkaTokenProvider:
    """OAUTHBEARER's tokens; the client secret is read once here: an unusable file stops the start."""
    secret = _secret(
        kafka.sasl_oauth_client_secret, kafka.sasl_oauth_client_secret_file, "sasl_oauth_client_secret_file"
    )
    endpoint = TokenEndpoint(
        kafka.sasl_oauth_token_url,
        client_id=kafka.sasl_oauth_client_id,
        client_secret=secret,
        upstream="kafka",
    )
    return KafkaTokenProvider(ClientCredentials(endpoint, scope=kafka.sasl_oauth_scope))


def _password(kafka: KafkaSettings) -> SecretSource:
    """The password's source, read once here: an unusable file stops the start."""
    return _secret(kafka.sasl_password, kafka.sasl_password_file, "sasl_password_file")


def _secret(value: SecretStr | None, path: Path | None, file_key: str) -> SecretSource:
    """The inline value or the file's source, its first read here."""
    source = source_of(value, path, reload_interval=FILES_RELOAD_SECONDS)
    assert source is not None  # the settings require one of them
    try:
        source.get()
    except CredentialError as exc:
        key = f"events.kafka.{file_key}"
        raise ConfigError(f"{key} ({env_variable(key)}): {exc}") from None
    return source
