"""Replicas coordinated through Kafka: stream ownership by consumer-group
membership, and the streams' watermarks in a compacted topic (docs/scaling.md)."""

from __future__ import annotations
