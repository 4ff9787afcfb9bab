"""What an RPC bound with ``(meshadapter.options.v1.graphql)`` sends, read at start-up.

The document is parsed with graphql-core, so a typo, an unnamed operation, a variable with
no request field (or a request field no variable uses) or a stale persisted-query hash
fails the start, naming the method, not the first call. Whether the operation is a query
or a mutation decides retries and caching; the variables' nullability decides which
request fields must be set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from google.protobuf import descriptor as _d
from graphql import (
    FieldNode,
    GraphQLSyntaxError,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_ast,
)
from meshadapter.options.v1 import options_pb2

__all__ = ["GraphQLBinding", "GraphQLBindingError", "GraphQLVariable", "read_graphql_binding"]

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class GraphQLBindingError(ValueError):
    """The method's GraphQL option is unusable (start-up error)."""


@dataclass(frozen=True, slots=True)
class GraphQLVariable:
    """One declared variable: ``$pipeline_id: ID!`` is fed by the field ``pipeline_id``."""

    name: str
    #: ``ID!``: the request field must be set (an unset one is INVALID_ARGUMENT).
    required: bool
    #: The declared type, as written (for messages).
    type_text: str


@dataclass(frozen=True, slots=True)
class GraphQLBinding:
    """An RPC's GraphQL operation and how its answer becomes the response."""

    document: str
    operation_name: str
    kind: Literal["query", "mutation"]
    variables: tuple[GraphQLVariable, ...]
    #: Keys under ``data`` leading to the response's value (empty: ``data`` itself).
    data_path: tuple[str, ...]
    #: Response field receiving that value (empty: the whole message).
    response_field: str
    allow_partial: bool
    #: SHA-256 hex of ``document`` to send instead of it (empty: send the text).
    persisted_sha256: str

    @property
    def is_query(self) -> bool:
        return self.kind == "query"


def _operation(document: str, wanted: str) -> OperationDefinitionNode:
    try:
        ast = parse(document)
    except GraphQLSyntaxError as exc:
        raise GraphQLBindingError(f"the GraphQL document does not parse: {exc.message}") from None
    operations = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
    if wanted:
        chosen = [o for o in operations if o.name is not None and o.name.value == wanted]
        if not chosen:
            raise GraphQLBindingError(f"the GraphQL document has no operation {wanted!r}")
        return chosen[0]
    if len(operations) != 1:
        raise GraphQLBindingError(
            f"the GraphQL document holds {len(operations)} operations: set operation_name"
        )
    operation = operations[0]
    if operation.name is None:
        # The name travels as operationName and names the route in logs and metrics.
        raise GraphQLBindingError("name the GraphQL operation (`query Name(...) {...}`)")
    return operation


def _check_data_path(operation: OperationDefinitionNode, path: tuple[str, ...]) -> None:
    if not path or not all(isinstance(s, FieldNode) for s in operation.selection_set.selections):
        return  # `data` itself, or root fragments: the answer will tell
    keys = {(s.alias or s.name).value for s in operation.selection_set.selections if isinstance(s, FieldNode)}
    if path[0] not in keys:
        raise GraphQLBindingError(f"data_path {'.'.join(path)!r}: the operation selects {sorted(keys)}")


def _check_fields(
    variables: tuple[GraphQLVariable, ...],
    request: _d.Descriptor,
    response: _d.Descriptor,
    response_field: str,
) -> None:
    declared = {v.name for v in variables}
    fields = set(request.fields_by_name)
    missing = sorted(declared - fields)
    if missing:
        raise GraphQLBindingError(f"variables {missing} have no field of that name in {request.full_name}")
    unused = sorted(fields - declared)
    if unused:
        # A field the caller fills but nothing sends would be dropped silently.
        raise GraphQLBindingError(f"fields {unused} of {request.full_name} feed no variable of the operation")
    if response_field and response_field not in response.fields_by_name:
        raise GraphQLBindingError(f"{response.full_name} has no field {response_field!r}")


def read_graphql_binding(method: _d.MethodDescriptor) -> GraphQLBinding | None:
    """The method's GraphQL binding, None when it has no GraphQL option."""
    opts = method.GetOptions()
    if not opts.HasExtension(options_pb2.graphql):
        return None
    option = opts.Extensions[options_pb2.graphql]
    if not option.document.strip():
        raise GraphQLBindingError("the graphql option has no document")
    operation = _operation(option.document, option.operation_name)
    if operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise GraphQLBindingError("only queries and mutations can back a unary RPC")
    variables = tuple(
        GraphQLVariable(
            name=d.variable.name.value,
            required=isinstance(d.type, NonNullTypeNode) and d.default_value is None,
            type_text=print_ast(d.type),
        )
        for d in operation.variable_definitions or ()
    )
    data_path = tuple(p for p in option.data_path.split(".") if p)
    _check_data_path(operation, data_path)
    _check_fields(variables, method.input_type, method.output_type, option.response_field)
    digest = option.persisted_query_sha256
    if digest:
        actual = hashlib.sha256(option.document.encode("utf-8")).hexdigest()
        if not _SHA256_HEX.match(digest) or digest != actual:
            raise GraphQLBindingError(
                f"persisted_query_sha256 is not the document's SHA-256 (which is {actual})"
            )
    assert operation.name is not None  # _operation only returns named operations
    return GraphQLBinding(
        document=option.document,
        operation_name=operation.name.value,
        kind="query" if operation.operation is OperationType.QUERY else "mutation",
        variables=variables,
        data_path=data_path,
        response_field=option.response_field,
        allow_partial=option.allow_partial,
        persisted_sha256=digest,
    )
