"""JSON <-> protobuf: the adapter's per-type codec against google.protobuf.json_format,
on the same ~1 KB alert and a 50-item list page, in one run.

    python -m bench.codec
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Mapping

import orjson
from google.protobuf import json_format
from openframe.v1 import alerts_pb2

from adapter.transcoding.json_codec import JsonCodec

ALERT = {
    "id": "alt_0001",
    "title": "Disk almost full on the primary database server",
    "severity": "critical",
    "device_id": "dev_001",
    "description": "Volume C: is at 97% (480 GB of 495 GB). " * 12,
    "status": "open",
    "created_at": "2026-11-25T12:00:00Z",
    "updated_at": "2026-11-25T12:00:00.123Z",
    "metadata": {"volume": "C:", "used_gb": 480, "total_gb": 495, "tags": ["db", "prod"], "site": "fra-1"},
}


def _proto3_json(alert: Mapping[str, object]) -> dict[str, object]:
    """The same alert as json_format expects it (full enum names)."""
    return {**alert, "severity": "SEVERITY_CRITICAL", "status": "ALERT_STATUS_OPEN"}


def _per_call_us(fn: object, number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    codec = JsonCodec()
    raw = orjson.dumps(ALERT)
    raw_std = orjson.dumps(_proto3_json(ALERT))
    page = orjson.dumps({"alerts": [ALERT] * 50})
    page_std = orjson.dumps({"alerts": [_proto3_json(ALERT)] * 50})
    message = codec.decode(alerts_pb2.Alert, orjson.loads(raw))
    listing = codec.decode(alerts_pb2.ListAlertsResponse, orjson.loads(page))
    n = 200 if os.environ.get("BENCH_SMOKE") == "1" else 20000
    rows = [
        (
            f"decode 1 alert ({len(raw)} B)",
            _per_call_us(lambda: codec.decode(alerts_pb2.Alert, orjson.loads(raw)), n),
            _per_call_us(lambda: json_format.Parse(raw_std, alerts_pb2.Alert()), n),
        ),
        (
            "encode 1 alert",
            _per_call_us(lambda: orjson.dumps(codec.encode(message)), n),
            _per_call_us(lambda: json_format.MessageToJson(message, preserving_proto_field_name=True), n),
        ),
        (
            f"decode 50-alert page ({len(page) // 1024} KB)",
            _per_call_us(lambda: codec.decode(alerts_pb2.ListAlertsResponse, orjson.loads(page)), n // 50),
            _per_call_us(lambda: json_format.Parse(page_std, alerts_pb2.ListAlertsResponse()), n // 50),
        ),
        (
            "encode 50-alert page",
            _per_call_us(lambda: orjson.dumps(codec.encode(listing)), n // 50),
            _per_call_us(
                lambda: json_format.MessageToJson(listing, preserving_proto_field_name=True), n // 50
            ),
        ),
    ]
    print(f"{'operation':<34} {'mesh-adapter codec':>19} {'json_format':>12} {'speed-up':>9}")
    for name, ours, theirs in rows:
        print(f"{name:<34} {ours:>16.1f} us {theirs:>9.1f} us {theirs / ours:>8.1f}x")


if __name__ == "__main__":
    main()
