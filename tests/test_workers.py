"""How many workers ``python -m adapter`` runs: ``auto`` uses every core when the
configuration can share them and one process (saying why) when it cannot; an
explicit count that cannot share is refused; a container's CPU quota bounds the
cores."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from adapter import workers
from adapter.config.settings import ConfigError, Settings, load_settings
from adapter.workers import available_cores, resolve_workers

from .adapter_process import offline, run_command

SHARING: dict[str, Any] = {
    "grpc": {"port": 50051},
    "events": {"coordination": {"enabled": True}, "webhook": {"port": 8090}},
}


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "available_cores", lambda: 4)


def settings(**values: Any) -> Settings:
    return Settings(**{**SHARING, **values})


def test_auto_is_the_default() -> None:
    assert Settings().workers == "auto"


@pytest.mark.usefixtures("four_cores")
def test_auto_uses_every_core_when_the_workers_can_share(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adapter.workers")
    assert resolve_workers(settings()) == 4
    # Without events there is nothing to coordinate: only the gRPC port is shared.
    assert resolve_workers(settings(events={"enabled": False, "webhook": {"port": 0}})) == 4
    assert caplog.records == []


@pytest.mark.usefixtures("four_cores")
@pytest.mark.parametrize(
    ("values", "why"),
    [
        (
            {"events": {"webhook": {"port": 8090}}},
            "workers: 1 (auto; events.coordination.enabled is false, so every worker would consume "
            "every vendor stream: enable it (or set events.enabled = false) to use 4 cores)",
        ),
        (
            {"grpc": {"port": 0}},
            "workers: 1 (auto; grpc.port is 0 (a port of its own per worker): set a fixed port "
            "to use 4 cores)",
        ),
        (
            {"events": {"coordination": {"enabled": True}, "webhook": {"port": 0}}},
            "workers: 1 (auto; events.webhook.port is 0 (a port of its own per worker): set a fixed port "
            "to use 4 cores)",
        ),
    ],
    ids=["coordination-off", "grpc-port-0", "webhook-port-0"],
)
def test_auto_runs_one_process_and_says_why_when_the_workers_cannot_share(
    values: dict[str, Any], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapter.workers")
    assert resolve_workers(settings(**values)) == 1
    assert [r.getMessage() for r in caplog.records] == [why]


def test_auto_on_one_core_is_one_process_without_a_word(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workers, "available_cores", lambda: 1)
    caplog.set_level(logging.INFO, logger="adapter.workers")
    assert resolve_workers(settings(events={"webhook": {"port": 0}})) == 1
    assert caplog.records == []


@pytest.mark.usefixtures("four_cores")
def test_an_explicit_count_is_kept_or_refused() -> None:
    assert resolve_workers(settings(workers=3)) == 3
    assert resolve_workers(settings(workers=0)) == 4  # one per core
    assert resolve_workers(settings(workers=1, grpc={"port": 0})) == 1
    with pytest.raises(ConfigError, match=r"workers = 3 cannot share .*events\.coordination\.enabled"):
        resolve_workers(settings(workers=3, events={"webhook": {"port": 8090}}))
    with pytest.raises(ConfigError, match=r"workers = 4 cannot share .*grpc\.port is 0"):
        resolve_workers(settings(workers=0, grpc={"port": 0}))


def test_a_cgroup_cpu_quota_bounds_the_cores(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert available_cores(cpu_max) == affinity  # no cgroup file: the affinity
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == affinity
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: two processes keep it busy
    assert available_cores(cpu_max) == min(affinity, 2)
    cpu_max.write_text("20000 100000\n")
    assert available_cores(cpu_max) == 1


@pytest.mark.parametrize("value", ["-1", "257", "many", "1.5"])
def test_a_bad_value_is_named_once(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_WORKERS", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "invalid configuration:\n  workers (MESH_WORKERS): Value error, "
        "expected 'auto' or a number of processes from 0 (one per core) to 256"
    )


def test_a_worker_refusing_the_configuration_stops_the_supervisor(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    """A worker that exits 2 (the configuration refused: here an unreadable secret file)
    is not started again and again: every worker stops and the supervisor exits 2."""
    env = offline(
        MESH_WORKERS="2",
        MESH_GRPC__PORT=str(unused_tcp_port),
        MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY=None,
        MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY_FILE=str(tmp_path / "missing.key"),
    )
    done = run_command(env, timeout=90)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "refused the configuration (exit 2, the cause is above): stopping every worker" in done.stderr
    assert "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY_FILE" in done.stderr
    assert "starting it again" not in done.stderr


def test_a_worker_that_cannot_start_stops_the_supervisor(unused_tcp_port: int) -> None:
    """A worker that dies at start again and again (here: its gRPC port is held by a
    process that does not share it) is not restarted for ever: after four starts in a
    row, every worker stops and the supervisor exits 1, naming why."""
    holder = socket.socket()  # no SO_REUSEPORT: the workers cannot bind beside it
    try:
        holder.bind(("127.0.0.1", unused_tcp_port))
        holder.listen()
        env = offline(MESH_WORKERS="2", MESH_GRPC__PORT=str(unused_tcp_port))
        done = run_command(env, timeout=120)
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"cannot listen on 127.0.0.1:{unused_tcp_port}" in done.stderr
    assert "cannot start: it exited 4 times in a row within 10s of starting" in done.stderr
    assert "stopping every worker" in done.stderr
    # three restarts of the worker that gave up first: 0.5 s, 1 s, 2 s
    for delay in ("0.5s", "1.0s", "2.0s"):
        assert f"starting it again in {delay}" in done.stderr, done.stderr[-3000:]
