"""The GraphQL option read at start-up, variables from request fields, answers into messages."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

import orjson
import pytest
from google.protobuf import descriptor as _d
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from meshadapter.options.v1 import options_pb2
from octospine.v1 import pipelines_pb2, tasks_pb2

from adapter.config.graphql import GraphQLSettings
from adapter.descriptors.loader import load_service_specs
from adapter.descriptors.method_spec import MethodSpec, SpecError, method_spec
from adapter.graphql.answer import GraphQLAnswer, GraphQLErrorItem
from adapter.graphql.transcoder import MAX_DATA_DEPTH, GraphQLTranscoder, NullAtDataPath
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError

_FD = descriptor_pb2.FieldDescriptorProto
_files = itertools.count(1)
SPECS = {m.path: m for s in load_service_specs() for m in s.methods}
OVERVIEW = SPECS["/octospine.v1.PipelineService/GetPipelineOverview"]
SET_STATUS = SPECS["/octospine.v1.PipelineService/SetPipelineStatus"]
SEARCH = SPECS["/octospine.v1.TaskService/SearchTasks"]


def _method(
    graphql: dict[str, Any] | None,
    *,
    fields: tuple[tuple[str, int, str], ...] = (("pipeline_id", _FD.TYPE_STRING, ""),),
    repeated: frozenset[str] = frozenset(),
    upstream_method: dict[str, Any] | None = None,
    http_get: str = "",
) -> _d.MethodDescriptor:
    """A one-method service in a file of its own, added to the default pool."""
    n = next(_files)
    package = f"graphqltest.v{n}"
    fp = descriptor_pb2.FileDescriptorProto(
        name=f"graphqltest/v{n}.proto",
        package=package,
        syntax="proto3",
        dependency=["meshadapter/options/v1/options.proto", "octospine/v1/tasks.proto"],
    )
    request = fp.message_type.add(name="Req")
    for number, (name, kind, type_name) in enumerate(fields, 1):
        label = _FD.LABEL_REPEATED if name in repeated else _FD.LABEL_OPTIONAL
        field = request.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    response = fp.message_type.add(name="Resp")
    response.field.add(name="id", number=1, type=_FD.TYPE_STRING, label=_FD.LABEL_OPTIONAL)
    method = fp.service.add(name="S").method.add(
        name="M", input_type=f".{package}.Req", output_type=f".{package}.Resp"
    )
    if graphql is not None:
        method.options.Extensions[options_pb2.graphql].CopyFrom(options_pb2.GraphQLOperation(**graphql))
    if upstream_method is not None:
        method.options.Extensions[options_pb2.method].CopyFrom(options_pb2.UpstreamMethod(**upstream_method))
    if http_get:
        from google.api import annotations_pb2, http_pb2

        method.options.Extensions[annotations_pb2.http].CopyFrom(http_pb2.HttpRule(get=http_get))
    pool = descriptor_pool.Default()
    pool.Add(fp)
    return pool.FindMethodByName(f"{package}.S.M")


QUERY = "query Get($pipeline_id: ID!) { pipeline(id: $pipeline_id) { id } }"
FIND = "query Find($statuses: [TaskStatus!]!, $by_name: JSON) { find(s: $statuses, b: $by_name) }"
TWO = QUERY + " query Other { health { status } }"
UNNAMED = "query ($pipeline_id: ID!) { pipeline(id: $pipeline_id) { id } }"
EXTRA_VARIABLE = "query Get($pipeline_id: ID!, $other: Int) { pipeline(id: $pipeline_id) { id } }"

# (graphql option, other options) -> the start-up error, naming what is wrong
BAD_OPTIONS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"document": ""}, {}, "has no document"),
    ({"document": "query Get($pipeline_id: ID!) { pipeline(id: $pipeline_id) { id }"}, {}, "does not parse"),
    ({"document": UNNAMED}, {}, "name the GraphQL operation"),
    ({"document": TWO}, {}, "holds 2 operations: set operation_name"),
    ({"document": QUERY, "operation_name": "Missing"}, {}, "no operation 'Missing'"),
    ({"document": "subscription Get($pipeline_id: ID!) { pipeline(id: $pipeline_id) { id } }"}, {},
     "only queries and mutations"),
    ({"document": EXTRA_VARIABLE}, {}, "variables ['other'] have no field"),
    ({"document": "query Get { health { status } }"}, {}, "fields ['pipeline_id'] of graphqltest"),
    ({"document": QUERY, "data_path": "pipelines"}, {},
     "data_path 'pipelines': the operation selects ['pipeline']"),
    ({"document": QUERY, "response_field": "nope"}, {}, "has no field 'nope'"),
    ({"document": QUERY, "persisted_query_sha256": "ab" * 32}, {}, "is not the document's SHA-256"),
    ({"document": QUERY}, {"upstream_method": {"pagination": options_pb2.PAGINATION_PAGE}},
     "pagination do not apply to a GraphQL operation"),
    ({"document": "mutation Set($pipeline_id: ID!) { set(id: $pipeline_id) { id } }"},
     {"upstream_method": {"cache_ttl_seconds": 5}}, "a mutation cannot be cached"),
    ({"document": QUERY}, {"http_get": "/x"}, "has both google.api.http and graphql options"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "other", "problem"), BAD_OPTIONS)
def test_unusable_options_fail_the_start_naming_the_method(
    option: dict[str, Any], other: dict[str, Any], problem: str
) -> None:
    method = _method(option, **other)
    with pytest.raises(SpecError) as caught:
        method_spec(method, "octospine")
    assert str(caught.value).startswith(f"{method.full_name}: ")
    assert problem in str(caught.value)


def test_a_query_is_a_retryable_read_and_a_mutation_is_not() -> None:
    query = method_spec(_method({"document": QUERY, "data_path": "pipeline"}), "octospine")
    assert (query.http_method, query.idempotent, query.is_read, query.route) == (
        "POST",
        True,
        True,
        "GRAPHQL query Get",
    )
    assert query.graphql is not None and query.graphql.data_path == ("pipeline",)
    assert [(v.name, v.required, v.type_text) for v in query.graphql.variables] == [
        ("pipeline_id", True, "ID!")
    ]
    mutation = method_spec(
        _method({"document": "mutation Pause($pipeline_id: ID) { pause(id: $pipeline_id) { id } }"}),
        "octospine",
    )
    assert (mutation.idempotent, mutation.is_read, mutation.route) == (False, False, "GRAPHQL mutation Pause")
    assert mutation.graphql is not None and not mutation.graphql.variables[0].required
    picked = method_spec(
        _method({"document": QUERY + " query Other { health { status } }", "operation_name": "Get"}),
        "octospine",
    )
    assert picked.graphql is not None and picked.graphql.operation_name == "Get"


def test_the_protos_persisted_hash_is_their_documents_hash() -> None:
    assert SEARCH.graphql is not None
    assert SEARCH.graphql.persisted_sha256 == hashlib.sha256(SEARCH.graphql.document.encode()).hexdigest()


# --- variables ----------------------------------------------------------------------------


def _transcoder(spec: MethodSpec, path: str = "/graphql") -> GraphQLTranscoder:
    return GraphQLTranscoder(spec, JsonCodec(), GraphQLSettings(path=path))


def _sent(spec: MethodSpec, message: Any, **kwargs: Any) -> dict[str, Any]:
    bound = _transcoder(spec).bind(message, **kwargs)
    assert bound.request.body is not None
    doc: dict[str, Any] = orjson.loads(bound.request.body)
    return doc


def test_nested_messages_are_input_objects_and_enums_go_by_name() -> None:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime(2026, 11, 25, 12, 0, 0))
    request = tasks_pb2.SearchTasksRequest(
        filter=tasks_pb2.TaskFilter(
            status=tasks_pb2.TASK_STATUS_COMPLETED, pipeline_id="pip_0002", updated_after=stamp
        ),
        first=3,
    )
    sent = _sent(SEARCH, request, with_text=True)
    assert sent["variables"] == {
        "filter": {"status": "COMPLETED", "pipeline_id": "pip_0002", "updated_after": "2026-11-25T12:00:00Z"},
        "first": 3,
    }


def test_unset_nullable_variables_are_left_out_and_zero_is_a_value_when_set() -> None:
    assert _sent(SEARCH, tasks_pb2.SearchTasksRequest())["variables"] == {}
    assert _sent(SEARCH, tasks_pb2.SearchTasksRequest(first=0))["variables"] == {"first": 0}
    overview = pipelines_pb2.GetPipelineOverviewRequest(pipeline_id="pip_0002")
    assert _sent(OVERVIEW, overview)["variables"] == {"pipeline_id": "pip_0002"}


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (pipelines_pb2.SetPipelineStatusRequest(status=pipelines_pb2.PIPELINE_STATUS_PAUSED), "pipeline_id"),
        (pipelines_pb2.SetPipelineStatusRequest(pipeline_id="pip_0001"), "status"),
    ],
)
def test_required_variables_need_their_field(request_message: Any, field: str) -> None:
    with pytest.raises(BindingError) as caught:
        _transcoder(SET_STATUS).bind(request_message)
    assert caught.value.field == field
    assert "must be set (the GraphQL operation declares $" in caught.value.description


def test_repeated_enums_and_maps_of_messages() -> None:
    method = _method(
        {"document": FIND},
        fields=(
            ("statuses", _FD.TYPE_ENUM, ".octospine.v1.TaskStatus"),
            ("by_name", _FD.TYPE_MESSAGE, ".octospine.v1.TaskFilter"),
        ),
        repeated=frozenset({"statuses"}),
    )
    spec = method_spec(method, "octospine")
    cls = message_factory.GetMessageClass(method.input_type)
    # A required list is sent even when empty; an unset message is left out.
    assert _sent(spec, cls())["variables"] == {"statuses": []}
    message = cls(statuses=[tasks_pb2.TASK_STATUS_FAILED, tasks_pb2.TASK_STATUS_RUNNING])
    message.by_name.type = "data_sync"  # type: ignore[attr-defined]
    assert _sent(spec, message)["variables"] == {
        "statuses": ["FAILED", "RUNNING"],
        "by_name": {"type": "data_sync"},
    }


# --- the request --------------------------------------------------------------------------


def test_a_persisted_query_sends_its_hash_and_its_text_only_when_asked() -> None:
    assert SEARCH.graphql is not None
    digest = SEARCH.graphql.persisted_sha256
    hashed = _sent(SEARCH, tasks_pb2.SearchTasksRequest())
    assert hashed == {
        "operationName": "SearchTasks",
        "variables": {},
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
    }
    registering = _sent(SEARCH, tasks_pb2.SearchTasksRequest(), with_text=True)
    assert registering["query"] == SEARCH.graphql.document
    assert registering["extensions"] == hashed["extensions"]


def test_the_upstream_request_of_a_query_and_of_a_mutation() -> None:
    query = _transcoder(OVERVIEW, "/api/graphql").bind(
        pipelines_pb2.GetPipelineOverviewRequest(pipeline_id="p")
    )
    request = query.request
    assert (request.method, request.path, request.route, request.quota) == (
        "POST",
        "/api/graphql",
        "GRAPHQL query PipelineOverview",
        "graphql",
    )
    assert request.idempotent and request.read_only
    assert ("content-type", "application/json") in request.headers
    sent = orjson.loads(request.body or b"")
    assert sent["query"].startswith("query PipelineOverview(") and sent["operationName"] == "PipelineOverview"
    again = _transcoder(OVERVIEW).bind(pipelines_pb2.GetPipelineOverviewRequest(pipeline_id="p"))
    assert again.request.body == request.body, "the same call makes the same bytes (the cache keys on them)"
    mutation = _transcoder(SET_STATUS).bind(
        pipelines_pb2.SetPipelineStatusRequest(pipeline_id="p", status=pipelines_pb2.PIPELINE_STATUS_ACTIVE)
    )
    assert not mutation.request.idempotent and not mutation.request.read_only
    assert orjson.loads(mutation.request.body or b"")["variables"] == {"pipeline_id": "p", "status": "ACTIVE"}


# --- the answer ---------------------------------------------------------------------------


def test_data_becomes_the_response_message() -> None:
    answer = GraphQLAnswer(
        data={
            "pipeline": {
                "id": "pip_1",
                "name": "n",
                "status": "PAUSED",
                "schedule": {"type": "CRON", "value": "0 * * * *"},
            },
            "recent_tasks": [{"id": "tsk_1", "status": "COMPLETED", "result": {"n": 1}}],
            "automations": [],
            "unknown_extra": 1,
        }
    )
    overview = _transcoder(OVERVIEW).decode(answer)
    assert isinstance(overview, pipelines_pb2.PipelineOverview)
    assert overview.pipeline.status == pipelines_pb2.PIPELINE_STATUS_PAUSED
    assert overview.pipeline.schedule.value.string_value == "0 * * * *"
    assert overview.recent_tasks[0].status == tasks_pb2.TASK_STATUS_COMPLETED
    assert overview.recent_tasks[0].result["n"] == 1
    paused = _transcoder(SET_STATUS).decode(
        GraphQLAnswer(data={"set_pipeline_status": {"id": "p", "status": "ACTIVE"}})
    )
    assert (
        isinstance(paused, pipelines_pb2.Pipeline) and paused.status == pipelines_pb2.PIPELINE_STATUS_ACTIVE
    )


def test_null_at_the_data_path_is_reported_and_partial_lists_lose_their_null_items() -> None:
    with pytest.raises(NullAtDataPath) as caught:
        _transcoder(SET_STATUS).decode(GraphQLAnswer(data={"set_pipeline_status": None}))
    assert caught.value.path == "data.set_pipeline_status"
    partial = GraphQLAnswer(
        data={"tasks": [{"id": "a"}, None, {"id": "c"}]},
        errors=(GraphQLErrorItem("boom", "INTERNAL_SERVER_ERROR", path=("tasks", 1)),),
    )
    found = _transcoder(SEARCH).decode(partial)
    assert isinstance(found, tasks_pb2.SearchTasksResponse)
    assert [t.id for t in found.tasks] == ["a", "c"]


@pytest.mark.parametrize(
    ("levels", "refused"), [(MAX_DATA_DEPTH - 2, False), (MAX_DATA_DEPTH + 1, True), (1000, True)]
)
def test_a_partial_answer_nested_too_deep_is_malformed_not_a_crash(levels: int, refused: bool) -> None:
    # orjson reads answers up to 1,024 levels deep; dropping a partial answer's null items
    # recursed once a level, past Python's recursion limit (found by the graphql.answer target).
    deep: Any = {"id": "a"}
    for i in range(levels):
        deep = {"id": "a", "x": deep} if (levels - i) % 2 else [deep, None]  # a Task outermost
    partial = GraphQLAnswer(
        data={"tasks": [deep]}, errors=(GraphQLErrorItem("boom", "INTERNAL_SERVER_ERROR", path=("tasks", 1)),)
    )
    if refused:
        with pytest.raises(MalformedPayloadError, match=f"deeper than {MAX_DATA_DEPTH} levels"):
            _transcoder(SEARCH).decode(partial)
    else:
        found = _transcoder(SEARCH).decode(partial)
        assert [t.id for t in found.tasks] == ["a"]
