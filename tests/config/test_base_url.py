"""A base URL given as the vendors document it (``https://api.openframe.io/v1``) never
yields ``/v1/v1/...``."""

from __future__ import annotations

import logging

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.config.base_url import common_path_prefix, without_duplicated_prefix
from adapter.config.settings import Settings, load_settings
from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings

OPENFRAME_PATHS = ("/v1/devices", "/v1/devices/{device_id}", "/v1/alerts/{alert.id}")

# (base URL, the upstream's paths) -> base URL used
CASES = [
    ("https://api.openframe.io/v1", OPENFRAME_PATHS, "https://api.openframe.io"),
    ("https://api.openframe.io/v1/", OPENFRAME_PATHS, "https://api.openframe.io"),
    ("https://api.openframe.io", OPENFRAME_PATHS, "https://api.openframe.io"),
    ("https://gw.example/openframe/v1", OPENFRAME_PATHS, "https://gw.example/openframe"),
    ("https://gw.example/openframe", OPENFRAME_PATHS, "https://gw.example/openframe"),
    ("https://gw.example/v1/openframe", OPENFRAME_PATHS, "https://gw.example/v1/openframe"),
    (
        "https://api.octospine.com/api",
        ("/api/health", "/api/tasks/{task_id}/cancel"),
        "https://api.octospine.com",
    ),
    ("https://x.example/a/b", ("/a/b/c", "/a/b/d"), "https://x.example"),
    ("https://x.example/b", ("/a/b/c", "/a/b/d"), "https://x.example/b"),
    ("https://x.example/v1", (), "https://x.example/v1"),
    ("https://x.example:8443/v1?k=1", OPENFRAME_PATHS, "https://x.example:8443?k=1"),
]


@pytest.mark.parametrize(("base_url", "paths", "used"), CASES)
def test_the_repeated_prefix_is_dropped(base_url: str, paths: tuple[str, ...], used: str) -> None:
    assert without_duplicated_prefix(base_url, paths) == used


def test_common_prefix_ignores_template_variables() -> None:
    assert common_path_prefix(["/v1/devices", "/v1/alerts/{alert_id}"]) == ["v1"]
    assert common_path_prefix(["/v1/devices", "/v2/devices"]) == []


def test_settings_normalise_the_documented_base_url_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="adapter.config.settings"):
        settings = load_settings(
            upstreams={
                "openframe": {"base_url": "https://api.openframe.io/v1", "auth": {"api_key": "k"}},
                "octospine": {"base_url": "https://api.octospine.com", "auth": {"api_key": "k"}},
            }
        )
    assert str(settings.upstreams["openframe"].base_url) == "https://api.openframe.io/"
    assert str(settings.upstreams["octospine"].base_url) == "https://api.octospine.com/"
    [record] = [r for r in caplog.records if "base_url" in r.getMessage()]
    assert "upstreams.openframe.base_url (MESH_UPSTREAMS__OPENFRAME__BASE_URL)" in record.getMessage()


async def test_calls_reach_the_right_path(simulator: Simulator) -> None:
    base = adapter_settings(simulator)
    upstreams = base.model_dump()["upstreams"]
    upstreams["openframe"]["base_url"] = simulator.openframe_url + "/v1"
    settings = Settings(grpc=base.grpc, upstreams=upstreams, events=base.events, telemetry=base.telemetry)
    async with (
        MeshAdapter(settings) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        alert = await alerts_pb2_grpc.AlertServiceStub(channel).GetAlert(
            alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5
        )
    assert alert.id == "alt_0001"
    assert [r.path for r in simulator.find_requests(vendor="openframe")] == ["/v1/alerts/alt_0001"]
