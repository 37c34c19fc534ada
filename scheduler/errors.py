"""Errors raised while turning a `task` row into something schedulable."""

from __future__ import annotations

__all__ = ["RowError"]


class RowError(ValueError):
    """A task row cannot be scheduled; `column` names the field."""

    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"{column}: {reason}")
