"""Fuzz targets: the GraphQL-bound RPCs (adapter/graphql/, adapter/status/graphql_errors.py).

``graphql.variables``: for every RPC bound to a GraphQL operation, with messages drawn
from its input descriptor (hostile values included), binding raises nothing but
BindingError; the body is JSON within the size limit holding only the operation's name,
its document (or persisted-query hash) and variables the operation declares, every
required one present, every enum as a GraphQL enum name.

``graphql.answer``: whatever the upstream answers (any bytes, any JSON, GraphQL-shaped
answers with hostile ``errors`` entries, ``extensions.retryAfter`` of any kind and data of
the method's shape or not, deep nesting included), reading it raises nothing but
MalformedPayloadError; an answer with errors always builds a status, whose RetryInfo is
within the upstream's ``max_server_delay``; decoding the data raises nothing but
MalformedPayloadError or NullAtDataPath.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from hypothesis import event, given
from hypothesis import strategies as st

from adapter.config.graphql import GraphQLSettings
from adapter.descriptors.access import field_of
from adapter.descriptors.loader import load_service_specs
from adapter.graphql.answer import has_errors, read_answer, read_error_answer
from adapter.graphql.errors import UpstreamGraphQLError
from adapter.graphql.transcoder import GraphQLTranscoder, NullAtDataPath
from adapter.status.graphql_errors import graphql_error_status
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError
from adapter.transcoding.request_limits import RequestLimits
from adapter.upstream.messages import UpstreamResponse

from .counting import tried
from .profiles import budget
from .strategies import json_scalars, json_shaped_like, json_values, messages

LIMITS = RequestLimits()
TRANSCODERS = {
    m.path: GraphQLTranscoder(m, JsonCodec(), GraphQLSettings(), LIMITS)
    for s in load_service_specs()
    for m in s.methods
    if m.graphql is not None
}
_ENUM_NAME = re.compile(r"[A-Z0-9_]+\Z")


def _json_bytes(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:  # deeper than orjson writes: a vendor still could
        return b'{"data":' + b"[" * 2000 + b"]" * 2000 + b"}"


@st.composite
def _request(draw: st.DrawFn) -> tuple[str, Message, bool]:
    path = draw(st.sampled_from(sorted(TRANSCODERS)))
    message = draw(messages(TRANSCODERS[path].spec.input_type.DESCRIPTOR, hostile=draw(st.booleans())))
    return path, message, draw(st.booleans())


@budget(400)
@given(_request())
def test_binding_raises_only_binding_error_and_sends_only_declared_variables(
    case: tuple[str, Message, bool],
) -> None:
    tried("graphql.variables")
    path, message, with_text = case
    transcoder = TRANSCODERS[path]
    binding = transcoder.binding
    try:
        bound = transcoder.bind(message, with_text=with_text)
    except BindingError as exc:
        event(f"refused: {exc.field.split('[')[0].split('.')[0]}")
        return
    event("bound")
    request = bound.request
    assert request.body is not None and len(request.body) <= LIMITS.max_body_bytes
    document = orjson.loads(request.body)
    assert set(document) <= {"operationName", "variables", "query", "extensions"}
    assert document["operationName"] == binding.operation_name
    assert ("query" in document) == (with_text or not binding.persisted_sha256)
    variables = document["variables"]
    declared = {v.name: v for v in binding.variables}
    assert set(variables) <= set(declared), (set(variables), set(declared))
    assert {n for n, v in declared.items() if v.required} <= set(variables)
    request_type = transcoder.spec.input_type.DESCRIPTOR
    for name, value in variables.items():
        field = field_of(request_type, name)
        if field.enum_type is not None:
            for item in value if isinstance(value, list) else [value]:
                assert isinstance(item, str) and _ENUM_NAME.match(item), (name, value)


# Hostile delays often: digits float() refuses, more digits than any clamp, numbers
# past a Duration's range.
_RETRY_AFTER = st.one_of(
    st.sampled_from(["²", "١٢", "1" * 400, "99999999999999999999", "1e999", "-3", " 5 ", "5.5.5", "NaN"]),
    st.sampled_from([1e300, 1.7e308, 10**18, 2**63, -1, 0, 0.5, True]),
    json_scalars(big_ints=True),
    st.floats(allow_nan=False, allow_infinity=False),
)
_CODES = st.sampled_from(["RATE_LIMITED", "BAD_USER_INPUT", "NOT_FOUND", "TIMEOUT", "UNHEARD_OF", ""])
_EXTENSIONS_OBJECT = st.fixed_dictionaries(
    {"code": st.one_of(_CODES, json_values()), "retryAfter": _RETRY_AFTER},
    optional={
        "classification": json_values(),
        "retry_after": _RETRY_AFTER,
        "field": json_values(),
        "argumentName": json_values(),
    },
)
_ERROR_OBJECT = st.fixed_dictionaries(
    {
        "message": st.one_of(st.text(max_size=20), json_values()),
        "extensions": st.one_of(_EXTENSIONS_OBJECT, json_values()),
    },
    optional={
        "path": st.one_of(json_values(), st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=4))
    },
)
_ERROR = st.one_of(_ERROR_OBJECT, _ERROR_OBJECT, json_values())


def _deep(levels: int) -> bytes:
    """JSON nested ``levels`` deep, lists (with a null) and objects in turn, as text: orjson
    writes at most 255 levels, a vendor any number (orjson reads 1,024)."""
    text = b"1"
    for i in range(levels):
        text = b"[" + text + b",null]" if i % 2 else b'{"a":' + text + b"}"
    return text


@st.composite
def _answer(draw: st.DrawFn, path: str) -> bytes:
    """A body for ``path``'s method: any bytes, any JSON, or a GraphQL answer of its shape (or not)."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return _json_bytes(draw(json_values()))
    transcoder = TRANSCODERS[path]
    out = transcoder.spec.output_type.DESCRIPTOR
    shaped: st.SearchStrategy[Any] = json_shaped_like(out)
    if transcoder.binding.response_field:
        shaped = json_shaped_like(out).map(lambda d: d.get(transcoder.binding.response_field))
    if kind == 2:  # deep data at the data path, beside an error (a partial answer's nulls are dropped)
        deep = _deep(draw(st.integers(30, 1020 - len(transcoder.binding.data_path))))
        for key in reversed(transcoder.binding.data_path):
            deep = b'{"' + key.encode() + b'":' + deep + b"}"
        return b'{"data":' + deep + b',"errors":[{"message":"partly failed"}]}'
    value = draw(st.one_of(shaped, json_values(), st.none()))
    data: Any = value
    for key in reversed(transcoder.binding.data_path):
        data = {key: data}
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["data"] = draw(st.one_of(st.just(data), json_values()))
    if draw(st.booleans()):
        doc["errors"] = draw(st.one_of(st.lists(_ERROR, min_size=1, max_size=3), json_values()))
    return _json_bytes(doc)


@budget(500)
@given(
    st.sampled_from(sorted(TRANSCODERS)).flatmap(lambda p: st.tuples(st.just(p), _answer(p))),
    st.sampled_from([200, 200, 400, 429, 500, 503]),
    st.one_of(
        st.none(), st.sampled_from(["5", "²", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
    ),
    st.sampled_from(["application/json", "application/graphql-response+json", "text/html", ""]),
    st.one_of(st.sampled_from([0.5, 1.0, 30.0]), st.floats(min_value=0.001, max_value=1e6)),
)
def test_any_answer_is_read_and_mapped_without_raising(
    case: tuple[str, bytes], status: int, retry_after: str | None, content_type: str, cap: float
) -> None:
    tried("graphql.answer")
    path, body = case
    transcoder = TRANSCODERS[path]
    has_errors(body)  # decides whether a 2xx is cached: must not raise either
    headers = httpx.Headers({"content-type": content_type} if content_type else {})
    if retry_after is not None and retry_after.isascii():
        headers["retry-after"] = retry_after
    response = UpstreamResponse(status=status, headers=headers, body=body, max_server_delay=cap)
    if 200 <= status < 300:
        try:
            answer = read_answer(body, content_type)
        except MalformedPayloadError:
            event("malformed answer")
            return
    else:
        found = read_error_answer(body)
        if found is None:
            event("not a GraphQL error answer")
            return
        answer = found
    if answer.errors:
        rpc_status = graphql_error_status(UpstreamGraphQLError(answer, response, upstream="u", route="r"))
        assert rpc_status.code != 0
        event(f"status {rpc_status.code}")
        for holder in rpc_status.details:
            if holder.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                holder.Unpack(info)
                assert 0 <= info.retry_delay.ToTimedelta().total_seconds() <= cap + 1e-6
    try:
        message = transcoder.decode(answer)
    except (MalformedPayloadError, NullAtDataPath) as exc:
        event(type(exc).__name__)
        return
    assert isinstance(message, transcoder.spec.output_type)
    event("decoded")
