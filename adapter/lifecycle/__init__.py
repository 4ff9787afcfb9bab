"""How the adapter's parts live: started in order and unwound on failure
(:class:`LifecycleGroup`), background tasks supervised (:class:`Supervisor`),
health pushed by the parts (:class:`HealthBoard`)."""

from __future__ import annotations

from .group import LifecycleGroup, Part, PartFailedToStart, part
from .health import HealthBoard
from .supervisor import Supervisor, TaskPolicy

__all__ = ["HealthBoard", "LifecycleGroup", "Part", "PartFailedToStart", "Supervisor", "TaskPolicy", "part"]
