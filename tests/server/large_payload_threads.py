"""The large-payload worker's threads, for tests that check which thread did the work."""

from __future__ import annotations

import threading

from adapter.server.large_payloads import THREAD_NAME_PREFIX


def large_payload_threads() -> set[threading.Thread]:
    # The threads themselves, not their idents: a thread that ended may hand its ident (its
    # pthread's address) to the next one, and the new worker then looked like the old one.
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)}
