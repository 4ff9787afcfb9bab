"""``python -m adapter`` ends a start the host refuses (a port in use, a spool it cannot
create) with one line naming the part and the cause, and exit code 1: what started
was stopped again, and no traceback buries the line (a bug's cause keeps its own)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env |= {
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": "http://127.0.0.1:1",
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": "k",
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": "http://127.0.0.1:1",
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": "k",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MESH_EVENTS__SPOOL__PATH": str(tmp_path / "spool" / "events.db"),
        "MESH_GRPC__PORT": "0",
        "MESH_TELEMETRY__OPS_ENABLED": "false",
        "MESH_TELEMETRY__OTLP_ENABLED": "false",
        "MESH_LOG_FORMAT": "text",
        "MESH_WORKERS": "1",  # a supervisor would start a worker that exits 1 again
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "adapter"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_grpc_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(tmp_path, MESH_GRPC__PORT=str(port))
    assert done.returncode == 1, done.stderr[-3000:]
    assert (
        f"mesh-adapter: grpc server failed to start: OSError: cannot listen on 127.0.0.1:{port}: in use"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_spool_directory_that_is_a_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = _run(
        tmp_path, MESH_EVENTS__ENABLED="true", MESH_EVENTS__SPOOL__PATH=str(tmp_path / "a-file" / "events.db")
    )
    assert done.returncode == 1, done.stderr[-3000:]
    # the watermark file beside the spool is read first, while the adapter is assembled
    assert "mesh-adapter: cannot start: [Errno 20] Not a directory: " in done.stderr
    assert str(tmp_path / "a-file") in done.stderr
    assert "Traceback" not in done.stderr
