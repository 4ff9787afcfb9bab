"""Errors of transcoding, each carrying what the caller's status needs."""

from __future__ import annotations

__all__ = ["BindingError"]


class BindingError(ValueError):
    """The caller's request cannot become an upstream call (INVALID_ARGUMENT).

    ``field`` is the request field at fault, as a dotted path.
    """

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description
