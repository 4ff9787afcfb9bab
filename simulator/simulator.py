"""`Simulator`: both vendors' upstreams in one process, with hooks for tests.

Example::

    async with Simulator(SimulatorConfig(openframe_port=0, octospine_port=0)) as sim:
        sim.faults.add(Fault(vendor="openframe", route="/v1/devices", status=503, times=1))
        ...  # point the adapter at sim.openframe_url / sim.octospine_url
        assert sim.count(vendor="openframe", route="/v1/devices") == 2
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

from aiohttp import WSCloseCode, web

from simulator.app import PUBLIC_ROUTES, WEBSOCKET_ROUTES, build_app
from simulator.config import VENDORS, SimulatorConfig, Vendor
from simulator.events import EventHub
from simulator.faults import FaultSet
from simulator.generators import EventGenerator
from simulator.idempotency import IdempotencyCache
from simulator.octospine.graphql_endpoint import GRAPHQL_ROUTE, GraphQLEndpoint
from simulator.octospine.seed import seed_octospine
from simulator.octospine.services import OctospineServices, OctospineStores
from simulator.octospine.webhooks import WebhookDelivery, WebhookDispatcher
from simulator.openframe.seed import seed_openframe
from simulator.openframe.services import OpenFrameServices, OpenFrameStores
from simulator.ratelimit import FixedWindowRateLimiter
from simulator.recording import RequestLog, RequestRecord
from simulator.runtime import VendorRuntime
from simulator.store import ResourceStore
from simulator.tokens import TokenStore
from simulator.websocket import WsSession, sessions
from simulator.wire import JsonObject, utc_now

logger = logging.getLogger(__name__)


@dataclass
class SimulatorState:
    """The stores of both vendors (`sim.state.openframe.alerts`, ...)."""

    openframe: OpenFrameStores
    octospine: OctospineStores


class Simulator:
    """OpenFrame and OCTOSPINE upstreams on two ports, stateful and fault-injectable.

    `start` / `stop` (idempotent) or ``async with``. Public attributes: `config`, `settings`
    (effective profile switches per vendor), `state` (stores), `openframe` / `octospine` (services that change
    state and publish events), `graphql` (OCTOSPINE's GraphQL endpoint), `faults`, `log`, `rate_limits`,
    `graphql_rate_limit`, `tokens`, `hubs`.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.settings = {v: self.config.settings(v) for v in VENDORS}
        self.log = RequestLog()
        self.faults = FaultSet()
        self.state = SimulatorState(OpenFrameStores.empty(), OctospineStores.empty())
        self.hubs = {
            v: EventHub(
                v,
                ring_size=self.config.event_ring_size,
                documented_frames=self.config.ws_event_shape == "documented",
            )
            for v in VENDORS
        }
        self.tokens = {
            v: TokenStore(v, ttl_s=self.config.token_ttl_s, code_ttl_s=self.config.auth_code_ttl_s)
            for v in VENDORS
        }
        self.rate_limits = {
            v: FixedWindowRateLimiter(
                self.settings[v].rate_limit_per_minute, window_s=self.config.rate_limit_window_s
            )
            for v in VENDORS
        }
        graphql_limit = self.config.graphql_rate_limit_per_minute
        #: OCTOSPINE's GraphQL quota, separate from its REST one (`rate_limits["octospine"]`).
        self.graphql_rate_limit = FixedWindowRateLimiter(
            graphql_limit if graphql_limit else None, window_s=self.config.rate_limit_window_s
        )
        self._idempotency = {v: IdempotencyCache() for v in VENDORS}
        self._webhooks = WebhookDispatcher(self.config, self.state.octospine.webhooks)
        self.openframe = OpenFrameServices(self.state.openframe, self.hubs["openframe"])
        self.octospine = OctospineServices(
            self.state.octospine, self.hubs["octospine"], self._webhooks, self.config
        )
        #: OCTOSPINE's `POST /graphql`: schema, persisted queries.
        self.graphql = GraphQLEndpoint(
            self.octospine, persisted_queries=self.config.graphql_persisted_queries
        )
        self._generator = EventGenerator(self.openframe, self.octospine, seed=self.config.seed)
        self._runners: dict[Vendor, web.AppRunner] = {}
        self._ports: dict[Vendor, int] = {}
        self._epoch = self.config.seed_epoch or (utc_now() - timedelta(minutes=1))
        for vendor in VENDORS:
            self._seed(vendor)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Binds both ports and starts serving (no-op when already started)."""
        if self._runners:
            return
        await self._webhooks.start()
        try:
            for vendor in VENDORS:
                await self._start_vendor(vendor)
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "simulator up: openframe %s (profile %s), octospine %s (profile %s)",
            self.openframe_url,
            self.config.profile_of("openframe"),
            self.octospine_url,
            self.config.profile_of("octospine"),
        )

    async def _start_vendor(self, vendor: Vendor) -> None:
        runtime = VendorRuntime(
            vendor=vendor,
            config=self.config,
            settings=self.settings[vendor],
            log=self.log,
            faults=self.faults,
            limiter=self.rate_limits[vendor],
            tokens=self.tokens[vendor],
            idempotency=self._idempotency[vendor],
            hub=self.hubs[vendor],
            public_routes=PUBLIC_ROUTES[vendor],
            websocket_routes=WEBSOCKET_ROUTES[vendor],
            route_limiters={GRAPHQL_ROUTE: self.graphql_rate_limit} if vendor == "octospine" else {},
        )
        runner = web.AppRunner(
            build_app(runtime, self),
            handler_cancellation=True,
            shutdown_timeout=self.config.shutdown_timeout_s,
            access_log=None,
        )
        await runner.setup()
        self._runners[vendor] = runner
        site = web.TCPSite(runner, self.config.host, self.config.port(vendor))
        await site.start()
        self._ports[vendor] = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stops task runs, closes WebSockets, stops serving, abandons webhooks (idempotent)."""
        await self.octospine.tasks.close_runner()
        for vendor in VENDORS:
            await self._close_sessions(vendor)
        for vendor in reversed(list(self._runners)):
            await self._runners.pop(vendor).cleanup()
        self._ports.clear()
        await self._webhooks.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- addresses -----------------------------------------------------------------------

    def _url(self, vendor: Vendor, scheme: str = "http") -> str:
        if vendor not in self._ports:
            raise RuntimeError("simulator not started")
        return f"{scheme}://{self.config.host}:{self._ports[vendor]}"

    @property
    def openframe_url(self) -> str:
        """``http://127.0.0.1:<port>`` of OpenFrame."""
        return self._url("openframe")

    @property
    def octospine_url(self) -> str:
        """``http://127.0.0.1:<port>`` of OCTOSPINE."""
        return self._url("octospine")

    @property
    def openframe_ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/v1/ws``."""
        return self._url("openframe", "ws") + "/v1/ws"

    @property
    def octospine_ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/ws``."""
        return self._url("octospine", "ws") + "/ws"

    # --- requests ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded request, both vendors, in arrival order (admin API excluded)."""
        return self.log.records

    def count(
        self,
        *,
        vendor: Vendor | None = None,
        method: str | None = None,
        route: str | None = None,
        path: str | None = None,
    ) -> int:
        """Attempts seen matching every given criterion (in flight ones included)."""
        return len(self.log.select(vendor=vendor, method=method, route=route, path=path))

    def find_requests(
        self,
        *,
        vendor: Vendor | None = None,
        method: str | None = None,
        route: str | None = None,
        path: str | None = None,
    ) -> list[RequestRecord]:
        """The records `count` counts."""
        return self.log.select(vendor=vendor, method=method, route=route, path=path)

    # --- events and WebSockets -----------------------------------------------------------

    def events(self, vendor: Vendor, *, since: str | None = None) -> list[JsonObject]:
        """Messages still in the vendor's event ring (after event id `since`)."""
        return [e.message for e in self.hubs[vendor].recent(since=since)]

    def ws_sessions(self, vendor: Vendor) -> list[WsSession]:
        """The vendor's connected WebSocket sessions."""
        return sessions(self.hubs[vendor].subscribers)

    def ws_session_log(self, vendor: Vendor) -> list[JsonObject]:
        """Every WebSocket session of `vendor` since start or reset, oldest first: ``id``,
        ``topics``, ``peer``, ``opened``, ``subscribed``, ``closed`` (``time.monotonic``
        seconds, None while not yet)."""
        return [s.summary() for s in sessions(self.hubs[vendor].history)]

    def ws_drop(self, vendor: Vendor) -> int:
        """Closes every session of `vendor` abruptly (no close frame); returns how many."""
        dropped = self.ws_sessions(vendor)
        for session in dropped:
            session.drop()
        return len(dropped)

    def ws_stall(self, vendor: Vendor, seconds: float) -> int:
        """Silences every session of `vendor` (no events, no pongs) for `seconds`."""
        stalled = self.ws_sessions(vendor)
        for session in stalled:
            session.stall(seconds)
        return len(stalled)

    def ws_push(self, vendor: Vendor, text: str, *, topic: str | None = None) -> int:
        """Sends `text` verbatim as one frame to every session of `vendor` (subscribed to
        `topic`, when given); returns how many. For hostile-input tests: the frame need not
        be JSON, nor an event the vendor documents."""
        targets = [s for s in self.ws_sessions(vendor) if topic is None or s.wants(topic)]
        for session in targets:
            session.deliver(text)
        return len(targets)

    def insert_record(self, vendor: Vendor, collection: str, record: JsonObject) -> JsonObject:
        """Stores `record` as-is (no validation, no event) in a store of `vendor`, so REST
        reads (and an adapter's backfill) return it. An `id` is issued when it has none."""
        stores = self.state.openframe if vendor == "openframe" else self.state.octospine
        store = getattr(stores, collection, None)
        if not isinstance(store, ResourceStore):
            raise ValueError(f"{vendor} has no collection {collection!r}")
        stored = {"id": record.get("id") or store.new_id(), **{k: v for k, v in record.items() if k != "id"}}
        return store.add(stored)

    async def generate_events(
        self, vendor: Vendor, kind: str, count: int = 1, rate_per_s: float | None = None
    ) -> list[JsonObject]:
        """Makes `count` state changes of `kind` (see `simulator.generators`) at a rate."""
        return await self._generator.run(vendor, kind, count, rate_per_s)

    async def _close_sessions(self, vendor: Vendor) -> None:
        for session in self.ws_sessions(vendor):
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(
                    session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"simulator stopping"),
                    timeout=1.0,
                )

    # --- webhooks ------------------------------------------------------------------------

    async def emit_webhook_event(
        self, event: str, data: JsonObject, *, raw: bytes | None = None
    ) -> list[WebhookDelivery]:
        """Sends `event` to every subscribed webhook target; returns the deliveries started.
        With `raw`, that body is signed and sent verbatim instead of the documented one."""
        return self._webhooks.emit(event, data, raw=raw)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery so far, with its attempts."""
        return self._webhooks.deliveries

    # --- tokens, reset, waiting ----------------------------------------------------------

    def expire_tokens(self, vendor: Vendor | None = None) -> None:
        """Expires every OAuth2 access token (of one vendor, or both) now."""
        for name in [vendor] if vendor else VENDORS:
            self.tokens[name].expire_all()

    async def reset(self, vendor: Vendor | None = None) -> None:
        """Back to the seeded start: state, faults, requests, tokens, limits, keys, events."""
        for name in [vendor] if vendor else VENDORS:
            if name == "octospine":
                await self.octospine.tasks.close_runner()
                self.octospine.health.reset()
                self._webhooks.deliveries.clear()
                self.graphql.reset()
                self.graphql_rate_limit.reset()
            self._seed(name)
            self.faults.clear(name)
            self.log.clear(name)
            self.tokens[name].reset()
            self.rate_limits[name].reset()
            self._idempotency[name].clear()
            self.hubs[name].clear()

    def _seed(self, vendor: Vendor) -> None:
        if vendor == "openframe":
            self.state.openframe.clear()
            seed_openframe(self.state.openframe, seed=self.config.seed, epoch=self._epoch)
        else:
            self.state.octospine.clear()
            seed_octospine(self.state.octospine, epoch=self._epoch)

    async def wait_for(
        self, predicate: Callable[[], object], *, timeout_s: float = 5.0, interval: float = 0.01
    ) -> None:
        """Polls `predicate` until it is truthy; `TimeoutError` after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s")
            await asyncio.sleep(interval)
