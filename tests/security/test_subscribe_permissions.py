"""What ``Subscribe`` needs from the policy, per request (adapter/assembly/security_parts.py):
one permission per served topic it names, each once, however the request repeats or
pads its topics (the gate checks each on the event loop)."""

from __future__ import annotations

from meshadapter.v1 import events_pb2

from adapter.assembly.security_parts import subscribe_permissions

SERVED = ["openframe.alerts", "octospine.tasks"]
of_request = subscribe_permissions(SERVED)


def test_each_named_served_topic_once() -> None:
    request = events_pb2.SubscribeRequest(topics=["openframe.alerts"] * 200_000)
    assert of_request(request) == ["events.openframe.alerts.subscribe"]


def test_topics_nobody_serves_need_no_permission_the_service_refuses_them() -> None:
    request = events_pb2.SubscribeRequest(topics=[f"t{i}" for i in range(100_000)] + ["octospine.tasks"])
    assert of_request(request) == ["events.octospine.tasks.subscribe"]


def test_no_topic_named_is_every_served_topic() -> None:
    assert of_request(events_pb2.SubscribeRequest()) == [
        "events.openframe.alerts.subscribe",
        "events.octospine.tasks.subscribe",
    ]
