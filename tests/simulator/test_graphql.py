"""OCTOSPINE's GraphQL endpoint: the schema over the store, errors with codes, persisted
queries, its own quota, the same authentication as REST, field faults."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from graphql import parse, validate

from adapter.descriptors.loader import load_service_specs
from simulator import Fault, Simulator
from tests.simulator.conftest import OS_KEY, StartSim

OVERVIEW = """
query Overview($id: ID!) {
  pipeline(id: $id) {
    id name status schedule { type value }
    source { connection_id connection { id name status } }
    recent_tasks(first: 2) { id status pipeline { id } }
    automations { id name }
  }
}
"""


async def _post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/graphql", json=body)


async def _query(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await _post(client, {"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = response.json()
    return answer


def _codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


def test_every_graphql_document_in_the_protos_fits_the_schema(sim: Simulator) -> None:
    documents = {m.path: m.graphql.document for s in load_service_specs() for m in s.methods if m.graphql}
    assert len(documents) >= 3
    for path, document in documents.items():
        assert validate(sim.graphql.schema, parse(document)) == [], path


async def test_reads_follow_the_store_and_its_relations(sim: Simulator, octospine: httpx.AsyncClient) -> None:
    answer = await _query(octospine, OVERVIEW, id="pip_0002")
    assert "errors" not in answer
    pipeline = answer["data"]["pipeline"]
    stored = sim.state.octospine.pipelines.get("pip_0002")
    assert stored is not None
    assert (pipeline["name"], pipeline["status"]) == (stored["name"], stored["status"].upper())
    assert pipeline["schedule"] == {"type": "INTERVAL", "value": 3600}
    assert pipeline["source"]["connection"] == {
        "id": "int_0001",
        "name": "External Database",
        "status": "ACTIVE",
    }
    linked = [t for t in sim.state.octospine.tasks.all() if t["parameters"].get("pipeline_id") == "pip_0002"]
    assert [t["id"] for t in pipeline["recent_tasks"]] == [t["id"] for t in reversed(linked)][:2]
    assert all(t["pipeline"] == {"id": "pip_0002"} for t in pipeline["recent_tasks"])
    assert [a["id"] for a in pipeline["automations"]] == ["aut_0001"]


async def test_introspection(octospine: httpx.AsyncClient) -> None:
    answer = await _query(
        octospine, "{ __schema { queryType { name } mutationType { name } types { name } } }"
    )
    schema = answer["data"]["__schema"]
    assert (schema["queryType"]["name"], schema["mutationType"]["name"]) == ("Query", "Mutation")
    assert {"Pipeline", "Task", "Automation", "TaskFilter", "DateTime", "JSON"} <= {
        t["name"] for t in schema["types"]
    }


async def test_mutations_change_the_store_like_rest(sim: Simulator, octospine: httpx.AsyncClient) -> None:
    answer = await _query(
        octospine,
        "mutation($id: ID!) { set_pipeline_status(id: $id, status: PAUSED) { id status updated_at } }",
        id="pip_0001",
    )
    assert answer["data"]["set_pipeline_status"]["status"] == "PAUSED"
    stored = sim.state.octospine.pipelines.get("pip_0001")
    assert stored is not None and stored["status"] == "paused"
    assert stored["updated_at"] == answer["data"]["set_pipeline_status"]["updated_at"]
    created = await _query(
        octospine,
        "mutation($t: TaskInput!) { create_task(task: $t) { id status parameters } }",
        t={"name": "From GraphQL", "type": "data_sync", "parameters": {"pipeline_id": "pip_0001"}},
    )
    task_id = created["data"]["create_task"]["id"]
    assert created["data"]["create_task"]["status"] == "PENDING"
    await sim.wait_for(lambda: (sim.state.octospine.tasks.get(task_id) or {}).get("status") == "completed")


@pytest.mark.parametrize(
    ("query", "variables", "code", "extra"),
    [
        ("{ pipeline(id: ", {}, "GRAPHQL_PARSE_FAILED", {}),
        ("{ pipeline(id: \"pip_0001\") { nope } }", {}, "GRAPHQL_VALIDATION_FAILED", {}),
        ("query($n: Int) { tasks(first: $n) { id } }", {"n": "x"}, "BAD_USER_INPUT", {"field": "n"}),
        ("{ tasks(first: 500) { id } }", {}, "BAD_USER_INPUT", {"field": "first"}),
        ("{ tasks(filter: {updated_after: \"yesterday\"}) { id } }", {}, "GRAPHQL_VALIDATION_FAILED", {}),
        ("mutation { set_pipeline_status(id: \"pip_0001\", status: FAILED) { id } }", {}, "BAD_USER_INPUT",
         {"field": "status"}),
        ("{ pipeline(id: \"pip_9999\") { id } }", {}, "NOT_FOUND", {}),
        ("mutation { cancel_task(id: \"tsk_0001\") { id } }", {}, "CONFLICT", {}),
    ],
)  # fmt: skip
async def test_errors_carry_extensions_code(
    octospine: httpx.AsyncClient, query: str, variables: dict[str, Any], code: str, extra: dict[str, str]
) -> None:
    answer = await _query(octospine, query, **variables)
    assert _codes(answer) == [code], answer
    error = answer["errors"][0]
    assert error["message"]
    for key, value in extra.items():
        assert error["extensions"][key] == value


async def test_a_null_field_with_its_error_path(octospine: httpx.AsyncClient) -> None:
    answer = await _query(octospine, '{ pipeline(id: "pip_9999") { id } health { status } }')
    assert answer["data"] == {"pipeline": None, "health": {"status": "HEALTHY"}}
    assert answer["errors"][0]["path"] == ["pipeline"]


async def test_not_a_graphql_request_is_a_400(octospine: httpx.AsyncClient) -> None:
    for body in (b"{nope", b"[]", b'{"variables": {}}'):
        response = await octospine.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert _codes(response.json()) == ["BAD_REQUEST"]


async def test_same_credentials_as_rest_with_graphql_shaped_refusals(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.octospine_url) as anonymous:
        response = await _post(anonymous, {"query": "{ health { status } }"})
    assert response.status_code == 401
    assert _codes(response.json()) == ["UNAUTHENTICATED"]
    headers = {"Authorization": "Bearer wrong"}
    async with httpx.AsyncClient(base_url=sim.octospine_url, headers=headers) as wrong:
        assert (await _post(wrong, {"query": "{ health { status } }"})).status_code == 401
    assert sim.count(vendor="octospine", route="/graphql") == 2


async def test_persisted_queries(sim: Simulator, octospine: httpx.AsyncClient) -> None:
    query = "{ health { status } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    unknown = await _post(octospine, by_hash)
    assert unknown.status_code == 200 and _codes(unknown.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    wrong = await _post(octospine, {**by_hash, "query": query + " "})
    assert wrong.status_code == 400 and _codes(wrong.json()) == ["BAD_REQUEST"]
    registered = await _post(octospine, {**by_hash, "query": query})
    assert registered.json() == {"data": {"health": {"status": "HEALTHY"}}}
    assert sim.graphql.persisted == {digest: query}
    assert (await _post(octospine, by_hash)).json() == {"data": {"health": {"status": "HEALTHY"}}}
    await sim.reset("octospine")
    assert _codes((await _post(octospine, by_hash)).json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_persisted_queries_switched_off(start_sim: StartSim) -> None:
    sim = await start_sim(graphql_persisted_queries=False)
    query = "{ health { status } }"
    body = {"query": query, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
    async with httpx.AsyncClient(
        base_url=sim.octospine_url, headers={"Authorization": f"Bearer {OS_KEY}"}
    ) as c:
        assert _codes((await _post(c, body)).json()) == ["PERSISTED_QUERY_NOT_SUPPORTED"]


async def test_graphql_has_its_own_quota_with_429_and_retry_after(start_sim: StartSim) -> None:
    sim = await start_sim(graphql_rate_limit_per_minute=3, rate_limit_per_minute=2, rate_limit_window_s=30)
    async with httpx.AsyncClient(
        base_url=sim.octospine_url, headers={"Authorization": f"Bearer {OS_KEY}"}
    ) as c:
        rest = [(await c.get("/api/health")).status_code for _ in range(3)]
        graphql = [await _post(c, {"query": "{ health { status } }"}) for _ in range(4)]
    assert rest == [200, 200, 429], "REST has its own quota of 2"
    assert [r.status_code for r in graphql] == [200, 200, 200, 429], "GraphQL's 3 are untouched by REST"
    limited = graphql[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    error = limited.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == int(limited.headers["Retry-After"])
    assert sim.graphql_rate_limit.max_served_in_any_window() == 3
    assert sim.rate_limits["octospine"].max_served_in_any_window() == 2
    async with httpx.AsyncClient(base_url=sim.octospine_url) as admin:
        limits = (await admin.get("/_sim/rate-limits")).json()
    assert (limits["limit"], limits["graphql"]["limit"]) == (2, 3)
    assert limits["graphql"]["windows"]["api_key"]["0"] == {"served": 3, "rejected": 1}


def test_the_documented_quota_is_500_a_minute() -> None:
    sim = Simulator()
    assert sim.graphql_rate_limit.limit == 500 and sim.graphql_rate_limit.window_s == 60


async def test_field_faults_give_partial_data(sim: Simulator, octospine: httpx.AsyncClient) -> None:
    admin = httpx.AsyncClient(base_url=sim.octospine_url)
    async with admin:
        fault = {"graphql_field": "Pipeline.automations", "graphql_code": "SERVICE_UNAVAILABLE"}
        created = await admin.post("/_sim/faults", json={"route": "/graphql", "times": 1, **fault})
    assert created.status_code == 201, created.text
    answer = await _query(octospine, OVERVIEW, id="pip_0002")
    assert answer["data"]["pipeline"]["name"] == "CRM Mirror"
    assert answer["data"]["pipeline"]["automations"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in answer["errors"]] == [
        (["pipeline", "automations"], "SERVICE_UNAVAILABLE")
    ]
    assert "errors" not in await _query(octospine, OVERVIEW, id="pip_0002"), "times=1 is used up"
    assert sim.requests[-2].fault == "graphql_field"
    with pytest.raises(ValueError, match="field coordinate"):
        Fault(vendor="octospine", graphql_field="automations")


async def test_resources_created_without_their_lists_are_read_with_empty_ones(
    octospine: httpx.AsyncClient,
) -> None:
    """The schema's non-null lists ([T!]!) hold for what REST created without them (a
    proto3 JSON encoder leaves out empty repeated fields)."""
    pipeline = (await octospine.post("/api/pipelines", json={"name": "bare"})).json()
    automation = (await octospine.post("/api/automations", json={"name": "bare"})).json()
    answer = await _query(
        octospine,
        "query Bare($p: ID!, $a: ID!) { pipeline(id: $p) { transformations { type } }"
        " automation(id: $a) { triggers { type } steps { name } } }",
        p=pipeline["id"],
        a=automation["id"],
    )
    assert "errors" not in answer, answer
    assert answer["data"] == {
        "pipeline": {"transformations": []},
        "automation": {"triggers": [], "steps": []},
    }
