"""The end-to-end GraphQL tests run against both simulator profiles."""

from __future__ import annotations

from tests.resilience.harness import start_sim

__all__ = ["start_sim"]
