"""``python -m adapter`` ends a start the host refuses (a port in use, a spool it cannot
create) with one line naming the part and the cause, and exit code 1: what started
was stopped again, and no traceback buries the line (a bug's cause keeps its own)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from ..adapter_process import OFFLINE, run_command


def _run(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    return run_command(
        OFFLINE
        | {
            "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "MESH_EVENTS__SPOOL__PATH": str(tmp_path / "spool" / "events.db"),
            "MESH_WORKERS": "1",  # a supervisor would start a worker that exits 1 again
            **overrides,
        }
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
