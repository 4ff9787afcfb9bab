"""Reads over REST what a WebSocket stream missed while it was down.

The queries reuse the gRPC methods' transcoders and the upstream caller, so
backfill goes through the same credentials, paging and error handling as any
call. Backfilled events carry content-derived CloudEvents ids (see the routes'
``id_fields``), so what was in fact received live is dropped as a duplicate.

Items are taken from each page as JSON, one by one, and decoded by the event
intake like live frames: a poison record (too deep, a date out of range) is
dead-lettered there and the others go on, instead of failing the whole page and
every reconnect after it.

A query whose route answers 404 (a deployment without that endpoint) is dropped
from this stream's backfill with one warning: retrying could only fail the same
way, and failing the backfill would reconnect the stream forever. The other
queries go on.

Pages are handed on one at a time, in the vendor's order, so a long outage's gap is
never held in memory at once (100 items a page; it used to be every page of every
query, to sort them). The stream spools each page as it comes and moves its
watermark only once every page was read: a backfill that fails half-way is read
again from the same mark, and what it had spooled is dropped as duplicates. Paging
that does not end (a token the upstream repeats, or more than ``MAX_PAGES`` pages
in one query) fails the backfill with :class:`BackfillIncomplete`, which names
it; it used to end the query there without a word, and the watermark then moved
past what was never read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson
from google.protobuf import timestamp_pb2

from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError
from adapter.transcoding.json_values import dec_timestamp
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import raise_for_status
from adapter.upstream.errors import UpstreamStatusError

from .declarations import BackfillQuery
from .encoding import VendorEvent

__all__ = ["MAX_PAGES", "BackfillIncomplete", "Backfiller"]

logger = logging.getLogger(__name__)

#: Re-read this much before the watermark: clocks and commit order are not exact.
OVERLAP = dt.timedelta(seconds=2)
#: Pages one query may read in one backfill (1,000,000 items at 100 a page): past
#: it, the paging is taken not to end.
MAX_PAGES = 10_000
#: A progress line every this many pages of a query.
_PROGRESS_PAGES = 100
_NO_CACHE = ("cache-control", "no-cache")


class BackfillIncomplete(Exception):
    """A query's paging did not end; nothing past the watermark was given up."""


class Backfiller:
    """Runs a stream's backfill queries against its upstream."""

    def __init__(
        self,
        source: str,
        queries: tuple[BackfillQuery, ...],
        *,
        transcoders: Mapping[str, MethodTranscoder],
        caller: UpstreamCaller,
        codec: JsonCodec,
        timeout_seconds: float = 60.0,
        max_pages: int = MAX_PAGES,
    ) -> None:
        missing = [q.rpc for q in queries if q.rpc not in transcoders]
        if missing:
            raise ValueError(f"backfill of {source} needs methods that are not loaded: {missing}")
        self.source = source
        self._queries = queries
        self._transcoders = transcoders
        self._caller = caller
        self._codec = codec
        self._timeout = timeout_seconds
        self._max_pages = max_pages
        #: RPCs of the queries dropped because their route answered 404.
        self.disabled: set[str] = set()

    async def pages_since(self, since: dt.datetime) -> AsyncGenerator[list[VendorEvent], None]:
        """Every change after ``since`` (minus an overlap), a page of events at a time, in
        the vendor's order. Each page's read has ``timeout_seconds``."""
        pages = events = 0
        for query in self._queries:
            if query.rpc in self.disabled:
                continue
            try:
                async for page in self._pages(query, since - OVERLAP):
                    pages += 1
                    events += len(page)
                    yield page
            except UpstreamStatusError as exc:
                if exc.response.status != 404:
                    raise
                self.disabled.add(query.rpc)
                logger.warning(
                    "backfill of %s: %s answered 404; %s events are no longer backfilled for this "
                    "stream (live events still flow). Remove the query from the (websocket) option "
                    "or fix the route, then restart.",
                    self.source,
                    exc.path or exc.route,
                    query.event_type,
                )
        logger.info(
            "backfill of %s since %s: %d events in %d pages", self.source, since.isoformat(), events, pages
        )

    async def _pages(
        self, query: BackfillQuery, since: dt.datetime
    ) -> AsyncGenerator[list[VendorEvent], None]:
        transcoder = self._transcoders[query.rpc]
        spec = transcoder.spec
        loop = asyncio.get_running_loop()
        fields: dict[str, Any] = {}
        if query.since_field:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(since.astimezone(dt.UTC).replace(tzinfo=None))
            fields[query.since_field] = stamp
        paged = "page_size" in spec.input_type.DESCRIPTOR.fields_by_name
        if paged:
            fields["page_size"] = 100
        token = ""
        seen_tokens: set[str] = set()
        for page in range(1, self._max_pages + 1):
            request = spec.input_type(**fields, **({"page_token": token} if token else {}))
            bound = transcoder.bind(request)
            # Backfill must see the upstream's present state, never a cached read.
            fresh = dataclasses.replace(bound.request, headers=(*bound.request.headers, _NO_CACHE))
            response = await self._caller.send(fresh, deadline=loop.time() + self._timeout)
            raise_for_status(response, upstream=self._caller.name, route=spec.route, path=bound.request.path)
            payload, token = transcoder.decode_raw(response, bound)
            if query.items_field:
                if payload is None:
                    payload = []
                if not isinstance(payload, list):
                    raise MalformedPayloadError(spec.envelope, "expected a list of items")
                items: list[Any] = payload
            else:
                items = [] if payload is None else [payload]
            yield [self._event(query, item) for item in items]
            if not (paged and token):
                return
            if token in seen_tokens:
                raise BackfillIncomplete(
                    f"backfill of {self.source}: {query.rpc} answered page {page} with a page token "
                    "it had answered before; its paging would never end"
                )
            seen_tokens.add(token)
            if page % _PROGRESS_PAGES == 0:
                logger.info("backfill of %s: %s, %d pages read so far", self.source, query.rpc, page)
        raise BackfillIncomplete(
            f"backfill of {self.source}: {query.rpc} still had pages after {self._max_pages}; "
            "the watermark stays where it was"
        )

    def _event(self, query: BackfillQuery, item: Any) -> VendorEvent:
        raw = _raw(item)
        if not isinstance(item, dict):
            return VendorEvent(
                source=self.source,
                type=query.event_type,
                channel="backfill",
                raw=raw,
                malformed=f"backfilled {query.event_type} item is not a JSON object",
            )
        try:
            return VendorEvent(
                source=self.source,
                type=query.event_type,
                action=query.action_of(item),
                timestamp=_normalised_time(item.get(query.time_field)),
                data=query.data_of(item),
                channel="backfill",
                raw=raw,
            )
        except Exception as exc:  # an item is the vendor's data: it fails alone
            return VendorEvent(
                source=self.source,
                type=query.event_type,
                channel="backfill",
                raw=raw,
                malformed=f"unreadable backfilled {query.event_type} ({type(exc).__name__}: {exc})"[:500],
            )


def _normalised_time(value: Any) -> str:
    """RFC 3339 in UTC when readable (so times compare as text); else as given."""
    if not isinstance(value, str):
        return ""
    try:
        moment = dec_timestamp(value, "time")
    except MalformedPayloadError:
        return value
    return moment.isoformat().replace("+00:00", "Z")


def _raw(item: Any) -> bytes:
    try:
        return orjson.dumps(item)
    except (TypeError, orjson.JSONEncodeError):
        return b"<item not serialisable as JSON>"
