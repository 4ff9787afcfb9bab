"""AIP-158 paging over the three upstream styles, driven by configuration."""

from __future__ import annotations

import httpx
import orjson
import pytest
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.config.settings import PaginationSettings
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import MalformedPayloadError
from adapter.upstream.messages import UpstreamResponse

LIST = "/openframe.v1.DeviceService/ListDevices"


def _answer(doc: object) -> UpstreamResponse:
    return UpstreamResponse(
        status=200, headers=httpx.Headers({"content-type": "application/json"}), body=orjson.dumps(doc)
    )


def _devices(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"id": f"dev_{i:03d}"} for i in range(start, start + n)]


def test_page_style_walks_pages_until_total(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder(LIST)
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=2))
    assert list(bound.request.query) == [("page", "1"), ("per_page", "2")]
    first = t.decode(_answer({"data": _devices(2), "meta": {"page": 1, "per_page": 2, "total": 3}}), bound)
    assert [d.id for d in first.devices] == ["dev_000", "dev_001"]
    assert first.total_size == 3
    assert first.next_page_token

    bound2 = t.bind(devices_pb2.ListDevicesRequest(page_size=2, page_token=first.next_page_token))
    assert list(bound2.request.query) == [("page", "2"), ("per_page", "2")]
    last = t.decode(_answer({"data": _devices(1, 2), "meta": {"page": 2, "per_page": 2, "total": 3}}), bound2)
    assert last.next_page_token == ""


def test_page_style_without_total_stops_on_short_page(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder(LIST)
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=2))
    assert t.decode(_answer({"data": _devices(2)}), bound).next_page_token
    assert t.decode(_answer({"data": _devices(1)}), bound).next_page_token == ""


def test_cursor_style_by_configuration(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder(LIST, PaginationSettings(style="cursor"))
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=500))
    assert list(bound.request.query) == [("limit", "100")]  # cursor APIs cap at 100
    page = t.decode(_answer({"data": _devices(100), "meta": {"next_cursor": "cur:42"}}), bound)
    assert page.next_page_token and "cur:42" not in page.next_page_token  # opaque
    bound2 = t.bind(devices_pb2.ListDevicesRequest(page_size=500, page_token=page.next_page_token))
    assert list(bound2.request.query) == [("limit", "100"), ("cursor", "cur:42")]
    assert (
        t.decode(_answer({"data": _devices(3), "meta": {"next_cursor": None}}), bound2).next_page_token == ""
    )


def test_offset_style_by_configuration(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder(LIST, PaginationSettings(style="offset", default_page_size=10))
    bound = t.bind(devices_pb2.ListDevicesRequest())
    assert list(bound.request.query) == [("skip", "0"), ("limit", "10")]
    page = t.decode(_answer({"data": _devices(10), "meta": {"total": 25}}), bound)
    bound2 = t.bind(devices_pb2.ListDevicesRequest(page_token=page.next_page_token))
    assert list(bound2.request.query) == [("skip", "10"), ("limit", "10")]


def test_custom_parameter_names_and_paths(transcoder) -> None:  # type: ignore[no-untyped-def]
    settings = PaginationSettings(
        style="cursor", cursor_param="after", limit_param="first", next_cursor_field="paging.next"
    )
    t = transcoder(LIST, settings)
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=3))
    page = t.decode(_answer({"data": _devices(3), "paging": {"next": "zz"}}), bound)
    again = t.bind(devices_pb2.ListDevicesRequest(page_size=3, page_token=page.next_page_token))
    assert list(again.request.query) == [("first", "3"), ("after", "zz")]


def test_token_is_bound_to_the_filters(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder("/openframe.v1.AlertService/ListAlerts")
    bound = t.bind(alerts_pb2.ListAlertsRequest(page_size=1, status=alerts_pb2.ALERT_STATUS_OPEN))
    token = t.decode(_answer({"data": [{"id": "a"}], "meta": {"total": 5}}), bound).next_page_token
    with pytest.raises(BindingError, match="other filters"):
        t.bind(
            alerts_pb2.ListAlertsRequest(
                page_size=1, page_token=token, status=alerts_pb2.ALERT_STATUS_RESOLVED
            )
        )


def test_token_of_another_style_is_refused(transcoder) -> None:  # type: ignore[no-untyped-def]
    page_t = transcoder(LIST)
    bound = page_t.bind(devices_pb2.ListDevicesRequest(page_size=1))
    token = page_t.decode(_answer({"data": _devices(1), "meta": {"total": 5}}), bound).next_page_token
    with pytest.raises(BindingError, match="another paging scheme"):
        transcoder(LIST, PaginationSettings(style="cursor")).bind(
            devices_pb2.ListDevicesRequest(page_token=token)
        )


@pytest.mark.parametrize("total", [2**31, 2**40, True, -1, "12", 1.5])
def test_a_total_the_field_cannot_hold_is_left_out_not_a_failed_page(transcoder, total) -> None:  # type: ignore[no-untyped-def]
    # total_size is int32: 2**31 used to fail the whole page as a malformed answer.
    t = transcoder(LIST)
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=2))
    page = t.decode(_answer({"data": _devices(2), "meta": {"total": total}}), bound)
    assert [d.id for d in page.devices] == ["dev_000", "dev_001"]
    assert page.total_size == 0


def test_a_long_cursor_round_trips_and_one_too_long_to_carry_fails_now(transcoder) -> None:  # type: ignore[no-untyped-def]
    """The adapter refused page tokens over 2,048 characters, and issued longer ones for
    cursors over ~1,400: the listing broke one page later, INVALID_ARGUMENT on the
    caller's own token. Tokens now carry cursors up to ~6,000 characters, and a
    longer one fails the page that brought it, naming the cursor."""
    t = transcoder(LIST, PaginationSettings(style="cursor"))
    bound = t.bind(devices_pb2.ListDevicesRequest(page_size=2))
    long_cursor = "c" * 5000
    page = t.decode(_answer({"data": _devices(2), "meta": {"next_cursor": long_cursor}}), bound)
    following = t.bind(devices_pb2.ListDevicesRequest(page_size=2, page_token=page.next_page_token))
    assert ("cursor", long_cursor) in list(following.request.query)
    with pytest.raises(MalformedPayloadError, match="next cursor"):
        t.decode(_answer({"data": _devices(2), "meta": {"next_cursor": "c" * 7000}}), bound)
