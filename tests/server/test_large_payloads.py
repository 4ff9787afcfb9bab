"""Large payloads are transcoded on the worker thread, and come out the same: the
worker alone, then a real adapter, channel and simulator with a create whose
request and answer are both past the thresholds, and one past the vendor's body
limit. How much the event loop is spared is bench/large_payloads.py's figure."""

from __future__ import annotations

import contextvars
import threading

import grpc
import orjson
import pytest
from google.protobuf import json_format, struct_pb2
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.runtime import MeshAdapter
from adapter.server.large_payloads import ANSWER_BYTES, REQUEST_BYTES, THREAD_NAME_PREFIX, LargePayloadWorker
from simulator import Simulator
from tests.conftest import adapter_settings
from tests.server.large_payload_threads import large_payload_threads

_CALLER = contextvars.ContextVar("caller", default="")


def _where(suffix: str) -> tuple[str, str]:
    return threading.current_thread().name, _CALLER.get() + suffix


async def test_the_worker_runs_on_its_thread_in_the_caller_s_context_and_inline_once_closed() -> None:
    worker = LargePayloadWorker()
    _CALLER.set("billing")
    thread, caller = await worker.run("request", _where, "!")
    assert thread.startswith(THREAD_NAME_PREFIX) and caller == "billing!"
    with pytest.raises(ZeroDivisionError):  # its failures reach the awaiting call
        await worker.run("answer", divmod, 1, 0)
    await worker.aclose()
    await worker.aclose()  # idempotent
    assert await worker.run("request", _where, "?") == (threading.current_thread().name, "billing?")


def _metadata(approx_bytes: int) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    for i in range(approx_bytes // 40):
        metadata.fields[f"key_{i:06d}"].string_value = f"value {i} of a large alert"
    return metadata


async def test_a_large_create_round_trips_through_the_worker(simulator: Simulator) -> None:
    request = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="large", severity=alerts_pb2.SEVERITY_LOW, metadata=_metadata(120_000))
    )
    assert request.ByteSize() >= REQUEST_BYTES
    before = large_payload_threads()
    async with (
        MeshAdapter(adapter_settings(simulator)) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        created = await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(request, timeout=30)
        started = large_payload_threads() - before
    sent = simulator.find_requests(method="POST", route="/v1/alerts")
    assert len(sent) == 1 and len(sent[0].body) >= ANSWER_BYTES  # and so is the answer, which echoes it
    assert orjson.loads(sent[0].body)["metadata"] == json_format.MessageToDict(request.alert.metadata)
    assert created.id and created.metadata == request.alert.metadata
    assert started, "nothing ran on the adapter's worker thread"


async def test_a_request_past_the_body_limit_is_refused_from_the_worker(simulator: Simulator) -> None:
    request = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="huge", severity=alerts_pb2.SEVERITY_LOW, metadata=_metadata(1_500_000))
    )
    async with (
        MeshAdapter(adapter_settings(simulator)) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request body" in (refused.value.details() or "")
    assert simulator.count(method="POST", route="/v1/alerts") == 0
