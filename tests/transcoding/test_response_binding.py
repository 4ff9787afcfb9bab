"""Upstream answers -> messages: envelopes, unknown fields, malformed input."""

from __future__ import annotations

import httpx
import orjson
import pytest
from octospine.v1 import common_pb2, system_pb2, tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.transcoding.json_codec import MalformedPayloadError
from adapter.transcoding.response_binding import UnexpectedContentTypeError
from adapter.upstream.messages import UpstreamResponse


def _answer(body: bytes, content_type: str = "application/json") -> UpstreamResponse:
    return UpstreamResponse(status=200, headers=httpx.Headers({"content-type": content_type}), body=body)


def _decode(transcoder, rpc: str, request, body: bytes, content_type: str = "application/json"):  # type: ignore[no-untyped-def]
    t = transcoder(rpc)
    return t.decode(_answer(body, content_type), t.bind(request))


def test_resource_with_unknown_fields_and_vendor_enums(transcoder) -> None:  # type: ignore[no-untyped-def]
    body = orjson.dumps(
        {
            "id": "alt_1",
            "title": "Disk",
            "severity": "critical",
            "status": "snoozed",  # unknown enum value
            "created_at": "2026-11-25T12:00:00Z",
            "brand_new_field": {"x": 1},
            "metadata": {"k": [1, "a"]},
        }
    )
    alert = _decode(
        transcoder, "/openframe.v1.AlertService/GetAlert", alerts_pb2.GetAlertRequest(alert_id="alt_1"), body
    )
    assert alert.severity == alerts_pb2.SEVERITY_CRITICAL
    assert alert.status == alerts_pb2.ALERT_STATUS_UNSPECIFIED
    assert alert.created_at.seconds == 1795608000
    assert alert.metadata["k"][1] == "a"


def test_map_of_messages_and_int64_as_string(transcoder) -> None:  # type: ignore[no-untyped-def]
    body = orjson.dumps(
        {"status": "degraded", "uptime_seconds": "86400", "components": {"db": {"status": "healthy"}}}
    )
    health = _decode(transcoder, "/octospine.v1.SystemService/GetHealth", system_pb2.GetHealthRequest(), body)
    assert health.status == system_pb2.HEALTH_STATUS_DEGRADED
    assert health.uptime_seconds == 86400
    assert health.components["db"].status == system_pb2.HEALTH_STATUS_HEALTHY


def test_schedule_value_cron_or_interval(transcoder) -> None:  # type: ignore[no-untyped-def]
    rpc, req = "/octospine.v1.TaskService/GetTask", tasks_pb2.GetTaskRequest(task_id="t")
    cron = _decode(transcoder, rpc, req, orjson.dumps({"schedule": {"type": "cron", "value": "0 */6 * * *"}}))
    interval = _decode(transcoder, rpc, req, orjson.dumps({"schedule": {"type": "interval", "value": 3600}}))
    assert cron.schedule.type == common_pb2.SCHEDULE_TYPE_CRON
    assert cron.schedule.value.string_value == "0 */6 * * *"
    assert interval.schedule.value.number_value == 3600


def test_delete_answers_empty(transcoder) -> None:  # type: ignore[no-untyped-def]
    from octospine.v1 import pipelines_pb2

    t = transcoder("/octospine.v1.PipelineService/DeletePipeline")
    bound = t.bind(pipelines_pb2.DeletePipelineRequest(pipeline_id="p"))
    response = UpstreamResponse(status=204, headers=httpx.Headers(), body=b"")
    assert t.decode(response, bound).ByteSize() == 0


MALFORMED = [
    (b'{"id": "alt_1", "title": ', "not valid JSON"),  # truncated
    (b"[1, 2]", "expected an object"),
    (b'{"title": 42}', "title: expected a string"),
    (b'{"created_at": "yesterday"}', "created_at: expected an RFC 3339 timestamp"),
    (b'{"severity": {"x": 1}}', "severity: expected an enum name"),
]


@pytest.mark.parametrize(("body", "problem"), MALFORMED)
def test_malformed_answers_name_the_problem(transcoder, body: bytes, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedPayloadError, match=problem):
        _decode(
            transcoder, "/openframe.v1.AlertService/GetAlert", alerts_pb2.GetAlertRequest(alert_id="a"), body
        )


def test_list_without_its_envelope_is_malformed(transcoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedPayloadError, match="under 'data'"):
        _decode(
            transcoder, "/openframe.v1.DeviceService/ListDevices", devices_pb2.ListDevicesRequest(), b"[]"
        )
    with pytest.raises(MalformedPayloadError, match=r"data\[1\]\.hostname"):
        _decode(
            transcoder,
            "/openframe.v1.DeviceService/ListDevices",
            devices_pb2.ListDevicesRequest(),
            orjson.dumps({"data": [{"hostname": "a"}, {"hostname": 1}]}),
        )


def test_html_where_json_was_expected(transcoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnexpectedContentTypeError, match="text/html"):
        _decode(
            transcoder,
            "/openframe.v1.AlertService/GetAlert",
            alerts_pb2.GetAlertRequest(alert_id="a"),
            b"<html>maintenance</html>",
            "text/html",
        )


def test_a_cached_answer_is_decoded_once_and_each_caller_gets_its_own_copy(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder("/openframe.v1.AlertService/GetAlert")
    body = orjson.dumps({"id": "alt_1", "title": "Disk", "metadata": {"k": [1, "a"]}})
    kept = UpstreamResponse(
        status=200, headers=httpx.Headers({"content-type": "application/json"}), body=body, decoded={}
    )
    bound = t.bind(alerts_pb2.GetAlertRequest(alert_id="alt_1"))
    first = t.decode(kept, bound)
    first.title = "changed by its caller"
    second = t.decode(kept, bound)
    assert second.title == "Disk" and second.metadata["k"] == [1, "a"]
    assert second is not first
    assert kept.decoded is not None
    assert list(kept.decoded.values()) == [
        alerts_pb2.Alert(id="alt_1", title="Disk", metadata={"k": [1, "a"]})
    ]
    # An answer the cache does not keep is decoded every time and remembered nowhere.
    assert _answer(body).decoded is None
    assert t.decode(_answer(body), bound).title == "Disk"


def test_pages_of_a_cached_list_are_not_taken_from_the_memo(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder("/openframe.v1.DeviceService/ListDevices")
    body = orjson.dumps({"data": [{"id": "dev_1"}], "meta": {"total": 1}})
    kept = UpstreamResponse(
        status=200, headers=httpx.Headers({"content-type": "application/json"}), body=body, decoded={}
    )
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=1))
    assert [d.id for d in t.decode(kept, bound).devices] == ["dev_1"]
    assert kept.decoded == {}


STRING_FIELDS = [
    (b'{"hostname": "h", "tags": ["a", "b"]}', ("h", ["a", "b"]), None),
    (b'{"hostname": null, "tags": []}', ("", []), None),
    (b'{"tags": ["a", 3]}', None, r"tags\[1\]: expected a string"),
    (b'{"tags": [null]}', None, r"tags\[0\]: expected a string"),
    (b'{"tags": "a"}', None, "tags: expected an array"),
    (b'{"hostname": ["h"]}', None, "hostname: expected a string"),
]


@pytest.mark.parametrize(("body", "decoded", "problem"), STRING_FIELDS)
def test_string_fields_and_lists_of_strings(transcoder, body: bytes, decoded, problem) -> None:  # type: ignore[no-untyped-def]
    def decode() -> devices_pb2.Device:
        return _decode(  # type: ignore[no-any-return]
            transcoder,
            "/openframe.v1.DeviceService/GetDevice",
            devices_pb2.GetDeviceRequest(device_id="d"),
            body,
        )

    if problem is not None:
        with pytest.raises(MalformedPayloadError, match=problem):
            decode()
        return
    device = decode()
    assert (device.hostname, list(device.tags)) == decoded
