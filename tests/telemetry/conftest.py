"""The operator's-view tests run whole adapters with events on: the event tests'
topic prefix fixture (topics deleted afterwards). The exporter tests share a real
OTLP collector."""

from __future__ import annotations

from ..events.conftest import prefix
from .otlp_collector import collector

__all__ = ["collector", "prefix"]
