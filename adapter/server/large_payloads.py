"""Transcoding a large payload off the event loop.

Binding a request and decoding an answer are Python: ~0.35 µs a byte to bind a
request (validation, JSON encoding, the size check), ~0.08 µs a byte to decode
an answer. Run on the event loop, one 4 MiB request held it ~1.3 s and one 8 MiB
answer ~0.6 s, and every other call of the process waited that long
(``bench/large_payloads.py``). A payload past a threshold (a few ms of work) is
therefore transcoded on a worker thread. The GIL still runs one thread at a time,
but it switches every 5 ms (``sys.getswitchinterval``), so the loop keeps serving
other calls while the large one is worked on, each taking turns.

One thread: several large payloads queue among themselves rather than each
taking a share of the GIL from the loop. Small payloads, nearly every call, stay
on the loop, where they cost nothing more than a size check (~0.25 µs); a thread
hop costs ~50 µs. Nothing here is specific to a method; the transcoders it runs
are safe to call from two threads (their lazily built tables are published
complete, adapter/transcoding/json_codec.py; the binds a cached method remembers
are never touched from here, as a request kept there is at most 2 KiB).

Metrics: ``meshadapter.large_payloads`` (counter, ``kind``: ``request`` or
``answer``) counts what the worker transcoded; ``meshadapter.large_payloads.waiting``
(up-down counter) the payloads queued or being worked on: a high value says
callers keep sending large payloads, which then wait for each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, ParamSpec, TypeVar

from opentelemetry import metrics

__all__ = ["ANSWER_BYTES", "REQUEST_BYTES", "THREAD_NAME_PREFIX", "Kind", "LargePayloadWorker"]

#: A request message this large (serialized) is bound on the worker (~5 ms of work).
REQUEST_BYTES = 16 * 1024
#: An answer body this large is decoded on the worker (~5 ms of work).
ANSWER_BYTES = 64 * 1024
#: The worker thread's name starts with this (as thread dumps and tests see it).
THREAD_NAME_PREFIX = "mesh-large-payloads"

P = ParamSpec("P")
T = TypeVar("T")
Kind = Literal["request", "answer"]


class LargePayloadWorker:
    """``await worker.run("request", fn, *args)`` runs ``fn`` on the worker thread,
    in the caller's context (trace, principal). Start-free: the thread starts on
    first use. After :meth:`aclose` (idempotent), ``run`` works inline on the loop."""

    def __init__(
        self,
        *,
        request_bytes: int = REQUEST_BYTES,
        answer_bytes: int = ANSWER_BYTES,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.request_bytes = request_bytes
        self.answer_bytes = answer_bytes
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX
        )
        meter = metrics.get_meter("adapter.server", meter_provider=meter_provider)
        self._transcoded = meter.create_counter(
            "meshadapter.large_payloads", unit="{payload}", description="Payloads transcoded on the worker"
        )
        self._waiting = meter.create_up_down_counter(
            "meshadapter.large_payloads.waiting",
            unit="{payload}",
            description="Payloads queued for or being transcoded on the worker",
        )
        self._attributes: dict[Kind, dict[str, str]] = {k: {"kind": k} for k in ("request", "answer")}

    async def run(self, kind: Kind, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        executor = self._executor
        if executor is None:
            return fn(*args, **kwargs)
        work = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        attributes = self._attributes[kind]
        self._waiting.add(1, attributes)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        finally:
            self._waiting.add(-1, attributes)
            self._transcoded.add(1, attributes)

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # The payload being worked on finishes; queued ones are cancelled (the server
            # has stopped by now, its calls are past their grace).
            executor.shutdown(wait=False, cancel_futures=True)
