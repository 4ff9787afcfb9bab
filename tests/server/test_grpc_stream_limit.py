"""Why the adapter never ends a call with ``context.abort``: with the pinned grpcio,
calls ended that way can stay counted against the connection's
``grpc.max_concurrent_streams``, until the connection refuses every new call; calls
whose status is set on the context do not (adapter/status/call_ending.py). A plain
grpc.aio server, no adapter code.

When the abort test fails, the pinned grpcio no longer does it (1.80.0 and 1.85.3 do
not; 1.75.1 to 1.78.0 do): abort is then safe again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

LIMIT = 5
CALLS = 12


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    async def ends_with_error(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if request == b"abort":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("no such thing")
        return b""

    handlers = {"Call": grpc.unary_unary_rpc_method_handler(ends_with_error)}
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", LIMIT)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("quirk.Service", handlers),))
    bound = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield bound
    finally:
        await server.stop(0)


async def _codes(port: int, request: bytes) -> list[grpc.StatusCode]:
    codes = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/quirk.Service/Call", None, None)  # bytes as they are
        for _ in range(CALLS):  # one after another: never more than one stream open
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await call(request, timeout=5)
            codes.append(ended.value.code())
    return codes


async def test_calls_ended_with_set_code_free_their_streams(port: int) -> None:
    assert await _codes(port, b"set_code") == [grpc.StatusCode.NOT_FOUND] * CALLS


async def test_calls_ended_with_abort_still_use_up_the_connections_streams(port: int) -> None:
    codes = await _codes(port, b"abort")
    refused = codes.index(grpc.StatusCode.UNAVAILABLE) if grpc.StatusCode.UNAVAILABLE in codes else None
    assert refused is not None, (
        f"grpcio {grpc.__version__} no longer leaks stream slots on abort: "
        "adapter/status/call_ending.py's reason is gone"
    )
    # Once refused, for good: no call of this connection gets through again.
    assert codes[refused:] == [grpc.StatusCode.UNAVAILABLE] * (CALLS - refused)
