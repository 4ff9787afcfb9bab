"""What caller security costs per call: the same read through the adapter without
caller authentication (loopback, as ``make run``), with mTLS + a policy, and with
mTLS + a bearer JWT + a policy, then with the caller bound to a tenant credential
set under a fair share (the whole model of docs/security.md).

Simulator and adapter run as separate processes (2-core machine: figures are
relative). Each caller reuses one channel (one TLS handshake) and one token, as a
real client does, so the rows show the per-call cost: the gate (certificate
principal, JWT signature and claims, policy decision, audit bookkeeping) and the
tenant router. Per call: the adapter process's CPU time (user + system, from
/proc) over the row divided by its calls, and what that adds to the plaintext
row's; on this shared machine the CPU figure moves much less than the latencies.

    python -m bench.caller_security [--seconds 5] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jwt.algorithms import RSAAlgorithm
from openframe.v1 import devices_pb2, devices_pb2_grpc

from bench.adapter_vs_direct import KEY, ROOT, measure, simulator
from bench.ports import listen_port

ISSUER, AUDIENCE, SUBJECT = "https://idp.bench", "mesh-adapter", "bench"
READER = "spiffe://mesh-adapter.dev/ns/demo/sa/reader"
TENANT_KEY = "bench-tenant-key"

#: label -> (TLS, JWT, tenant binding + fair share)
ARMS: dict[str, tuple[bool, bool, bool]] = {
    "plaintext, no caller auth": (False, False, False),
    "mTLS + policy": (True, False, False),
    "mTLS + JWT + policy": (True, True, False),
    "mTLS + JWT + policy + tenant + share": (True, True, True),
}


def write_material(directory: Path) -> tuple[str, str]:
    """Dev certificates, a JWKS, a token and the policies; (token, jwks path)."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_certs.py"), str(directory)],
        check=True,
        capture_output=True,
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench-1", use="sig")
    (directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench-1"})
    callers = [READER, f"jwt:{SUBJECT}"]
    grants = [{"principals": callers, "permissions": ["openframe.*", "octospine.*"]}]
    (directory / "policy.yaml").write_text(yaml.safe_dump({"grants": grants}))
    tenant = {
        "grants": grants,
        "tenants": [{"principals": callers, "credentials": {"openframe": "bench_tenant"}}],
        # A share no run reaches (99% of 10^8 a minute): what is measured is its bookkeeping.
        "quotas": [{"principals": callers, "max_share": 0.99}],
    }
    (directory / "policy-tenant.yaml").write_text(yaml.safe_dump(tenant))
    return token, str(directory / "jwks.json")


def adapter_env(
    upstream: str, port: int, certs: Path, *, tls: bool, use_jwt: bool, tenant: bool
) -> dict[str, str]:
    env = {
        **os.environ,
        "MESH_LOG_LEVEL": "ERROR",
        "MESH_GRPC__PORT": str(port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_WORKERS": "1",  # one process: its CPU is what is measured
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": upstream,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": KEY,
        # A limiter in every row (a quota no run reaches), so the tenant row adds only
        # the fair share above it and the router; the cache is off (every call goes out).
        "MESH_UPSTREAMS__OPENFRAME__RESILIENCE__RATE_LIMIT__REQUESTS_PER_WINDOW": "100000000",
        "MESH_UPSTREAMS__OPENFRAME__RESILIENCE__CACHE__ENABLED": "false",
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": upstream,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": KEY,
    }
    if tls:
        env.update(
            {
                "MESH_SECURITY__TLS__CERT_FILE": str(certs / "server.pem"),
                "MESH_SECURITY__TLS__KEY_FILE": str(certs / "server-key.pem"),
                "MESH_SECURITY__TLS__CLIENT_CA_FILE": str(certs / "ca.pem"),
                "MESH_SECURITY__POLICY_FILE": str(
                    certs / ("policy-tenant.yaml" if tenant else "policy.yaml")
                ),
            }
        )
    if use_jwt:
        env.update(
            {
                "MESH_SECURITY__JWT__JWKS_FILE": str(certs / "jwks.json"),
                "MESH_SECURITY__JWT__ISSUER": ISSUER,
                "MESH_SECURITY__JWT__AUDIENCES": json.dumps([AUDIENCE]),
            }
        )
    if tenant:
        # The simulator accepts only its own key: the tenant's set carries the same key
        # under another name, which is what is measured (a separate stack, routed to).
        env["MESH_UPSTREAMS__OPENFRAME__CREDENTIAL_SETS__BENCH_TENANT__API_KEY"] = KEY
    return env


def channel_to(port: int, certs: Path, *, tls: bool) -> grpc.aio.Channel:
    target = f"127.0.0.1:{port}"
    if not tls:
        return grpc.aio.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / "reader-key.pem").read_bytes(),
        certificate_chain=(certs / "reader.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def running_adapter(env: dict[str, str], port: int, certs: Path, *, tls: bool) -> AsyncIterator[int]:
    """Yields the adapter's pid once it is healthy."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapter", cwd=ROOT, env=env)
    try:
        async with channel_to(port, certs, tls=tls) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(300):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == 1:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the adapter did not become healthy")
        yield proc.pid
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


Row = tuple[str, int, float, float, float, float]  # label, conc, req/s, p50, p99, CPU us per call


async def main(seconds: float, levels: list[int]) -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        certs = Path(tmp)
        token, _ = write_material(certs)
        async with simulator() as upstream:
            for label, (tls, use_jwt, tenant) in ARMS.items():
                port = listen_port()
                env = adapter_env(upstream, port, certs, tls=tls, use_jwt=use_jwt, tenant=tenant)
                metadata: Any = (("authorization", f"Bearer {token}"),) if use_jwt else None
                async with (
                    running_adapter(env, port, certs, tls=tls) as pid,
                    channel_to(port, certs, tls=tls) as channel,
                ):
                    stub = devices_pb2_grpc.DeviceServiceStub(channel)
                    request = devices_pb2.GetDeviceRequest(device_id="dev_001")
                    calls = [0]

                    async def call(
                        stub: devices_pb2_grpc.DeviceServiceAsyncStub = stub,
                        request: devices_pb2.GetDeviceRequest = request,
                        metadata: Any = metadata,
                        calls: list[int] = calls,
                    ) -> object:
                        calls[0] += 1
                        return await stub.GetDevice(request, timeout=10, metadata=metadata)

                    for c in levels:
                        calls[0], cpu = 0, cpu_seconds(pid)
                        rps, p50, p99 = await measure(call, c, seconds)
                        per_call = (cpu_seconds(pid) - cpu) / calls[0] * 1e6
                        rows.append((label, c, rps, p50, p99, per_call))
    plain = {c: cpu for name, c, *_, cpu in rows if name == next(iter(ARMS))}
    print(
        f"\nGetDevice, {seconds:.0f} s per row (client, adapter and simulator in separate processes, 2 cores)"
    )
    header = f"{'caller security':<38} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'CPU us/call':>11} {'added us':>8}")
    for name, c, rps, p50, p99, cpu in rows:
        line = f"{name:<38} {c:>4} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}"
        print(f"{line} {cpu:>11.0f} {cpu - plain[c]:>8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    if os.environ.get("BENCH_SMOKE") == "1":
        args.seconds = 0.3
    asyncio.run(main(args.seconds, [int(c) for c in args.concurrency.split(",")]))
