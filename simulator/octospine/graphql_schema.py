"""OCTOSPINE's GraphQL schema (`schema.graphql`) bound to the simulator's services.

Resolvers read and change the same stores as the REST API, through the same services, so a
mutation pushes the same WebSocket events and webhooks as its REST twin. Objects are the REST
wire dicts; graphql-core's default resolver reads their keys, and enum values map to the
wire's lower-case spellings. Service errors (`ApiError`) become GraphQL errors with
``extensions.code`` in `error_middleware`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    ValueNode,
    build_schema,
)
from graphql.utilities import value_from_ast_untyped

from simulator.errors import ApiError
from simulator.octospine.services import OctospineServices
from simulator.wire import JsonObject, parse_timestamp

__all__ = ["MAX_FIRST", "build_octospine_schema", "error_middleware", "graphql_code"]

MAX_FIRST = 100

#: HTTP status of a service error -> GraphQL ``extensions.code``.
_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def graphql_code(status: int) -> str:
    """The ``extensions.code`` for an HTTP status of the REST side."""
    return _CODES.get(status, "INTERNAL_SERVER_ERROR")


@functools.cache
def _sdl() -> str:
    return resources.files("simulator.octospine").joinpath("schema.graphql").read_text("utf-8")


def _bad_input(message: str, field: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "field": field})


def _first(args: Mapping[str, Any]) -> int:
    first = args.get("first")
    if not isinstance(first, int) or not 1 <= first <= MAX_FIRST:
        raise _bad_input(f"first must be between 1 and {MAX_FIRST}, got {first!r}", "first")
    return first


def _parse_datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a DateTime is an RFC 3339 string")
    parse_timestamp(value)  # ValueError when it is not one
    return value


def _parse_datetime_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> str:
    return _parse_datetime(value_from_ast_untyped(node, variables))


def _bind_scalars(schema: GraphQLSchema) -> None:
    dt = schema.type_map["DateTime"]
    js = schema.type_map["JSON"]
    assert isinstance(dt, GraphQLScalarType) and isinstance(js, GraphQLScalarType)
    dt.serialize = _parse_datetime  # type: ignore[method-assign]
    dt.parse_value = _parse_datetime  # type: ignore[method-assign]
    dt.parse_literal = _parse_datetime_literal  # type: ignore[method-assign]
    js.parse_literal = value_from_ast_untyped  # type: ignore[assignment,method-assign]


def _bind_enums(schema: GraphQLSchema) -> None:
    # Stored resources spell enums as the REST wire does ("active"); the schema as ACTIVE.
    for named in schema.type_map.values():
        if isinstance(named, GraphQLEnumType) and not named.name.startswith("__"):
            for name, value in named.values.items():
                value.value = name.lower()


def _pipeline_of(parameters: Any) -> str | None:
    value = parameters.get("pipeline_id") if isinstance(parameters, dict) else None
    return value if isinstance(value, str) else None


def _references(automation: JsonObject, pipeline_id: str) -> bool:
    return any(_pipeline_of(step.get("parameters")) == pipeline_id for step in automation.get("steps") or [])


class _Resolvers:
    """Root and relation resolvers over the OCTOSPINE services."""

    def __init__(self, services: OctospineServices) -> None:
        self.s = services

    # --- queries ---------------------------------------------------------------------------

    def health(self, _root: Any, _info: GraphQLResolveInfo[Any]) -> JsonObject:
        report = self.s.health.report()
        components = [{"name": n, **c} for n, c in report["components"].items()]
        return {**report, "components": components}

    def pipeline(self, _root: Any, _info: GraphQLResolveInfo[Any], id: str) -> JsonObject:
        return self.s.pipelines.get(id)

    def pipelines(self, _root: Any, _info: GraphQLResolveInfo[Any], **args: Any) -> list[JsonObject]:
        first = _first(args)
        items = [i.resource for i in self.s.pipelines.list({"status": args.get("status") or ""})]
        return items[:first]

    def task(self, _root: Any, _info: GraphQLResolveInfo[Any], id: str) -> JsonObject:
        return self.s.tasks.get(id)

    def tasks(self, _root: Any, _info: GraphQLResolveInfo[Any], **args: Any) -> list[JsonObject]:
        first = _first(args)
        wanted = dict(args.get("filter") or {})
        pipeline_id = wanted.pop("pipeline_id", None)
        query = {k: str(v) for k, v in wanted.items() if v is not None}
        items = [i.resource for i in self.s.tasks.list(query)]
        if pipeline_id is not None:
            items = [t for t in items if _pipeline_of(t.get("parameters")) == pipeline_id]
        return list(reversed(items))[:first]

    def automation(self, _root: Any, _info: GraphQLResolveInfo[Any], id: str) -> JsonObject:
        return self.s.automations.get(id)

    def automations(self, _root: Any, _info: GraphQLResolveInfo[Any], **args: Any) -> list[JsonObject]:
        first = _first(args)
        items = [i.resource for i in self.s.automations.list({"status": args.get("status") or ""})]
        pipeline_id = args.get("pipeline_id")
        if pipeline_id is not None:
            items = [a for a in items if _references(a, pipeline_id)]
        return items[:first]

    def integration(self, _root: Any, _info: GraphQLResolveInfo[Any], id: str) -> JsonObject:
        return self.s.integrations.get(id)

    # --- relations -------------------------------------------------------------------------

    def pipeline_recent_tasks(self, root: JsonObject, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        return self.tasks(root, info, filter={"pipeline_id": root["id"]}, first=args.get("first"))

    def pipeline_automations(self, root: JsonObject, _info: GraphQLResolveInfo[Any]) -> list[JsonObject]:
        return [a for a in self.s.automations.store.all() if _references(a, root["id"])]

    def task_pipeline(self, root: JsonObject, _info: GraphQLResolveInfo[Any]) -> JsonObject | None:
        pipeline_id = _pipeline_of(root.get("parameters"))
        return self.s.pipelines.get(pipeline_id) if pipeline_id else None

    def source_connection(self, root: JsonObject, _info: GraphQLResolveInfo[Any]) -> JsonObject | None:
        connection_id = root.get("connection_id")
        return self.s.integrations.get(connection_id) if isinstance(connection_id, str) else None

    # --- mutations -------------------------------------------------------------------------

    def set_pipeline_status(
        self,
        _root: Any,
        _info: GraphQLResolveInfo[Any],
        id: str,
        status: str,
    ) -> JsonObject:
        if status == "failed":
            raise _bad_input("a pipeline is set FAILED by its runs, not by a client", "status")
        return self.s.pipelines.update(id, {"status": status})

    def create_task(self, _root: Any, _info: GraphQLResolveInfo[Any], task: dict[str, Any]) -> JsonObject:
        return self.s.tasks.create({k: v for k, v in task.items() if v is not None})

    def cancel_task(
        self,
        _root: Any,
        _info: GraphQLResolveInfo[Any],
        id: str,
        reason: str | None = None,
    ) -> JsonObject:
        return self.s.tasks.cancel(id, reason or "")


def build_octospine_schema(services: OctospineServices) -> GraphQLSchema:
    """The executable schema over `services` (one per simulator)."""
    schema = build_schema(_sdl())
    _bind_scalars(schema)
    _bind_enums(schema)
    r = _Resolvers(services)
    bindings: dict[tuple[str, str], Callable[..., Any]] = {
        ("Query", "health"): r.health,
        ("Query", "pipeline"): r.pipeline,
        ("Query", "pipelines"): r.pipelines,
        ("Query", "task"): r.task,
        ("Query", "tasks"): r.tasks,
        ("Query", "automation"): r.automation,
        ("Query", "automations"): r.automations,
        ("Query", "integration"): r.integration,
        ("Pipeline", "recent_tasks"): r.pipeline_recent_tasks,
        ("Pipeline", "automations"): r.pipeline_automations,
        ("Task", "pipeline"): r.task_pipeline,
        ("PipelineSource", "connection"): r.source_connection,
        ("Mutation", "set_pipeline_status"): r.set_pipeline_status,
        ("Mutation", "create_task"): r.create_task,
        ("Mutation", "cancel_task"): r.cancel_task,
    }
    for (type_name, field_name), resolver in bindings.items():
        owner = schema.type_map[type_name]
        owner.fields[field_name].resolve = resolver  # type: ignore[attr-defined]
    return schema


def error_middleware(next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    """Service errors (`ApiError`) as GraphQL errors with the matching ``extensions.code``."""
    try:
        return next_(root, info, **args)
    except ApiError as exc:
        extensions: dict[str, Any] = {"code": graphql_code(exc.status)}
        if exc.details:
            extensions["field"] = exc.details[0].field
        if exc.retry_after is not None:
            extensions["retryAfter"] = exc.retry_after
        raise GraphQLError(exc.message, extensions=extensions) from exc
