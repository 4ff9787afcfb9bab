"""Every RPC in the protos (enumerated from the descriptors) x hostile requests
(tests/server/hostile_requests.py), through a real channel to the adapter and
the simulator: zero UNKNOWN, zero INTERNAL, each kind with the code it must get,
and the refused ones answered without calling the vendor. Prints the counts."""

from __future__ import annotations

import collections

import grpc
import pytest

from simulator import Simulator

from .hostile import adapter_with_events, call_raw
from .hostile_requests import Hostile, Rpc, every_rpc, hostile_requests

C = grpc.StatusCode
FAST = {"resilience": {"retry": {"max_attempts": 1}, "circuit_breaker": {"enabled": False}}}


@pytest.mark.timeout(300)
async def test_no_hostile_request_gets_unknown_or_internal(simulator: Simulator) -> None:
    rpcs = every_rpc()
    assert len({r.path.split("/")[1] for r in rpcs}) >= 10, "the protos' services were not all found"
    table: list[tuple[Rpc, Hostile, grpc.StatusCode, str]] = []
    async with (
        adapter_with_events(simulator, upstream_extra=FAST) as server,
        grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        ) as channel,
    ):
        for rpc in rpcs:
            for hostile in hostile_requests(rpc):
                sent = len(simulator.requests)
                error = await call_raw(channel, rpc.path, hostile.payload, streaming=rpc.server_streaming)
                code = C.OK if error is None else error.code()
                details = "" if error is None else (error.details() or "")
                if hostile.stays_local:
                    assert len(simulator.requests) == sent, f"{rpc.path} {hostile.kind} reached the vendor"
                table.append((rpc, hostile, code, details))

    counts = collections.Counter(code.name for _, _, code, _ in table)
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, hostile, code, _ in table:
        by_kind[hostile.kind][code.name] += 1
    print(f"\n{len(rpcs)} RPCs x hostile kinds = {len(table)} calls; codes: {dict(sorted(counts.items()))}")
    for kind, codes in sorted(by_kind.items()):
        print(f"  {kind:26s} {dict(sorted(codes.items()))}")

    wrong = [
        f"{rpc.path} {hostile.kind}: {code.name} {details[:120]}"
        for rpc, hostile, code, details in table
        if code not in hostile.allowed
    ]
    assert not wrong, "\n".join(wrong)
    assert counts["UNKNOWN"] == counts["INTERNAL"] == 0
