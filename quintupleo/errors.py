"""One hierarchy of errors; each says what went wrong and what to do next."""

from __future__ import annotations

from pathlib import Path


class QuintupleOError(Exception):
    """Base of every error a user may see."""


class DevcloudError(QuintupleOError):
    """The local cloud could not be installed, started or stopped."""

    def __init__(self, message: str, *, service: str | None = None,
                 log: Path | None = None, hint: str | None = None) -> None:
        self.service = service
        self.log = log
        self.hint = hint
        parts = [f"{service}: {message}" if service else message]
        if log is not None:
            parts.append(f"log: {log}")
        if hint:
            parts.append(hint)
        super().__init__("\n".join(parts))
