"""The operator's HTTP port (default 127.0.0.1:9464): Prometheus ``/metrics``, and
``/healthz`` / ``/readyz`` for orchestrators that probe over HTTP.

- ``/metrics``: the OpenTelemetry metrics in the Prometheus text format, through
  ``opentelemetry-exporter-prometheus`` (its reader fills a registry of its own;
  ``prometheus_client`` renders it, with content negotiation for OpenMetrics).
- ``/healthz`` (liveness): 200 while the event loop answers. A wedged process
  cannot answer at all; restarting it is the orchestrator's job.
- ``/readyz`` (readiness): 200 when every part reports serving, else 503; the JSON
  body names each part and its state, so ``curl`` tells an operator what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from adapter.server.connection_cap import ConnectionCap, listen
from adapter.server.http_error_log import MalformedRequestLog

__all__ = ["OpsServer"]

logger = logging.getLogger(__name__)

#: Connections with no request in progress are closed after this long (aiohttp's
#: default is 3,630 s): longer than any scrape interval, so a scraper keeps its own.
IDLE_TIMEOUT_SECONDS = 75.0
#: Connections open at once (scrapers and probes are a handful); one more is closed
#: as soon as it is accepted, so the port cannot take the process's descriptors.
MAX_CONNECTIONS = 128
#: Headers of one request: scrapers and probes send a handful. aiohttp allows 128 of
#: 8 KiB, about 2 MB held per unfinished request; 32 keep the cap's worst case ~32 MB.
MAX_HEADERS = 32


class OpsServer:
    """``start()`` / ``stop()``; ``readiness()`` returns part name -> serving."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry | None,
        readiness: Callable[[], Mapping[str, bool]],
        why: Callable[[str], str] = lambda _name: "",
        idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host = host
        self.idle_timeout_seconds = idle_timeout_seconds
        self.connections = ConnectionCap(
            max_connections, name="operator port", setting="adapter.telemetry.ops_server.MAX_CONNECTIONS"
        )
        self.port = port
        self._registry = registry
        self._readiness = readiness
        self._why = why
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> int:
        # No route reads a body; aiohttp would still inflate a gzip one on the loop
        # (see adapter/events/webhook_receiver.py): leave bodies as they are.
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            auto_decompress=False,
            keepalive_timeout=self.idle_timeout_seconds,
            max_headers=MAX_HEADERS,  # each up to aiohttp's 8,190 bytes: room for a scrape token
            logger=MalformedRequestLog(logger, "operator port", lambda: None),
        )
        await runner.setup()
        try:
            listener = await listen(runner, self.connections, self.host, self.port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._listener = runner, listener
        self.port = int(listener.sockets[0].getsockname()[1])
        logger.info("operator endpoints on http://%s:%d (/metrics, /healthz, /readyz)", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._registry is None:
            return web.json_response({"error": "metrics are off (telemetry.prometheus_enabled)"}, status=404)
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self._registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        parts = dict(self._readiness())
        ready = bool(parts) and all(parts.values())
        body = {
            "status": "ready" if ready else "not ready",
            "parts": {
                name: "serving" if ok else f"not serving: {self._why(name) or 'no reason given'}"
                for name, ok in sorted(parts.items())
            },
        }
        return web.json_response(body, status=200 if ready else 503)
