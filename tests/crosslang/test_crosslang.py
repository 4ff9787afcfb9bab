"""The adapter through clients in other languages, generated from protos/.

A Go client (stubs made by protoc-gen-go / protoc-gen-go-grpc), a Node.js
client (@grpc/grpc-js + @grpc/proto-loader reading the .proto files) and a Java
client (stubs made by protoc + grpc_java_plugin in a Maven build) run as child
processes against the live adapter of the ``adapter`` fixture, print what they
saw as JSON, and the tests compare it with the simulator's own state and
request log. The clients take the same command line and print the same JSON
shapes (timestamps aside), so one test covers every language.

``tests/crosslang/setup.sh`` builds the clients (``scripts/run-tests.sh`` runs
it first); without it these tests fail and say so. See docs/crosslang.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator

pytestmark = pytest.mark.crosslang

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD = HERE / ".build"
GO_BINARY = BUILD / "crosslang-go"
NODE_DIR = HERE / "node"
JAVA_DIR = HERE / "java"
SETUP = "tests/crosslang/setup.sh"
# Bound on one client process: its calls have 10 s deadlines of their own.
CLIENT_TIMEOUT_S = 60.0
LANGUAGES = ["go", "node", "java"]


@dataclass(frozen=True)
class Client:
    """One client program: ``argv`` + ``--addr HOST:PORT [--flag value ...] SCENARIO``."""

    language: str
    argv: tuple[str, ...]

    async def run(self, adapter: MeshAdapter, scenario: str, **flags: object) -> dict[str, Any]:
        """Runs ``scenario`` against ``adapter`` and returns the JSON the client printed.

        The child runs while this event loop keeps serving the in-process adapter."""
        args = [*self.argv, "--addr", f"127.0.0.1:{adapter.port}"]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        args.append(scenario)
        return await run_json(args, f"{self.language} client {scenario!r}")


async def run_json(args: list[str], what: str) -> dict[str, Any]:
    """Runs a child program and returns the JSON object it printed; fails the test
    when it exits non-zero, prints no JSON or outlives CLIENT_TIMEOUT_S."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{what} still running after {CLIENT_TIMEOUT_S} s")
    if proc.returncode != 0:
        pytest.fail(f"{what} exited with {proc.returncode}:\n{err.decode(errors='replace')}")
    try:
        return json.loads(out)  # type: ignore[no-any-return]
    except json.JSONDecodeError as exc:
        pytest.fail(f"{what} printed no JSON ({exc}):\n{out[:2000]!r}")


def _require_fresh(what: str, stamp: Path, inputs: Iterable[Path]) -> None:
    """Fails unless setup.sh has checked ``what`` since its inputs last changed
    (it touches ``stamp`` whenever the build is current)."""
    if not stamp.is_file():
        pytest.fail(f"{what} was never set up ({stamp} is missing): run {SETUP}")
    checked = stamp.stat().st_mtime
    changed = sorted(
        str(p.relative_to(REPO) if p.is_relative_to(REPO) else p)
        for p in inputs
        if p.stat().st_mtime > checked
    )
    if changed:
        pytest.fail(f"{what} is older than {', '.join(changed[:5])}: run {SETUP}")


def go_binary(binary: Path, what: str) -> str:
    """A Go program built by setup.sh, fresh."""
    if not binary.is_file():
        pytest.fail(f"{what} is not built ({binary} is missing): run {SETUP}")
    go_dir = HERE / "go"
    sources = [p for p in go_dir.glob("**/*.go") if p.relative_to(go_dir).parts[0] != "gen"]
    inputs = [*sources, go_dir / "go.mod", go_dir / "go.sum", *(REPO / "protos").rglob("*.proto")]
    _require_fresh(what, BUILD / "go.stamp", inputs)
    return str(binary)


def go_client() -> Client:
    return Client("go", (go_binary(GO_BINARY, "the Go client"),))


def node_client() -> Client:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"Node.js is not installed ('node' is not on PATH); install it, then run {SETUP}")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(f"the Node client's dependencies are missing ({NODE_DIR}/node_modules): run {SETUP}")
    inputs = [NODE_DIR / "package.json", NODE_DIR / "package-lock.json"]
    _require_fresh("the Node client's dependencies", BUILD / "node.stamp", inputs)
    return Client("node", (node, str(NODE_DIR / "client.js")))


def java_classpath() -> str:
    """The Java classes and their Maven dependencies (built by setup.sh), fresh."""
    classpath_file = JAVA_DIR / "target" / "classpath.txt"
    if not classpath_file.is_file() or shutil.which("java") is None:
        pytest.fail(f"the Java client is not built ({classpath_file} is missing): run {SETUP}")
    inputs = [JAVA_DIR / "pom.xml", *(JAVA_DIR / "src").rglob("*.java"), *(REPO / "protos").rglob("*.proto")]
    _require_fresh("the Java client", BUILD / "java.stamp", inputs)
    return f"{JAVA_DIR / 'target' / 'classes'}:{classpath_file.read_text().strip()}"


def java_main(main_class: str, language: str = "java") -> Client:
    # C1 only and the serial collector: these JVMs live for a second or two.
    jvm = ("java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")
    return Client(language, (*jvm, "-cp", java_classpath(), main_class))


def java_client() -> Client:
    return java_main("meshadapter.crosslang.Client")


CLIENTS = {"go": go_client, "node": node_client, "java": java_client}


@pytest.fixture(params=LANGUAGES)
def client(request: pytest.FixtureRequest) -> Client:
    return CLIENTS[request.param]()


def _details(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The decoded google.rpc.Status details of a failed call, by type name."""
    status = result["status"]
    assert status is not None, "no google.rpc.Status in the grpc-status-details-bin trailer"
    assert status["code"] == result["code"] and status["message"] == result["message"]
    assert all("undecodable" not in d for d in status["details"]), status["details"]
    return {d["type"]: d["value"] for d in status["details"]}


@pytest.mark.usefixtures("profile")
async def test_list_devices_pages_through_every_device(
    client: Client, adapter: MeshAdapter, simulator: Simulator
) -> None:
    result = await client.run(adapter, "list-devices", page_size=7)
    truth = sorted(r["id"] for r in simulator.state.openframe.devices)
    assert sorted(result["ids"]) == truth
    assert len(set(result["ids"])) == len(result["ids"]), "pages overlap"
    sizes = result["page_sizes"]
    assert len(sizes) == -(-len(truth) // 7) and all(size == 7 for size in sizes[:-1]), sizes


async def test_alert_lifecycle(client: Client, adapter: MeshAdapter, simulator: Simulator) -> None:
    before = len(simulator.state.openframe.alerts)
    result = await client.run(adapter, "alert-lifecycle")
    created, title = result["created"], f"{client.language} client alert"
    assert created["id"] and created["title"] == title
    assert created["status"] == "ALERT_STATUS_OPEN" and created["severity"] == "SEVERITY_HIGH"
    assert created["metadata"] == {"client": client.language, "checks": ["disk", 2], "ticket": None}

    # The same request_id twice: one alert, the first answer replayed.
    assert result["replayed"]["id"] == created["id"]
    assert len(simulator.state.openframe.alerts) == before + 1
    posts = simulator.find_requests(vendor="openframe", method="POST", route="/v1/alerts")
    assert [p.headers.get("Idempotency-Key") for p in posts] == [result["request_id"]] * 2

    assert result["got"] == created and result["got_equals_created"] is True
    updated = result["updated"]
    assert updated["id"] == created["id"] and updated["status"] == "ALERT_STATUS_RESOLVED"
    assert updated["title"] == title, "a field outside update_mask was changed"
    stored = simulator.state.openframe.alerts.get(created["id"])
    assert stored is not None
    assert stored["title"] == title and stored["status"] == "resolved"
    assert stored["metadata"] == {"client": client.language, "checks": ["disk", 2], "ticket": None}


async def test_pipeline_with_nested_messages_and_structs(
    client: Client, adapter: MeshAdapter, simulator: Simulator
) -> None:
    lang = client.language
    transformations = [
        {"type": "clean", "parameters": {"removeNulls": True, "maxNullRatio": 0.25}},
        {
            "type": "enrich",
            "parameters": {
                "enrichments": ["geolocation", "company"],
                "fallback": {"country": "unknown", "confidence": 0, "note": None},
            },
        },
    ]
    result = await client.run(adapter, "pipeline")
    created = result["created"]
    assert created["name"] == f"{lang} client pipeline"
    assert created["transformations"] == transformations
    assert created["source"]["authentication"] == {"type": "bearer", "token": f"{lang}-source-token"}
    assert created["destination"] == {"type": "database", "table": f"{lang}_processed"}
    assert result["got"] == created

    stored = simulator.state.octospine.pipelines.get(created["id"])
    assert stored is not None, f"{created['id']} is not in the simulator"
    assert stored["name"] == f"{lang} client pipeline"
    assert stored["transformations"] == transformations
    assert stored["source"]["endpoint"] == f"https://source.example/{lang}"
    assert stored["destination"]["table"] == f"{lang}_processed"


@pytest.mark.parametrize("language", ["go", "java"])
async def test_health_checks_every_service(language: str, adapter: MeshAdapter) -> None:
    statuses = (await CLIENTS[language]().run(adapter, "health"))["statuses"]
    assert statuses[""] == "SERVING"
    # Every service the adapter serves, under the full name the Go code has from protos/.
    assert {name: statuses.get(name) for name in adapter.service_names} == dict.fromkeys(
        adapter.service_names, "SERVING"
    )
    # In protos/ but not served here (it needs Kafka): health says so.
    assert statuses["meshadapter.v1.EventService"] == "NOT_FOUND"


async def test_not_found_carries_rich_details(
    client: Client, adapter: MeshAdapter, simulator: Simulator
) -> None:
    result = await client.run(adapter, "error")
    assert result["code"] == "NOT_FOUND", result
    details = _details(result)
    info = details["google.rpc.ErrorInfo"]
    assert info["reason"] == "UPSTREAM_NOT_FOUND" and info["domain"] == "mesh-adapter"
    assert info["metadata"]["upstream"] == "openframe" and info["metadata"]["http_status"] == "404"
    if client.language in ("go", "java"):  # the typed ErrorInfo read the same
        assert result["error_info"] == {k: info[k] for k in ("reason", "domain", "metadata")}
    assert result["alert_id"] in details["google.rpc.ResourceInfo"]["description"]
    # RequestInfo names the upstream request that answered 404.
    [record] = simulator.find_requests(vendor="openframe", path=f"/v1/alerts/{result['alert_id']}")
    assert record.status == 404
    assert details["google.rpc.RequestInfo"]["request_id"] == record.request_id


async def test_invalid_argument_names_the_callers_field(
    client: Client, adapter: MeshAdapter, simulator: Simulator
) -> None:
    before = len(simulator.state.openframe.alerts)
    result = await client.run(adapter, "invalid-argument")
    assert result["code"] == "INVALID_ARGUMENT", result
    details = _details(result)
    assert details["google.rpc.ErrorInfo"]["reason"] == "UPSTREAM_VALIDATION_FAILED"
    violations = details["google.rpc.BadRequest"]["field_violations"]
    assert [v["field"] for v in violations] == ["alert.title"]
    assert len(simulator.state.openframe.alerts) == before


async def test_rate_limited_carries_retry_info(adapter: MeshAdapter, simulator: Simulator) -> None:
    """(Java) A 429 whose Retry-After outlasts the call's deadline fails at once:
    RESOURCE_EXHAUSTED with RetryInfo (read through StatusProto) and QuotaFailure."""
    simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", status=429, retry_after=120))
    result = await java_client().run(adapter, "rate-limited")  # 10 s deadline < 120 s
    assert result["code"] == "RESOURCE_EXHAUSTED", result
    details = _details(result)
    assert details["google.rpc.RetryInfo"]["retry_delay"] == "120s"
    assert result["retry_delay_ms"] == 120_000  # the typed RetryInfo read the same
    assert details["google.rpc.ErrorInfo"]["metadata"]["http_status"] == "429"
    assert "google.rpc.QuotaFailure" in details
    assert len(simulator.find_requests(vendor="openframe", route="/v1/devices")) == 1, "retried a 429"


async def test_deadline_exceeded_and_upstream_cancelled(
    client: Client, adapter: MeshAdapter, simulator: Simulator
) -> None:
    latency_s = 3.0
    simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", latency=latency_s))
    result = await client.run(adapter, "deadline", deadline_ms=300)
    assert result["code"] == "DEADLINE_EXCEEDED", result
    # The client gave up on its own deadline, not when the slow upstream answered.
    assert result["elapsed_ms"] < latency_s * 1000 * 0.8, result
    # The deadline reached the adapter (grpc-timeout), which dropped the upstream request.
    await simulator.wait_for(
        lambda: any(r.cancelled for r in simulator.find_requests(route="/v1/devices")), timeout_s=5.0
    )


async def test_missing_or_stale_client_fails_and_names_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(f"{__name__}.GO_BINARY", tmp_path / "no-such-binary")
    with pytest.raises(pytest.fail.Exception, match=r"not built.*run tests/crosslang/setup\.sh"):
        go_client()
    monkeypatch.setattr(f"{__name__}.NODE_DIR", tmp_path / "no-such-dir")
    with pytest.raises(pytest.fail.Exception, match=r"missing.*run tests/crosslang/setup\.sh"):
        node_client()
    monkeypatch.setattr(f"{__name__}.JAVA_DIR", tmp_path / "no-such-dir")
    with pytest.raises(pytest.fail.Exception, match=r"not built.*run tests/crosslang/setup\.sh"):
        java_client()

    stamp, source = tmp_path / "go.stamp", tmp_path / "main.go"
    stamp.touch()
    source.touch()
    os.utime(stamp, (0, 0))  # checked long before the source changed
    with pytest.raises(pytest.fail.Exception, match=r"older than .*run tests/crosslang/setup\.sh"):
        _require_fresh("the Go client", stamp, [source])


@dataclass(frozen=True)
class _Port:
    port: int


async def test_each_language_through_the_envoy_front(
    client: Client, simulator: Simulator, tmp_path: Path
) -> None:
    """The same clients against ``grpc.front = "envoy"`` (python -m adapter behind a real
    Envoy): pages, rich error details, and a deadline that reaches the adapter through
    Envoy (``grpc-timeout``) and drops the upstream request."""
    pytest.importorskip("pyvoy", reason="the envoy extra (make venv installs it)")
    from tests.adapter_process import against, listen_port, spawn, terminate, wait_serving

    port = listen_port()
    log = tmp_path / "adapter.log"
    process = spawn(against(simulator, port, MESH_GRPC__FRONT="envoy", MESH_WORKERS="1"), log)
    try:
        await wait_serving(port, process=process, log=log, name="adapter behind Envoy")
        front: Any = _Port(port)
        pages = await client.run(front, "list-devices", page_size=7)
        assert sorted(pages["ids"]) == sorted(r["id"] for r in simulator.state.openframe.devices)
        result = await client.run(front, "error")
        assert result["code"] == "NOT_FOUND", result
        info = _details(result)["google.rpc.ErrorInfo"]
        assert info["reason"] == "UPSTREAM_NOT_FOUND" and info["metadata"]["http_status"] == "404"
        simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", latency=3.0))
        result = await client.run(front, "deadline", deadline_ms=300)
        assert result["code"] == "DEADLINE_EXCEEDED" and result["elapsed_ms"] < 2400, result
        await simulator.wait_for(
            lambda: any(r.cancelled for r in simulator.find_requests(route="/v1/devices")), timeout_s=5.0
        )
    finally:
        terminate(process)
