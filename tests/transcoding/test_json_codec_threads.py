"""The codec's lazily built tables, used from two threads (the loop and the large
payload worker, adapter/server/large_payloads.py): a thread never sees a table
another is still building, which would drop the fields not yet in it."""

from __future__ import annotations

import threading

from google.protobuf import descriptor as _d
from google.protobuf.message import Message
from openframe.v1 import devices_pb2

from adapter.transcoding.json_codec import Decode, JsonCodec

DEVICE = {"id": "dev_001", "hostname": "ws-001", "status": "online", "tags": ["a"]}


class _PausingCodec(JsonCodec):
    """Pauses the first build of Device's table after its first field."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()
        self.resume = threading.Event()
        self._fields = 0

    def _field_decoder(self, field: _d.FieldDescriptor) -> Decode:
        if field.containing_type is devices_pb2.Device.DESCRIPTOR and not self.resume.is_set():
            self._fields += 1
            if self._fields == 2:
                self.paused.set()
                self.resume.wait(10)
        return super()._field_decoder(field)


def test_a_table_being_built_is_not_used_by_another_thread() -> None:
    codec = _PausingCodec()
    results: dict[str, Message] = {}

    def decode(name: str) -> None:
        results[name] = codec.decode(devices_pb2.Device, dict(DEVICE))

    builder = threading.Thread(target=decode, args=("builder",))
    builder.start()
    assert codec.paused.wait(10)
    other = threading.Thread(target=decode, args=("other",))
    other.start()
    other.join(0.5)  # it waits for the table (before the fix it decoded with a partial one)
    codec.resume.set()
    builder.join(10)
    other.join(10)
    expected = devices_pb2.Device(
        id="dev_001", hostname="ws-001", status=devices_pb2.DEVICE_STATUS_ONLINE, tags=["a"]
    )
    assert results == {"builder": expected, "other": expected}
