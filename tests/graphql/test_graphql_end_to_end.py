"""GraphQL-bound RPCs end to end: a real grpc.aio server and caller stack, the simulator's
GraphQL endpoint over real sockets. Queries, mutations, errors, partial answers, persisted
queries, the separate quota, caching of queries only, no retry of mutations."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2
from octospine.v1 import (
    automations_pb2,
    automations_pb2_grpc,
    pipelines_pb2,
    pipelines_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from adapter.resilience import UpstreamRateLimiter
from adapter.server.graphql_handler import PARTIAL_ERRORS_TRAILER
from simulator import Fault, Simulator
from tests.resilience.harness import Harness, StartSim, error_details, running_adapter
from tests.server.large_payload_threads import large_payload_threads

C = grpc.StatusCode
GRAPHQL = {"vendor": "octospine", "route": "/graphql"}
CACHED = {"cache": {"enabled": True}}

pytestmark = pytest.mark.usefixtures("profile")


def _graphql_requests(sim: Simulator) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in sim.find_requests(**GRAPHQL)]


def _rest_requests(sim: Simulator) -> int:
    return sim.count(vendor="octospine") - sim.count(**GRAPHQL)


def _pipelines(h: Harness) -> pipelines_pb2_grpc.PipelineServiceStub:
    return pipelines_pb2_grpc.PipelineServiceStub(h.channel)


def _tasks(h: Harness) -> tasks_pb2_grpc.TaskServiceStub:
    return tasks_pb2_grpc.TaskServiceStub(h.channel)


def _overview(pipeline_id: str = "pip_0002", **fields: Any) -> pipelines_pb2.GetPipelineOverviewRequest:
    return pipelines_pb2.GetPipelineOverviewRequest(pipeline_id=pipeline_id, **fields)


def _set_status(status: int, pipeline_id: str = "pip_0002") -> pipelines_pb2.SetPipelineStatusRequest:
    return pipelines_pb2.SetPipelineStatusRequest(pipeline_id=pipeline_id, status=status)  # type: ignore[arg-type]


async def test_one_query_replaces_several_rest_calls_in_one_quota_unit(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim) as h:
        overview = await _pipelines(h).GetPipelineOverview(_overview(recent_tasks=3), timeout=5)
        assert sim.count(**GRAPHQL) == 1 and _rest_requests(sim) == 0
        assert sim.graphql_rate_limit.max_served_in_any_window() == 1
        assert sim.rate_limits["octospine"].max_served_in_any_window() == 0
        quotas = {p[0]["quota"]: p[1] for p in h.metric("meshadapter.upstream.rate_limit.remaining")
                  if p[0]["upstream"] == "octospine"}  # fmt: skip
        assert quotas == {"rest": 1000, "graphql": 499}

        # The same answer over REST: the pipeline, then every task and automation, filtered here.
        pipeline = await _pipelines(h).GetPipeline(pipelines_pb2.GetPipelineRequest(pipeline_id="pip_0002"))
        tasks = await _tasks(h).ListTasks(tasks_pb2.ListTasksRequest(page_size=100))
        automations = await automations_pb2_grpc.AutomationServiceStub(h.channel).ListAutomations(
            automations_pb2.ListAutomationsRequest(page_size=100)
        )
        rest_calls = _rest_requests(sim)

    def names_it(parameters: Any) -> bool:
        return bool(parameters.fields.get("pipeline_id", None) and parameters["pipeline_id"] == "pip_0002")

    linked = [t for t in tasks.tasks if names_it(t.parameters)]
    expected_tasks = sorted(linked, key=lambda t: t.created_at.ToDatetime(), reverse=True)[:3]
    referencing = [a for a in automations.automations if any(names_it(s.parameters) for s in a.steps)]
    assert [t.id for t in overview.recent_tasks] == [t.id for t in expected_tasks]
    assert list(overview.recent_tasks) == expected_tasks
    assert list(overview.automations) == referencing and referencing
    pipeline.source.ClearField("authentication")  # the overview leaves credentials out
    assert overview.pipeline == pipeline
    assert rest_calls == 3
    print(f"overview: 1 GraphQL request (1 unit of 500/min) vs {rest_calls} REST requests (of 1000/min)")


async def test_a_mutation_changes_state_and_is_never_retried(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim) as h:
        paused = await _pipelines(h).SetPipelineStatus(_set_status(pipelines_pb2.PIPELINE_STATUS_PAUSED))
        assert paused.status == pipelines_pb2.PIPELINE_STATUS_PAUSED and paused.name == "CRM Mirror"
        stored = sim.state.octospine.pipelines.get("pip_0002")
        assert stored is not None and stored["status"] == "paused"
        assert _graphql_requests(sim)[0]["variables"] == {"pipeline_id": "pip_0002", "status": "PAUSED"}

        sim.faults.add(Fault(**GRAPHQL, status=503, times=1))
        before = sim.count(**GRAPHQL)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _pipelines(h).SetPipelineStatus(_set_status(pipelines_pb2.PIPELINE_STATUS_ACTIVE))
        assert caught.value.code() == C.UNAVAILABLE
        assert sim.count(**GRAPHQL) == before + 1, "a mutation is sent once"

        # The same fault on a query is retried.
        sim.faults.add(Fault(**GRAPHQL, status=503, times=1))
        before = sim.count(**GRAPHQL)
        overview = await _pipelines(h).GetPipelineOverview(_overview(), timeout=5)
        assert overview.pipeline.status == pipelines_pb2.PIPELINE_STATUS_PAUSED
        assert sim.count(**GRAPHQL) == before + 2


async def test_errors_become_statuses_from_the_table(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim) as h:
        failed = _set_status(pipelines_pb2.PIPELINE_STATUS_FAILED)
        calls: list[tuple[str, Any]] = [
            ("unknown pipeline", _pipelines(h).GetPipelineOverview(_overview("pip_9999"))),
            ("FAILED by a client", _pipelines(h).SetPipelineStatus(failed)),
            ("out of range", _tasks(h).SearchTasks(tasks_pb2.SearchTasksRequest(first=500))),
        ]
        outcomes = {}
        for name, call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            outcomes[name] = caught.value
        sent = sim.count(**GRAPHQL)
        with pytest.raises(grpc.aio.AioRpcError) as local:
            await _pipelines(h).SetPipelineStatus(
                pipelines_pb2.SetPipelineStatusRequest(pipeline_id="pip_0002")
            )
        assert sim.count(**GRAPHQL) == sent, "a request missing a required variable is not sent"

    missing = outcomes["unknown pipeline"]
    assert missing.code() == C.NOT_FOUND
    details = error_details(missing)
    assert details["ErrorInfo"].reason == "UPSTREAM_NOT_FOUND"
    assert details["ErrorInfo"].metadata["path"] == "pipeline"
    assert details["ErrorInfo"].metadata["route"] == "GRAPHQL query PipelineOverview"
    assert "pipeline 'pip_9999' not found" in (missing.details() or "")
    assert details["ResourceInfo"].resource_name == "pipeline"

    for name, field in (("FAILED by a client", "status"), ("out of range", "first")):
        error = outcomes[name]
        assert error.code() == C.INVALID_ARGUMENT, name
        details = error_details(error)
        assert details["ErrorInfo"].reason == "UPSTREAM_BAD_USER_INPUT"
        assert [v.field for v in details["BadRequest"].field_violations] == [field]

    assert local.value.code() == C.INVALID_ARGUMENT
    violations = error_details(local.value)["BadRequest"].field_violations
    assert [v.field for v in violations] == ["status"]
    assert "$status: PipelineStatus!" in violations[0].description


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        ({"status": 200, "body": {"errors": [{"message": "Cannot query field 'x'",
                                             "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}},
         C.INTERNAL, "UPSTREAM_GRAPHQL_VALIDATION_FAILED"),
        ({"status": 200, "body": {"data": {"set_pipeline_status": None}}}, C.NOT_FOUND, "UPSTREAM_NOT_FOUND"),
        ({"status": 200, "body": {"nothing": "here"}}, C.INTERNAL, "UPSTREAM_MALFORMED_RESPONSE"),
        ({"status": 502, "content_type": "text/html"}, C.UNAVAILABLE, "UPSTREAM_BAD_GATEWAY"),
        ({"status": 403, "body": {"errors": [{"message": "no", "extensions": {"code": "FORBIDDEN"}}]}},
         C.PERMISSION_DENIED, "UPSTREAM_PERMISSION_DENIED"),
    ],
)  # fmt: skip
async def test_upstream_answers_of_every_kind(
    start_sim: StartSim, fault: dict[str, Any], code: grpc.StatusCode, reason: str
) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(**GRAPHQL, times=1, **fault))
    async with running_adapter(sim) as h:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _pipelines(h).SetPipelineStatus(_set_status(pipelines_pb2.PIPELINE_STATUS_PAUSED))
    assert caught.value.code() == code, caught.value.details()
    assert error_details(caught.value)["ErrorInfo"].reason == reason


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [("²", None), (1e300, 300.0), ("9" * 400, 300.0), (12, 12.0)],
)
async def test_a_rate_limit_with_any_retry_after_is_resource_exhausted(
    start_sim: StartSim, retry_after: object, seconds: float | None
) -> None:
    # The first two raised out of the GraphQL path before (found by the graphql.answer fuzz
    # target): the caller got no RESOURCE_EXHAUSTED. Unreadable: no RetryInfo; too long:
    # the upstream's max_server_delay (300 s by default).
    sim = await start_sim()
    error = {"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after}}
    sim.faults.add(Fault(**GRAPHQL, times=1, status=200, body={"errors": [error]}))
    async with running_adapter(sim) as h:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _pipelines(h).SetPipelineStatus(_set_status(pipelines_pb2.PIPELINE_STATUS_PAUSED))
    assert caught.value.code() == C.RESOURCE_EXHAUSTED, caught.value.details()
    details = error_details(caught.value)
    assert details["ErrorInfo"].reason == "UPSTREAM_RATE_LIMITED"
    retry = details.get("RetryInfo")
    assert (None if retry is None else retry.retry_delay.ToTimedelta().total_seconds()) == seconds


async def test_refused_credentials_and_the_vendors_rate_limit(start_sim: StartSim) -> None:
    sim = await start_sim(graphql_rate_limit_per_minute=1)
    async with running_adapter(sim, auth={"octospine": {"api_key": "wrong-key"}}) as h:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _pipelines(h).GetPipelineOverview(_overview())
    assert refused.value.code() == C.INTERNAL
    assert error_details(refused.value)["ErrorInfo"].reason == "UPSTREAM_CREDENTIALS_REJECTED"

    async with running_adapter(sim) as h:
        await _pipelines(h).GetPipelineOverview(_overview())
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await _pipelines(h).GetPipelineOverview(_overview("pip_0001"), timeout=3)
        # The vendor's 429 paused the GraphQL quota only: REST goes on, GraphQL is refused here.
        rest_before, graphql_before = _rest_requests(sim), sim.count(**GRAPHQL)
        await _pipelines(h).GetPipeline(pipelines_pb2.GetPipelineRequest(pipeline_id="pip_0001"), timeout=3)
        with pytest.raises(grpc.aio.AioRpcError) as paused:
            await _pipelines(h).GetPipelineOverview(_overview("pip_0003"), timeout=3)
        assert (_rest_requests(sim), sim.count(**GRAPHQL)) == (rest_before + 1, graphql_before)
    assert limited.value.code() == C.RESOURCE_EXHAUSTED
    details = error_details(limited.value)
    if sim.settings["octospine"].rate_limit_headers:
        # X-RateLimit-Limit/Remaining taught the GraphQL limiter the quota: refused here.
        assert details["ErrorInfo"].reason == "UPSTREAM_QUOTA_EXHAUSTED"
        assert sim.graphql_rate_limit.windows()["api_key"][0].rejected == 0
    else:
        assert details["ErrorInfo"].reason == "UPSTREAM_RATE_LIMITED"
        assert sim.graphql_rate_limit.windows()["api_key"][0].rejected == 1
    assert details["RetryInfo"].retry_delay.seconds >= 1
    assert "QuotaFailure" in details
    assert paused.value.code() == C.RESOURCE_EXHAUSTED
    assert error_details(paused.value)["ErrorInfo"].reason == "UPSTREAM_QUOTA_EXHAUSTED"


async def test_partial_answers_only_where_allowed(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim) as h:
        sim.faults.add(
            Fault(**GRAPHQL, graphql_field="Task.result", graphql_code="SERVICE_UNAVAILABLE", times=2)
        )
        call = _tasks(h).SearchTasks(
            tasks_pb2.SearchTasksRequest(filter=tasks_pb2.TaskFilter(status=tasks_pb2.TASK_STATUS_COMPLETED))
        )
        found = await call
        # As pairs: grpcio 1.75's aio Metadata.keys() yields (key, value) pairs, so
        # dict(metadata) fails there; a tuple of pairs reads the same on every version.
        trailers = dict(tuple(await call.trailing_metadata() or ()))
        # The overview allows none: the same kind of failure fails it.
        sim.faults.add(
            Fault(**GRAPHQL, graphql_field="Query.automations", graphql_code="SERVICE_UNAVAILABLE", times=1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _pipelines(h).GetPipelineOverview(_overview())

    completed = [t["id"] for t in reversed(sim.state.octospine.tasks.all()) if t["status"] == "completed"]
    assert [t.id for t in found.tasks] == completed and len(completed) == 2
    assert all(t.name and not t.HasField("result") for t in found.tasks), "what failed is left unset"
    status = status_pb2.Status.FromString(trailers[PARTIAL_ERRORS_TRAILER])
    assert status.code == C.UNAVAILABLE.value[0]
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert (info.reason, info.metadata["path"], info.metadata["graphql_errors"]) == (
        "UPSTREAM_UNAVAILABLE",
        "tasks[0].result",
        "2",
    )
    assert caught.value.code() == C.UNAVAILABLE
    assert error_details(caught.value)["ErrorInfo"].metadata["path"] == "automations"


async def test_persisted_queries_register_once_then_travel_as_a_hash(start_sim: StartSim) -> None:
    sim = await start_sim()
    request = tasks_pb2.SearchTasksRequest(filter=tasks_pb2.TaskFilter(pipeline_id="pip_0002"), first=2)
    async with running_adapter(sim) as h:
        first = await _tasks(h).SearchTasks(request)
        second = await _tasks(h).SearchTasks(request)
        sent = _graphql_requests(sim)
        await sim.reset("octospine")  # the vendor forgets it: registered again
        await _tasks(h).SearchTasks(request)
        after_reset = _graphql_requests(sim)
    assert first == second and len(first.tasks) == 2
    assert ["query" in s for s in sent] == [False, True, False]
    assert len({s["extensions"]["persistedQuery"]["sha256Hash"] for s in sent}) == 1
    assert ["query" in s for s in after_reset] == [False, True]
    assert list(sim.graphql.persisted) == [sent[0]["extensions"]["persistedQuery"]["sha256Hash"]]


async def test_graphql_and_rest_quotas_are_separate(start_sim: StartSim) -> None:
    sim = await start_sim()
    quotas = {"rate_limit": {"requests_per_window": 2, "window_seconds": 60}}
    async with running_adapter(sim, resilience=quotas, upstream_extra={"graphql": quotas}) as h:
        pipelines = _pipelines(h)

        async def rest(pipeline_id: str) -> None:
            await pipelines.GetPipeline(pipelines_pb2.GetPipelineRequest(pipeline_id=pipeline_id), timeout=2)

        async def graphql(pipeline_id: str) -> None:
            await pipelines.GetPipelineOverview(_overview(pipeline_id), timeout=2)

        await rest("pip_0001")
        await graphql("pip_0001")  # REST used one of its 2: GraphQL still has both
        await graphql("pip_0002")
        with pytest.raises(grpc.aio.AioRpcError) as graphql_spent:
            await graphql("pip_0003")
        await rest("pip_0002")  # GraphQL spent its 2: REST still has its second
        with pytest.raises(grpc.aio.AioRpcError) as rest_spent:
            await rest("pip_0003")
        limiter = h.layer("octospine", UpstreamRateLimiter)
        remaining = {p[0]["quota"]: p[1] for p in h.metric("meshadapter.upstream.rate_limit.remaining")
                     if p[0]["upstream"] == "octospine"}  # fmt: skip
    assert (sim.count(**GRAPHQL), _rest_requests(sim)) == (2, 2), "the refused calls never left"
    for error, quota in ((graphql_spent.value, "graphql"), (rest_spent.value, "rest")):
        assert error.code() == C.RESOURCE_EXHAUSTED, quota
        assert error_details(error)["ErrorInfo"].reason == "UPSTREAM_QUOTA_EXHAUSTED"
        assert (
            error_details(error)["ErrorInfo"]
            .metadata["route"]
            .startswith("GRAPHQL" if quota == "graphql" else "GET")
        )
    assert limiter.quota == "rest", "find_layer still finds the REST limiter first"
    assert remaining == {"rest": 0, "graphql": 0}


async def test_only_queries_are_cached_and_writes_drop_them(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience=CACHED) as h:
        pipelines = _pipelines(h)
        first = await pipelines.GetPipelineOverview(_overview())
        assert await pipelines.GetPipelineOverview(_overview()) == first
        assert sim.count(**GRAPHQL) == 1, "the second overview came from the cache"
        await pipelines.GetPipelineOverview(_overview(recent_tasks=1))
        assert sim.count(**GRAPHQL) == 2, "other variables, another entry"

        # A mutation is never served from the cache, and drops every cached query.
        for _ in range(2):
            await pipelines.SetPipelineStatus(_set_status(pipelines_pb2.PIPELINE_STATUS_PAUSED))
        assert sim.count(**GRAPHQL) == 4
        fresh = await pipelines.GetPipelineOverview(_overview())
        assert fresh.pipeline.status == pipelines_pb2.PIPELINE_STATUS_PAUSED
        assert sim.count(**GRAPHQL) == 5

        # A REST write may change what a query read: it drops the cached queries too.
        update = pipelines_pb2.UpdatePipelineRequest(
            pipeline=pipelines_pb2.Pipeline(id="pip_0002", description="changed over REST")
        )
        update.update_mask.paths.append("description")
        await pipelines.UpdatePipeline(update)
        changed = await pipelines.GetPipelineOverview(_overview())
        assert changed.pipeline.description == "changed over REST"
        assert sim.count(**GRAPHQL) == 6

        # An answer with errors is not kept.
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await pipelines.GetPipelineOverview(_overview("pip_9999"))
        assert sim.count(**GRAPHQL) == 8
        # Queries without a TTL are not cached at all.
        for _ in range(2):
            await _tasks(h).SearchTasks(tasks_pb2.SearchTasksRequest(first=1))
        assert sim.count(**GRAPHQL) == 8 + 3  # hash miss + registration, then the hash again


async def test_a_large_answer_is_decoded_on_the_worker_and_arrives_whole(start_sim: StartSim) -> None:
    sim = await start_sim()
    source = pipelines_pb2.PipelineSource(type="http", endpoint="https://example.test/feed")
    for i in range(2500):  # ~100 KB of parameters: the overview's answer is past the threshold
        source.parameters.fields[f"column_{i:05d}"].string_value = f"mapping for column {i}"
    async with running_adapter(sim) as h:  # made through REST
        created = await _pipelines(h).CreatePipeline(
            pipelines_pb2.CreatePipelineRequest(pipeline=pipelines_pb2.Pipeline(name="wide", source=source)),
            timeout=10,
        )
    before = large_payload_threads()
    async with running_adapter(sim) as h:  # a fresh adapter: its worker starts for the answer alone
        overview = await _pipelines(h).GetPipelineOverview(_overview(created.id), timeout=10)
        started = large_payload_threads() - before
    answers = sim.find_requests(**GRAPHQL)
    assert len(answers) == 1
    assert overview.pipeline.id == created.id and overview.pipeline.source.parameters == source.parameters
    assert started, "the GraphQL answer was not decoded on the adapter's worker thread"
