"""The operator's-view tests run whole adapters with events on: the event tests'
topic prefix fixture (topics deleted afterwards)."""

from __future__ import annotations

from ..events.conftest import prefix

__all__ = ["prefix"]
