"""A bounded in-memory cache of the reads the protos mark cacheable.

A ``GET`` whose route has a ``cache_ttl_seconds`` (proto option) is answered
from memory while its entry is fresh. An expired entry with an ``ETag`` (or
``Last-Modified``) is revalidated with ``If-None-Match`` (``If-Modified-Since``):
a ``304`` renews it without a body. Any other request to the same resource (a
write: the path itself, its collection, or anything under it) drops the
affected entries, and a read that overlapped a write is not stored, so a write
is never followed by an older read. A request carrying ``Cache-Control:
no-cache`` skips the lookup (and refreshes the entry). Size is bounded by entries
and bytes, least recently used first out.

GraphQL queries are reads sent as ``POST`` (``UpstreamRequest.read_only``): they are
keyed by their body too, stored only when the answer carries no ``errors``, and never
revalidated. Any operation may read or change any resource, so the cache treats the
GraphQL endpoint (``whole_upstream_paths``) as covering everything: every write drops the
stored GraphQL answers, and a write to the endpoint (a mutation) drops every entry.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

from .layer import CallerLayer
from .metrics import CACHE_LOOKUPS, observe

__all__ = ["ResponseCache"]

logger = logging.getLogger(__name__)

_READS = frozenset({"GET", "HEAD"})
#: (path, sorted query, SHA-256 of a read-only POST's body or "").
Key = tuple[str, tuple[tuple[str, str], ...], str]


@dataclass(slots=True)
class _Entry:
    response: UpstreamResponse
    expires_at: float
    size: int

    @property
    def validators(self) -> list[tuple[str, str]]:
        headers = self.response.headers
        out = []
        if "etag" in headers:
            out.append(("if-none-match", headers["etag"]))
        if "last-modified" in headers:
            out.append(("if-modified-since", headers["last-modified"]))
        return out


def _covers(entry_path: str, written: str) -> bool:
    """Whether a write to ``written`` may change what ``entry_path`` returns."""
    a, b = entry_path.rstrip("/"), written.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


class ResponseCache(CallerLayer):
    """Caches successful reads of the routes in ``ttls`` (route -> seconds)."""

    def __init__(
        self,
        inner: UpstreamCaller,
        *,
        ttls: Mapping[str, float],
        max_entries: int = 1000,
        max_bytes: int = 16 * 1024 * 1024,
        meter_provider: MeterProvider | None = None,
        whole_upstream_paths: Iterable[str] = (),
    ) -> None:
        super().__init__(inner)
        self._ttls = {route: ttl for route, ttl in ttls.items() if ttl > 0}
        #: Endpoints whose calls may touch any resource (GraphQL).
        self._whole = frozenset(p.rstrip("/") for p in whole_upstream_paths)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[Key, _Entry] = collections.OrderedDict()
        self.size_bytes = 0
        #: Grows at the start and end of every write; a read that saw it move is not stored.
        self._write_epoch = 0
        self._lookups: collections.Counter[str] = collections.Counter()
        observe(
            meter_provider,
            CACHE_LOOKUPS,
            self._report_lookups,
            kind="counter",
            unit="{lookup}",
            description="Cacheable reads by outcome",
        )

    @property
    def entries(self) -> int:
        """Entries held now. (Not ``__len__``: an empty cache must not be falsy.)"""
        return len(self._entries)

    def is_fresh(self, request: UpstreamRequest) -> bool:
        entry = self._entries.get(_key(request))
        return entry is not None and self.now() < entry.expires_at

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        if request.method not in _READS and not request.read_only:
            return await self._write(request, deadline)
        ttl = self._ttls.get(request.route)
        if ttl is None:
            return await self.inner.send(request, deadline=deadline)
        key = _key(request)
        bypass = any(k.lower() == "cache-control" and "no-cache" in v.lower() for k, v in request.headers)
        entry = None if bypass else self._entries.get(key)
        if entry is not None and self.now() < entry.expires_at:
            self._entries.move_to_end(key)
            self._count("hit")
            return entry.response
        validators = entry.validators if entry is not None and not request.read_only else []
        sent = (
            dataclasses.replace(request, headers=(*request.headers, *validators)) if validators else request
        )
        epoch = self._write_epoch
        response = await self.inner.send(sent, deadline=deadline)
        if response.status == 304 and entry is not None:
            self._count("revalidated")
            fresh = dataclasses.replace(entry.response, attempts=response.attempts)
            self._store(key, fresh, ttl, epoch)
            return fresh
        self._count("bypass" if bypass else "miss")
        no_store = "no-store" in response.headers.get("cache-control", "").lower()
        if request.answer_is_failure is not None and request.answer_is_failure(response.body):
            no_store = True  # e.g. a GraphQL answer with errors: a failure (or a partial one)
        if response.status == 200 and not no_store:
            self._store(key, response, ttl, epoch)
        return response

    async def _write(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        self._invalidate(request.path)
        try:
            return await self.inner.send(request, deadline=deadline)
        finally:
            # Whatever the outcome: a write that failed on the wire may still have happened.
            self._invalidate(request.path)

    def _invalidate(self, path: str) -> None:
        self._write_epoch += 1
        everything = path.rstrip("/") in self._whole
        for key in [
            k for k in self._entries if everything or k[0].rstrip("/") in self._whole or _covers(k[0], path)
        ]:
            self._drop(key)

    def _store(self, key: Key, response: UpstreamResponse, ttl: float, epoch: int) -> None:
        if epoch != self._write_epoch:
            return  # a write ran meanwhile: this answer may predate it
        size = len(response.body) + sum(len(k) + len(v) for k, v in response.headers.items()) + 256
        if size > self.max_bytes:
            return
        self._drop(key)
        kept = dataclasses.replace(response, decoded={})  # decoded once, on the first hit
        self._entries[key] = _Entry(kept, self.now() + ttl, size)
        self.size_bytes += size
        while len(self._entries) > self.max_entries or self.size_bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size_bytes -= entry.size

    def _count(self, result: str) -> None:
        self._lookups[result] += 1

    def _report_lookups(self, options: CallbackOptions) -> Iterable[Observation]:
        # Metric readers may collect from another thread: iterate a copy (list() of a
        # dict's items is one step under the GIL), never the dict the loop adds to.
        counts = list(self._lookups.items())
        return [Observation(n, {"upstream": self.name, "result": r}) for r, n in counts]


def _key(request: UpstreamRequest) -> Key:
    body = hashlib.sha256(request.body).hexdigest() if request.read_only and request.body else ""
    return request.path, tuple(sorted(request.query)), body
