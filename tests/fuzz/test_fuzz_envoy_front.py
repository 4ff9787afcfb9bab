"""Fuzz targets: what a caller sends the envoy front (adapter/server/envoy_front/).

``server.envoy_front_request`` (grpc_over_asgi.py): any request Envoy could hand the
front (any method, content type, metadata names and values, ``grpc-timeout``,
``grpc-encoding``, ``-bin`` values, and a body of well-formed frames, frames whose
prefix lies, gzip/deflate payloads, bombs or random bytes, in any pieces): the front
answers exactly once (415 without trailers, or 200 with one ``grpc-status`` trailer of
a real code and a printable ``grpc-message``), raises nothing, and the handler sees a
request only when the body was one message within the cap, and then exactly it.

``security.forwarded_certificate`` (adapter/security/forwarded_certificate.py): any
``x-forwarded-client-cert`` text gives no certificate or one PEM certificate, and
nothing raises.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import grpc
from hypothesis import event, given
from hypothesis import strategies as st

from adapter.security.forwarded_certificate import XFCC, forwarded_certificates
from adapter.server.envoy_front import UnaryFront

from .counting import tried
from .profiles import budget

METHOD = "/fuzz.v1.Echo/Say"
LIMIT = 2048
CODES = {str(code.value[0]).encode() for code in grpc.StatusCode}


def _frame(payload: bytes, flag: int = 0, declared: int | None = None) -> bytes:
    size = len(payload) if declared is None else declared
    return bytes([flag]) + size.to_bytes(4, "big") + payload


_PAYLOAD = st.binary(max_size=3 * LIMIT)


@st.composite
def _body(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["frame", "gzip", "deflate", "bomb", "lying prefix", "two", "random"]))
    payload = draw(_PAYLOAD)
    if kind == "frame":
        return _frame(payload), kind
    if kind == "gzip":
        return _frame(gzip.compress(payload), 1), kind
    if kind == "deflate":
        return _frame(zlib.compress(payload), 1), kind
    if kind == "bomb":
        return _frame(gzip.compress(b"\0" * draw(st.integers(LIMIT, 4 * 1024 * 1024))), 1), kind
    if kind == "lying prefix":
        return _frame(payload, draw(st.integers(0, 1)), draw(st.integers(0, 2**32 - 1))), kind
    if kind == "two":
        return _frame(payload) + _frame(draw(_PAYLOAD)), kind
    return draw(st.binary(max_size=64)), kind


_TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
_HEADER = st.one_of(
    st.tuples(
        st.sampled_from([b"grpc-timeout", b"grpc-encoding", b"x-id-bin", XFCC.encode()]),
        st.binary(max_size=40),
    ),
    st.tuples(st.sampled_from([b"grpc-timeout"]), st.from_regex(rb"\A[0-9]{1,9}[HMSmun]\Z")),
    st.tuples(
        st.sampled_from([b"grpc-encoding"]), st.sampled_from([b"gzip", b"deflate", b"identity", b"br", b""])
    ),
    st.tuples(_TOKEN.map(lambda t: t.lower().encode()), st.binary(max_size=40)),
)


@st.composite
def _request(draw: st.DrawFn) -> dict[str, Any]:
    body, kind = draw(_body())
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)] or [b""]
    return {
        "method": draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"])),
        "content_type": draw(
            st.sampled_from([b"application/grpc", b"application/grpc+proto", b"text/plain"])
        ),
        "path": draw(st.sampled_from([METHOD, METHOD, "/fuzz.v1.Echo/Nope", "", "/"])),
        "headers": draw(st.lists(_HEADER, max_size=6)),
        "chunks": chunks,
        "kind": kind,
        "accept_compressed": draw(st.booleans()),
    }


async def _serve(request: dict[str, Any]) -> tuple[list[dict[str, Any]], list[bytes]]:
    seen: list[bytes] = []

    async def echo(message: bytes, context: Any) -> bytes:
        seen.append(message)
        return message

    front = UnaryFront(
        {METHOD: grpc.unary_unary_rpc_method_handler(echo)},
        (),
        max_message_bytes=LIMIT,
        accept_compressed=request["accept_compressed"],
    )
    pending = list(request["chunks"])

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": request["method"],
        "path": request["path"],
        "headers": [(b"content-type", request["content_type"]), *request["headers"]],
        "client": ("127.0.0.1", 1),
    }
    await asyncio.wait_for(front(scope, receive, send), 10)
    return sent, seen


@budget(600)
@given(_request())
def test_any_request_gets_one_answer_and_the_handler_only_whole_messages(request: dict[str, Any]) -> None:
    tried("server.envoy_front_request")
    sent, seen = asyncio.run(_serve(request))
    start = sent[0]
    assert start["type"] == "http.response.start"
    if start["status"] == 415:
        event("415: not gRPC")
        assert request["method"] != "POST" or not request["content_type"].startswith(b"application/grpc")
        assert not seen and sent[-1] == {
            "type": "http.response.body",
            "body": b"not a gRPC request\n",
            "more_body": False,
        }
        return
    assert start["status"] == 200
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    trailers = dict(sent[2]["headers"])
    code = trailers[b"grpc-status"]
    assert code in CODES
    message = trailers.get(b"grpc-message", b"")
    assert all(32 <= c < 127 for c in message), message
    event(f"{request['kind']}: grpc-status {code.decode()}")
    if code == b"0":
        body = sent[1]["body"]
        assert len(seen) == 1 and body == _frame(seen[0])
        assert len(seen[0]) <= LIMIT
    else:
        assert sent[1]["body"] == b""


_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@budget(300)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.lists(
            st.tuples(
                st.sampled_from(["By", "Hash", "Cert", "cert", "URI", "Subject", ""]), st.text(max_size=60)
            ),
            max_size=5,
        ).map(lambda fields: ";".join(f"{k}={v}" for k, v in fields)),
        st.text(max_size=40).map(lambda junk: f'{junk},Hash=1;Cert="{_PEM.replace(chr(10), "%0A")}"'),
    )
)
def test_any_forwarded_header_gives_no_certificate_or_one_pem(value: str | bytes) -> None:
    tried("security.forwarded_certificate")
    found = forwarded_certificates(((XFCC, value),))
    assert len(found) <= 1
    if found:
        assert found[0].startswith(b"-----BEGIN CERTIFICATE-----")
        event("a certificate")
