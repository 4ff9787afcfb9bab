"""The ``h1`` upstream exchange: lean HTTP/1.1 on asyncio.

One asyncio protocol per connection, httptools (llhttp, the parser uvicorn uses)
reading the answer, and a keep-alive pool per origin.

Why not a library client: inside grpc.aio, aiohttp's client costs ~190 µs of
CPU a call, and the exchange itself costs ~20-40 µs
(``python -m bench.peer.ceiling --client raw``, docs/benchmarks.md). The adapter
needs little from a client: one buffered answer under a size cap, and the
errors it maps. Everything else is done above this transport, in
:mod:`adapter.upstream.client`: redirects, credentials, deadlines, spans.
Cookies and proxies are off in every transport. What this module does:

- It writes the request: method, target, ``Host``, the given headers (a CR, LF or
  NUL in one is refused), ``Content-Length`` when there is a body or the method
  carries one, and ``Accept-Encoding: gzip, deflate`` unless given.
- It reads the answer with llhttp: ``Content-Length``, chunked or close-delimited
  bodies; gzip/deflate decoded. The size cap applies to what arrives and to what
  it decodes to.
- It keeps connections alive while the answer allows it (HTTP/1.1 without
  ``Connection: close``, read to its end). A connection idle longer than 30 s, or
  one the server closed while it sat idle, is not reused. A reused connection that
  drops before any byte of the answer is retried once on a new connection, for
  idempotent methods only.
- It holds at most ``max_connections`` connections open, across origins, and keeps
  ``max_keepalive_connections`` idle per origin.
- While its only exchange waits for the answer, the event loop polls for a moment
  rather than sleeping (:mod:`.answer_spin`).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

from adapter.config.settings import UpstreamSettings

from .answer_spin import AnswerSpin
from .connection_slots import ConnectionSlots
from .errors import (
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamTimeoutError,
    UpstreamTransportError,
)
from .response_headers import response_headers
from .transport import Answer, TlsVerification, too_large

__all__ = ["H1Exchange"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_KEEPALIVE_SECONDS = 30.0
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"content-encoding"})
# An answer's status line and headers, at most (aiohttp allows 8 KiB a line, 128 lines);
# llhttp itself has no bound, so a hostile upstream could otherwise grow them without end.
_MAX_HEAD_BYTES = 64 * 1024
# Characters that would end a header line early (request smuggling): counted in the
# whole head (_request_bytes), searched for a header at a time only to name the culprit.
_FORBIDDEN = re.compile("[\r\n\0]")
_URL_REFUSED = re.compile("[ \t\r\n\0]")
# Where a URL's authority ends (urlsplit's rule), and how many origins are remembered
# (redirects may name others; past the bound they are parsed every time).
_AUTHORITY_END = re.compile("[/?#]")
_MAX_ORIGINS = 64
_Origin = tuple[str, str, int]


class _Dropped(Exception):
    """The connection ended before the answer did; ``answered``: some of it had arrived."""

    def __init__(self, answered: bool, cause: BaseException | None) -> None:
        super().__init__(
            "connection dropped mid-answer" if answered else "connection dropped before an answer"
        )
        self.answered = answered
        self.__cause__ = cause


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._max_bytes = 0
        self._reset_answer()

    def _reset_answer(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._status = 0
        self._headers_done = False
        self._encoding: bytes | None = None  # Content-Encoding, read with the other framing headers
        self._until_close = False  # neither Content-Length nor chunked: the body ends with the connection
        self.reusable = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCP transport has asyncio.Transport's
        # methods without deriving from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # raised in a callback below
            cause = exc.__context__
            self._fail(cause if isinstance(cause, _TooLarge) else UpstreamTransportError(repr(cause)))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamTransportError(f"malformed HTTP answer: {exc}"))
        else:
            if not self._headers_done:  # all of it was head: bound what the parser holds
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD_BYTES:
                    self._fail(UpstreamTransportError(f"answer head exceeds {_MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool | None:
        self.closed = True
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._headers_done and self._until_close:
            self._complete(reusable=False)
        else:
            answer.set_exception(_Dropped(self._status != 0 or bool(self._headers), exc))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        # The framing headers in one pass (the first of each counts, as llhttp reads them).
        declared = transfer = encoding = None
        for name, value in self._headers:
            key = name.lower()
            if key in _FRAMING:
                if key == b"content-length":
                    declared = value if declared is None else declared
                elif key == b"transfer-encoding":
                    transfer = value if transfer is None else transfer
                elif encoding is None:
                    encoding = value
        self._encoding = encoding
        chunked = b"chunked" in (transfer or b"").lower()
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise _TooLarge(int(declared))
        self._until_close = declared is None and not chunked and self._status not in (204, 304)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_bytes:
            raise _TooLarge(None)
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._complete(reusable=self._parser.should_keep_alive() and not self._until_close)

    # -- one exchange ------------------------------------------------------------------------

    def start(
        self, request: bytes, *, max_bytes: int, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Answer]:
        """Writes ``request``; the future gets its answer, or :class:`_Dropped`,
        :class:`_TooLarge` (the exchange adds where) or an :class:`UpstreamTransportError`.
        Not a coroutine: the exchange awaits the future itself (a coroutine a call
        costs ~1-3% of a call in place), and calls :meth:`ended` once it is done with it."""
        assert self.transport is not None
        self._reset_answer()
        self._max_bytes = max_bytes
        answer = self._answer = loop.create_future()
        self.transport.write(request)
        return answer

    def ended(self) -> None:
        """The exchange stopped waiting for the answer: any byte that comes now is not asked for."""
        self._answer = None

    def _complete(self, *, reusable: bool) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        self.reusable = reusable and not self.closed
        try:
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._encoding is not None:
                body = _decoded(body, self._encoding, self._max_bytes)
        except _TooLarge as exc:
            answer.set_exception(exc)
            return
        except zlib.error as exc:
            answer.set_exception(UpstreamTransportError(f"answer body does not decode: {exc}"))
            return
        answer.set_result(Answer(self._status, response_headers(self._headers), body))

    def _fail(self, error: BaseException) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self._close()

    def _close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _TooLarge(Exception):
    """The answer breaks the size cap; ``declared``: its Content-Length, when that did."""

    def __init__(self, declared: int | None) -> None:
        super().__init__("answer exceeds the size cap")
        self.declared = declared


def _decoded(body: bytes, encoding: bytes | None, max_bytes: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, within ``max_bytes``."""
    kind = (encoding or b"").strip().lower()
    if kind in (b"", b"identity"):
        return body
    if kind not in (b"gzip", b"x-gzip", b"deflate"):
        return body  # handed on as it came, as the other transports do with codings they lack
    wbits = 16 + zlib.MAX_WBITS if kind != b"deflate" else zlib.MAX_WBITS
    if kind == b"deflate" and body[:1] and (body[0] & 0x0F) != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header (some servers send it)
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, max_bytes + 1)
    if len(out) > max_bytes:
        raise _TooLarge(None)  # counted decoded, as aiohttp and httpx count it
    return out


class H1Exchange:
    """The ``h1`` transport: see the module docstring."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        spin: AnswerSpin | None = None,
    ) -> None:
        self._verification = TlsVerification(settings)
        unverified = ssl.create_default_context()  # verify_tls off
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        self._unverified = unverified
        self._connect_timeout = settings.connect_timeout_seconds
        self._slots = ConnectionSlots(settings.max_connections)
        self._spin = spin if spin is not None else AnswerSpin(settings.answer_spin_microseconds / 1e6)
        self._keep_idle = settings.max_keepalive_connections
        self._idle: dict[_Origin, deque[_Connection]] = {}
        #: ``scheme://authority`` as written -> its origin, for the URLs :meth:`_split` has
        #: parsed (the upstream's base URL, a redirect's target): bounded, see _MAX_ORIGINS.
        self._origins: dict[str, _Origin] = {}
        self._clock = clock
        self._closed = False

    def _tls(self) -> ssl.SSLContext:
        verification = self._verification.current()
        return verification if isinstance(verification, ssl.SSLContext) else self._unverified

    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_bytes: int,
        upstream: str,
        route: str,
    ) -> Answer:
        if self._closed:
            raise UpstreamTransportError("the upstream client is closed", upstream=upstream, route=route)
        origin, target = self._split(url, upstream, route)
        try:
            request = _request_bytes(method, target, origin, headers, body)
        except ValueError as exc:  # (UnicodeEncodeError too)
            raise UpstreamTransportError(f"request not sent: {exc}", upstream=upstream, route=route) from exc

        slots, spin = self._slots, self._spin
        loop = asyncio.get_running_loop()
        if not slots.take_now():
            await slots.take()
        try:
            for attempt in (1, 2):
                connection = self._idle_connection(origin)  # (no coroutine when one is at hand)
                reused = connection is not None
                if connection is None:
                    connection = await self._connect(origin, upstream, route)
                try:
                    answered = connection.start(request, max_bytes=max_bytes, loop=loop)
                    spin.waiting(loop)
                    try:
                        answer = await answered
                    finally:
                        spin.answered()
                        connection.ended()
                except BaseException as exc:
                    connection._close()  # cancelled or failed mid-answer: what is left on the wire is unknown
                    if isinstance(exc, _TooLarge):
                        raise too_large(max_bytes, upstream, route, exc.declared) from None
                    if isinstance(exc, _Dropped):
                        if attempt == 1 and reused and not exc.answered and method in _IDEMPOTENT:
                            continue  # the server closed a kept-alive connection as it was reused
                        raise UpstreamConnectionReset(str(exc), upstream=upstream, route=route) from exc
                    raise
                if connection.reusable:
                    self._keep(origin, connection)
                else:
                    connection._close()
                return answer
        finally:
            slots.give_back()
        raise AssertionError("unreachable")  # (the loop returns or raises)

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self._clock()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if not connection.closed and now - connection.idle_since < _KEEPALIVE_SECONDS:
                return connection
            connection._close()
        return None

    async def _connect(self, origin: _Origin, upstream: str, route: str) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=self._tls() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeoutError("timed out connecting", upstream=upstream, route=route) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise UpstreamConnectError(f"cannot connect: {exc}", upstream=upstream, route=route) from exc
        return connection

    def _keep(self, origin: _Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self._keep_idle or self._closed:
            connection._close()
            return
        connection.idle_since = self._clock()
        idle.append(connection)

    def _split(self, url: str, upstream: str, route: str) -> tuple[_Origin, bytes]:
        """``(scheme, host, port)`` and the request target of an absolute, encoded URL."""
        # Checked on the raw URL: urlsplit silently drops tabs and line breaks.
        if _URL_REFUSED.search(url):
            raise UpstreamTransportError(
                "request not sent: the URL holds whitespace or a control character",
                upstream=upstream,
                route=route,
            )
        # An origin seen before is looked up by its text: urlsplit, its hostname and its
        # port cost ~4.5 µs a call, each call's URL being new (a device's id in its path).
        start = url.find("://") + 3
        end = _AUTHORITY_END.search(url, start) if start > 2 else None
        cut = end.start() if end is not None else len(url)
        rest = url[cut:]
        origin = self._origins.get(url[:cut])
        if origin is None or "#" in rest or rest.endswith("?"):
            return self._split_anew(url, cut, upstream, route)
        return origin, (rest if rest.startswith("/") else "/" + rest).encode("ascii")

    def _split_anew(self, url: str, cut: int, upstream: str, route: str) -> tuple[_Origin, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamTransportError(f"not an http(s) URL: {url!r}", upstream=upstream, route=route)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = (parts.scheme, parts.hostname, port)
        if len(self._origins) < _MAX_ORIGINS:
            self._origins[url[:cut]] = origin
        return origin, target.encode("ascii")

    async def aclose(self) -> None:
        """Closes every idle connection; idempotent."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection._close()


def _request_bytes(
    method: str, target: bytes, origin: _Origin, headers: list[tuple[str, str]], body: bytes | None
) -> bytes:
    scheme, host, port = origin
    default_port = 443 if scheme == "https" else 80
    host_value = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_value = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = [f"{method} {target.decode('ascii')} HTTP/1.1", f"Host: {host_value}"]
    given = set()
    for name, value in headers:
        given.add(name.lower())
        lines.append(f"{name}: {value}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    # Every line ends with one CR LF and the head with one more: any other CR, LF or
    # NUL came in with a name or a value. Three scans of the head cost less than two
    # regex searches a header (~2 µs a request of five headers).
    ends = len(lines) + 1
    if text.count("\n") != ends or text.count("\r") != ends or "\0" in text:
        _refuse_line_breaks(method, headers)
    head = text.encode("latin-1")
    return head + body if body else head


def _refuse_line_breaks(method: str, headers: list[tuple[str, str]]) -> None:
    """Raises the ValueError that names what holds a CR, LF or NUL."""
    for name, value in headers:
        if _FORBIDDEN.search(name) or _FORBIDDEN.search(value):
            raise ValueError(f"header {name!r} holds a line break or NUL")
    raise ValueError(f"the request line of {method!r} holds a line break or NUL")
