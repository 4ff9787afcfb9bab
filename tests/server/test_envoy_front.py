"""``grpc.front = "envoy"`` end to end: ``python -m adapter`` behind a real Envoy
(pyvoy) over real sockets, the simulator as upstream, against the same adapter on
grpc.aio where the answers must be the same."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from bench.peer.processes import process_tree
from simulator import Simulator
from simulator.faults import Fault

from ..adapter_process import (
    against,
    listen_port,
    log_tail,
    offline,
    run_command,
    spawn,
    terminate,
    wait_serving,
)
from .hostile import call_raw, silent_connection_closed_within
from .hostile_requests import every_rpc, hostile_requests

pytest.importorskip("pyvoy", reason="the envoy extra (make venv installs it)")

pytestmark = pytest.mark.timeout(120)

GET_DEVICE = "/v1/devices/{device_id}"


def _environment(sim: Simulator, port: int, front: str, **changes: str) -> dict[str, str]:
    defaults = {"MESH_GRPC__FRONT": front, "MESH_GRPC__DRAIN_SECONDS": "0.2", "MESH_WORKERS": "1"}
    return against(sim, port, **(defaults | changes))


class Adapter:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.address = f"127.0.0.1:{port}"

    def stop(self, sig: int = signal.SIGTERM, within: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(within)


@contextlib.asynccontextmanager
async def _adapter(sim: Simulator, tmp_path: Path, front: str, **changes: str) -> AsyncIterator[Adapter]:
    port = listen_port()
    log = tmp_path / f"adapter-{front}-{port}.log"
    process = spawn(_environment(sim, port, front, **changes), log)
    adapter = Adapter(process, port, log)
    try:
        await wait_serving(port, process=process, log=log, name=f"adapter ({front})")
        yield adapter
    finally:
        terminate(process)


@pytest_asyncio.fixture
async def sim(simulator: Simulator) -> Simulator:
    return simulator


@pytest_asyncio.fixture
async def front(sim: Simulator, tmp_path: Path) -> AsyncIterator[Adapter]:
    async with _adapter(sim, tmp_path, "envoy") as adapter:
        assert "serving gRPC behind Envoy on 127.0.0.1:" in adapter.log.read_text()
        yield adapter


def _without_request_ids(value: Any) -> Any:
    """Rich details without ``RequestInfo.requestId``, which differs per call."""
    if isinstance(value, dict):
        return {k: _without_request_ids(v) for k, v in value.items() if k != "requestId"}
    if isinstance(value, list):
        return [_without_request_ids(v) for v in value]
    return value


def _outcome(address: str, call: Any) -> tuple[str, str, dict[str, Any] | None, bytes]:
    """A call's code, message, rich details (as a dict: map entries come in no fixed
    order) and answer bytes, as a client sees them."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = call(channel)
        except grpc.RpcError as exc:
            rpc: Any = exc
            details = dict(rpc.trailing_metadata() or ()).get("grpc-status-details-bin")
            decoded = None
            if isinstance(details, bytes):
                decoded = _without_request_ids(
                    json_format.MessageToDict(status_pb2.Status.FromString(details))
                )
            return rpc.code().name, rpc.details() or "", decoded, b""
        return "OK", "", None, answer.SerializeToString()


def _devices(channel: grpc.Channel) -> devices_pb2_grpc.DeviceServiceStub:
    return devices_pb2_grpc.DeviceServiceStub(channel)


def _first_page(channel: grpc.Channel) -> devices_pb2.ListDevicesResponse:
    page = _devices(channel).ListDevices(devices_pb2.ListDevicesRequest(page_size=3), timeout=10)
    page.ClearField("next_page_token")  # signed with each process's own random key
    return page


CALLS = {
    "list": _first_page,
    "get": lambda ch: _devices(ch).GetDevice(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10),
    "not found": lambda ch: _devices(ch).GetDevice(
        devices_pb2.GetDeviceRequest(device_id="nope"), timeout=10
    ),
    "invalid": lambda ch: _devices(ch).GetDevice(devices_pb2.GetDeviceRequest(), timeout=10),
    "no such method": lambda ch: ch.unary_unary("/openframe.v1.DeviceService/Nope")(b"", timeout=10),
    # Envoy's own limits (100 headers) would reset this stream; grpc takes it
    "150 metadata entries": lambda ch: _devices(ch).GetDevice(
        devices_pb2.GetDeviceRequest(device_id="dev_001"),
        timeout=10,
        metadata=[(f"x-entry-{i}", "v") for i in range(150)],
    ),
    # over grpc's 16 KiB of metadata (between 8 and 16 grpc refuses at random: not asked)
    "metadata over 16 KiB": lambda ch: _devices(ch).GetDevice(
        devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10, metadata=[("x-big", "v" * 20_000)]
    ),
}


async def test_calls_end_as_on_grpc_aio(sim: Simulator, front: Adapter, tmp_path: Path) -> None:
    """Every call, answered or refused, reads the same behind Envoy as on grpc.aio:
    status, message, rich details and the answer's bytes."""
    behind_envoy = {
        name: await asyncio.to_thread(_outcome, front.address, call) for name, call in CALLS.items()
    }
    async with _adapter(sim, tmp_path, "grpcio") as plain:
        on_grpc_aio = {
            name: await asyncio.to_thread(_outcome, plain.address, call) for name, call in CALLS.items()
        }
    assert behind_envoy == on_grpc_aio
    assert behind_envoy["get"][0] == "OK" and behind_envoy["get"][3]
    assert behind_envoy["not found"][0] == "NOT_FOUND" and behind_envoy["not found"][2]
    assert behind_envoy["invalid"][0] == "INVALID_ARGUMENT"
    assert behind_envoy["no such method"][0] == "UNIMPLEMENTED"
    assert behind_envoy["150 metadata entries"][0] == "OK"
    assert behind_envoy["metadata over 16 KiB"][0] == "RESOURCE_EXHAUSTED"
    # the upstream call was the front's: the simulator saw the adapter's key
    assert any(r.path == "/v1/devices/dev_001" for r in sim.log.select(vendor="openframe"))


async def _hostile_outcomes(address: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Every RPC x every hostile request (tests/server/hostile_requests.py): code and message."""
    outcomes = {}
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        for rpc in every_rpc():
            for hostile in hostile_requests(rpc):
                error = await call_raw(channel, rpc.path, hostile.payload, streaming=rpc.server_streaming)
                outcome = ("OK", "") if error is None else (error.code().name, error.details() or "")
                outcomes[(rpc.path, hostile.kind)] = outcome
    return outcomes


async def test_the_hostile_table_ends_as_on_grpc_aio(sim: Simulator, tmp_path: Path) -> None:
    """The hostile-input table (tests/server/test_hostile_table.py asserts what each
    request must get on grpc.aio) reads the same behind Envoy: every code and message."""
    events = {
        "MESH_EVENTS__ENABLED": "true",  # EventService validates before it needs a broker
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "MESH_EVENTS__KAFKA__LIFECYCLE_TIMEOUT_SECONDS": "0.5",
        "MESH_EVENTS__WEBSOCKETS__OPENFRAME__ENABLED": "false",
        "MESH_EVENTS__WEBSOCKETS__OCTOSPINE__ENABLED": "false",
        "MESH_EVENTS__WEBHOOK__ENABLED": "false",
        "MESH_RESILIENCE__RETRY__MAX_ATTEMPTS": "1",
    }
    outcomes = {}
    for front in ("grpcio", "envoy"):
        spool = {"MESH_EVENTS__SPOOL__PATH": str(tmp_path / f"{front}.db")}
        async with _adapter(sim, tmp_path, front, **events, **spool) as adapter:
            outcomes[front] = await _hostile_outcomes(adapter.address)
    assert len(outcomes["envoy"]) > 400
    differ = {
        k: (v, outcomes["envoy"][k]) for k, v in outcomes["grpcio"].items() if outcomes["envoy"][k] != v
    }
    assert not differ, differ


def _routed(address: str) -> tuple[int, int, list[str]]:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        checked = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        watch = health.Watch(health_pb2.HealthCheckRequest(service="openframe.v1.DeviceService"), timeout=10)
        watched = next(iter(watch)).status
        watch.cancel()
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = [s.name for s in next(iter(answers)).list_services_response.service]
    return checked, watched, services


async def test_health_and_reflection_are_routed_to_grpc_aio(front: Adapter) -> None:
    checked, watched, services = await asyncio.to_thread(_routed, front.address)
    assert checked == watched == health_pb2.HealthCheckResponse.SERVING
    assert "openframe.v1.DeviceService" in services and "grpc.health.v1.Health" in services


async def _watch_until_cut(address: str, began: float) -> tuple[float, str]:
    """A health Watch on a connection of its own: when (since ``began``) and how it ended."""
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=own_connection) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return time.monotonic() - began, f"{exc.code().name}: {exc.details()}"
    raise AssertionError("the Watch ended without an error")


async def test_connection_age_cuts_each_callers_streams_at_its_own_time(
    sim: Simulator, tmp_path: Path
) -> None:
    """Two callers' streams, opened 1.5 s apart: each is cut at its own connection's age
    (+ grace), not both at once by the connection Envoy shares (it keeps one to grpc.aio
    per caller connection), behind Envoy as on grpc.aio."""
    age = {
        "MESH_SECURITY__LIMITS__MAX_CONNECTION_AGE_SECONDS": "2",
        "MESH_SECURITY__LIMITS__MAX_CONNECTION_AGE_GRACE_SECONDS": "0.5",
    }
    for front in ("grpcio", "envoy"):
        async with _adapter(sim, tmp_path, front, **age) as adapter:
            began = time.monotonic()
            first = asyncio.ensure_future(_watch_until_cut(adapter.address, began))
            await asyncio.sleep(1.5)
            (cut_first, how_first), (cut_second, how_second) = await asyncio.gather(
                first, _watch_until_cut(adapter.address, began)
            )
        assert how_first == how_second == "UNAVAILABLE: max connection age", front
        assert 2.0 < cut_first < 3.5 and cut_second - cut_first > 1.0, (front, cut_first, cut_second)


def _resident_mib(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it (the supervisor's Envoy)."""
    total = 0
    for at in process_tree(pid):
        status = Path(f"/proc/{at}/status").read_text()
        total += int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1])
    return total / 1024


async def test_a_caller_that_does_not_read_holds_its_stream_not_envoys_memory(
    sim: Simulator, tmp_path: Path
) -> None:
    """A caller asks 20,000 reflection questions (~20 KB answers each, 400 MB in all)
    and reads none: the flow-control windows make grpc.aio wait, as without Envoy,
    instead of Envoy taking the answers into its memory (+31 MB with Envoy's default
    256 MiB windows, measured; ~3 MB with the front's)."""
    async with _adapter(sim, tmp_path, "envoy", MESH_GRPC__REFLECTION="true") as adapter:
        before = _resident_mib(adapter.process.pid)
        async with grpc.aio.insecure_channel(adapter.address) as channel:
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
            ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol="openframe.v1.DeviceService")
            for _ in range(20_000):
                await call.write(ask)
            await asyncio.sleep(4)
            grown = _resident_mib(adapter.process.pid) - before
            assert (await call.read()).file_descriptor_response.file_descriptor_proto  # still answering
            call.cancel()
    assert grown < 12, f"Envoy's tree grew {grown:.1f} MiB"


def _refused_calls(address: str) -> list[str]:
    """A routed call (reflection) and a front call (GetDevice), each without
    credentials and with a forged forwarded-peer header: their codes."""
    forged = (("x-mesh-adapter-peer", "6.6.6.6:1"),)
    codes = []
    with grpc.insecure_channel(address) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            next(iter(reflection.ServerReflectionInfo(iter([ask]), timeout=10, metadata=forged)))
        except grpc.RpcError as exc:
            codes.append(exc.code().name)
        try:
            _devices(channel).GetDevice(
                devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10, metadata=forged
            )
        except grpc.RpcError as exc:
            codes.append(exc.code().name)
    return codes


async def test_a_refusal_names_the_callers_address_not_envoys_socket(sim: Simulator, tmp_path: Path) -> None:
    """Routed calls reach grpc.aio over Envoy's Unix socket: the audit line of a refused
    one names the caller's address Envoy forwarded, and a caller cannot forge it."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[grants]]\nprincipals = ["spiffe://example.org/reader"]\npermissions = ["openframe.devices.read"]\n'
    )
    changes = {"MESH_SECURITY__POLICY_FILE": str(policy), "MESH_GRPC__REFLECTION": "true"}
    async with _adapter(sim, tmp_path, "envoy", **changes) as adapter:
        codes = await asyncio.to_thread(_refused_calls, adapter.address)
        assert codes == ["UNAUTHENTICATED", "UNAUTHENTICATED"]
        deadline = time.monotonic() + 10
        while (
            len(refused := [ln for ln in adapter.log.read_text().splitlines() if "audit: refused" in ln]) < 2
        ):
            assert time.monotonic() < deadline, log_tail(adapter.log)
            await asyncio.sleep(0.05)
    assert "ServerReflectionInfo to ipv4:127.0.0.1:" in refused[0], refused
    assert "GetDevice to ipv4:127.0.0.1:" in refused[1], refused
    assert not [ln for ln in refused if "unix:" in ln or "6.6.6.6" in ln], refused


def _first_answers(address: str, streams: int) -> collections.Counter[str]:
    """``streams`` health Watch streams opened at once on one connection: how each began."""
    began: collections.Counter[str] = collections.Counter()
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        calls = [health.Watch(health_pb2.HealthCheckRequest(), timeout=30) for _ in range(streams)]
        for call in calls:  # all open already: each is read in turn
            try:
                began[health_pb2.HealthCheckResponse.ServingStatus.Name(next(call).status)] += 1
            except grpc.RpcError as exc:
                rpc: Any = exc
                began[f"{rpc.code().name}: {rpc.details()}"] += 1
        for call in calls:
            call.cancel()
    return began


async def test_more_than_1024_open_streams_reach_the_adapters_own_cap(sim: Simulator, tmp_path: Path) -> None:
    """Envoy's defaults (1,024 streams a connection, 1,024 requests to a cluster) would
    hold or refuse the 1,025th routed stream; the front lifts both, so, as on grpc.aio,
    the adapter's own cap is what answers (RESOURCE_EXHAUSTED, naming it)."""
    cap = {"MESH_SECURITY__LIMITS__MAX_HEALTH_WATCHERS": "1060"}
    refused = (
        "RESOURCE_EXHAUSTED: the adapter has 1060 health Watch streams open, its limit "
        "(security.limits.max_health_watchers); Check still answers"
    )
    for front in ("envoy", "grpcio"):
        async with _adapter(sim, tmp_path, front, **cap) as adapter:
            began = await asyncio.to_thread(_first_answers, adapter.address, 1100)
        assert began == {"SERVING": 1060, refused: 40}, front


def _raw_call(
    address: str, method: str, payload: bytes, compression: grpc.Compression | None = None
) -> tuple[str, str]:
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary(method)(payload, timeout=10, compression=compression)
        except grpc.RpcError as exc:
            rpc: Any = exc
            return rpc.code().name, rpc.details() or ""
    return "OK", ""


async def test_oversized_and_compressed_requests_are_refused(sim: Simulator, tmp_path: Path) -> None:
    async with _adapter(sim, tmp_path, "envoy", MESH_GRPC__MAX_RECEIVE_MESSAGE_BYTES="2048") as adapter:
        big = devices_pb2.GetDeviceRequest(device_id="x" * 4096).SerializeToString()
        code, details = await asyncio.to_thread(
            _raw_call, adapter.address, "/openframe.v1.DeviceService/GetDevice", big
        )
        assert (code, details) == (
            "RESOURCE_EXHAUSTED",
            f"SERVER: Received message larger than max ({len(big)} vs. 2048)",
        )
        small = devices_pb2.GetDeviceRequest(device_id="dev_001").SerializeToString()
        code, details = await asyncio.to_thread(
            _raw_call,
            adapter.address,
            "/openframe.v1.DeviceService/GetDevice",
            small,
            grpc.Compression.Gzip,
        )
        assert code == "UNIMPLEMENTED" and "grpc.accept_compressed_requests" in details
    assert not [r for r in sim.log.select(vendor="openframe") if r.path.startswith("/v1/devices/x")]


async def _upstream_of_a_cancelled_call(sim: Simulator, address: str) -> Any:
    """GetDevice with no deadline, its upstream answer 5 s away, cancelled by its caller
    0.3 s in: the simulator's record of the upstream request, once it ended."""
    sim.faults.add(Fault(vendor="openframe", route=GET_DEVICE, latency=5, times=1))
    sent = len(sim.find_requests(route=GET_DEVICE))
    async with grpc.aio.insecure_channel(address) as channel:
        call = devices_pb2_grpc.DeviceServiceStub(channel).GetDevice(
            devices_pb2.GetDeviceRequest(device_id="dev_003")
        )
        await asyncio.sleep(0.3)
        assert call.cancel()

    def ended() -> bool:
        records = sim.find_requests(route=GET_DEVICE)
        return len(records) > sent and records[-1].done

    await sim.wait_for(ended, timeout_s=2.0)
    return sim.find_requests(route=GET_DEVICE)[-1]


async def test_a_cancelled_call_cancels_its_upstream_request_as_on_grpc_aio(
    sim: Simulator, tmp_path: Path
) -> None:
    """A caller that cancels (no deadline involved): the upstream request is cancelled
    well before its 5 s answer, behind Envoy as on grpc.aio."""
    for front in ("grpcio", "envoy"):
        async with _adapter(sim, tmp_path, front) as adapter:
            record = await _upstream_of_a_cancelled_call(sim, adapter.address)
        assert record.cancelled and record.ended is not None, front
        assert record.ended - record.started < 1.5, front


async def test_sigterm_lets_a_call_in_flight_finish_and_exits_0(sim: Simulator, front: Adapter) -> None:
    """SIGTERM to ``python -m adapter``: health goes NOT_SERVING, then at the grace's start
    Envoy sends GOAWAY and closes the port (a new connection is refused, as grpc.aio's
    would be) while the call in flight on the front (its upstream slow) still ends OK;
    then the process exits 0 and Envoy with it."""
    sim.faults.add(Fault(vendor="openframe", route=GET_DEVICE, latency=4, times=1))
    call = asyncio.ensure_future(asyncio.to_thread(_outcome, front.address, CALLS["get"]))
    deadline = time.monotonic() + 10
    while not [r for r in sim.log.select(vendor="openframe") if r.path == "/v1/devices/dev_001"]:
        assert time.monotonic() < deadline, "the call never reached the simulator"
        await asyncio.sleep(0.02)
    front.process.send_signal(signal.SIGTERM)
    refused = None
    while refused is None and not call.done():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", front.port)) != 0:
                refused = time.monotonic()
        await asyncio.sleep(0.05)
    outcome = await call
    code = await asyncio.to_thread(front.stop)
    log = front.log.read_text()
    assert refused is not None, f"the port still accepted connections when the call ended\n{log[-3000:]}"
    assert outcome[0] == "OK", (outcome, log[-3000:])
    assert code == 0, log[-3000:]
    assert "stopping: asked by the supervisor" in log and "Envoy drains: GOAWAY sent" in log
    assert "stopped (exit 0)" in log
    assert not _envoys_of(front.process.pid)


def _envoys_of(pid: int) -> list[int]:
    """Envoy processes whose parent is ``pid`` (none once it stopped them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                name, rest = stat[stat.index("(") + 1 :].rsplit(")", 1)
                if name == "envoy" and int(rest.split()[1]) == pid:
                    found.append(int(entry.name))
    return found


async def test_envoy_stops_when_its_supervisor_is_killed(sim: Simulator, front: Adapter) -> None:
    """SIGKILL leaves no orphan: the adapter inside Envoy reads the end of its control
    pipe, stops, and ends Envoy's process."""
    envoys = _envoys_of(front.process.pid)
    assert len(envoys) == 1
    front.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _state(envoys[0]) not in ("Z", "gone"):
        assert time.monotonic() < deadline, f"Envoy {envoys[0]} still runs:\n{log_tail(front.log)}"
        await asyncio.sleep(0.1)
    assert "stopping: the supervisor is gone" in front.log.read_text()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_port_in_use_ends_the_start_with_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_command(offline(MESH_GRPC__FRONT="envoy", MESH_GRPC__PORT=str(port), MESH_WORKERS="1"))
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"127.0.0.1:{port}" in done.stderr and "Address already in use" in done.stderr
    assert "Envoy exited 1 before it served (its reason is above)" in done.stderr


REFUSED = {
    "descriptor set": {"MESH_DESCRIPTORS__DESCRIPTOR_SETS": '["{tmp}/bad.pb"]'},
    "tls files": {
        "MESH_SECURITY__TLS__CERT_FILE": "{tmp}/missing.pem",
        "MESH_SECURITY__TLS__KEY_FILE": "{tmp}/missing-key.pem",
        "MESH_SECURITY__TLS__CLIENT_AUTH": "none",
    },
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_configuration_inside_envoy_exits_2_with_its_reason(case: str, tmp_path: Path) -> None:
    """A configuration only the adapter's start refuses (a descriptor set that is not
    one, TLS files that are not there) ends with the same one line and exit code 2
    as on grpc.aio."""
    (tmp_path / "bad.pb").write_bytes(b"not a descriptor set")
    env = {k: v.format(tmp=tmp_path) for k, v in REFUSED[case].items()} | {"MESH_WORKERS": "1"}
    behind_envoy = run_command(offline(MESH_GRPC__FRONT="envoy", **env))
    on_grpc_aio = run_command(offline(**env))
    assert on_grpc_aio.returncode == 2, on_grpc_aio.stderr[-2000:]
    line = next(x for x in on_grpc_aio.stderr.splitlines() if x.startswith("mesh-adapter: "))
    assert behind_envoy.returncode == 2, behind_envoy.stderr[-3000:]
    assert line in behind_envoy.stderr.splitlines()


def test_pyvoy_compat() -> None:
    """The two functions taken from pyvoy beyond its API are where 1.3.0 has them."""
    from importlib.metadata import version

    from adapter.server.envoy_front import pyvoy_compat

    assert version("pyvoy") == pyvoy_compat.PYVOY_VERSION
    assert Path(pyvoy_compat.envoy_binary()).is_file()
    environment = pyvoy_compat.envoy_environment()
    assert "PYTHONPATH" in environment and "PYTHONHOME" in environment
    assert Path(pyvoy_compat.pyvoy_module_path()).is_file()


async def test_workers_each_run_their_envoy_on_one_port(sim: Simulator, tmp_path: Path) -> None:
    """``workers = 2``: two supervisors, each with its Envoy, share the port; calls are
    answered, and SIGTERM stops both (exit 0)."""
    async with _adapter(sim, tmp_path, "envoy", MESH_WORKERS="2") as adapter:
        deadline = time.monotonic() + 30
        while adapter.log.read_text().count("serving gRPC behind Envoy on") < 2:
            assert time.monotonic() < deadline, log_tail(adapter.log)
            await asyncio.sleep(0.1)
        for _ in range(6):  # new connections each: the kernel spreads them
            assert (await asyncio.to_thread(_outcome, adapter.address, CALLS["get"]))[0] == "OK"
        assert adapter.stop() == 0, log_tail(adapter.log)
    log = adapter.log.read_text()
    assert log.count("adapter.envoy_front: stopped (exit 0)") == 2 and "worker 2 stopped (exit 0)" in log


async def test_sigterm_during_the_start_still_stops_gracefully(sim: Simulator, tmp_path: Path) -> None:
    """A signal before the adapter inside Envoy has started is passed on: it stops
    once started (exit 0, its parts stopped), not killed half-way."""
    port = listen_port()
    log = tmp_path / "adapter.log"
    process = spawn(_environment(sim, port, "envoy"), log)
    deadline = time.monotonic() + 30
    # The adapter inside Envoy is being assembled (this warning comes from its start).
    while "page_tokens has no keys" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_tail(log)
        await asyncio.sleep(0.01)
    assert "serving gRPC behind Envoy" not in log.read_text()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, 60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert (
        "SIGTERM received: stopping the adapter inside Envoy" in text
        and "stopping: asked by the supervisor" in text
        and "stopped (exit 0)" in text
    )


def _get_traced(address: str, trace_id: str) -> None:
    with grpc.insecure_channel(address) as channel:
        _devices(channel).GetDevice(
            devices_pb2.GetDeviceRequest(device_id="dev_002"),
            timeout=10,
            metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),),
        )


async def test_the_callers_trace_continues_to_the_upstream(sim: Simulator, front: Adapter) -> None:
    """The caller's ``traceparent`` reaches the handler through the front: the upstream
    request carries the same trace id (the call's client span as its parent)."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await asyncio.to_thread(_get_traced, front.address, trace_id)
    [record] = sim.log.select(vendor="openframe", path="/v1/devices/dev_002")
    assert record.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert not record.headers["traceparent"].startswith(f"00-{trace_id}-00f067aa0ba902b7")


async def test_the_operator_port_counts_the_fronts_calls(sim: Simulator, tmp_path: Path) -> None:
    """The operator port runs inside Envoy's process too: /readyz answers and the calls
    the front answered are in ``rpc.server.duration`` with their status codes."""
    ops = listen_port()
    changes = {"MESH_TELEMETRY__OPS_ENABLED": "true", "MESH_TELEMETRY__OPS_PORT": str(ops)}
    async with _adapter(sim, tmp_path, "envoy", **changes) as adapter:
        for name in ("get", "not found"):
            await asyncio.to_thread(_outcome, adapter.address, CALLS[name])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops}") as client:
            assert (await client.get("/readyz")).status_code == 200
            metrics = (await client.get("/metrics")).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("rpc_server_duration_milliseconds_count") and 'rpc_method="GetDevice"' in line
    ]
    assert {line.split('rpc_grpc_status_code="')[1][0] for line in counted} == {"0", "5"}, counted


@pytest.mark.parametrize("front_name", ["grpcio", "envoy"])
async def test_a_silent_plaintext_connection_is_closed_after_the_handshake_timeout(
    sim: Simulator, tmp_path: Path, front_name: str
) -> None:
    """Without TLS there is no handshake, but a connection that never sends HTTP/2's
    preface holds a place all the same (``max_connections``): both fronts close it after
    ``handshake_timeout_seconds`` (Envoy held it for its hour-long idle timeout)."""
    changes = {"MESH_SECURITY__LIMITS__HANDSHAKE_TIMEOUT_SECONDS": "1"}
    async with _adapter(sim, tmp_path, front_name, **changes) as adapter:
        closed_after = await silent_connection_closed_within(adapter.port, 10)
        # A caller that speaks at once is served as before.
        answer = await asyncio.to_thread(_outcome, adapter.address, CALLS["get"])
    assert closed_after is not None and 0.8 < closed_after < 4, closed_after
    assert answer[0] == "OK", answer
