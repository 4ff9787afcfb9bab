"""Stdlib-only helpers for scripts/kafka (no venv, no Kafka client library needed).

probe.py ready HOST PORT   exit 0 and print the cluster id when a broker on HOST:PORT
                           answers a Metadata request listing at least one live
                           (unfenced) broker; exit 1 otherwise (reason on stderr)
probe.py free HOST PORT..  exit 0 when every PORT can be listened on at HOST; else
                           print the busy ones and exit 1
probe.py uuid              print a random Kafka cluster id (base64url UUID, 22 chars)
"""

from __future__ import annotations

import base64
import errno
import socket
import struct
import sys
import uuid

TIMEOUT_S = 3.0
METADATA_API_KEY = 3
# Metadata v4: the oldest version Kafka 4.x still serves (KIP-896 dropped v0-v3) and the
# newest without the flexible (tagged-field) encoding, so it is easy to write by hand.
METADATA_VERSION = 4
CLIENT_ID = b"mesh-adapter-kafka-probe"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode("utf-8")
        self.pos += n
        return s


def ready(host: str, port: int) -> int:
    correlation_id = 7
    body = struct.pack(">ib", -1, 0)  # topics = null (all, none created), no auto-create
    header = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(CLIENT_ID))
    request = header + CLIENT_ID + body
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            r = _Reader(_recv_exact(sock, size))
    except (OSError, ConnectionError) as exc:
        print(f"no answer from {host}:{port}: {exc}", file=sys.stderr)
        return 1
    try:
        if r.take(">i") != correlation_id:
            print("unexpected correlation id in the Metadata response", file=sys.stderr)
            return 1
        r.take(">i")  # throttle_time_ms
        brokers = r.take(">i")
        for _ in range(max(brokers, 0)):
            r.take(">i")  # node_id
            r.string()  # host
            r.take(">i")  # port
            r.string()  # rack
        cluster_id = r.string()
    except (struct.error, UnicodeDecodeError) as exc:
        print(f"{host}:{port} answered, but not like a Kafka broker: {exc}", file=sys.stderr)
        return 1
    if brokers < 1:
        print(f"{host}:{port} answers but lists no live broker yet", file=sys.stderr)
        return 1
    print(cluster_id or "")
    return 0


def free(host: str, ports: list[int]) -> int:
    busy = []
    for port in ports:
        # SO_REUSEADDR like the JVM's server sockets: a port left in TIME_WAIT by a
        # broker that just stopped is fine, a port someone listens on is not.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                sock.listen(1)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.append(port)
    if busy:
        print(" ".join(str(p) for p in busy))
        return 1
    return 0


def new_cluster_id() -> str:
    # Same shape as org.apache.kafka.common.Uuid.randomUuid(): 16 random bytes,
    # base64url without padding, never starting with '-'.
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and raw != bytes(16) and raw != bytes(15) + b"\x01":
            return text


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "ready":
        return ready(argv[1], int(argv[2]))
    if len(argv) >= 3 and argv[0] == "free":
        return free(argv[1], [int(p) for p in argv[2:]])
    if argv == ["uuid"]:
        print(new_cluster_id())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
