"""Refuses to start when a file an upstream needs cannot be read: a credential file
or the ``ca_bundle``.

A ``*_file`` secret is read by :class:`~adapter.upstream.secret_source.SecretSource`
on first use and re-read when it changes, keeping the last good value while a
rotation briefly removes or empties the file. At start there is no last good value:
a missing, unreadable or empty file would make every call of that upstream fail
INTERNAL ``UPSTREAM_CREDENTIALS_UNAVAILABLE`` (and its stream fail) while health
reads SERVING. So each one is read once before the adapter serves, and a bad one
stops the start with exit code 2, naming the key, like the other files the adapter
is given (TLS certificates, JWKS, page-token keys). A ``ca_bundle`` is loaded when
the transports are built; unchecked, a bad one ended the start with a traceback.
"""

from __future__ import annotations

from adapter.config.settings import (
    ApiKeyAuth,
    ConfigError,
    JwtAuth,
    OAuth2AuthorizationCodeAuth,
    OAuth2ClientCredentialsAuth,
    Settings,
    UpstreamAuth,
    env_variable,
)
from adapter.upstream.errors import CredentialError
from adapter.upstream.secret_source import SecretSource
from adapter.upstream.transport import tls_verification

__all__ = ["check_upstream_files"]

#: The keys of each credential kind that name a secret file. The authorization-code
#: grant's ``token_file`` is not one: ``python -m adapter login`` writes it, and a
#: missing one answers UPSTREAM_LOGIN_REQUIRED naming that command.
SECRET_FILE_KEYS: dict[type, tuple[str, ...]] = {
    ApiKeyAuth: ("api_key_file",),
    OAuth2ClientCredentialsAuth: ("client_secret_file",),
    OAuth2AuthorizationCodeAuth: ("client_secret_file",),
    JwtAuth: ("token_file", "private_key_file"),
}


def _auths(settings: Settings) -> list[tuple[str, UpstreamAuth]]:
    found: list[tuple[str, UpstreamAuth]] = []
    for name, upstream in settings.upstreams.items():
        found.append((f"upstreams.{name}.auth", upstream.auth))
        found += [
            (f"upstreams.{name}.credential_sets.{s}", auth) for s, auth in upstream.credential_sets.items()
        ]
    return found


def check_upstream_files(settings: Settings) -> None:
    """Reads every configured secret file and CA bundle once; raises ConfigError naming
    each one that is missing, unreadable, empty or not PEM (a secret's content is never
    part of the message)."""
    problems = []
    for name, upstream in settings.upstreams.items():
        try:
            tls_verification(upstream)
        except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
            dotted = f"upstreams.{name}.ca_bundle"
            reason = f"cannot load {upstream.ca_bundle}: {exc.strerror or exc}"
            problems.append(f"  {dotted} ({env_variable(dotted)}): {reason}")
    for where, auth in _auths(settings):
        for key in SECRET_FILE_KEYS[type(auth)]:
            path = getattr(auth, key)
            if path is None:
                continue
            try:
                SecretSource.from_file(path).get()
            except CredentialError as exc:
                dotted = f"{where}.{key}"
                problems.append(f"  {dotted} ({env_variable(dotted)}): {exc}")
    if problems:
        raise ConfigError("unusable upstream files:\n" + "\n".join(problems))
