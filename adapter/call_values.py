"""Values made on every call: frozen to the type checker, plain slots at run time.

A ``@dataclass(frozen=True)`` builds each instance through ``object.__setattr__``,
one call per field, because its own ``__setattr__`` refuses; a plain slots class
stores each field with one bytecode. An upstream-backed call builds four such
values (the bound request, the upstream request, the transport's answer and the
upstream response, 25 fields): side by side (``bench.peer.side_by_side``) a call
costs 0.968x the CPU with these at c=16 and 0.961x at c=64 (docs/benchmarks.md,
"Thirty-eighth stop").

Why they were frozen still holds: the response cache shares one response between
concurrent calls, so no call may change a field. That is now checked where the code
is: :func:`call_value` is a ``dataclass_transform`` whose fields are read-only by
default, so ``mypy --strict`` (``make check``) refuses an assignment to one anywhere
in ``adapter/``, and ``dataclasses.replace`` stays the way to change one. At run time the class is a
slots dataclass with the hash a frozen one has (``unsafe_hash``: by the compared
fields), so it keys dicts and sets as before. ``tests/test_call_values.py`` checks
both halves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

__all__ = ["call_value"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def call_value(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True, slots=True)`` to the type checker, without the
    per-field ``object.__setattr__`` at run time (see the module's docstring)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
