"""`POST /graphql` on the OCTOSPINE port: GraphQL over HTTP with graphql-core.

Requests are ``{"query", "variables", "operationName", "extensions"}`` JSON bodies, answers
``{"data", "errors"}`` with ``200`` for every well-formed request (the GraphQL-over-HTTP rule
for ``application/json``); a body that is not a GraphQL request is a ``400``. Every error has
``extensions.code``:

| code | when |
|---|---|
| `GRAPHQL_PARSE_FAILED` | the document does not parse |
| `GRAPHQL_VALIDATION_FAILED` | it does not fit the schema |
| `BAD_USER_INPUT` | a variable or argument is invalid (`extensions.field` names it) |
| `NOT_FOUND`, `CONFLICT`, ... | a resolver's service refused (`graphql_schema.graphql_code`) |
| `PERSISTED_QUERY_NOT_FOUND` / `_NOT_SUPPORTED` | an unknown hash / persisted queries off |
| `INTERNAL_SERVER_ERROR` | anything else (the message says no more) |
| `UNAUTHENTICATED`, `RATE_LIMITED` | refused before GraphQL ran (`401`, `429` + `Retry-After`) |

Persisted queries follow Apollo's automatic persisted queries: ``extensions.persistedQuery =
{"version": 1, "sha256Hash": ...}`` alone runs a registered document; with ``query`` it
registers it (the hash must match). A `Fault` with ``graphql_field="Type.field"`` makes that
field's resolver fail with ``graphql_code`` (partial data).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import re
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLSyntaxError,
    execute,
    parse,
    validate,
)

from simulator.errors import ApiError
from simulator.fault_responses import GRAPHQL_FAULT
from simulator.faults import Fault
from simulator.octospine.graphql_schema import build_octospine_schema, error_middleware, graphql_code
from simulator.octospine.services import OctospineServices
from simulator.wire import JsonObject, dumps

__all__ = ["GRAPHQL_ROUTE", "GraphQLEndpoint", "graphql_error_response"]

logger = logging.getLogger(__name__)

GRAPHQL_ROUTE = "/graphql"
_VARIABLE = re.compile(r"Variable ['\"]\$(\w+)['\"]")


def _error(message: str, code: str, **extensions: Any) -> JsonObject:
    return {"message": message, "extensions": {"code": code, **extensions}}


def _answer(body: JsonObject, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def graphql_error_response(error: ApiError) -> web.Response:
    """An error raised before GraphQL ran (authentication, rate limit) in GraphQL's shape."""
    extensions: dict[str, Any] = {}
    if error.retry_after is not None:
        extensions["retryAfter"] = error.retry_after
    response = _answer(
        {"errors": [_error(error.message, graphql_code(error.status), **extensions)]}, error.status
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers.update(error.headers)
    return response


def _formatted(error: GraphQLError) -> JsonObject:
    """graphql-core's error with a code: variables' coercion errors are the caller's input,
    unexpected exceptions say nothing of the simulator's internals."""
    out: JsonObject = dict(error.formatted)
    extensions = dict(out.get("extensions") or {})
    if "code" not in extensions:
        if error.path is None:
            match = _VARIABLE.search(error.message)
            extensions["code"] = "BAD_USER_INPUT"
            if match:
                extensions["field"] = match.group(1)
        else:
            logger.error("GraphQL resolver failed at %s", error.path, exc_info=error.original_error)
            out["message"] = "Internal error"
            extensions["code"] = "INTERNAL_SERVER_ERROR"
    out["extensions"] = extensions
    return out


class _FieldFault:
    """Fails the resolver of one field (``Type.field``) with a code: partial data on demand."""

    def __init__(self, fault: Fault) -> None:
        self.coordinate = fault.graphql_field
        self.code = fault.graphql_code

    def resolve(self, next_: Any, root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        if f"{info.parent_type.name}.{info.field_name}" == self.coordinate:
            raise GraphQLError(f"Simulated {self.code} in {self.coordinate}", extensions={"code": self.code})
        return next_(root, info, **args)


class GraphQLEndpoint:
    """The schema, the persisted-query registry and the HTTP handler (`sim.graphql`)."""

    def __init__(self, services: OctospineServices, *, persisted_queries: bool = True) -> None:
        self.schema: GraphQLSchema = build_octospine_schema(services)
        self.persisted_queries = persisted_queries
        #: Registered persisted queries: SHA-256 hex -> document.
        self.persisted: dict[str, str] = {}
        # Parsing and validating cost more than executing: done once per document text,
        # as GraphQL servers do.
        self._prepared = functools.lru_cache(maxsize=256)(self._prepare)

    def reset(self) -> None:
        """Forgets the registered persisted queries."""
        self.persisted.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`POST /graphql`."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _answer({"errors": [_error("Body is not JSON", "BAD_REQUEST")]}, 400)
        if not isinstance(body, dict):
            return _answer({"errors": [_error("Body must be a JSON object", "BAD_REQUEST")]}, 400)
        query, refusal = self._document_text(body)
        if refusal is not None:
            return refusal
        variables = body.get("variables") or {}
        operation = body.get("operationName")
        if not isinstance(variables, dict) or not (operation is None or isinstance(operation, str)):
            return _answer({"errors": [_error("variables must be an object", "BAD_REQUEST")]}, 400)
        fault = request.get(GRAPHQL_FAULT)
        result = await self.run(query, variables, operation, fault=fault)
        return _answer(result)

    async def run(
        self, query: str, variables: JsonObject, operation: str | None = None, *, fault: Fault | None = None
    ) -> JsonObject:
        """Parses, validates and executes one operation; the answer's JSON."""
        document = self._prepared(query)
        if not isinstance(document, DocumentNode):
            return {"errors": document}
        middleware: list[Any] = [error_middleware]
        if fault is not None:
            middleware.append(_FieldFault(fault))
        outcome = execute(
            self.schema, document, variable_values=variables, operation_name=operation, middleware=middleware
        )
        result: ExecutionResult = await outcome if inspect.isawaitable(outcome) else outcome
        answer: JsonObject = {}
        if result.errors:
            answer["errors"] = [_formatted(e) for e in result.errors]
        answer["data"] = result.data
        return answer

    def _prepare(self, query: str) -> DocumentNode | list[JsonObject]:
        """The parsed, valid document, or the errors saying why it is not one."""
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return [_error(exc.message, "GRAPHQL_PARSE_FAILED")]
        invalid = validate(self.schema, document)
        if invalid:
            return [{**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for e in invalid]
        return document

    def _document_text(self, body: JsonObject) -> tuple[str, web.Response | None]:
        """The document to run, registering or looking up a persisted query."""
        query = body.get("query")
        extensions = body.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            if not isinstance(query, str) or not query.strip():
                return "", _answer({"errors": [_error("No query in the request", "BAD_REQUEST")]}, 400)
            return query, None
        if not self.persisted_queries:
            return "", _answer(
                {"errors": [_error("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")]}
            )
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(persisted, dict) or persisted.get("version") != 1 or not isinstance(digest, str):
            return "", _answer({"errors": [_error("Unsupported persistedQuery", "BAD_REQUEST")]}, 400)
        if query is None:
            known = self.persisted.get(digest)
            if known is None:
                return "", _answer(
                    {"errors": [_error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]}
                )
            return known, None
        if not isinstance(query, str) or hashlib.sha256(query.encode()).hexdigest() != digest:
            return "", _answer({"errors": [_error("provided sha does not match query", "BAD_REQUEST")]}, 400)
        self.persisted[digest] = query
        return query, None
