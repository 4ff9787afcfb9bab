"""The envoy front's gRPC-over-ASGI edges, table-driven, in process: each request is
what a hostile or broken client could send through Envoy; the answer is the status
grpc.aio would end it with, never an exception out of the app or a hang. The whole
path (Envoy, pyvoy, the adapter's handlers) is tests/server/test_envoy_front.py."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
from typing import Any

import grpc
import pytest

from adapter.server.envoy_front import UnaryFront

METHOD = "/test.v1.Echo/Say"
LIMIT = 1024


def _frame(payload: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


async def _echo(request: bytes, context: Any) -> bytes:
    if request == b"slow":
        await asyncio.sleep(5)
    if request == b"boom":
        raise RuntimeError("a bug")
    return request


async def _abort(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no: 100% ünïcode", (("x-why-bin", b"\x00\x01"),))
    raise AssertionError("abort returns")


HANDLERS = {
    METHOD: grpc.unary_unary_rpc_method_handler(_echo),
    "/test.v1.Echo/Deny": grpc.unary_unary_rpc_method_handler(_abort),
    "/test.v1.Echo/Stream": grpc.unary_stream_rpc_method_handler(_echo),
}


def _front(*, accept_compressed: bool = False) -> UnaryFront:
    return UnaryFront(HANDLERS, (), max_message_bytes=LIMIT, accept_compressed=accept_compressed)


async def _call(
    front: UnaryFront,
    chunks: list[bytes],
    *,
    path: str = METHOD,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    method: str = "POST",
    content_type: bytes = b"application/grpc",
) -> tuple[int, bytes, dict[bytes, bytes], int]:
    """HTTP status, body, trailers, and how many body chunks the front read."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", content_type), *headers],
        "client": ("127.0.0.1", 5555),
    }
    pending = list(chunks)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not pending:
            await asyncio.sleep(3600)  # a client that never sends the rest
        read += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(front(scope, receive, send), 5)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    trailers = dict(next((m["headers"] for m in sent if m["type"] == "http.response.trailers"), []))
    return status, body, trailers, read


CASES = [
    # name, chunks, extra headers, grpc-status, message fragment
    ("answered", [_frame(b"hi")], [], "0", None),
    ("empty body", [b""], [], "13", "not one whole gRPC message"),
    ("short frame", [_frame(b"hello")[:-2]], [], "13", "not one whole gRPC message"),
    ("two messages", [_frame(b"a") + _frame(b"b")], [], "13", "holds two messages"),
    ("unknown flags", [b"\x02" + _frame(b"x")[1:]], [], "13", "unknown message flags"),
    ("bad -bin metadata", [_frame(b"x")], [(b"x-id-bin", b"!!notbase64")], "13", "is not base64"),
    ("bad grpc-timeout", [_frame(b"x")], [(b"grpc-timeout", b"soon")], "13", "unreadable grpc-timeout"),
    ("deadline", [_frame(b"slow")], [(b"grpc-timeout", b"50m")], "4", "Deadline Exceeded"),
    ("handler raised", [_frame(b"boom")], [], "2", "Unexpected error"),
    ("gzip refused", [_frame(b"x")], [(b"grpc-encoding", b"gzip")], "12", "accept_compressed_requests"),
    ("metadata over 16 KiB", [_frame(b"hi")], [(b"x-big", b"v" * 16300)], "8", "exceeds hard limit ("),
    ("many entries over it", [_frame(b"hi")], [(b"x-%d" % i, b"v" * 4) for i in range(400)], "8", "limit"),
    ("metadata under it", [_frame(b"hi")], [(b"x-big", b"v" * 16000)], "0", None),
    # Envoy's certificate header is not the caller's metadata: it does not count.
    (
        "and a certificate",
        [_frame(b"hi")],
        [(b"x-big", b"v" * 16000), (b"x-forwarded-client-cert", b"c" * 4000)],
        "0",
        None,
    ),
]


@pytest.mark.parametrize(("name", "chunks", "headers", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
async def test_each_edge_ends_with_its_status(
    name: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]], code: str, fragment: str | None
) -> None:
    status, body, trailers, _ = await _call(_front(), chunks, headers=headers)
    assert status == 200
    assert trailers[b"grpc-status"] == code.encode(), trailers
    if fragment is None:
        assert body == _frame(b"hi")
    else:
        assert fragment in trailers[b"grpc-message"].decode()


async def test_an_oversized_message_is_refused_by_its_prefix_before_the_rest_arrives() -> None:
    prefix = b"\x00" + (LIMIT + 1).to_bytes(4, "big") + b"x" * 10
    _, _, trailers, read = await _call(_front(), [prefix, b"y" * 100])
    assert trailers[b"grpc-status"] == b"8"
    assert (
        trailers[b"grpc-message"]
        == f"SERVER: Received message larger than max ({LIMIT + 1} vs. {LIMIT})".encode()
    )
    assert read == 1  # the second chunk was never waited for


async def test_a_gzip_bomb_is_refused_without_inflating_past_the_cap() -> None:
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))  # ~50 KB that inflate to 50 MB
    front = UnaryFront(HANDLERS, (), max_message_bytes=len(bomb) + 10, accept_compressed=True)
    _, _, trailers, _ = await _call(front, [_frame(bomb, 1)], headers=[(b"grpc-encoding", b"gzip")])
    assert trailers[b"grpc-status"] == b"8"
    _, body, trailers, _ = await _call(
        _front(accept_compressed=True),
        [_frame(gzip.compress(b"hi"), 1)],
        headers=[(b"grpc-encoding", b"gzip")],
    )
    assert trailers[b"grpc-status"] == b"0" and body == _frame(b"hi")


async def test_abort_sends_its_status_percent_encoded_and_binary_trailers() -> None:
    _, _, trailers, _ = await _call(_front(), [_frame(b"x")], path="/test.v1.Echo/Deny")
    assert trailers[b"grpc-status"] == b"7"
    assert trailers[b"grpc-message"] == b"no: 100%25 %C3%BCn%C3%AFcode"
    assert base64.b64decode(trailers[b"x-why-bin"] + b"==") == b"\x00\x01"


@pytest.mark.parametrize("path", ["/test.v1.Echo/Nope", "/test.v1.Echo/Stream"])
async def test_unknown_and_streaming_methods_are_unimplemented(path: str) -> None:
    _, _, trailers, read = await _call(_front(), [_frame(b"x")], path=path)
    assert trailers[b"grpc-status"] == b"12"
    assert read == 0  # refused before its body was read


async def test_not_grpc_is_415_not_a_200() -> None:
    status, _, trailers, _ = await _call(_front(), [b"{}"], content_type=b"application/json")
    assert status == 415 and not trailers
    status, _, _, _ = await _call(_front(), [b""], method="GET")
    assert status == 415


async def test_after_close_new_calls_are_unavailable_and_wait_idle_waits_for_calls_in_flight() -> None:
    front = _front()
    slow = asyncio.ensure_future(_call(front, [_frame(b"slow")], headers=[(b"grpc-timeout", b"300m")]))
    await asyncio.sleep(0.05)
    front.close()
    _, _, trailers, _ = await _call(front, [_frame(b"x")])
    assert trailers[b"grpc-status"] == b"14"
    assert not await front.wait_idle(0.01)  # the slow call is still in flight
    assert await front.wait_idle(2)
    assert (await slow)[2][b"grpc-status"] == b"4"


async def test_a_caller_that_leaves_has_its_handler_cancelled_and_gets_no_answer() -> None:
    """pyvoy answers ``receive()`` after the body at once, ``http.disconnect`` once the
    caller reset its stream: the front's watch cancels that call's handler (and with
    it the upstream request), as grpc.aio does, and sends nothing."""
    cancelled = asyncio.Event()

    async def upstream_bound(request: bytes, context: Any) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return request

    front = UnaryFront(
        {METHOD: grpc.unary_unary_rpc_method_handler(upstream_bound)}, (), max_message_bytes=LIMIT,
        accept_compressed=False,
    )  # fmt: skip
    scope = {
        "type": "http",
        "method": "POST",
        "path": METHOD,
        "headers": [(b"content-type", b"application/grpc")],
    }
    asked = 0
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = 1
            return {"type": "http.request", "body": _frame(b"hi"), "more_body": False}
        asked += 1
        if left.is_set():
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    call = asyncio.ensure_future(front(scope, receive, send))
    await asyncio.sleep(0.35)
    assert not call.done() and asked >= 2  # asked while it ran, the caller still there
    left.set()
    began = time.monotonic()
    await asyncio.wait_for(call, 2)
    assert cancelled.is_set() and time.monotonic() - began < 0.5
    assert sent == []  # nobody to answer
    assert await front.wait_idle(1)


async def test_fast_calls_are_never_asked_and_the_watch_stops_when_none_runs() -> None:
    front = _front()
    for _ in range(20):
        _, _, trailers, read = await _call(front, [_frame(b"x")])
        assert trailers[b"grpc-status"] == b"0" and read == 1  # the body only: never asked
    await asyncio.sleep(0.25)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no watch left running


async def test_envoys_certificate_header_reaches_the_handler_uncounted() -> None:
    """The gate reads the caller's certificate from ``x-forwarded-client-cert``: it is
    handed on as metadata, and not counted against the caller's 16 KiB."""

    async def certificate(request: bytes, context: Any) -> bytes:
        return dict(context.invocation_metadata())["x-forwarded-client-cert"].encode()

    front = UnaryFront(
        {METHOD: grpc.unary_unary_rpc_method_handler(certificate)}, (), max_message_bytes=LIMIT,
        accept_compressed=False,
    )  # fmt: skip
    xfcc = b"Hash=ab;Cert=" + b"c" * 4000
    headers = [(b"x-big", b"v" * 16000), (b"x-forwarded-client-cert", xfcc)]
    _, body, trailers, _ = await _call(front, [_frame(b"x")], headers=headers)
    assert trailers[b"grpc-status"] == b"0" and body == _frame(xfcc)
