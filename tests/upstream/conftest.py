"""Fixtures of the upstream tests."""

from tests.upstream.scripted_server import served  # noqa: F401 (a fixture, used by name)
