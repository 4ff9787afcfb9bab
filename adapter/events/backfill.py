"""Reads over REST what a WebSocket stream missed while it was down.

The queries reuse the gRPC methods' transcoders and the upstream caller, so
backfill goes through the same credentials, paging and error handling as any
call. Backfilled events carry content-derived CloudEvents ids (see the routes'
``id_fields``), so what was in fact received live is dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

from google.protobuf import timestamp_pb2

from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import raise_for_status

from .encoding import VendorEvent
from .vendor_streams import BackfillQuery

__all__ = ["Backfiller"]

logger = logging.getLogger(__name__)

#: Re-read this much before the watermark: clocks and commit order are not exact.
OVERLAP = dt.timedelta(seconds=2)
MAX_PAGES = 1000
_NO_CACHE = ("cache-control", "no-cache")


class Backfiller:
    """Runs a stream's backfill queries against its upstream."""

    def __init__(
        self,
        source: str,
        queries: tuple[BackfillQuery, ...],
        *,
        transcoders: dict[str, MethodTranscoder],
        caller: UpstreamCaller,
        codec: JsonCodec,
        timeout_seconds: float = 60.0,
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

    async def events_since(self, since: dt.datetime) -> list[VendorEvent]:
        """Every change after ``since`` (minus an overlap), oldest first."""
        events: list[VendorEvent] = []
        for query in self._queries:
            events.extend(await self._run(query, since - OVERLAP))
        events.sort(key=lambda e: e.timestamp)
        logger.info("backfill of %s since %s: %d events", self.source, since.isoformat(), len(events))
        return events

    async def _run(self, query: BackfillQuery, since: dt.datetime) -> list[VendorEvent]:
        transcoder = self._transcoders[query.rpc]
        spec = transcoder.spec
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        fields: dict[str, Any] = {}
        if query.since_field:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(since.astimezone(dt.UTC).replace(tzinfo=None))
            fields[query.since_field] = stamp
        paged = "page_size" in spec.input_type.DESCRIPTOR.fields_by_name
        if paged:
            fields["page_size"] = 100
        events: list[VendorEvent] = []
        token = ""
        for _ in range(MAX_PAGES):
            request = spec.input_type(**fields, **({"page_token": token} if token else {}))
            bound = transcoder.bind(request)
            # Backfill must see the upstream's present state, never a cached read.
            fresh = dataclasses.replace(bound.request, headers=(*bound.request.headers, _NO_CACHE))
            response = await self._caller.send(fresh, deadline=deadline)
            raise_for_status(response, upstream=self._caller.name, route=spec.route, path=bound.request.path)
            message = transcoder.decode(response, bound)
            items = list(getattr(message, query.items_field)) if query.items_field else [message]
            for item in items:
                data = self._codec.encode(item)
                events.append(
                    VendorEvent(
                        source=self.source,
                        type=query.event_type,
                        action=query.action(data),
                        timestamp=str(data.get(query.time_field, "")),
                        data=query.to_data(data),
                        channel="backfill",
                    )
                )
            token = getattr(message, "next_page_token", "") if paged else ""
            if not token:
                break
        return events
