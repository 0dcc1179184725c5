"""Errors of the audio layer: what was wrong with which file."""

from __future__ import annotations

from pathlib import Path

from bleepline.errors import BleeplineError


class AudioFileError(BleeplineError):
    """An audio file that cannot be read or written; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
