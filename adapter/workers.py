"""``workers = N``: N adapter processes on this host under one supervisor.

Python runs one core per process, so a host uses its cores by running several
adapters. The supervisor (this module, the process ``python -m adapter`` started)
serves nothing itself: it starts N workers (``python -m adapter`` with
``MESH_WORKERS=1`` and per-worker overrides), which share the gRPC and webhook
ports through ``SO_REUSEPORT`` (the kernel spreads connections over them) and are
replicas of one consumer group (``events.coordination``), each with its own spool
and operator port. A worker that dies is started again after a short backoff, but
one that cannot start (it dies within seconds, again and again: a port held by
another process) stops the supervisor, as systemd's and supervisord's start limits
do, for the orchestrator to show. On SIGTERM or SIGINT every worker gets SIGTERM and
drains (health NOT_SERVING first, in-flight calls finish), and the supervisor exits
once they all did.

Processes are supervised by hand (asyncio subprocesses): the standard library has
no supervisor, and the few lines here need none of a process manager's features.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
from pathlib import Path

from adapter.config.settings import ConfigError, Settings

__all__ = ["available_cores", "resolve_workers", "run_workers", "worker_environment"]

logger = logging.getLogger("adapter.workers")

_RESTART_BACKOFF = (0.5, 1.0, 2.0)
#: A worker that ran this long had started: its next death is a crash, not a failed
#: start, and its backoff begins again at the first step.
STARTED_AFTER_SECONDS = 10.0
#: Failed starts in a row (the first start, then each restart) before every worker
#: stops and the supervisor exits 1: with the backoff above, 3.5 s of waiting.
START_ATTEMPTS = 4
#: The command's exit code for a configuration it refuses (a bad key, an unreadable
#: file): starting the worker again would be refused again, so every worker stops
#: and the supervisor exits with it, for the orchestrator to show.
REFUSED = 2


def resolve_workers(settings: Settings) -> int:
    """How many workers to run: ``workers``, or for ``auto`` one per core when this
    configuration can share and else one (with a log line saying why); raises
    ConfigError for an explicit count above one that cannot share."""
    cores = available_cores()
    if settings.workers == "auto":
        if cores == 1:
            return 1
        reason = _cannot_share(settings)
        if reason is None:
            return cores
        logger.info("workers: 1 (auto; %s to use %d cores)", reason, cores)
        return 1
    count = settings.workers or cores
    if count == 1:
        return 1
    reason = _cannot_share(settings)
    if reason is not None:
        raise ConfigError(f"workers = {count} cannot share this configuration: {reason}")
    return count


def _cannot_share(settings: Settings) -> str | None:
    """Why several workers cannot run this configuration (None: they can)."""
    if settings.events.enabled and not settings.events.coordination.enabled:
        return (
            "events.coordination.enabled is false, so every worker would consume every vendor "
            "stream: enable it (or set events.enabled = false)"
        )
    if settings.grpc.port == 0:
        return "grpc.port is 0 (a port of its own per worker): set a fixed port"
    if settings.events.enabled and settings.events.webhook.port == 0:
        return "events.webhook.port is 0 (a port of its own per worker): set a fixed port"
    return None


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup v2 CPU quota
    (a container's CPU limit, which ``os.cpu_count`` and the affinity both ignore and no
    standard library function reads)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU controller here: the affinity is all there is
    return max(1, min(cores, 256))


def worker_environment(settings: Settings, index: int) -> dict[str, str]:
    """The environment of worker ``index`` (1-based): the supervisor's, plus what must
    differ per worker (spool, operator port, replica name) and the shared ports."""
    spool: Path = settings.events.spool.path
    replica = settings.events.coordination.replica_id or f"{os.uname().nodename}-{os.getpid()}"
    ops = settings.telemetry.ops_port
    return {
        **os.environ,
        "MESH_WORKERS": "1",
        "MESH_GRPC__REUSE_PORT": "true",
        "MESH_EVENTS__WEBHOOK__REUSE_PORT": "true",
        "MESH_EVENTS__SPOOL__PATH": str(spool.with_name(f"{spool.stem}-w{index}{spool.suffix}")),
        "MESH_EVENTS__COORDINATION__REPLICA_ID": f"{replica}-w{index}",
        "MESH_TELEMETRY__OPS_PORT": str(ops + index - 1 if ops else 0),
    }


class _Worker:
    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.env = worker_environment(settings, index)
        self.process: asyncio.subprocess.Process | None = None
        #: Deaths since it last ran STARTED_AFTER_SECONDS (its backoff step).
        self.failed_starts = 0
        self.started_at = 0.0

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapter", env=self.env)
        self.started_at = asyncio.get_running_loop().time()
        logger.info("worker %d started (pid %d)", self.index, self.process.pid)


async def run_workers(settings: Settings, count: int) -> int:
    """Runs ``count`` workers until SIGTERM/SIGINT (exit code 0), until one refuses the
    configuration (:data:`REFUSED`), or until one cannot start (1)."""
    stop, refused, failed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers = [_Worker(settings, i) for i in range(1, count + 1)]
    for worker in workers:
        await worker.start()
    logger.info("supervising %d workers on gRPC port %d", count, settings.grpc.port)
    watchers = {asyncio.ensure_future(_keep(worker, stop, refused, failed)) for worker in workers}
    await stop.wait()
    if not refused.is_set() and not failed.is_set():
        logger.info("signal received: stopping %d workers", count)
    for worker in workers:
        if worker.process is not None and worker.process.returncode is None:
            worker.process.send_signal(signal.SIGTERM)
    # drain, then the calls' grace, then telemetry's last flush, then the rest of the stop
    stopping = settings.grpc.drain_seconds + settings.grpc.grace_period_seconds
    grace = stopping + settings.telemetry.flush_timeout_seconds + 30
    _, pending = await asyncio.wait(watchers, timeout=grace)
    for worker in workers:
        if worker.process is not None and worker.process.returncode is None:
            logger.error("worker %d did not stop within %.0fs: killed", worker.index, grace)
            worker.process.kill()
    for task in pending:
        task.cancel()
    return REFUSED if refused.is_set() else 1 if failed.is_set() else 0


async def _keep(worker: _Worker, stop: asyncio.Event, refused: asyncio.Event, failed: asyncio.Event) -> None:
    """Waits for the worker to end; starts it again unless the supervisor is stopping,
    the worker refused the configuration or cannot start (then every worker stops)."""
    while True:
        assert worker.process is not None
        code = await worker.process.wait()
        if stop.is_set():
            logger.info("worker %d stopped (exit %d)", worker.index, code)
            return
        if code == REFUSED:
            logger.error(
                "worker %d refused the configuration (exit %d, the cause is above): stopping every worker",
                worker.index,
                code,
            )
            refused.set()
            stop.set()
            return
        ran = asyncio.get_running_loop().time() - worker.started_at
        worker.failed_starts = 1 if ran >= STARTED_AFTER_SECONDS else worker.failed_starts + 1
        if worker.failed_starts >= START_ATTEMPTS:
            logger.error(
                "worker %d cannot start: it exited %d times in a row within %.0fs of starting "
                "(exit %d, the cause is above): stopping every worker",
                worker.index,
                worker.failed_starts,
                STARTED_AFTER_SECONDS,
                code,
            )
            failed.set()
            stop.set()
            return
        delay = _RESTART_BACKOFF[min(worker.failed_starts - 1, len(_RESTART_BACKOFF) - 1)]
        logger.error("worker %d died (exit %d); starting it again in %.1fs", worker.index, code, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return
        except TimeoutError:
            pass
        await worker.start()
