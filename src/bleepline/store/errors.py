"""Errors of the store layer: keys that cannot be used and recordings that do not verify."""

from __future__ import annotations

from pathlib import Path

from bleepline.errors import BleeplineError


class StoreError(BleeplineError):
    """Something wrong with a key file or a recording; the message names the file."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class KeyFileError(StoreError):
    """A key file that is missing, malformed, of the wrong kind, or locked with another passphrase."""


class RecordingFormatError(StoreError):
    """A file that is not a .bleep recording, or one of a version this build does not know."""


class NotARecipientError(StoreError):
    """The identity given is not one the recording was encrypted to."""


class RecordingIntegrityError(StoreError):
    """A recording whose bytes were modified, reordered or duplicated; nothing in it can be trusted
    beyond the chunks already verified."""

    def __init__(self, path: Path, problem: str, verified_chunks: int = 0, verified_samples: int = 0) -> None:
        super().__init__(path, problem)
        self.verified_chunks = verified_chunks
        self.verified_samples = verified_samples


class TruncatedRecordingError(RecordingIntegrityError):
    """A recording that ends before its final chunk (the writer was killed, or the disk filled up)."""


class RecordingWriteError(StoreError):
    """The recording could not be written (disk full, permissions)."""


class TranscriptWriteError(StoreError):
    """A transcript file could not be written (missing directory, permissions, disk full)."""
