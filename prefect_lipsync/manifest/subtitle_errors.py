"""The error of a subtitle file that cannot be read, with the line (when known) and the fix."""

from __future__ import annotations


class SubtitleError(ValueError):
    """A subtitle file that cannot be read; `line` (1-based) says where, when known."""

    def __init__(self, message: str, line: int | None, fix: str) -> None:
        self.line = line
        self.fix = fix
        super().__init__(message)
