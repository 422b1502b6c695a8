"""Errors a user can act on. Each carries the file it concerns and a one-line reason."""
from __future__ import annotations

from pathlib import Path
from typing import Union


class FingerprintError(Exception):
    """Base class: ``str(err)`` is a complete one-line message for the user."""


class MediaError(FingerprintError):
    """A media file cannot be read (missing, not media, truncated, ...)."""

    def __init__(self, path: Union[str, Path], reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever ffmpeg said
        super().__init__(f"{self.path}: {self.reason}")


class IndexFormatError(FingerprintError):
    """An index file is damaged, truncated, of another kind or of another format version."""

    def __init__(self, path: Union[str, Path], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
