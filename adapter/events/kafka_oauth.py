"""SASL/OAUTHBEARER for Kafka: access tokens from an OAuth2 token endpoint.

aiokafka asks its ``sasl_oauth_token_provider`` for a token each time a connection
logs in. The adapter's own client credentials (:class:`ClientCredentials`, as the
upstreams use them) answer it: one token shared by every Kafka client, renewed
before it expires, a failed renewal held instead of repeated on every connection,
and a rotated client secret file picked up without a restart.
"""

from __future__ import annotations

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from adapter.auth.client_credentials import ClientCredentials
from adapter.auth.errors import CredentialError

__all__ = ["KafkaTokenProvider"]


class KafkaTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """The current access token of ``credentials`` for a Kafka login."""

    def __init__(self, credentials: ClientCredentials) -> None:
        self.credentials = credentials

    async def token(self) -> str:
        try:
            return (await self.credentials.current()).value
        except CredentialError as exc:
            # As a Kafka error, so aiokafka counts the login as failed (and the adapter's
            # line names why) instead of the error escaping its connection code.
            raise KafkaConnectionError(f"no OAUTHBEARER token: {exc}") from None

    def __repr__(self) -> str:
        return f"KafkaTokenProvider({self.credentials.describe()})"
