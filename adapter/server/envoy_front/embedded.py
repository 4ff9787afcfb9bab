"""The adapter inside Envoy: the ASGI application pyvoy runs (``embedded:app``).

At the lifespan's start it assembles and starts the adapter as ``python -m adapter``
does (settings from the environment; its grpc.aio server on the private Unix socket
the supervisor named in ``MESH_GRPC__UNIX_SOCKET``), and answers every other request
with the :class:`UnaryFront` over the same handlers and interceptors.

The supervisor (:mod:`.process`) talks to it over two pipes it inherits, because
Envoy owns the process's signals: it reads ``stop`` (or end of file: the supervisor
died) from ``MESH_ENVOY_FRONT_CONTROL_FD`` and then stops the adapter gracefully
while Envoy still serves (health NOT_SERVING and drain, the grace for calls in flight
on both servers, the event pipeline, telemetry's flush); it writes ``started``,
``failed <exit code> <message>``, ``closing`` (the grace began: Envoy is to send
GOAWAY and close the port) or ``stopped <exit code>`` to
``MESH_ENVOY_FRONT_STATUS_FD``. A supervised task's death under ``on_task_death =
exit`` stops it the same way (``stopped 1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from .abandoned_calls import Receive
from .grpc_over_asgi import Scope, Send, UnaryFront

__all__ = ["CONTROL_FD", "STATUS_FD", "app"]

CONTROL_FD = "MESH_ENVOY_FRONT_CONTROL_FD"
STATUS_FD = "MESH_ENVOY_FRONT_STATUS_FD"

logger = logging.getLogger(__name__)


class EmbeddedAdapter:
    """ASGI: lifespan starts and stops the adapter; HTTP requests are gRPC calls."""

    def __init__(self) -> None:
        self._front: UnaryFront | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._stop: Callable[[], Awaitable[int]] | None = None
        self._status_fd = _fd(STATUS_FD)
        self._tasks: set[asyncio.Task[Any]] = set()

    def _status(self, line: str) -> None:
        if self._status_fd is not None:
            with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
                os.write(self._status_fd, (line.replace("\n", " ") + "\n").encode())

    async def _start(self) -> None:
        from adapter.cli import start_failure
        from adapter.config.settings import load_settings
        from adapter.events.aiokafka_compat import quiet_aiokafka
        from adapter.gc_tuning import tune_collector_for_serving
        from adapter.runtime import MeshAdapter
        from adapter.telemetry.logs import configure_logging
        from adapter.telemetry.metrics import build_meter_provider
        from adapter.telemetry.shutdown import shut_down_telemetry
        from adapter.telemetry.tracing import build_tracer_provider

        try:
            settings = load_settings()
            configure_logging(settings.log_level, settings.log_format)
            logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
            quiet_aiokafka()
            tracer_provider = build_tracer_provider(settings.telemetry)
            meter_provider, registry = build_meter_provider(settings.telemetry, set_global=True)
            adapter = MeshAdapter(
                settings,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                metrics_registry=registry,
            )
            await adapter.start()
        except Exception as exc:
            code, message = start_failure(exc)
            self._status(f"failed {code} {message}")
            raise
        server = adapter.server
        assert server is not None  # started
        # The upstream-backed methods, as the server's per-method interceptors made them.
        handlers = {
            method: server.methods.get(method)
            for s in server.services
            for method in (f"/{s.name}/{m}" for m in s.handlers)
            if method in server.methods
        }
        front = UnaryFront(
            handlers,
            server.interceptors,
            max_message_bytes=settings.grpc.max_receive_message_bytes,
            accept_compressed=settings.grpc.accept_compressed_requests,
        )
        server.attach_front(_Closing(front, self._status))
        self._front = front
        tune_collector_for_serving()

        async def stop() -> int:
            await adapter.stop()
            await asyncio.sleep(0)  # the last calls' spans and metrics are recorded after the reply
            flush = settings.telemetry.flush_timeout_seconds
            await asyncio.to_thread(shut_down_telemetry, tracer_provider, meter_provider, timeout_s=flush)
            return 1 if adapter.fatal else 0

        self._stop = stop
        self._spawn(self._stop_on_control())
        self._spawn(self._stop_on_fatal(adapter.wait_for_termination))
        self._status("started")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_on_control(self) -> None:
        fd = _fd(CONTROL_FD)
        if fd is None:
            return  # run without a supervisor (pyvoy by hand): Envoy's stop only
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
        line = await reader.readline()
        if line.strip() == b"stop":
            logger.info("stopping: asked by the supervisor")
            await self.stop()
            return  # the supervisor stops Envoy once it reads "stopped"
        logger.error("stopping: the supervisor is gone")
        await self.stop()
        os.kill(os.getpid(), signal.SIGTERM)  # this is Envoy's process: nobody else will stop it

    async def _stop_on_fatal(self, ended: Callable[[], Awaitable[None]]) -> None:
        await ended()
        await self.stop()

    async def stop(self) -> None:
        """Stops the adapter once (later callers wait for that stop) and reports it."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_once())
        await asyncio.shield(self._stopping)

    async def _stop_once(self) -> None:
        if self._stop is None:
            return
        try:
            code = await self._stop()
        except Exception:
            logger.exception("stopping the adapter failed")
            code = 1
        self._status(f"stopped {code}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()  # Envoy stopped without the supervisor asking: stop now
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._front is not None:
            await self._front(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)


class _Closing:
    """The front as the server's graceful stop sees it: closing it also tells the
    supervisor, which has Envoy send GOAWAY and close the port (as grpc.aio does)."""

    def __init__(self, front: UnaryFront, tell: Callable[[str], None]) -> None:
        self._front, self._tell = front, tell

    def close(self) -> None:
        self._front.close()
        self._tell("closing")

    async def wait_idle(self, within: float | None) -> bool:
        return await self._front.wait_idle(within)


def _fd(variable: str) -> int | None:
    value = os.environ.get(variable, "")
    return int(value) if value.isdigit() else None


app = EmbeddedAdapter()
