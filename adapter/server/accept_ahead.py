"""Calls accepted ahead: several pending accepts on grpc.aio's server, not one.

grpc core hands a server a new call only against a pending
``grpc_server_request_call``; servers built on core keep many pending and ask for one
more each time one is used (grpc/grpc#13958: C# asks for 2,000 at start). grpc.aio's
server loop (``AioServer._server_main_loop``) keeps one: it asks for the next call only
after the last one has reached the event loop through the completion-queue poller
thread. On a busy core that thread runs only while the loop waits, so every call costs
the loop one sleep and one wake-up, and the caches another thread's run took from it:
1.07 sleeps of the loop's thread a call at 16 calls in flight, 0.13 with 32 accepts
pending, and 0.58x the CPU a ``GetDevice`` (667 -> 385 µs, side by side; cache hits
0.54x; docs/benchmarks.md, "Thirty-third stop"). Upstream has an open change for
the loop's throughput (grpc/grpc#43436); nothing in grpc.aio sets how many accepts
are pending.

A loop must not hold the last call it accepted while it waits for the next: a call's
HTTP/2 stream counts against the connection's ``max_concurrent_streams`` until its
state is freed, so 31 loops each holding one used up a connection limited to 3.

Written by hand, hence a compatibility module: this is the loop body of grpcio
1.75's ``_server_main_loop`` run by ``extra`` more tasks, through grpc's private
Cython API: ``aio.Server._server`` (a ``cygrpc.AioServer``), its ``_request_call`` and
``is_running``, ``cygrpc._handle_rpc`` and ``cygrpc._schedule_rpc_coro``, and
``cygrpc._RequestCallError``, which ends each pending accept at shutdown.
:func:`unsupported_reason` checks them; when grpcio no longer has them the server
runs grpc.aio's one loop with a warning, and tests/server/test_accept_ahead.py fails.
Each call still goes through grpc.aio's own ``_handle_rpc``: the same per-call
interceptors (the authorization gate first), the same method lookup, deadlines and
cancellation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc import aio
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # no stubs for grpc's Cython

__all__ = ["AcceptAhead", "unsupported_reason"]

logger = logging.getLogger(__name__)

#: How long ``stop()`` waits for core to end the pending accepts (it does at once).
STOP_WAIT_SECONDS = 5.0
#: ``cygrpc._handle_rpc``'s parameters in grpcio 1.75 (what the loop body passes).
_HANDLE_RPC_PARAMETERS = ("generic_handlers", "interceptors", "rpc_state", "loop", "concurrency_exceeded")


def unsupported_reason() -> str | None:
    """Why this grpcio cannot take more pending accepts, or None when it can."""
    missing = [
        name
        for name, where in (
            ("_handle_rpc", cygrpc),
            ("_schedule_rpc_coro", cygrpc),
            ("_RequestCallError", cygrpc),
            ("AioServer", cygrpc),
        )
        if not hasattr(where, name)
    ]
    server_class = getattr(cygrpc, "AioServer", None)
    missing += [f"AioServer.{m}" for m in ("_request_call", "is_running") if not hasattr(server_class, m)]
    if missing:
        return f"grpcio {grpc.__version__} has no {', '.join(missing)}"
    try:
        parameters = tuple(inspect.signature(cygrpc._handle_rpc).parameters)
    except (TypeError, ValueError):
        return f"grpcio {grpc.__version__}: the signature of cygrpc._handle_rpc is not readable"
    if parameters != _HANDLE_RPC_PARAMETERS:
        return f"grpcio {grpc.__version__}: cygrpc._handle_rpc takes {parameters}"
    return None


class AcceptAhead:
    """``extra`` accept loops beside grpc.aio's own on a started ``server``.

    ``handlers`` and ``interceptors`` must be what the server was given (its generic
    handlers and per-call interceptors): grpc keeps its own copies private. ``start()``
    after ``server.start()``; ``await stop()`` after ``server.stop()`` (grpc core ends
    every pending accept at shutdown). Both idempotent.

    >>> ahead = AcceptAhead(server, handlers=(methods,), interceptors=(), extra=31)  # doctest: +SKIP
    """

    def __init__(
        self,
        server: aio.Server,
        *,
        handlers: Sequence[grpc.GenericRpcHandler[Any, Any]],
        interceptors: Sequence[Any],
        extra: int,
    ) -> None:
        self._server = server
        self._handlers = list(handlers)
        self._interceptors = tuple(interceptors)
        self._extra = extra
        self._tasks: list[asyncio.Task[None]] = []
        #: Calls these loops accepted (grpc.aio's own loop accepts the others).
        self.accepted = 0

    @property
    def loops(self) -> int:
        """Accept loops running besides grpc.aio's."""
        return sum(1 for task in self._tasks if not task.done())

    def start(self) -> None:
        if self._tasks or self._extra <= 0:
            return
        core: Any = getattr(self._server, "_server", None)  # the cygrpc.AioServer: see the module's docstring
        reason = unsupported_reason()
        if reason is None and not isinstance(core, cygrpc.AioServer):
            reason = f"grpcio {grpc.__version__}: aio.Server holds no cygrpc.AioServer in _server"
        if reason is not None:
            logger.warning("grpc.accept_ahead: serving with grpc.aio's one pending accept: %s", reason)
            return
        loop = asyncio.get_running_loop()
        for index in range(self._extra):
            task = loop.create_task(self._accept(core, loop), name=f"grpc accept-ahead {index}")
            task.add_done_callback(self._ended)
            self._tasks.append(task)

    async def _accept(self, core: Any, loop: asyncio.AbstractEventLoop) -> None:
        # grpcio 1.75's _server_main_loop body, without its limiter (maximum_concurrent_rpcs,
        # which the AdapterServer does not combine with this).
        while core.is_running():
            try:
                rpc_state = await core._request_call()
            except cygrpc._RequestCallError:  # shutdown: core ended the pending accept
                return
            self.accepted += 1
            call = cygrpc._handle_rpc(self._handlers, self._interceptors, rpc_state, loop, False)
            loop.create_task(cygrpc._schedule_rpc_coro(call, rpc_state, loop))
            # Not held while this loop waits for its next call: a call's stream counts
            # against the connection's max_concurrent_streams until its state is freed.
            del call, rpc_state

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # grpc.aio's own loop still accepts: the server serves on, one loop fewer.
        logger.error(
            "%s ended, %d left besides grpc.aio's own: %r",
            task.get_name(),
            self.loops,
            task.exception(),
        )

    async def stop(self) -> None:
        """Waits for the loops to end (after the server's stop); cancels any left
        after :data:`STOP_WAIT_SECONDS`."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_WAIT_SECONDS)
        for task in pending:  # core did not end its accept (it always does at shutdown)
            task.cancel()
        if pending:
            logger.warning("%d accept-ahead loops were still waiting after the server stopped", len(pending))
            await asyncio.wait(pending)
