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
        # Judged without the words' loose edges (1.7-3.8 is long enough), masked out to the words' own
        # edges: a lost word's onset and tail may lie in those edges.
        pytest.approx((1.5, 4.0)),
        pytest.approx((4.5, 6.0)),  # after the last word to the end of the speech
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


def test_short_wordless_regions_close_together_add_up_to_a_lost_stretch() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2, cluster_gap_s=0.6)
    unheard.add([SpeechRegion(1.0, 1.3), SpeechRegion(1.7, 2.0)], [])  # 0.3 s each, 0.4 s apart
    assert unheard.check(final_until=2.0) == [pytest.approx((1.0, 1.3)), pytest.approx((1.7, 2.0))]


def test_a_lost_stretch_reported_by_its_cluster_may_lie_in_a_region_checked_before() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2, cluster_gap_s=0.6)
    unheard.add([SpeechRegion(1.0, 1.3)], [])
    assert unheard.check(final_until=1.3) == []  # alone, too short to be a lost word
    unheard.add([SpeechRegion(1.7, 2.0)], [])
    assert unheard.check(final_until=2.0) == [pytest.approx((1.0, 1.3)), pytest.approx((1.7, 2.0))]
    unheard.add([SpeechRegion(2.4, 2.6)], [])  # the run goes on: reported as it comes
    assert unheard.check(final_until=2.6) == [pytest.approx((2.4, 2.6))]


def test_a_word_between_short_regions_breaks_their_cluster() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.1, cluster_gap_s=1.0)
    unheard.add([SpeechRegion(1.0, 1.3), SpeechRegion(1.5, 1.8), SpeechRegion(2.2, 2.5)], words((1.5, 1.8)))
    assert unheard.check(final_until=3.0) == []


def test_the_loose_edge_of_a_region_with_words_never_joins_a_cluster() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.1, cluster_gap_s=0.6)
    # The last word ends 0.3 s before its region's speech does (Whisper ends words early before a
    # pause); the next region starts with 0.3 s before its first word. Two loose edges, not a lost word.
    unheard.add([SpeechRegion(1.0, 2.0), SpeechRegion(2.4, 3.4)], words((1.0, 1.6), (2.8, 3.4)))
    assert unheard.check(final_until=4.0) == []


def test_inside_a_sensitive_stretch_a_short_lost_word_counts() -> None:
    unheard = UnheardSpeech(min_s=0.5, word_margin_s=0.2, min_sensitive_s=0.15)
    unheard.add([SpeechRegion(1.0, 1.3), SpeechRegion(5.0, 5.3)], [])
    assert unheard.check(final_until=6.0, sensitive=[(0.0, 2.0)]) == [pytest.approx((1.0, 1.3))]
