"""The proof of issue 12: a third vendor bridged end to end from protos and
configuration only. Acme Freight (tests/thirdvendor: its protos, the made-up
upstream, acme.toml) runs through ``python -m adapter``, unchanged: gRPC calls
transcoded to its REST API, its WebSocket events on Kafka with CloudEvents
headers, backfill after a drop, its signed webhooks. The test talks to the adapter
only as any client would: gRPC with messages from the descriptor set, Kafka, and
the upstream's own state."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

import grpc
import httpx
import orjson
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from adapter.transcoding.json_codec import format_timestamp

from ..events.kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from ..events.mesh_fixtures import headers, health_of
from .conftest import WEBHOOK_SECRET, AcmeTypes, AdapterProcess
from .upstream import AcmeUpstream

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.usefixtures("kafka_bootstrap"), pytest.mark.timeout(120)]

SERVICE = "/acme.v1.ShipmentService"
SERVING = 1


class Shipments:
    """A gRPC client of acme.v1.ShipmentService built from the descriptor set."""

    def __init__(self, channel: grpc.aio.Channel, types: AcmeTypes) -> None:
        self._channel = channel
        self.types = types

    async def call(self, method: str, request: Any, response: str = "Shipment") -> Any:
        rpc = self._channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=getattr(self.types, response).FromString,
        )
        return await rpc(request, timeout=10)

    async def create(self, reference: str, destination: str = "Oslo") -> Any:
        shipment = self.types.Shipment(reference=reference, destination=destination, weight_kg=12.5)
        return await self.call("CreateShipment", self.types.CreateShipmentRequest(shipment=shipment))


async def test_rpcs_are_transcoded_to_acme_rest(
    acme_adapter: AdapterProcess, acme: AcmeUpstream, acme_types: AcmeTypes
) -> None:
    async with grpc.aio.insecure_channel(acme_adapter.target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        listed = [s.name async for a in answers for s in a.list_services_response.service]
        assert "acme.v1.ShipmentService" in listed
        assert await health_of(acme_adapter.grpc_port, "acme.v1.ShipmentService") == SERVING

        client = Shipments(channel, acme_types)
        created = await client.create("PO-1")
        assert created.id == "shp_0001" and created.reference == "PO-1" and created.weight_kg == 12.5
        assert (
            created.status
            == acme_types.Shipment.DESCRIPTOR.fields_by_name["status"]
            .enum_type.values_by_name["SHIPMENT_STATUS_BOOKED"]
            .number
        )
        assert created.created_at.seconds > 0
        assert acme.requests[-1][:2] == ("POST", "/api/v2/shipments")

        got = await client.call("GetShipment", acme_types.GetShipmentRequest(shipment_id="shp_0001"))
        assert got == created
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await client.call("GetShipment", acme_types.GetShipmentRequest(shipment_id="shp_9999"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await client.call(
                "CreateShipment", acme_types.CreateShipmentRequest(shipment=acme_types.Shipment())
            )
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        for i in range(2, 6):
            await client.create(f"PO-{i}")
        seen: list[str] = []
        token = ""
        while True:  # Acme's limit/cursor paging behind page_size/page_token
            page = await client.call(
                "ListShipments",
                acme_types.ListShipmentsRequest(page_size=2, page_token=token),
                "ListShipmentsResponse",
            )
            seen += [s.id for s in page.shipments]
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"shp_{i:04d}" for i in range(1, 6)]
        pages = [q for m, p, q in acme.requests if m == "GET" and p == "/api/v2/shipments"]
        assert [q.get("limit") for q in pages] == ["2", "2", "2"] and "cursor" in pages[1]


async def test_websocket_events_reach_kafka_with_cloudevents_headers(
    acme_adapter: AdapterProcess, acme: AcmeUpstream, acme_types: AcmeTypes
) -> None:
    await wait_until(lambda: acme.listeners == 1, within=15, what="the adapter to listen")
    async with grpc.aio.insecure_channel(acme_adapter.target) as channel:
        created = await Shipments(channel, acme_types).create("PO-WS")
    [record] = await consume_all(BOOTSTRAP, f"{acme_adapter.prefix}acme.shipments", expected=1)
    event = acme_types.ShipmentChangedEvent.FromString(record.value)
    stored = acme.shipments[created.id]
    assert event.shipment.id == created.id and event.event_id == "ev-1"
    assert event.time.seconds > 0
    assert record.key == created.id.encode()
    h = headers(record)
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == "com.acme.shipment.changed"
    assert h["ce_source"] == acme.url
    assert h["ce_subject"] == created.id
    assert h["ce_id"] == f"acme:shipment.changed:{created.id}:{format_timestamp(event.shipment.updated_at)}"
    assert event.shipment.updated_at.ToJsonString() == stored["updated_at"]
    assert h["content-type"] == "application/protobuf; proto=acme.v1.ShipmentChangedEvent"
    assert h["traceparent"].startswith("00-")
    assert await health_of(acme_adapter.grpc_port, "meshadapter.events.acme") == SERVING


async def test_backfill_after_a_drop_loses_nothing(
    acme_adapter: AdapterProcess, acme: AcmeUpstream, acme_types: AcmeTypes
) -> None:
    topic = f"{acme_adapter.prefix}acme.shipments"
    await wait_until(lambda: acme.listeners == 1, within=15, what="the adapter to listen")
    live = acme.create("PO-live")
    await consume_all(BOOTSTRAP, topic, expected=1)  # spooled and delivered: the watermark moved
    acme.refuse_websockets = True
    connects = acme.ws_connects
    assert acme.drop() == 1
    missed = [acme.create(f"PO-missed-{i}") for i in range(3)]
    acme.deliver(missed[0]["id"])  # a second version of one of them
    await wait_until(lambda: acme.ws_connects >= connects + 2, within=15, what="refused reconnects")
    acme.refuse_websockets = False
    await wait_until(
        lambda: any(m == "GET" and "changed_since" in q for m, _, q in acme.requests),
        within=15,
        what="a backfill with changed_since",
    )

    # REST holds the present state: the backfill brings each missed shipment as it is now
    # (the booked version of the delivered one was never seen by anyone, and is not expected).
    versions = {(s["id"], s["updated_at"]) for s in [live, *(acme.shipments[m["id"]] for m in missed)]}
    records = await consume_all(BOOTSTRAP, topic, expected=len(versions), within=30)
    got = set()
    for record in records:
        shipment = acme_types.ShipmentChangedEvent.FromString(record.value).shipment
        stamp = shipment.updated_at.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="milliseconds")
        got.add((shipment.id, stamp.replace("+00:00", "Z")))
    assert versions <= got, f"lost: {versions - got}"
    ce_ids = [headers(r)["ce_id"] for r in records]
    assert len(ce_ids) == len(set(ce_ids))  # nothing twice


async def test_unacknowledged_subscription_reconnects_and_backfills(
    acme_adapter: AdapterProcess, acme: AcmeUpstream, acme_types: AcmeTypes
) -> None:
    """A stream that never answers the subscribe frame is not trusted: the adapter
    reconnects until it does, and the backfill covers what came meanwhile."""
    topic = f"{acme_adapter.prefix}acme.shipments"
    await wait_until(lambda: acme.listeners == 1, within=15, what="the adapter to listen")
    acme.create("PO-first")
    await consume_all(BOOTSTRAP, topic, expected=1)
    acme.acknowledge = False
    connects = acme.ws_connects
    acme.drop()
    await wait_until(lambda: acme.listeners == 1, within=15, what="a new, unacknowledged session")
    during = acme.create("PO-during")  # pushed to a session the adapter does not trust yet
    await wait_until(
        lambda: acme.ws_connects >= connects + 2, within=15, what="a reconnect for the missing ack"
    )
    acme.acknowledge = True
    records = await consume_all(BOOTSTRAP, topic, expected=2, within=30)
    assert during["id"].encode() in {r.key for r in records}


async def test_signed_webhooks_reach_kafka_and_forgeries_are_refused(
    acme_adapter: AdapterProcess, acme: AcmeUpstream, acme_types: AcmeTypes
) -> None:
    async with grpc.aio.insecure_channel(acme_adapter.target) as channel:
        client = Shipments(channel, acme_types)
        created = await client.create("PO-WH")
        delivered = await client.call(
            "DeliverShipment", acme_types.DeliverShipmentRequest(shipment_id=created.id)
        )
    assert delivered.status == 3  # SHIPMENT_STATUS_DELIVERED
    await wait_until(
        lambda: bool(acme.deliveries and acme.deliveries[0].statuses), within=10, what="the webhook"
    )
    assert acme.deliveries[0].statuses == [200]
    [record] = await consume_all(BOOTSTRAP, f"{acme_adapter.prefix}acme.deliveries", expected=1)
    event = acme_types.ShipmentDeliveredEvent.FromString(record.value)
    assert event.shipment.id == created.id and event.event_id == "dlv-1"
    h = headers(record)
    assert h["ce_type"] == "com.acme.shipment.delivered"
    assert h["ce_id"] == f"acme:shipment.delivered:{created.id}"
    assert h["content-type"] == "application/protobuf; proto=acme.v1.ShipmentDeliveredEvent"

    url = f"http://127.0.0.1:{acme_adapter.webhook_port}/hooks/acme"

    def body(sent_at: str) -> bytes:
        return orjson.dumps(
            {
                "topic": "shipment.delivered",
                "delivery": "dlv-x",
                "sent_at": sent_at,
                "payload": {"id": "shp_x"},
            }
        )

    def sign(raw: bytes, secret: str = WEBHOOK_SECRET) -> str:
        return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha512).digest()).decode()

    now = dt.datetime.now(dt.UTC).isoformat()
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    forgeries = [
        ({"X-Acme-Signature": sign(body(now), "guessed")}, body(now), "BAD_SIGNATURE"),
        (
            {"X-Acme-Signature": hmac.new(WEBHOOK_SECRET.encode(), body(now), hashlib.sha512).hexdigest()},
            body(now),
            "BAD_SIGNATURE",
        ),
        ({"x-octospine-signature": "sha256=" + "0" * 64}, body(now), "MISSING_SIGNATURE"),
        ({"X-Acme-Signature": sign(body(stale))}, body(stale), "STALE_TIMESTAMP"),
    ]
    async with httpx.AsyncClient() as http:
        for forged_headers, raw, code in forgeries:
            answer = await http.post(url, content=raw, headers=forged_headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (401, code)
        good = body(now)
        accepted = await http.post(url, content=good, headers={"X-Acme-Signature": sign(good)})
        assert (accepted.status_code, accepted.json()["status"]) == (200, "accepted")
    records = await consume_all(BOOTSTRAP, f"{acme_adapter.prefix}acme.deliveries", expected=2)
    assert sorted(r.key for r in records) == sorted([created.id.encode(), b"shp_x"])
