"""``grpc.front = "envoy"``: ``python -m adapter`` runs Envoy and supervises it.

The adapter itself runs inside Envoy's process (:mod:`.embedded`, through pyvoy);
this process starts Envoy with the configuration of :mod:`.envoy_config`, and
because Envoy owns that process's signals, it turns SIGTERM / SIGINT into a graceful
stop over a pipe: the adapter drains and finishes its calls while Envoy still
serves, then Envoy is stopped. Exit codes are ``python -m adapter``'s: 0 after a
signal, 2 for a configuration the adapter refused, 1 for a start that failed, a
supervised task's death under ``on_task_death = exit``, or Envoy ending by itself.

Envoy is started by hand rather than through ``pyvoy.PyvoyServer``, whose ``stop()``
is a SIGTERM: Envoy then runs the lifespan's shutdown while it no longer answers
calls, so in-flight calls could not finish (tests/server/test_envoy_front.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from adapter.config.settings import Settings

from .embedded import CONTROL_FD, STATUS_FD
from .envoy_config import LISTENER, bootstrap
from .pyvoy_compat import envoy_binary, envoy_environment, pyvoy_module_path

__all__ = ["serve_behind_envoy"]

logger = logging.getLogger("adapter.envoy_front")


async def serve_behind_envoy(settings: Settings) -> int:
    """Runs the adapter behind Envoy until a signal (0), or until it fails (1 / 2)."""
    binary, environment, module = envoy_binary(), envoy_environment(), pyvoy_module_path()
    workdir = Path(tempfile.mkdtemp(prefix="mesh-adapter-envoy-"))  # 0700: the socket is private
    try:
        return await _supervise(settings, workdir, binary, environment, module)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _supervise(
    settings: Settings, workdir: Path, binary: str, environment: dict[str, str], module: str
) -> int:
    socket = workdir / "grpc.sock"
    control_read, control_write = os.pipe()
    status_read, status_write = os.pipe()
    config, files = bootstrap(settings, unix_socket=socket, pyvoy_module=module, workdir=workdir)
    for path, text in files.items():
        path.write_text(text)
    admin_path = workdir / "admin.sock"
    env = {
        **os.environ,
        **environment,
        "MESH_GRPC__UNIX_SOCKET": str(socket),
        "MESH_WORKERS": "1",
        CONTROL_FD: str(control_read),
        STATUS_FD: str(status_write),
    }
    level = "info" if settings.log_level == "DEBUG" else "warning"
    args = ["--config-yaml", json.dumps(config)]
    args += ["--use-dynamic-base-id", "--disable-hot-restart", "--concurrency", "1", "--log-level", level]
    # At the grace's start (the adapter says "closing"), every connection is told GOAWAY
    # at once and the port closes a second later, as grpc.aio's server.stop(grace) does.
    args += ["--drain-strategy", "immediate", "--drain-time-s", "1"]
    # Its own session: a terminal's Ctrl-C (or `timeout`) signals the whole process
    # group, and Envoy stops at once on SIGINT / SIGTERM; only this process may stop it.
    envoy = await asyncio.create_subprocess_exec(
        binary, *args, env=env, pass_fds=(control_read, status_write), start_new_session=True
    )
    os.close(control_read)
    os.close(status_write)
    loop = asyncio.get_running_loop()
    status = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(status), os.fdopen(status_read, "rb"))
    control = os.fdopen(control_write, "wb", buffering=0)
    signalled = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        logger.info("%s received: stopping the adapter inside Envoy", sig.name)
        signalled.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    exited = asyncio.ensure_future(envoy.wait())
    try:
        return await _run(settings, envoy, exited, status, control, signalled, admin_path)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(OSError):
            control.close()
        if envoy.returncode is None:
            envoy.kill()
            await envoy.wait()


async def _run(
    settings: Settings,
    envoy: asyncio.subprocess.Process,
    exited: asyncio.Future[int],
    status: asyncio.StreamReader,
    control: BinaryIO,
    signalled: asyncio.Event,
    admin_path: Path,
) -> int:
    """Follows the adapter's status lines until it stopped or failed. A signal, even
    one during the start, is passed on as ``stop``: the adapter reads it once started
    and stops gracefully (its spool closed), within drain + grace + flush + 30 s."""
    grpc = settings.grpc
    bound = grpc.drain_seconds + grpc.grace_period_seconds + settings.telemetry.flush_timeout_seconds + 30
    give_up: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        try:
            wait = None if give_up is None else max(0.0, give_up - loop.time())
            line = await asyncio.wait_for(_next(status, exited, None if give_up else signalled), wait)
        except TimeoutError:
            logger.error("the adapter did not stop within %.0fs: Envoy killed", bound)
            return 1
        if line is None and give_up is None and signalled.is_set():
            with contextlib.suppress(OSError):
                control.write(b"stop\n")
            give_up = loop.time() + bound
            continue
        if line is None:
            logger.error("Envoy exited %s (its reason is above)", await exited)
            return 1
        word, _, rest = line.partition(" ")
        if word == "closing":
            await asyncio.to_thread(_drain, admin_path)
            continue
        if word == "started":
            port = await _listening(admin_path, exited)
            if port is None:
                if exited.done():
                    logger.error("Envoy exited %s before it served (its reason is above)", exited.result())
                return 1
            logger.info("serving gRPC behind Envoy on %s:%s (pid %d)", grpc.host, port, envoy.pid)
            continue
        await _stop_envoy(envoy, exited)
        code, _, message = rest.partition(" ")
        if word == "failed":
            sys.stderr.write(message + "\n")
            return int(code) if code.isdigit() else 1
        stopped = int(code) if word == "stopped" and code.isdigit() else 1
        logger.info("stopped (exit %d)", stopped)
        return stopped


async def _next(
    status: asyncio.StreamReader, exited: asyncio.Future[int], signalled: asyncio.Event | None
) -> str | None:
    """The adapter's next status line; None if Envoy ended first (or a signal came)."""
    reading = asyncio.ensure_future(status.readline())
    waits: list[asyncio.Future[object]] = [reading, exited]  # type: ignore[list-item]
    if signalled is not None:
        waits.append(asyncio.ensure_future(signalled.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits[2:]:
        waiting.cancel()
    if reading.done() and reading.result():
        return reading.result().decode(errors="replace").strip()
    reading.cancel()
    return None


async def _stop_envoy(envoy: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> None:
    if envoy.returncode is None:
        envoy.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), 30)
    except TimeoutError:
        logger.error("Envoy did not exit within 30s of SIGTERM: killed")
        envoy.kill()


async def _listening(admin_path: Path, exited: asyncio.Future[int]) -> int | None:
    """The gRPC listener's bound port (``grpc.port`` may be 0), from Envoy's admin API
    once Envoy listens; None if Envoy exited instead (a port in use)."""
    give_up = asyncio.get_running_loop().time() + 60
    while not exited.done():
        if asyncio.get_running_loop().time() > give_up:
            logger.error("Envoy did not listen within 60s of the adapter's start")
            return None
        try:
            return await asyncio.to_thread(_listener_port, admin_path)
        except (OSError, ValueError, KeyError):
            await asyncio.sleep(0.05)
    return None


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over Envoy's admin socket (the standard library speaks HTTP over TCP only)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(self._path))


def _admin(admin: Path, method: str, path: str) -> tuple[int, bytes]:
    """One request to Envoy's admin API: its status and body (OSError if unreachable)."""
    connection = _UnixHTTPConnection(admin)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def _drain(admin: Path) -> None:
    """GOAWAY to every connection now (``--drain-strategy immediate``), the listener
    closed after ``--drain-time-s``; calls in flight finish."""
    try:
        status, _ = _admin(admin, "POST", "/drain_listeners?graceful")
    except OSError as exc:
        logger.warning("Envoy could not be asked to drain its listener: %s", exc)
        return
    if status != 200:
        logger.warning("Envoy refused to drain its listener (HTTP %d)", status)
    else:
        logger.info("Envoy drains: GOAWAY sent, the port closes in 1s")


def _listener_port(admin: Path) -> int:
    _, body = _admin(admin, "GET", "/listeners?format=json")
    for listener in json.loads(body)["listener_statuses"]:
        if listener["name"] == LISTENER:
            return int(listener["local_address"]["socket_address"]["port_value"])
    raise KeyError(LISTENER)
