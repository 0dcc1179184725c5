"""Digits a value resumes after a pause or a few misheard words, and digits just said (``digit_bridges``)."""

from __future__ import annotations

from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.recognizers import BRIDGE_S, LONE_DIGITS_SCORE
from bleepline.timeline import Word
from tests.pii.conftest import covering, words

LATER = BRIDGE_S + 1.0  # heard this long after the last word: nothing can resume what came before


def finished(said: list[Word]) -> float:
    return said[-1].end + LATER


def test_a_card_number_heard_with_misheard_words_in_it_is_one_stretch(detector: SpokenPiiDetector) -> None:
    # "six six" written "Thanks, thanks." in the middle of a cued card number, then more digits: too few
    # after the words to be a value alone, but they are the card's.
    said = words("my card number is 3 3 i Thanks, thanks. 0 0 0 of 2 0 ok")
    spans = detector.detect(said, heard_until=finished(said))
    for word in said[4:15]:
        assert covering(spans, word), word.text


def test_a_word_said_again_and_again_where_digits_repeat_is_bridged(detector: SpokenPiiDetector) -> None:
    said = words("call me on 3 1 2 please, please, please, 0 1 4 7 ok")
    spans = detector.detect(said, heard_until=finished(said))
    for word in said[3:13]:
        assert covering(spans, word), word.text


def test_two_words_are_bridged_only_in_the_time_two_digits_take(detector: SpokenPiiDetector) -> None:
    quick = words("9. You will 8. 7 2 6 3", step=0.3)  # "9 0 1 8 7 2 6 3", the 0 and 1 misheard
    spans = detector.detect(quick, heard_until=finished(quick))
    assert covering(spans, quick[0])
    # After a phone number, "any time after 5" is talk: words over a longer pause bridge nothing.
    said = [*words("call me on 2 0 2 5 5 5 0 1 4 7"), *words("any time after 5.", start=6.0, step=0.6)]
    spans = detector.detect(said, heard_until=finished(said))
    assert not covering(spans, said[-1])
    assert not covering(spans, said[-3])


def test_a_lone_letter_beside_digits_joins_their_value(detector: SpokenPiiDetector) -> None:
    said = words("it expires 1 1 Q thanks")  # "1 1 2 6", the 2 6 heard as a letter
    spans = detector.detect(said, heard_until=finished(said))
    assert covering(spans, said[4])


def test_a_digit_just_said_is_masked_while_a_number_may_follow(detector: SpokenPiiDetector) -> None:
    said = words("it is 9")
    (span,) = detector.detect(said, heard_until=said[-1].end + 0.5)
    assert (span.final, span.score) == (False, LONE_DIGITS_SCORE)
    assert covering([span], said[-1])
    assert detector.detect(said, heard_until=finished(said)) == []  # nothing followed: no value


def test_a_number_that_counts_something_is_never_a_digit_of_a_value(detector: SpokenPiiDetector) -> None:
    assert detector.detect(words("we have two kids"), heard_until=2.0) == []
    said = words("the three digits on the back")
    assert not covering(detector.detect(said, heard_until=3.0), said[1])  # the cue's span starts after it


def test_a_time_or_a_year_is_no_digit_of_an_unannounced_number(detector: SpokenPiiDetector) -> None:
    said = words("the meeting is at nine thirty in room four")
    assert detector.detect(said, heard_until=finished(said)) == []
