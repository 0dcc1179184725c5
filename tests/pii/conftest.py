"""Helpers for the PII tests: words with made-up times, and one shared detector per test session."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bleepline.pii.detector import SpokenPiiDetector
from bleepline.timeline import PiiSpan, Word

STEP = 0.4  # seconds from one word's start to the next


def words(text: str, start: float = 0.0, step: float = STEP, final: bool = True) -> list[Word]:
    """One Word per space-separated chunk, ``step`` apart, each lasting three quarters of a step."""
    return [
        Word(start + k * step, start + k * step + 0.75 * step, chunk, final=final)
        for k, chunk in enumerate(text.split(" "))
    ]


def entities(spans: Sequence[PiiSpan]) -> list[str]:
    return [span.entity for span in spans]


def covering(spans: Sequence[PiiSpan], word: Word) -> list[PiiSpan]:
    """The spans that cover all of ``word``."""
    return [span for span in spans if span.start <= word.start and word.end <= span.end]


@pytest.fixture(scope="session")
def detector() -> SpokenPiiDetector:
    # Loading spaCy and Presidio costs ~1.5 s: once per session, shared as in production.
    return SpokenPiiDetector()
