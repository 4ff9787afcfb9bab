"""A burst of calls larger than the server loop can pick up at once: every call
ends RESOURCE_EXHAUSTED with RetryInfo (client-side quota), DEADLINE_EXCEEDED or
OK, never CANCELLED without a message.

The CANCELLED ones came from gRPC core, not from the adapter: calls the transport
accepted but the asyncio server had not picked up yet wait in a backlog, and
past ``grpc.server.max_pending_requests`` (1000) core drops new ones at random
(random early detection up to a hard limit of 3000). In the filter-stack server
grpc-python uses, a dropped call is unreffed unstarted, which reaches the client
as CANCELLED "CANCELLED" with no details. ``grpc.max_pending_calls`` sets both
limits (adapter/server/grpc_options.py)."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from ..resilience.harness import StartSim, error_details, running_adapter, start_sim

__all__ = ["start_sim"]  # the fixture

C = grpc.StatusCode
CALLS = 1500


@pytest.fixture
def profile() -> str:
    return "documented"


@pytest.mark.timeout(240)
async def test_a_burst_of_1500_calls_under_the_quota_is_never_cancelled(start_sim: StartSim) -> None:
    sim = await start_sim(rate_limit_per_minute=0)
    resilience = {"rate_limit": {"requests_per_window": 100, "window_seconds": 1.0}}
    async with running_adapter(sim, resilience=resilience) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)

        async def call() -> grpc.StatusCode | grpc.aio.AioRpcError:
            try:
                await stub.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                return exc
            return C.OK

        outcomes = await asyncio.gather(*(call() for _ in range(CALLS)))
    codes = collections.Counter(o if isinstance(o, grpc.StatusCode) else o.code() for o in outcomes)
    print({code.name: n for code, n in codes.items()})
    assert set(codes) <= {C.OK, C.RESOURCE_EXHAUSTED, C.DEADLINE_EXCEEDED}, codes
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == C.RESOURCE_EXHAUSTED:
            assert error_details(outcome)["RetryInfo"].retry_delay.ToTimedelta().total_seconds() > 0
