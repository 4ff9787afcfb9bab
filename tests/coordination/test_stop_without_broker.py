"""A replica (``events.coordination`` on) whose broker goes away still stops on
SIGTERM. aiokafka's ``consumer.stop()`` leaks the CancelledError of the fetch it
cancels while that fetch waits to retry the lost broker (aio-libs/aiokafka#647); it
used to end the parts' stop early, and asyncio.run then met a supervisor restarting
its tasks for ever: the process never ended (not stopped after 120 s, measured).
A broker of its own, so that stopping it disturbs no other test."""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import Simulator

from ..adapter_process import listen_port
from ..events.kafka_fixtures import kafka_script
from .replica_processes import Replica

pytestmark = pytest.mark.timeout(180)


class OwnBroker:
    def __init__(self, data: Path) -> None:
        self.port = listen_port()
        self._variables = {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(listen_port()),
            "KAFKA_DATA_DIR": str(data),
        }

    def script(self, command: str) -> None:
        done = kafka_script(command, broker=self._variables)
        assert done.returncode == 0, f"scripts/kafka {command}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "kafka")
    broker.script("start")
    try:
        yield broker
    finally:
        broker.script("stop")  # idempotent: the test stops it first
        shutil.rmtree(tmp_path / "kafka", ignore_errors=True)


async def test_a_replica_whose_broker_went_away_stops_on_sigterm(
    simulator: Simulator, tmp_path: Path, own_broker: OwnBroker
) -> None:
    replica = Replica(
        "q1",
        simulator,
        tmp_path,
        f"t{uuid.uuid4().hex[:8]}.",
        MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{own_broker.port}",
    )
    replica.start()
    try:
        await replica.wait_serving()
        for _ in range(300):  # a member of its groups: its stop has consumers to leave with
            if replica.owned() == {"octospine", "openframe"}:
                break
            await asyncio.sleep(0.1)
        assert replica.owned() == {"octospine", "openframe"}, replica.log.read_text()[-3000:]
        own_broker.script("stop")
        await asyncio.sleep(3)  # its clients find the broker gone
        assert replica.process is not None
        replica.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(replica.process.wait, 60)
    finally:
        if replica.process is not None and replica.process.poll() is None:
            replica.process.kill()
    assert code == 0, replica.log.read_text()[-3000:]
    assert "events.db closed with" in replica.log.read_text()  # the spool was closed, not abandoned
