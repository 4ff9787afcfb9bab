"""The generated stubs as a package of their own: ``pip install ./generated``.

A throwaway virtualenv (no adapter, no repository on its path) gets the package
from a copy of generated/ (so the build leaves nothing in the work tree), then
a child Python in isolated mode pages through ListDevices against the live
adapter and reads a rich error, the way a Python consumer of the API would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapter.runtime import MeshAdapter
from simulator import Simulator

from .test_crosslang import REPO, run_json

pytestmark = pytest.mark.crosslang

CLIENT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import grpc
    from google.rpc import error_details_pb2, status_pb2
    from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

    channel = grpc.insecure_channel(sys.argv[1])
    devices = devices_pb2_grpc.DeviceServiceStub(channel)
    ids, token = [], ""
    while True:
        page = devices.ListDevices(devices_pb2.ListDevicesRequest(page_size=5, page_token=token), timeout=10)
        ids += [d.id for d in page.devices]
        token = page.next_page_token
        if not token:
            break
    try:
        alerts_pb2_grpc.AlertServiceStub(channel).GetAlert(
            alerts_pb2.GetAlertRequest(alert_id="alt_missing_python"), timeout=10
        )
        reason = None
    except grpc.RpcError as exc:
        [trailer] = [v for k, v in exc.trailing_metadata() if k == "grpc-status-details-bin"]
        info = error_details_pb2.ErrorInfo()
        [detail] = [d for d in status_pb2.Status.FromString(trailer).details if d.Is(info.DESCRIPTOR)]
        detail.Unpack(info)
        reason = [exc.code().name, info.reason]
    print(json.dumps({
        "ids": ids,
        "error": reason,
        "stubs_from": devices_pb2.__file__,
        "adapter_importable": importlib.util.find_spec("adapter") is not None,
    }))
    """
)


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=280)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


@pytest.fixture
def client_venv(tmp_path: Path) -> Path:
    """A new virtualenv with only mesh-adapter-client (built from a copy of
    generated/) and what it requires."""
    source, dist, venv = tmp_path / "generated", tmp_path / "dist", tmp_path / "venv"
    shutil.copytree(REPO / "generated", source)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip"]
    # The wheel is built with this venv's setuptools (no isolated build env to set
    # up), then this venv's pip installs it into the new one (--python).
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)])
    [wheel] = dist.glob("mesh_adapter_client-*.whl")
    _run([*pip, "--python", str(python), "install", "-q", "--no-input", str(wheel)])
    installed = {
        p["name"] for p in json.loads(_run([*pip, "--python", str(python), "list", "--format=json"]))
    }
    assert installed >= {"mesh-adapter-client", "grpcio", "protobuf", "googleapis-common-protos"}
    assert "mesh-adapter" not in installed
    return venv


@pytest.mark.timeout(300)  # a cold pip cache downloads grpcio and protobuf
async def test_generated_package_installs_alone_and_calls_the_adapter(
    adapter: MeshAdapter, simulator: Simulator, client_venv: Path, tmp_path: Path
) -> None:
    venv, python = client_venv, client_venv / "bin" / "python"
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    # -I: no user site, no PYTHONPATH, no current directory: only the venv's packages.
    result = await run_json(
        [str(python), "-I", str(script), f"127.0.0.1:{adapter.port}"], "the Python client"
    )
    assert sorted(result["ids"]) == sorted(d["id"] for d in simulator.state.openframe.devices)
    assert result["error"] == ["NOT_FOUND", "UPSTREAM_NOT_FOUND"]
    assert Path(result["stubs_from"]).is_relative_to(venv), result["stubs_from"]
    assert result["adapter_importable"] is False
    site = Path(result["stubs_from"]).parents[2]
    assert (site / "openframe" / "v1" / "devices_pb2.pyi").is_file(), "typed stubs not installed"
    assert all((site / top / "py.typed").is_file() for top in ("openframe", "octospine", "meshadapter"))
