"""Unheard speech: the stretches of speech no final word covers are found once their region is final."""

from __future__ import annotations

import pytest

from bleepline.speech.unheard import UnheardSpeech
from bleepline.speech.vad import SpeechRegion
from bleepline.timeline import Word


def words(*times: tuple[float, float]) -> list[Word]:
    return [Word(start, end, "word") for start, end in times]


def test_speech_with_a_word_all_along_is_heard() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2)
    unheard.add([SpeechRegion(1.0, 4.0)], words((1.0, 1.5), (1.6, 2.4), (2.5, 3.2), (3.3, 4.0)))
    assert unheard.check(final_until=5.0) == []


def test_a_long_stretch_with_no_word_is_unheard() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2)
    unheard.add([SpeechRegion(1.0, 6.0)], words((1.0, 1.5), (4.0, 4.5)))
    assert unheard.check(final_until=6.0) == [
        pytest.approx((1.7, 3.8)),  # between the words, less their loose edges
        pytest.approx((4.7, 6.0)),  # after the last word to the end of the speech
    ]


def test_short_gaps_are_breaths_not_lost_words() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2)
    unheard.add([SpeechRegion(1.0, 3.0)], words((1.0, 1.5), (2.2, 3.0)))  # 0.7 s apart, 0.3 s uncovered
    assert unheard.check(final_until=3.0) == []


def test_a_region_is_checked_only_once_final_and_only_once() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2)
    unheard.add([SpeechRegion(1.0, 3.0)], [])
    assert unheard.check(final_until=2.5) == []  # not final to its end yet: its words may still come
    assert unheard.check(final_until=3.0) == [pytest.approx((1.0, 3.0))]
    assert unheard.check(final_until=4.0) == []


def test_words_arriving_later_still_cover_a_region_not_yet_final() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2)
    unheard.add([SpeechRegion(1.0, 3.0)], [])
    unheard.add([], words((1.0, 3.0)))
    assert unheard.check(final_until=3.0) == []


def test_the_vad_padding_at_a_region_edge_is_not_speech() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2, region_padding_s=0.2)
    unheard.add([SpeechRegion(0.8, 3.6)], words((1.0, 3.0)))  # speech 1.0-3.4: 0.2 s past the word's margin
    assert unheard.check(final_until=4.0) == []
