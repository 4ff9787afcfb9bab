"""``upstreams.<name>.graphql``: the upstream's GraphQL endpoint, used by the RPCs the
protos bind with ``(meshadapter.options.v1.graphql)``. See docs/configuration.md."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .resilience import RateLimitSettings

__all__ = ["GraphQLSettings"]


class GraphQLSettings(BaseModel):
    """Where the GraphQL endpoint is and its client-side quota."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Path of the endpoint under the upstream's ``base_url``.
    path: str = Field(default="/graphql", pattern=r"^/\S*$")
    #: Quota of GraphQL requests, counted apart from the REST quota
    #: (``resilience.rate_limit``): OCTOSPINE documents 500 queries a minute.
    rate_limit: RateLimitSettings = RateLimitSettings(requests_per_window=500)
