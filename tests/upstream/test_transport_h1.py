"""The ``h1`` transport against a real socket server that answers with scripted bytes:
body framings, decoding, the size cap, keep-alive reuse, a stale kept-alive
connection, refused headers and the connection bound."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import httpx
import pytest

from adapter.config.settings import UpstreamSettings
from adapter.upstream.errors import (
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamResponseTooLarge,
    UpstreamTransportError,
)
from adapter.upstream.transport_h1 import H1Exchange
from tests.events.kafka_fixtures import wait_until
from tests.upstream.scripted_server import ScriptedServer, ok

pytestmark = pytest.mark.timeout(20)


def exchange(**settings: object) -> H1Exchange:
    auth = {"type": "api_key", "api_key": "k"}
    return H1Exchange(UpstreamSettings(base_url="http://127.0.0.1", auth=auth, **settings))  # type: ignore[arg-type]


async def get(
    client: H1Exchange,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
    max_bytes: int = 1 << 20,
):  # type: ignore[no-untyped-def]
    return await client.exchange(
        method, url, headers or [("Accept", "application/json")], body, max_bytes=max_bytes,
        upstream="vendor", route="GET /v1/x",
    )  # fmt: skip


async def test_content_length_answer_and_the_request_it_wrote(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b'{"id":"dev_001"}', b"X-Request-Id: r-1"))
    client = exchange()
    answer = await get(client, f"{base}/v1/devices/dev%2F001?view=full")
    assert (answer.status, answer.body) == (200, b'{"id":"dev_001"}')
    assert answer.headers["x-request-id"] == "r-1"
    head = script.requests[0].split(b"\r\n")
    assert head[0] == b"GET /v1/devices/dev%2F001?view=full HTTP/1.1"  # the target exactly as given
    assert f"Host: {base.split('//')[1]}".encode() in head
    assert b"Accept: application/json" in head and b"Accept-Encoding: gzip, deflate" in head
    assert not any(line.lower().startswith(b"content-length") for line in head)  # GET without a body
    await client.aclose()


async def test_a_post_sends_its_body_and_length(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b"{}"))
    client = exchange()
    await get(client, f"{base}/v1/alerts", method="POST", body=b'{"title":"t"}')
    await get(client, f"{base}/v1/alerts/a/ack", method="POST", body=None)
    assert script.requests[0].endswith(b'Content-Length: 13\r\n\r\n{"title":"t"}')
    assert b"Content-Length: 0\r\n" in script.requests[1]
    await client.aclose()


async def test_chunked_and_close_delimited_bodies(served) -> None:  # type: ignore[no-untyped-def]
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    script, base = await served(lambda _r: chunked)
    client = exchange()
    assert (await get(client, f"{base}/a")).body == b"hello world"
    assert (await get(client, f"{base}/b")).body == b"hello world"
    assert script.connections == 1  # a chunked answer read to its end keeps the connection
    close_delimited = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    script2, base2 = await served(lambda _r: close_delimited, close_after=True)
    assert (await get(client, f"{base2}/c")).body == b"until the end"
    assert (await get(client, f"{base2}/d")).body == b"until the end"
    assert script2.connections == 2  # not reused: the body ended with the connection
    await client.aclose()


async def test_gzip_and_deflate_are_decoded(served) -> None:  # type: ignore[no-untyped-def]
    payload = b'{"items":[' + b'{"id":1},' * 50 + b'{"id":2}]}'
    answers = iter([
        ok(gzip.compress(payload), b"Content-Encoding: gzip"),
        ok(zlib.compress(payload), b"Content-Encoding: deflate"),
    ])  # fmt: skip
    _, base = await served(lambda _r: next(answers))
    client = exchange()
    assert (await get(client, f"{base}/g")).body == payload
    assert (await get(client, f"{base}/d")).body == payload
    await client.aclose()


async def test_the_size_cap_declared_streamed_and_decoded(served) -> None:  # type: ignore[no-untyped-def]
    big = b"x" * 5000
    chunked_big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + big + b"\r\n0\r\n\r\n"
    answers = iter([ok(big), chunked_big, ok(gzip.compress(big), b"Content-Encoding: gzip"), ok(b"fine")])
    script, base = await served(lambda _r: next(answers))
    client = exchange()
    with pytest.raises(UpstreamResponseTooLarge, match="5000 bytes exceeds the 1000-byte cap"):
        await get(client, f"{base}/declared", max_bytes=1000)
    with pytest.raises(UpstreamResponseTooLarge):
        await get(client, f"{base}/streamed", max_bytes=1000)
    with pytest.raises(UpstreamResponseTooLarge, match="exceeds the 1000-byte cap"):  # decoded, as the others
        await get(client, f"{base}/decoded", max_bytes=1000)
    assert (await get(client, f"{base}/after", max_bytes=1000)).body == b"fine"
    assert script.connections == 4  # a connection that broke the cap is never reused
    await client.aclose()


async def test_keep_alive_reuses_one_connection(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b"{}"))
    client = exchange()
    for _ in range(20):
        await get(client, f"{base}/x")
    assert script.connections == 1
    await client.aclose()


async def test_a_stale_kept_alive_connection_is_retried_for_get_not_for_post(served) -> None:  # type: ignore[no-untyped-def]
    answers: list[bytes | None] = [ok(b"1"), None, ok(b"2"), ok(b"3"), None]
    script, base = await served(lambda _r: answers.pop(0))
    client = exchange()
    assert (await get(client, f"{base}/a")).body == b"1"
    # The server drops the kept-alive connection as it reads the next request: a GET goes again.
    assert (await get(client, f"{base}/b")).body == b"2"
    assert script.connections == 2
    assert (await get(client, f"{base}/c", method="POST", body=b"{}")).body == b"3"
    # A POST on a connection that drops is not sent twice: the caller's retry policy decides.
    with pytest.raises(UpstreamConnectionReset):
        await get(client, f"{base}/d", method="POST", body=b"{}")
    assert len(script.requests) == 5
    await client.aclose()


async def test_a_connection_dropped_mid_answer_is_a_reset(served) -> None:  # type: ignore[no-untyped-def]
    _, base = await served(
        lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", close_after=True
    )
    client = exchange()
    with pytest.raises(UpstreamConnectionReset, match="mid-answer"):
        await get(client, f"{base}/x")
    await client.aclose()


async def test_malformed_answers_and_headers_that_would_split_the_request(served) -> None:  # type: ignore[no-untyped-def]
    _, base = await served(lambda _r: b"NOT HTTP AT ALL\r\n\r\n")
    client = exchange()
    with pytest.raises(UpstreamTransportError, match="malformed HTTP answer"):
        await get(client, f"{base}/x")
    with pytest.raises(UpstreamTransportError, match="line break"):
        await get(client, f"{base}/x", headers=[("X-Tenant", "a\r\nX-Injected: 1")])
    await client.aclose()


@pytest.mark.parametrize(
    "header",
    [
        ("X-Tenant", "a\rb"),
        ("X-Tenant", "a\nb"),
        ("X-Tenant", "a\0b"),
        ("X-Ten\rant", "a"),
        ("X-Ten\nant", "a"),
        ("X-Ten\0ant", "a"),
    ],
)
async def test_a_header_with_any_line_break_or_nul_is_refused_before_anything_is_sent(served, header) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b"{}"))
    client = exchange()
    with pytest.raises(UpstreamTransportError, match="line break or NUL"):
        await get(client, f"{base}/x", headers=[("Accept", "application/json"), header])
    assert script.requests == []
    await get(client, f"{base}/x", headers=[("X-Tenant", "a b\tc")])  # other controls are not refused here
    assert len(script.requests) == 1
    await client.aclose()


async def test_nothing_listening_is_a_connect_error(unused_tcp_port: int) -> None:
    client = exchange()
    with pytest.raises(UpstreamConnectError):
        await get(client, f"http://127.0.0.1:{unused_tcp_port}/x")
    await client.aclose()


async def test_connections_are_bounded_by_max_connections(served) -> None:  # type: ignore[no-untyped-def]
    hold = asyncio.Event()
    script, base = await served(lambda _r: ok(b"{}"), hold=hold)
    client = exchange(max_connections=3)
    calls = [asyncio.ensure_future(get(client, f"{base}/x")) for _ in range(10)]
    await wait_until(lambda: len(script.requests) >= 3, within=5, what="three requests in")
    await asyncio.sleep(0.1)  # the seven others would have connected by now if they could
    assert script.connections == 3 and len(script.requests) == 3
    hold.set()
    await asyncio.gather(*calls)
    assert script.most_open == 3 and len(script.requests) == 10
    await client.aclose()


async def test_a_cancelled_exchange_does_not_leave_its_connection_in_the_pool(served) -> None:  # type: ignore[no-untyped-def]
    hold = asyncio.Event()
    script, base = await served(lambda _r: ok(b"late"), hold=hold)
    client = exchange()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(client, f"{base}/slow")
    hold.set()
    assert (await get(client, f"{base}/next")).body == b"late"
    assert script.connections == 2  # the late answer was never read as the next one's
    await client.aclose()


async def test_an_endless_answer_head_is_cut_off(served) -> None:  # type: ignore[no-untyped-def]
    endless = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (n, b"y" * 1000) for n in range(200))
    _, base = await served(lambda _r: endless)  # never ends its head
    client = exchange()
    with pytest.raises(UpstreamTransportError, match="answer head exceeds"):
        await get(client, f"{base}/x")
    await client.aclose()


async def test_a_target_that_would_split_the_request_line_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b"{}"))
    client = exchange()
    for target in ("/v1/a b", "/v1/a\r\nX-Injected: 1", "/v1/a\tb"):
        with pytest.raises(UpstreamTransportError, match="request not sent"):
            await get(client, base + target)
    assert script.requests == []
    await client.aclose()


async def test_https_verified_against_the_ca_bundle_refused_without_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ssl

    from tests.security.pki import Pki

    pki = Pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.dir / "server.pem", pki.dir / "server-key.pem")
    script = ScriptedServer(lambda _r: ok(b'{"tls":true}'))
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=context)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/x"
    try:
        trusted = exchange(ca_bundle=pki.ca)
        assert (await get(trusted, url)).body == b'{"tls":true}'
        assert (await get(trusted, url)).body == b'{"tls":true}'
        assert script.connections == 1  # kept alive over TLS too
        await trusted.aclose()
        strict = exchange()  # the system CAs only: the dev CA is unknown
        with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await get(strict, url)
        await strict.aclose()
        unverified = exchange(verify_tls=False)
        assert (await get(unverified, url)).body == b'{"tls":true}'
        await unverified.aclose()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([b"X-Request-Id: r-1", b'ETag: "v1"'], id="plain"),
        pytest.param([b"x-rAtElImIt-Remaining: 7", b"RETRY-AFTER: 3"], id="any-case"),
        pytest.param([b"Link: <a>; rel=next", b"link: <b>; rel=prev"], id="repeated"),
        pytest.param([b"Cache-Control: max-age=60", b"Cache-Control: no-store"], id="repeated-cache-control"),
        pytest.param(["X-Site: Zürich".encode(), b"Location: /v1/caf\xc3\xa9"], id="utf-8"),
        pytest.param([b"X-Site: Z\xfcrich", b"Location: /v1/x"], id="latin-1"),
        pytest.param([b"Link: <a>", b"X-Site: Z\xfcrich", b"link: <b>"], id="latin-1-repeated"),
    ],
)
async def test_answer_headers_read_as_httpx_reads_them(served, extra: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    # The answer's headers are multidict's, not httpx's (cheaper to build); a lookup
    # must give what httpx.Headers gives for the same bytes.
    _script, base = await served(lambda _r: ok(b"{}", *extra))
    client = exchange()
    answer = await get(client, f"{base}/v1/x")
    raw = [tuple(h.split(b": ", 1)) for h in extra]
    expected = httpx.Headers([(b"Content-Type", b"application/json"), (b"Content-Length", b"2"), *raw])
    for name in {n.decode("latin-1") for n, _ in raw} | {"content-type", "CONTENT-LENGTH", "absent"}:
        for asked in (name, name.lower(), name.upper()):
            assert (asked in answer.headers) == (asked in expected)
            assert answer.headers.get(asked) == expected.get(asked)  # repeated: joined by ", "
            if asked in expected:
                assert answer.headers[asked] == expected[asked]
    assert {k.lower(): v for k, v in answer.headers.items()} == dict(expected.items())
    await client.aclose()


def test_exchanges_under_uvloop() -> None:
    """uvloop's TCP transport has asyncio.Transport's methods without deriving from it
    (an isinstance check there failed every call under uvloop)."""
    import uvloop

    async def main() -> list[tuple[int, bytes]]:
        script = ScriptedServer(lambda _r: ok(b'{"id":"dev_001"}'))
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = exchange()
        try:
            answers = [await get(client, f"{base}/v1/devices/dev_001") for _ in range(2)]
        finally:
            await client.aclose()
            server.close()
        assert script.connections == 1  # kept alive
        return [(a.status, a.body) for a in answers]

    assert uvloop.run(main()) == [(200, b'{"id":"dev_001"}')] * 2


# URL -> (origin, request target), as urlsplit reads it; each URL is split twice (the
# second time from the remembered origin) and then a sibling path on the same origin.
SPLITS = [
    ("http://up.example:8080/v1/devices/d1?page=2", ("http", "up.example", 8080), b"/v1/devices/d1?page=2"),
    ("http://up.example:8080", ("http", "up.example", 8080), b"/"),
    ("http://up.example:8080?x=1", ("http", "up.example", 8080), b"/?x=1"),
    ("http://up.example/a?", ("http", "up.example", 80), b"/a"),
    ("http://up.example/a#fragment", ("http", "up.example", 80), b"/a"),
    ("HTTP://UP.Example/a", ("http", "up.example", 80), b"/a"),
    ("https://[::1]:8443/p", ("https", "::1", 8443), b"/p"),
    ("https://user@up.example/p", ("https", "up.example", 443), b"/p"),
]


@pytest.mark.parametrize(("url", "origin", "target"), SPLITS)
async def test_a_url_splits_as_urlsplit_reads_it_first_and_from_a_known_origin(url, origin, target) -> None:  # type: ignore[no-untyped-def]
    client = exchange()
    assert client._split(url, "up", "r") == (origin, target)
    assert client._split(url, "up", "r") == (origin, target)
    sibling = url.split("?")[0].split("#")[0].rstrip("/") + "/next"
    assert client._split(sibling, "up", "r")[0] == origin
    assert client._split(sibling, "up", "r")[1].endswith(b"/next")
    await client.aclose()


async def test_urls_that_are_not_http_are_refused_even_after_a_known_origin() -> None:
    client = exchange()
    client._split("http://up.example/a", "up", "r")
    for url in (
        "ftp://up.example/a",
        "http:///a",
        "up.example/a",
        "http://up.example/a b",
        "http://up.example/\ta",
    ):
        with pytest.raises(UpstreamTransportError):
            client._split(url, "up", "r")
    await client.aclose()
