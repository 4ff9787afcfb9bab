"""A rolling restart of three adapter processes under 100 calls/s from a Go client
fails no call (docs/load-balancing.md).

The Go load driver (tests/crosslang/go/load, built by tests/crosslang/setup.sh)
holds ONE grpc-go ClientConn to the three replicas' fixed ports, with the service
config the docs recommend: round_robin, client-side health checking, a retry
policy for UNAVAILABLE. While it sends ListDevices at a steady 100 calls/s, each
replica in turn gets SIGTERM (health NOT_SERVING, ``grpc.drain_seconds`` of
still serving, then in-flight calls finish and it exits), starts again on the
same port, and must take calls again before the next one goes. A restarted
replica reads NOT_SERVING until its share of the upstream quota is usable again
(its slices moved to the others while it was away). Every call must end OK, and
the driver must really have sent 100 calls/s all along."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from simulator import Simulator

from ..crosslang.test_crosslang import BUILD, go_binary
from ..events.kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix, wait_until
from .replica_processes import Replica

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.usefixtures("kafka_bootstrap"), pytest.mark.crosslang]

RATE = 100  # calls per second
#: A short drain. The quota windows stay QUICK_QUOTA's 4 s: a restarted replica's
#: quota slices, moved from the others, are usable only after the session lease +
#: grace + window (adapter/coordination/quota_share.py); until then it must read
#: NOT_SERVING, or the calls it takes wait past their deadline or fail
#: RESOURCE_EXHAUSTED (with 1 s windows they would only wait, and this would not show).
REPLICA_ENV = {"MESH_GRPC__DRAIN_SECONDS": "1"}
LOAD_BINARY = BUILD / "crosslang-go-load"


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


class GoLoad:
    """The Go load driver as a child process; follows its progress lines."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.progress: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self._lines = 0
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, targets: list[str], stderr: Path) -> GoLoad:
        binary = go_binary(LOAD_BINARY, "the Go load driver")
        with stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                binary,
                "--targets",
                ",".join(targets),
                "--rate",
                str(RATE),
                "--duration",
                "120s",  # bound only: the test ends it with SIGTERM
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        return cls(process, stderr)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            record = json.loads(line)
            if record["kind"] == "summary":
                self.summary = record
            else:
                self.progress = record
                self._lines += 1

    async def next_progress(self) -> dict[str, Any]:
        """A progress line written after this call began."""
        seen = self._lines
        await wait_until(lambda: self._lines > seen + 1, within=10, what="the load driver's progress")
        return self.progress

    def served_by(self, address: str) -> int:
        return int(self.progress.get("served_by", {}).get(address, 0))

    async def stop(self) -> dict[str, Any]:
        """SIGTERM: the driver stops issuing calls, waits for those in flight and
        prints its summary."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), 30)
            await asyncio.wait_for(self._reader, 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"the load driver did not stop on SIGTERM; stderr: {self.stderr.read_text()}")
        if code != 0 or self.summary is None:
            pytest.fail(
                f"the load driver exited with {code}, summary {self.summary}: {self.stderr.read_text()}"
            )
        return self.summary

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@pytest.mark.timeout(100)
async def test_rolling_restart_under_100_calls_per_second_from_go_fails_no_call(
    simulator: Simulator, tmp_path: Path, prefix: str
) -> None:
    replicas = [Replica(f"r{i}", simulator, tmp_path, prefix, **REPLICA_ENV) for i in (1, 2, 3)]
    address = {r.name: f"127.0.0.1:{r.grpc_port}" for r in replicas}
    for replica in replicas:
        replica.start()
    load: GoLoad | None = None
    loop = asyncio.get_running_loop()
    restarts: list[dict[str, Any]] = []
    try:
        await asyncio.gather(*(r.wait_serving() for r in replicas))
        load = await GoLoad.start(list(address.values()), tmp_path / "load.stderr")
        began = loop.time()
        await wait_until(
            lambda: all(load.served_by(a) >= 50 for a in address.values()),
            within=20,
            what="every replica serving the Go client's calls",
        )
        for replica in replicas:
            at = loop.time()
            await replica.stop()  # SIGTERM; returns once the process exited
            assert replica.process is not None
            assert replica.process.returncode == 0, f"{replica.name} exited with {replica.process.returncode}"
            exited = loop.time()
            before = (await load.next_progress())["served_by"][address[replica.name]]
            replica.start()
            await replica.wait_serving()
            serving = loop.time()
            # It takes calls again before the next replica goes (a real rolling
            # update waits for readiness; this also waits for the client's reconnect).
            await wait_until(
                lambda r=replica, b=before: load.served_by(address[r.name]) > b,
                within=30,
                what=f"the Go client calling {replica.name} again after its restart",
            )
            back = loop.time()
            restarts.append(
                {
                    "replica": replica.name,
                    "stop_s": round(exited - at, 2),
                    "start_to_serving_s": round(serving - exited, 2),
                    "serving_to_called_s": round(back - serving, 2),
                    "calls_before_restart": before,
                }
            )
        await load.next_progress()  # and a moment of all three at work
        await load.next_progress()
        wall = loop.time() - began
        summary = await load.stop()
    finally:
        if load is not None:
            await load.kill()
        await asyncio.gather(*(r.stop() for r in replicas))

    print(
        f"\nrolling restart under {RATE} calls/s from one grpc-go ClientConn: "
        f"{summary['total']} calls in {summary['elapsed_s']:.1f} s, {summary['ok']} OK, "
        f"failures {summary['failures']}",
        file=sys.stderr,
    )
    named = {name: (summary["served_by"][a], summary["connections"][a]) for name, a in address.items()}
    print(f"  per replica (calls served, connections opened): {named}", file=sys.stderr)
    print(
        f"  attempts {summary['attempts']} (transparent retries {summary['transparent']}, "
        f"failed attempts {summary['attempt_failures']}), latency {summary['latency_ms']} ms, "
        f"max schedule lag {summary['max_lag_ms']} ms",
        file=sys.stderr,
    )
    for restart in restarts:
        print(f"  {restart}", file=sys.stderr)

    assert summary["failed"] == 0, (summary["failures"], summary["first_failures"])
    assert summary["ok"] == summary["total"]
    # The load really ran: 100 calls/s over the driver's whole run, which spanned the test's.
    assert abs(summary["total"] - RATE * summary["elapsed_s"]) <= 0.02 * RATE * summary["elapsed_s"] + 2
    assert summary["elapsed_s"] >= wall - 1.0
    assert sum(summary["served_by"].values()) == summary["ok"]
    for restart in restarts:  # every replica served calls after its restart...
        assert summary["served_by"][address[restart["replica"]]] > restart["calls_before_restart"]
    # ...on a new connection: one before the restart, one after, at least.
    assert all(summary["connections"][a] >= 2 for a in address.values()), summary["connections"]
