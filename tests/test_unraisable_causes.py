"""The suite's own helper: an unraisable failure's summary line names its objects."""

from __future__ import annotations

import pytest

from .unraisable_causes import unraisable_causes


def _warning(where: str, cause: BaseException) -> pytest.PytestUnraisableExceptionWarning:
    warning = pytest.PytestUnraisableExceptionWarning(f"Exception ignored in: {where}\n\ntraceback...")
    warning.__cause__ = cause
    return warning


def test_each_unraisable_warning_of_a_group_is_named_with_its_cause() -> None:
    group = ExceptionGroup(
        "multiple unraisable exception warnings",
        [
            _warning("<AIOKafkaConnection host=127.0.0.1>", ResourceWarning("Unclosed AIOKafkaConnection")),
            _warning("<socket.socket fd=12>", ResourceWarning("unclosed <socket.socket fd=12>")),
            ValueError("not an unraisable warning"),
        ],
    )
    assert unraisable_causes(group) == [
        "Exception ignored in: <AIOKafkaConnection host=127.0.0.1> "
        "(ResourceWarning: Unclosed AIOKafkaConnection)",
        "Exception ignored in: <socket.socket fd=12> (ResourceWarning: unclosed <socket.socket fd=12>)",
    ]
    assert unraisable_causes(_warning("<x>", RuntimeWarning("never awaited"))) == [
        "Exception ignored in: <x> (RuntimeWarning: never awaited)"
    ]
    assert unraisable_causes(AssertionError("a plain failure")) == []
