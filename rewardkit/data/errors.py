"""Errors for bad input data that say where the problem is and what was expected."""

from __future__ import annotations

from rewardkit.errors import RewardkitError


class DataError(RewardkitError, ValueError):
    """A bad record: names the file, the line (or index), the field, and what was expected."""

    def __init__(self, source: str, message: str, field: str | None = None, reason: str | None = None):
        self.source = source
        self.field = field
        self.message = message
        # A short, countable reason ("empty response") used when bad records are skipped instead of raised.
        self.reason = reason or message
        where = f"{source}, field '{field}'" if field else source
        super().__init__(f"{where}: {message}")
