"""The base of every settings model: immutable once read, and unknown keys are errors
(a misspelt key names itself instead of being ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
