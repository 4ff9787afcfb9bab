"""The upstream client follows redirects itself: within the upstream's origin,
at most ``max_redirects``, with credentials on every hop and a span per hop;
never to another origin. Over every HTTP transport, against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapter.assembly.callers import build_credentials
from adapter.upstream.client import UpstreamClient
from adapter.upstream.errors import UpstreamRedirectBlocked
from adapter.upstream.messages import UpstreamRequest
from simulator import Fault, Simulator
from tests.conftest import OPENFRAME_KEY, adapter_settings
from tests.events.kafka_fixtures import wait_until

GET_DEVICE = UpstreamRequest(
    method="GET", path="/v1/devices/dev_001", route="GET /v1/devices/{device_id}", idempotent=True
)


@pytest.fixture(params=["aiohttp", "httpx", "h1"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def client(
    simulator: Simulator, transport: str, tracer_provider: TracerProvider
) -> AsyncIterator[UpstreamClient]:
    settings = adapter_settings(simulator, transport=transport).upstreams["openframe"]
    client = UpstreamClient(
        "openframe",
        settings,
        credentials=build_credentials("openframe", settings),
        tracer_provider=tracer_provider,
    )
    try:
        yield client
    finally:
        await client.aclose()


def _host(sim: Simulator) -> str:
    return sim.openframe_url.split("://", 1)[1]


async def _send(client: UpstreamClient, request: UpstreamRequest = GET_DEVICE):  # type: ignore[no-untyped-def]
    return await client.send(request, deadline=asyncio.get_running_loop().time() + 10)


async def test_same_origin_redirect_is_followed_with_credentials_and_a_span_per_hop(
    client: UpstreamClient, simulator: Simulator, span_exporter: InMemorySpanExporter
) -> None:
    simulator.faults.add(
        Fault(vendor="openframe", route="/v1/devices/{device_id}", redirect=_host(simulator), times=1)
    )
    response = await _send(client)
    assert response.status == 200
    hops = simulator.find_requests(path="/v1/devices/dev_001")
    assert len(hops) == 2
    assert all(
        OPENFRAME_KEY in (h.headers.get("authorization") or h.headers.get("x-api-key") or "") for h in hops
    )

    def client_spans() -> list[ReadableSpan]:
        return [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]

    # A hop's span is ended once the loop's current step is done (telemetry/after_reply.py).
    await wait_until(lambda: len(client_spans()) >= 2, within=5, what="a span per hop")
    spans = client_spans()
    assert [s.attributes["http.response.status_code"] for s in spans] == [302, 200]  # type: ignore[index]
    sent = [dict((k.lower(), v) for k, v in h.headers.items())["traceparent"].split("-")[2] for h in hops]
    assert sent == [f"{s.context.span_id:016x}" for s in spans]


async def test_endless_redirects_stop_after_max_redirects(
    client: UpstreamClient, simulator: Simulator
) -> None:
    simulator.faults.add(
        Fault(vendor="openframe", route="/v1/devices/{device_id}", redirect=_host(simulator))
    )
    with pytest.raises(UpstreamRedirectBlocked, match="more than 3 redirects"):
        await _send(client)
    assert len(simulator.find_requests(path="/v1/devices/dev_001")) == 4  # the first + 3 followed


async def test_redirect_to_another_origin_is_refused_before_anything_is_sent(
    client: UpstreamClient, simulator: Simulator
) -> None:
    port = _host(simulator).rsplit(":", 1)[1]
    simulator.faults.add(
        Fault(vendor="openframe", route="/v1/devices/{device_id}", redirect=f"127.0.0.2:{port}")
    )
    with pytest.raises(UpstreamRedirectBlocked, match=r"refused redirect to http://127\.0\.0\.2:"):
        await _send(client)
    assert len(simulator.find_requests(path="/v1/devices/dev_001")) == 1


async def test_303_after_a_post_continues_as_a_get_without_body(
    client: UpstreamClient, simulator: Simulator
) -> None:
    simulator.faults.add(
        Fault(
            vendor="openframe",
            method="POST",
            route="/v1/alerts",
            status=303,
            redirect=_host(simulator),
            times=1,
        )
    )
    create = UpstreamRequest(
        method="POST",
        path="/v1/alerts",
        route="POST /v1/alerts",
        body=b'{"title": "x"}',
        headers=(("content-type", "application/json"),),
    )
    response = await _send(client, create)
    assert response.status == 200
    post, get = simulator.find_requests(path="/v1/alerts")
    assert (post.method, get.method) == ("POST", "GET")
    assert get.body == b"" and "content-type" not in get.headers
