from __future__ import annotations

import pytest

from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.timeline import Word


def said(text: str, start: float, step: float = 0.4, final: bool = True) -> list[Word]:
    return [
        Word(start + i * step, start + i * step + 0.3, w, final=final) for i, w in enumerate(text.split())
    ]


@pytest.fixture(scope="module")
def detector() -> SpokenPiiDetector:
    return SpokenPiiDetector()


def test_tentative_words_are_replaced_not_accumulated(detector: SpokenPiiDetector) -> None:
    tracker = SpanTracker(detector)
    tracker.update(said("my card number is", 0.0), said("four one", 1.6, final=False), heard_until=2.4)
    spans = tracker.update([], said("nice weather", 1.6, final=False), heard_until=3.0)
    assert [w.text for w in tracker.words] == ["my", "card", "number", "is", "nice", "weather"]
    assert all(s.source == "cue" for s in spans)


def test_a_number_said_across_updates_becomes_one_growing_span(detector: SpokenPiiDetector) -> None:
    tracker = SpanTracker(detector)
    tracker.update(said("please call me on", 0.0), [], heard_until=1.6)
    first = tracker.update(said("five five five", 1.6), said("zero one", 2.8, final=False), heard_until=3.6)
    later = tracker.update(said("zero one four seven", 2.8), [], heard_until=6.0)
    assert first
    assert first[0].start <= 1.6
    (phone,) = [s for s in later if s.overlaps(1.6, 4.4)]
    assert phone.end >= 4.1  # the span covers the digits that arrived in the later update


def test_old_words_leave_the_context_so_cost_stays_flat(detector: SpokenPiiDetector) -> None:
    tracker = SpanTracker(detector, context_s=10.0)
    for minute in range(6):
        tracker.update(said("so how was your week then", minute * 60.0), [], heard_until=minute * 60.0 + 3)
    assert len(tracker.words) == 6
    assert tracker.update([], [], heard_until=400.0) == []
    assert len(tracker.words) == 0


def test_context_must_be_positive(detector: SpokenPiiDetector) -> None:
    with pytest.raises(ValueError, match="context_s"):
        SpanTracker(detector, context_s=0)
