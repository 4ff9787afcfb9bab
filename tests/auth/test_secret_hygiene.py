"""Secrets never appear in logs, traces, errors or ``repr``: every credential
flow runs with DEBUG logging and tracing on, then everything observable is
searched for every secret involved (configured ones and every token issued)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from octospine.v1 import system_pb2, system_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from simulator import Simulator

from ..resilience.harness import StartSim, running_adapter
from .login_helpers import login, openframe_oauth
from .test_client_credentials import oauth

pytestmark = pytest.mark.usefixtures("profile")

CLIENT_SECRET = "octospine-client-secret"


def _issued(sim: Simulator) -> set[str]:
    out: set[str] = set()
    for store in sim.tokens.values():
        out |= set(store.access_tokens) | set(store.refresh_tokens) | set(store.codes)
    return out


async def test_no_secret_is_logged_traced_raised_or_shown(
    start_sim: StartSim,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = await start_sim()
    token_file = tmp_path / "openframe.json"
    await login(sim, token_file)
    seen: list[str] = []
    auth = {**oauth(), **openframe_oauth(token_file)}
    async with running_adapter(sim, auth=auth, tracer_provider=tracer_provider) as h:
        health = system_pb2_grpc.SystemServiceStub(h.channel)
        alerts = alerts_pb2_grpc.AlertServiceStub(h.channel)
        for _ in range(2):
            await health.GetHealth(system_pb2.GetHealthRequest(), timeout=5)
            await alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)
            sim.expire_tokens()  # forces a 401, a renewal and a rotation
        # Failures: a revoked grant (login required) and a refused client.
        issued_before = _issued(sim)
        sim.tokens["openframe"].refresh_tokens.clear()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)
        seen += [info.value.details() or "", repr(info.value.trailing_metadata())]
        seen += [repr(h.settings), str(h.settings.model_dump()), *map(repr, h.credentials.values())]
        seen += [repr(c) for c in h.callers.values()]
    async with running_adapter(sim, auth=oauth(client_secret="a-wrong-" + CLIENT_SECRET)) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await system_pb2_grpc.SystemServiceStub(h.channel).GetHealth(
                system_pb2.GetHealthRequest(), timeout=5
            )
        seen += [info.value.details() or "", repr(info.value.trailing_metadata()), repr(h.settings)]

    secrets = (
        {CLIENT_SECRET, sim.config.octospine_api_key, sim.config.openframe_api_key}
        | _issued(sim)
        | issued_before
    )
    # The login's code, 4 access tokens and 2 refresh tokens per vendor flow, at least.
    assert len([s for s in secrets if s.startswith(("ofat_", "osat_", "rt_", "code_"))]) >= 7
    seen += [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    for span in span_exporter.get_finished_spans():
        seen.append(f"{span.name} {dict(span.attributes or {})} {[e.attributes for e in span.events]}")
    assert span_exporter.get_finished_spans(), "tracing was on"
    assert any(r.name.startswith("adapter.auth") for r in caplog.records), "credential logs were captured"
    leaks = {s for s in secrets for text in seen if s in text}
    assert not leaks
