"""The health board: parts push whether they serve; readers follow.

Health is pushed, not polled: a part calls :meth:`HealthBoard.set` when its state
changes (a stream FAILED, Kafka failing, a task died), and every listener (the
gRPC health servicer, ``/readyz``, metrics) hears it at once. Names are the
gRPC health service names: ``""`` (the whole server), each served service,
``meshadapter.events.<upstream>`` per stream, ``meshadapter.v1.EventService``...
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["HealthBoard"]

logger = logging.getLogger(__name__)

Listener = Callable[[str, bool], None]


class HealthBoard:
    """Name -> serving, with the reason of the last NOT_SERVING."""

    def __init__(self) -> None:
        self._serving: dict[str, bool] = {}
        self._why: dict[str, str] = {}
        self._listeners: list[Listener] = []

    def set(self, name: str, serving: bool, why: str = "") -> None:
        if self._serving.get(name) is serving:
            if not serving and why:
                self._why[name] = why  # a newer reason for the same state: no news for listeners
            return
        self._serving[name] = serving
        self._why[name] = "" if serving else why
        if not serving:
            logger.warning("health: %s NOT_SERVING%s", name or "<server>", f" ({why})" if why else "")
        elif name in self._why:
            logger.info("health: %s SERVING", name or "<server>")
        for listener in list(self._listeners):
            try:
                listener(name, serving)
            except Exception:  # one broken reader must not stop the others
                logger.exception("health listener failed")

    def listen(self, listener: Listener) -> None:
        """Calls ``listener(name, serving)`` now for every known name, then on each change."""
        self._listeners.append(listener)
        for name, serving in list(self._serving.items()):
            listener(name, serving)

    def serving(self, name: str) -> bool | None:
        return self._serving.get(name)

    def snapshot(self) -> dict[str, bool]:
        return dict(self._serving)

    def why(self, name: str) -> str:
        return self._why.get(name, "")
