"""Fixtures of the third-vendor suite: Acme's protos compiled into a descriptor set
(at test time, with the same protoc as ``make codegen``; nothing is generated into
the tree), the Acme test upstream, and the adapter run as ``python -m adapter``
with ``tests/thirdvendor/acme.toml``: configuration, no code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from simulator import Simulator

from ..adapter_process import listen_port, log_tail, wait_serving
from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from ..events.kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix
from .upstream import AcmeUpstream

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROTOS = HERE / "protos"
CONFIG = HERE / "acme.toml"
API_KEY = "acme-test-key"  # as in acme.toml
WEBHOOK_SECRET = "acme-webhook-secret"  # as in acme.toml


@pytest.fixture(scope="session")
def acme_descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``protoc --include_imports --descriptor_set_out`` over tests/thirdvendor/protos."""
    out = tmp_path_factory.mktemp("acme") / "acme.binpb"
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{ROOT / 'protos'}",
            f"-I{ROOT / 'third_party'}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *files,
        ],
        check=True,
        capture_output=True,
    )
    return out


class AcmeTypes:
    """Acme's messages for the test's own client, from the descriptor set, in a pool
    of their own (what any client in any language would do with the set)."""

    def __init__(self, descriptor_set: Path) -> None:
        self._pool = descriptor_pool.DescriptorPool()
        for proto in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file:
            self._pool.Add(proto)

    def __getattr__(self, name: str) -> Any:
        return message_factory.GetMessageClass(self._pool.FindMessageTypeByName(f"acme.v1.{name}"))


@pytest.fixture(scope="session")
def acme_types(acme_descriptor_set: Path) -> AcmeTypes:
    return AcmeTypes(acme_descriptor_set)


@pytest_asyncio.fixture
async def acme() -> AsyncIterator[AcmeUpstream]:
    upstream = AcmeUpstream(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@dataclass
class AdapterProcess:
    grpc_port: int
    webhook_port: int
    prefix: str
    process: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@pytest_asyncio.fixture
async def acme_adapter(
    acme: AcmeUpstream, simulator: Simulator, acme_descriptor_set: Path, tmp_path: Path
) -> AsyncIterator[AdapterProcess]:
    """``python -m adapter`` with acme.toml; the built-in vendors point at the simulator."""
    grpc_port, webhook_port = listen_port(), listen_port()
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "MESH_CONFIG_FILE": str(CONFIG),
        "MESH_DESCRIPTORS__DESCRIPTOR_SETS": f'["{acme_descriptor_set}"]',
        "MESH_UPSTREAMS__ACME__BASE_URL": acme.url,
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": simulator.openframe_url,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": OPENFRAME_KEY,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": simulator.octospine_url,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": OCTOSPINE_KEY,
        "MESH_GRPC__PORT": str(grpc_port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_EVENTS__WEBHOOK__PORT": str(webhook_port),
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "MESH_EVENTS__SPOOL__PATH": str(tmp_path / "spool" / "events.db"),
        "MESH_EVENTS__TOPIC_PREFIX": prefix,
    }
    log = tmp_path / "adapter.log"
    process = await asyncio.to_thread(_spawn, env, log)
    acme.webhook_url = f"http://127.0.0.1:{webhook_port}/hooks/acme"
    try:
        await wait_serving(grpc_port, process=process, log=log)
        yield AdapterProcess(grpc_port, webhook_port, prefix, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.stderr.write(log_tail(log, 6000))
        await delete_topics_with_prefix(BOOTSTRAP, prefix)


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "adapter"], cwd=ROOT, env=env, stdout=out, stderr=out)
