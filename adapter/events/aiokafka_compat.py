"""The only place that touches aiokafka's private attributes, each for an open
upstream problem. ``tests/events/test_aiokafka_compat.py`` fails when the installed
aiokafka no longer has them, so an upgrade cannot break these paths silently.

- **aio-libs/aiokafka#1101**: ``AIOKafkaProducer.stop()`` waits for ever for
  batches a dead broker will never acknowledge. :func:`force_close_producer`
  cancels the sender task and closes the connections instead.
- **No public metadata refresh for one topic** (aio-libs/aiokafka#575): a consumer
  assigned to a topic that does not exist yet never learns its partitions.
  :func:`refresh_topic_metadata` asks the client to track the topic and refresh.
- **A cut consumer stop leaks its connections**: ``AIOKafkaConsumer.stop()`` marks
  the consumer closed, then waits for its group coordinator (a LeaveGroup, a
  rebalance in flight) before it closes its client. Cut there by a deadline, the
  client's connections stay open until garbage collection, and nothing warns of
  the consumer itself. :func:`stop_consumer` closes them when ``stop()`` overruns.
- **A cut bootstrap leaks its connection** (the aio-libs/aiokafka#715 family, still
  in 0.14): ``AIOKafkaClient.bootstrap()`` holds its first connection in a local
  variable until the cluster's metadata arrives. Cut there (a deadline around
  ``start()``, a cancelled task), no ``close()`` reaches it: the socket stays open
  until garbage collection, which warns "Unclosed AIOKafkaConnection" (an ERROR
  through asyncio's handler, or a test failure after its loop closed). Every
  aiokafka client here is started through :func:`start_client`, which finds that
  connection in the cut traceback's bootstrap frame and closes it.
- **A refused login reads as "Unable to bootstrap"**: when no bootstrap address
  can be reached, ``AIOKafkaClient.bootstrap()`` logs each address's reason (a
  refused SASL login, a failed TLS handshake, a refused connection) and raises a
  bare ``KafkaConnectionError``. :func:`quiet_aiokafka` keeps those reasons,
  unlogged, and :func:`connect_failure` gives the last one, so the adapter's own
  line can say why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = [
    "BOOTSTRAP_LOCAL",
    "PRIVATE_ATTRIBUTES",
    "connect_failure",
    "force_close_producer",
    "quiet_aiokafka",
    "refresh_topic_metadata",
    "start_client",
    "stop_consumer",
]

logger = logging.getLogger(__name__)

#: What this module reads or writes, per class (checked by the compatibility test).
PRIVATE_ATTRIBUTES = {
    "AIOKafkaProducer": ("_closed", "_sender", "client"),
    "Sender": ("sender_task",),
    "AIOKafkaConsumer": ("_client",),
    "AIOKafkaClient": ("force_metadata_update", "add_topic", "close"),
}

#: The local variable of ``AIOKafkaClient.bootstrap`` that holds its connection
#: (checked by the compatibility test, like the attributes above).
BOOTSTRAP_LOCAL = "bootstrap_conn"


async def force_close_producer(producer: Any, *, step_timeout: float) -> None:
    """Closes a producer whose ``stop()`` would hang (#1101); pending sends are the
    caller's to fail first."""
    producer._closed = True  # keeps its __del__ from warning: closed below
    sender_task = producer._sender.sender_task
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        await asyncio.wait([sender_task], timeout=step_timeout)
    await _close_client(producer.client, step_timeout, "a discarded Kafka producer")


async def stop_consumer(consumer: Any, *, within: float, name: str = "a Kafka consumer") -> None:
    """``consumer.stop()`` within ``within`` seconds. When it overruns or fails, the
    consumer's connections are closed anyway and the cause is logged, naming the
    consumer as ``name``; never raises (but a cancellation, once they are closed)."""
    try:
        async with asyncio.timeout(within):
            await consumer.stop()
        return
    except Exception as exc:
        logger.warning(
            "%s did not stop cleanly within %.1fs (%r); closing its connections", name, within, exc
        )
        await _close_client(consumer._client, within, name)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and not task.cancelling():
            # Not ours: aiokafka's Fetcher.close awaits the fetch tasks it has just
            # cancelled, so a fetch retrying a lost broker ends stop() with their
            # CancelledError (aio-libs/aiokafka#647). Raised on, it ended the adapter's
            # whole stop when the broker was down: a failure like any other here.
            logger.warning("%s did not stop cleanly (its fetch was cut); closing its connections", name)
            await _close_client(consumer._client, within, name)
            return
        await _close_client(consumer._client, within, name)
        raise


async def _close_client(client: Any, within: float, owner: str) -> None:
    """Closes an ``AIOKafkaClient``'s connections within ``within`` seconds; never raises."""
    try:
        async with asyncio.timeout(within):
            await client.close()
    except Exception as exc:
        logger.error("could not close the connections of %s: %r", owner, exc)


async def refresh_topic_metadata(consumer: Any, topic: str) -> None:
    """Makes the consumer's client fetch ``topic``'s metadata (it may have appeared)."""
    await consumer._client.add_topic(topic)
    await consumer._client.force_metadata_update()


async def start_client(client: Any) -> None:
    """``await client.start()`` for an aiokafka producer, consumer or admin client;
    when the start is cut or fails, the connection its bootstrap held is closed
    before the exception goes on. Stopping the client stays the caller's job."""
    try:
        await client.start()
    except BaseException as exc:
        for connection in _bootstrap_connections(exc):
            if connection.connected():
                connection.close()
                logger.debug("closed the connection of a cut Kafka bootstrap (%r)", connection)
        raise


def _bootstrap_connections(exc: BaseException) -> list[Any]:
    """The connections held by the ``bootstrap`` frames of ``exc``'s traceback and of
    the exceptions it was raised from (a frame keeps its locals after it ended)."""
    found: list[Any] = []
    seen: set[int] = set()
    pending: BaseException | None = exc
    while pending is not None and id(pending) not in seen:
        seen.add(id(pending))
        tb = pending.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_name == "bootstrap" and frame.f_globals.get("__name__") == "aiokafka.client":
                connection = frame.f_locals.get(BOOTSTRAP_LOCAL)
                if connection is not None:
                    found.append(connection)
            tb = tb.tb_next
        pending = pending.__cause__ or pending.__context__
    return found


#: The last reason aiokafka gave for not connecting, by ``host:port``.
_CONNECT_FAILURES: dict[str, str] = {}
_UNABLE_TO_CONNECT = 'Unable connect to "%s:%s": %s'
_forwarded = logging.getLogger(__name__)


class _KeptAiokafkaLines(logging.Handler):
    """Swallows aiokafka's lines: keeps each "Unable connect to" reason, forwards only
    CRITICAL ones (to this module's logger)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _UNABLE_TO_CONNECT and isinstance(record.args, tuple) and len(record.args) == 3:
            host, port, error = record.args
            _CONNECT_FAILURES[f"{host}:{port}"] = str(error)[:300]
        elif record.levelno >= logging.CRITICAL:
            _forwarded.critical("aiokafka: %s", record.getMessage())


def quiet_aiokafka() -> None:
    """aiokafka logs every failed fetch and produce retry at ERROR during an outage;
    the adapter reports an outage once per state change instead. Its lines stop at the
    ``aiokafka`` logger (not propagated), where its reasons for not connecting are kept
    for :func:`connect_failure` (idempotent)."""
    root = logging.getLogger("aiokafka")  # aiokafka's client logs here, its other modules below
    root.setLevel(logging.ERROR)
    root.propagate = False
    if not any(isinstance(h, _KeptAiokafkaLines) for h in root.handlers):
        root.addHandler(_KeptAiokafkaLines())


def connect_failure(bootstrap_servers: str | list[str]) -> str:
    """Why aiokafka last failed to connect to one of these addresses ("" when unknown)."""
    addresses = bootstrap_servers.split(",") if isinstance(bootstrap_servers, str) else bootstrap_servers
    for address in addresses:
        reason = _CONNECT_FAILURES.get(address.strip())
        if reason:
            return reason
    return ""
