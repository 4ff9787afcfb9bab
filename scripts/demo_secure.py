"""The security half of ``make run SECURE=1`` (used by scripts/demo.py --secure):
throwaway dev certificates in var/dev-certs/ (scripts/dev_certs.py), a policy
for them, the ``security`` settings that turn on mTLS with that policy, and a
short show of who may do what.

The policy: ``reader`` may read every resource, subscribe to every event topic
and use reflection; ``writer`` may also create and update alerts; ``outsider``
holds a valid certificate and no permission.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

# A sibling module: scripts/ is on sys.path when scripts/demo.py runs.
from dev_certs import TRUST_DOMAIN, write_dev_certs
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

__all__ = ["GRPCURL", "POLICY", "prepare", "secure_channel", "show_refusals"]

POLICY = f"""\
# make run SECURE=1: who may call the demo adapter (docs/security.md).
[[grants]]
principals = ["{TRUST_DOMAIN}/reader", "{TRUST_DOMAIN}/writer"]
permissions = ["*.read", "events.*subscribe", "meshadapter.reflection.read"]

[[grants]]
principals = ["{TRUST_DOMAIN}/writer"]
permissions = ["openframe.alerts.write"]
"""

GRPCURL = """\
    C=var/dev-certs   # grpcurl with each demo certificate:
    grpcurl -cacert $C/ca.pem -cert $C/reader.pem -key $C/reader-key.pem localhost:50051 list
    grpcurl -cacert $C/ca.pem -cert $C/reader.pem -key $C/reader-key.pem \\
        -d '{"page_size": 2}' localhost:50051 openframe.v1.DeviceService/ListDevices
    grpcurl -cacert $C/ca.pem -cert $C/writer.pem -key $C/writer-key.pem \\
        -d '{"alert": {"title": "Disk full", "severity": "SEVERITY_HIGH", "device_id": "dev_001"}}' \\
        localhost:50051 openframe.v1.AlertService/CreateAlert
    grpcurl -protoset generated/mesh_adapter.binpb \\
        -cacert $C/ca.pem -cert $C/outsider.pem -key $C/outsider-key.pem \\
        localhost:50051 openframe.v1.DeviceService/ListDevices     # PermissionDenied
    grpcurl -cacert $C/ca.pem localhost:50051 list                # no certificate: the handshake fails"""


def prepare(root: Path) -> dict[str, Any]:
    """Writes the certificates (once) and the policy; returns the ``security`` settings."""
    certs = root / "var" / "dev-certs"
    write_dev_certs(certs)
    policy = certs / "policy.toml"
    policy.write_text(POLICY)
    return {
        "tls": {
            "cert_file": certs / "server.pem",
            "key_file": certs / "server-key.pem",
            "client_ca_file": certs / "ca.pem",
            "client_auth": "require",
        },
        "policy_file": policy,
    }


def secure_channel(root: Path, port: int, client: str) -> grpc.aio.Channel:
    """A channel presenting ``client``'s dev certificate."""
    certs = root / "var" / "dev-certs"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / f"{client}-key.pem").read_bytes(),
        certificate_chain=(certs / f"{client}.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    )


async def show_refusals(root: Path, port: int, say: Any) -> None:
    """What the reader and the outsider are told."""
    async with secure_channel(root, port, "reader") as channel:
        try:
            await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(
                alerts_pb2.CreateAlertRequest(
                    alert=alerts_pb2.Alert(title="x", severity=alerts_pb2.SEVERITY_LOW, device_id="dev_001")
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            say(f"reader: CreateAlert -> {exc.code().name}: {exc.details()}")
    async with secure_channel(root, port, "outsider") as channel:
        try:
            await devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
                devices_pb2.ListDevicesRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            say(f"outsider: ListDevices -> {exc.code().name}: {exc.details()}")
