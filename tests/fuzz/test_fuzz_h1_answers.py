"""Fuzz target: the ``h1`` transport reading an upstream's answer
(adapter/upstream/transport_h1.py: httptools' parser, the framing, the size cap,
gzip/deflate).

Invariant: whatever bytes arrive, in whatever pieces, and whether or not the
connection then ends, the answer is either still pending, or an ``Answer`` whose
body is within the cap, or an upstream error (or one of the two signals the
exchange turns into one: the connection dropped, the cap broken). Nothing else
escapes the protocol's callbacks.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from adapter.upstream.errors import UpstreamError
from adapter.upstream.transport import Answer
from adapter.upstream.transport_h1 import _Connection, _Dropped, _TooLarge

from .counting import tried
from .profiles import budget

CAP = 2048


class _Wire(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass


_HEADER_NAMES = st.sampled_from(
    [
        "Content-Length",
        "Transfer-Encoding",
        "Content-Encoding",
        "Connection",
        "X-Request-Id",
        "content-length",
    ]
)
_HEADER_VALUES = st.one_of(
    st.sampled_from(
        ["0", "5", "99999999", "-1", "chunked", "gzip", "deflate", "close", "keep-alive", "identity"]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """Mostly answers that look like HTTP, some bytes that do not."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=400))
    status = draw(st.sampled_from([b"200 OK", b"204 No Content", b"304 Not Modified", b"500 Oops", b"99 x"]))
    headers = draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=5))
    # Random bytes, and bodies that compress far below the cap but decode far above it.
    body = draw(st.one_of(st.binary(max_size=3000), st.integers(0, 20_000).map(lambda n: b"a" * n)))
    kind = draw(st.sampled_from(["raw", "gzip", "deflate", "chunked"]))
    if kind == "gzip":
        body = gzip.compress(body)
    elif kind == "deflate":
        body = zlib.compress(body)
    elif kind == "chunked":
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    # Mostly framed as the body really is, so the decoding and the cap behind it are reached.
    if draw(st.integers(0, 3)):
        if kind in ("gzip", "deflate"):
            headers.append(("Content-Encoding", kind))
        framing = (
            ("Transfer-Encoding", "chunked") if kind == "chunked" else ("Content-Length", str(len(body)))
        )
        headers.append(framing)
    head = (
        b"HTTP/1.1 "
        + status
        + b"\r\n"
        + b"".join(b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in headers)
    )
    return head + b"\r\n" + body


@budget(400)
@given(answer=answers(), cuts=st.lists(st.integers(1, 400), max_size=6), then_closed=st.booleans())
def test_any_answer_ends_as_an_answer_within_the_cap_or_an_upstream_error(
    answer: bytes, cuts: list[int], then_closed: bool
) -> None:
    tried("h1.answer")
    connection = _Connection()
    connection.connection_made(_Wire())
    connection._reset_answer()
    connection._max_bytes = CAP
    loop = asyncio.new_event_loop()  # the answer's future is made and resolved here, never run
    try:
        future: asyncio.Future[Answer] = loop.create_future()
        connection._answer = future
        at = 0
        for size in [*cuts, len(answer)]:
            if at >= len(answer):
                break
            connection.data_received(answer[at : at + size])
            at += size
        if then_closed:
            connection.connection_lost(None)
    finally:
        loop.close()
    if not future.done():
        return
    error = future.exception()
    if error is None:
        result = future.result()
        assert isinstance(result, Answer)
        assert 0 <= len(result.body) <= CAP
        assert isinstance(result.status, int)
    else:
        assert isinstance(error, UpstreamError | _Dropped | _TooLarge), repr(error)
