"""The failure of a GraphQL operation that the upstream answered with ``errors``.

::

    UpstreamError (adapter.upstream.errors)
    └── UpstreamGraphQLError    the answer carries errors (any status; a 2xx with data too,
                                unless the method allows partial answers)

:mod:`adapter.status.graphql_errors` maps it to a gRPC status through its table.
"""

from __future__ import annotations

from adapter.upstream.errors import UpstreamError
from adapter.upstream.messages import UpstreamResponse

from .answer import GraphQLAnswer

__all__ = ["UpstreamGraphQLError"]


class UpstreamGraphQLError(UpstreamError):
    reason = "UPSTREAM_GRAPHQL_ERROR"

    def __init__(
        self, answer: GraphQLAnswer, response: UpstreamResponse, *, upstream: str, route: str
    ) -> None:
        first = answer.errors[0]
        more = f" (and {len(answer.errors) - 1} more)" if len(answer.errors) > 1 else ""
        said = f"{first.code}: {first.message}" if first.code else first.message
        super().__init__(
            f"GraphQL error {said}{more}", upstream=upstream, route=route, request_id=response.request_id
        )
        self.answer = answer
        self.response = response
