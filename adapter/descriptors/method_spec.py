"""What one RPC means upstream, read from its descriptor's options.

A :class:`MethodSpec` gathers the method's ``google.api.http`` rule and the
``meshadapter.options.v1`` options; nothing here knows a particular endpoint.
A method bound to a GraphQL operation instead (``(meshadapter.options.v1.graphql)``)
gets a spec whose ``graphql`` is set: a ``POST`` of its own route, retried and
cached only when it is a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor as _d
from google.protobuf import message_factory
from google.protobuf.message import Message
from meshadapter.options.v1 import options_pb2

from adapter.descriptors.graphql_operation import GraphQLBinding, GraphQLBindingError, read_graphql_binding
from adapter.descriptors.path_template import PathTemplate, PathTemplateError

__all__ = ["MethodSpec", "PageStyle", "SpecError", "method_spec"]

_IDEMPOTENT_VERBS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})


class SpecError(ValueError):
    """A proto's annotations are incomplete or inconsistent (found at start-up)."""


class PageStyle(Enum):
    NONE = "none"
    PAGE = "page"
    CURSOR = "cursor"
    OFFSET = "offset"


_STYLE_BY_OPTION = {
    options_pb2.PAGINATION_UNSPECIFIED: PageStyle.NONE,
    options_pb2.PAGINATION_NONE: PageStyle.NONE,
    options_pb2.PAGINATION_PAGE: PageStyle.PAGE,
    options_pb2.PAGINATION_CURSOR: PageStyle.CURSOR,
    options_pb2.PAGINATION_OFFSET: PageStyle.OFFSET,
}


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Everything the adapter needs to serve one RPC from its upstream."""

    #: ``/package.Service/Method``, as on the wire.
    path: str
    service: str
    name: str
    upstream: str
    http_method: str
    template: PathTemplate
    #: ``""`` (no body), ``"*"`` (all unbound fields) or a top-level field name.
    body: str
    #: Response field filled from the upstream's payload; ``""`` = the whole message.
    response_body: str
    envelope: str
    page_style: PageStyle
    idempotent: bool
    idempotency_key_field: str
    cache_ttl_seconds: int
    input_type: type[Message]
    output_type: type[Message]
    descriptor: _d.MethodDescriptor
    #: Set when the method is a GraphQL operation rather than a REST call.
    graphql: GraphQLBinding | None = None
    #: The permission a caller needs (``(meshadapter.options.v1.method).permission``);
    #: "" = none declared, which the composition root refuses to serve.
    permission: str = ""

    @property
    def is_create(self) -> bool:
        """An AIP-133 standard Create (a 409 then means ALREADY_EXISTS)."""
        return self.name.startswith("Create") and self.http_method == "POST" and self.graphql is None

    @property
    def is_read(self) -> bool:
        """Whether a successful answer may be cached: a GET, or a GraphQL query."""
        return self.graphql.is_query if self.graphql is not None else self.http_method == "GET"

    @property
    def route(self) -> str:
        """``GET /v1/alerts/{alert_id}`` (``GRAPHQL query PipelineOverview``): names the
        endpoint in logs, spans, metrics, breakers and the cache."""
        if self.graphql is not None:
            return f"GRAPHQL {self.graphql.kind} {self.graphql.operation_name}"
        return f"{self.http_method} {self.template.text}"


def _http_rule(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise SpecError("the google.api.http rule has no pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def method_spec(method: _d.MethodDescriptor, upstream: str) -> MethodSpec:
    """Reads one method's options; raises SpecError naming the method."""
    where = method.full_name
    if method.client_streaming or method.server_streaming:
        raise SpecError(f"{where}: streaming methods cannot map to a REST call")
    opts = method.GetOptions()
    try:
        graphql = read_graphql_binding(method)
    except GraphQLBindingError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if graphql is not None:
        return _graphql_spec(method, upstream, graphql)
    if not opts.HasExtension(annotations_pb2.http):
        raise SpecError(f"{where}: no google.api.http annotation (nor a graphql one)")
    rule = opts.Extensions[annotations_pb2.http]
    extra = (
        opts.Extensions[options_pb2.method]
        if opts.HasExtension(options_pb2.method)
        else options_pb2.UpstreamMethod()
    )
    verb, path = _http_rule(rule)
    try:
        template = PathTemplate.parse(path)
    except PathTemplateError as exc:
        raise SpecError(f"{where}: {exc}") from exc

    inp, out = method.input_type, method.output_type
    for var in template.variables:
        _resolve_field(inp, var.field_path, where)
    if rule.body not in ("", "*"):
        _resolve_field(inp, (rule.body,), where)
    if rule.response_body:
        _resolve_field(out, (rule.response_body,), where)
    key_field = extra.idempotency_key_field
    if key_field:
        _resolve_field(inp, (key_field,), where)

    idempotent = extra.idempotent if extra.HasField("idempotent") else verb in _IDEMPOTENT_VERBS
    return MethodSpec(
        path=f"/{method.containing_service.full_name}/{method.name}",
        service=method.containing_service.full_name,
        name=method.name,
        upstream=upstream,
        http_method=verb,
        template=template,
        body=rule.body,
        response_body=rule.response_body,
        envelope=extra.response_envelope,
        page_style=_STYLE_BY_OPTION.get(extra.pagination, PageStyle.NONE),
        idempotent=idempotent,
        idempotency_key_field=key_field,
        cache_ttl_seconds=extra.cache_ttl_seconds,
        input_type=message_factory.GetMessageClass(inp),
        output_type=message_factory.GetMessageClass(out),
        descriptor=method,
        permission=extra.permission,
    )


def _graphql_spec(method: _d.MethodDescriptor, upstream: str, graphql: GraphQLBinding) -> MethodSpec:
    """The spec of a GraphQL-bound method. Of ``UpstreamMethod`` only the cache TTL and the permission apply
    (to queries): retries follow the operation's kind, and GraphQL does not page or wrap."""
    where = method.full_name
    opts = method.GetOptions()
    if opts.HasExtension(annotations_pb2.http):
        raise SpecError(f"{where}: has both google.api.http and graphql options; keep one")
    extra = (
        opts.Extensions[options_pb2.method]
        if opts.HasExtension(options_pb2.method)
        else options_pb2.UpstreamMethod()
    )
    others = [f.name for f, _ in extra.ListFields() if f.name not in ("cache_ttl_seconds", "permission")]
    if others:
        raise SpecError(f"{where}: {', '.join(others)} do not apply to a GraphQL operation")
    if extra.cache_ttl_seconds and not graphql.is_query:
        raise SpecError(f"{where}: a mutation cannot be cached")
    return MethodSpec(
        path=f"/{method.containing_service.full_name}/{method.name}",
        service=method.containing_service.full_name,
        name=method.name,
        upstream=upstream,
        http_method="POST",
        # The endpoint's path is configuration (upstreams.<name>.graphql.path).
        template=PathTemplate.parse("/graphql"),
        body="*",
        response_body=graphql.response_field,
        envelope="",
        page_style=PageStyle.NONE,
        idempotent=graphql.is_query,
        idempotency_key_field="",
        cache_ttl_seconds=extra.cache_ttl_seconds,
        input_type=message_factory.GetMessageClass(method.input_type),
        output_type=message_factory.GetMessageClass(method.output_type),
        descriptor=method,
        graphql=graphql,
        permission=extra.permission,
    )


def _resolve_field(message: _d.Descriptor, field_path: tuple[str, ...], where: str) -> _d.FieldDescriptor:
    current: _d.Descriptor | None = message
    field: _d.FieldDescriptor | None = None
    for name in field_path:
        if current is None:
            raise SpecError(f"{where}: {'.'.join(field_path)} goes through a non-message field")
        field = current.fields_by_name.get(name)
        if field is None:
            raise SpecError(f"{where}: {current.full_name} has no field {name!r}")
        current = field.message_type
    assert field is not None
    return field
