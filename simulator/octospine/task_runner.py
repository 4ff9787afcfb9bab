"""Background runs of created tasks: pending -> running (progress steps) -> completed.

Each change is stored and pushed as a `task.progress` event; the end sends a
`task.completed` (or `task.failed`) webhook. A task whose ``parameters.simulate_failure`` is
true fails after its first half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from simulator.errors import ApiError
from simulator.events import EventHub
from simulator.resources import ResourceService
from simulator.wire import JsonObject, now_timestamp

logger = logging.getLogger(__name__)

WebhookEmitter = Callable[[str, JsonObject], object]


class TaskRunner:
    """Runs tasks in the background; `stop` ends a run (cancel, delete, shutdown)."""

    def __init__(
        self,
        tasks: ResourceService,
        hub: EventHub,
        emit_webhook: WebhookEmitter,
        *,
        duration_s: float,
        steps: int,
    ) -> None:
        self._tasks = tasks
        self._hub = hub
        self._emit_webhook = emit_webhook
        self._duration_s = duration_s
        self._steps = max(1, steps)
        self._runs: dict[str, asyncio.Task[None]] = {}

    def start(self, task_id: str) -> None:
        """Starts running a stored task (announcing it as pending)."""
        self.announce(self._tasks.get(task_id))
        run = asyncio.create_task(self._run(task_id), name=f"task-run-{task_id}")
        self._runs[task_id] = run
        run.add_done_callback(lambda _: self._runs.pop(task_id, None))

    def stop(self, task_id: str) -> None:
        """Stops a run without touching the stored task."""
        run = self._runs.pop(task_id, None)
        if run is not None:
            run.cancel()

    @property
    def running(self) -> list[str]:
        """Ids of tasks with a run in progress."""
        return list(self._runs)

    async def close(self) -> None:
        """Stops every run and waits for them to end (idempotent)."""
        runs = list(self._runs.values())
        self._runs.clear()
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def announce(self, task: JsonObject) -> None:
        """Pushes the task's status and progress as a `task.progress` event."""
        data = {"task_id": task["id"], "status": task["status"], "progress": task["progress"]}
        self._hub.publish("task.progress", "task.progress", data)

    def _progress(self, task_id: str, **fields: object) -> JsonObject:
        task = self._tasks.replace_fields(task_id, fields)
        self.announce(task)
        return task

    async def _run(self, task_id: str) -> None:
        delay = self._duration_s / (self._steps + 2)
        try:
            await asyncio.sleep(delay)
            self._progress(task_id, status="running", progress=0, started_at=now_timestamp())
            parameters = self._tasks.get(task_id).get("parameters") or {}
            fail_at = self._steps // 2 + 1 if parameters.get("simulate_failure") else None
            for step in range(1, self._steps + 1):
                await asyncio.sleep(delay)
                if step == fail_at:
                    task = self._progress(
                        task_id,
                        status="failed",
                        error="simulated failure",
                        completed_at=now_timestamp(),
                    )
                    self._emit_webhook("task.failed", task)
                    return
                self._progress(task_id, progress=step * 100 // (self._steps + 1))
            await asyncio.sleep(delay)
            result = {"records_processed": 100 * self._steps, "duration_s": self._duration_s}
            task = self._progress(
                task_id,
                status="completed",
                progress=100,
                result=result,
                completed_at=now_timestamp(),
            )
            self._emit_webhook("task.completed", task)
        except ApiError:
            logger.debug("task %s vanished during its run", task_id)
        except Exception:  # a bug here must not kill the simulator silently
            logger.exception("task %s run failed", task_id)
