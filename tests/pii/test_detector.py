from __future__ import annotations

import subprocess
import sys
from typing import cast

import pytest
from presidio_analyzer import AnalyzerEngine

from bleepline.pii.detector import DetectorOptions, SpokenPiiDetector, merge_spans
from bleepline.pii.errors import PiiDetectorError
from bleepline.timeline import PiiSpan, Word
from tests.pii.conftest import covering, entities, words

PAD = DetectorOptions().padding_s
PAUSE_PAD = DetectorOptions().pause_padding_s  # the end of a span, into a silence
#: Seconds after the last word: longer than any pause that could continue a value (recognizers.BRIDGE_S).
SILENCE = 3.0


def value_words(said: list[Word], value: str) -> list[Word]:
    """The words of ``said`` that read ``value`` (space-separated, first occurrence)."""
    wanted = value.split(" ")
    texts = [word.text for word in said]
    for k in range(len(texts) - len(wanted) + 1):
        if texts[k : k + len(wanted)] == wanted:
            return said[k : k + len(wanted)]
    raise AssertionError("value not in the words")


def finished(said: list[Word]) -> float:
    """``heard_until`` for an utterance followed by a long silence."""
    return said[-1].end + SILENCE


def spans_of(detector: SpokenPiiDetector, text: str, **kwargs: float) -> list[PiiSpan]:
    said = words(text)
    return detector.detect(said, heard_until=finished(said), **kwargs)


# --- each entity -------------------------------------------------------------------------------------

ENTITY_CASES = [
    (
        "my card number is four one one one one one one one one one one one one one one one thanks",
        "CREDIT_CARD",
        "four one one one one one one one one one one one one one one one",
    ),
    ("it's 4111 1111 1111 1111 thanks", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("4,111,111,111,111,111 is the number", "CREDIT_CARD", "4,111,111,111,111,111"),
    ("the long number on the card is 4111 1111 1111 1112 ok", "CREDIT_CARD", "4111 1111 1111 1112"),
    ("it expires oh four twenty seven and that is all", "CARD_EXPIRY", "oh four twenty seven"),
    (
        "expiry date is the fifth of may twenty twenty six and that is all",
        "CARD_EXPIRY",
        "fifth of may twenty twenty six",
    ),
    ("and the security code is three one nine thank you very much", "CARD_CVV", "three one nine"),
    ("what's the CVV on the back? It's four four one. Thank you very much", "CARD_CVV", "four four one."),
    ("the three digits on the back are one two three thank you so much", "CARD_CVV", "one two three"),
    (
        "you can call me on two zero two five five five zero one four seven any time after five",
        "PHONE_NUMBER",
        "two zero two five five five zero one four seven",
    ),
    ("my phone number is 555-123-4 567 thank you", "PHONE_NUMBER", "555-123-4 567"),
    ("my social security number is 123-45-6789 and that is it", "US_SSN", "123-45-6789"),
    ("my social is 123-45-6,70089 and that is it", "US_SSN", "123-45-6,70089"),
    (
        "my ssn is nine zero zero seven zero four one two three and that is it",
        "US_SSN",
        "nine zero zero seven zero four one two three",
    ),
    (
        "my email is john dot smith at gmail dot com thanks",
        "EMAIL_ADDRESS",
        "john dot smith at gmail dot com",
    ),
    (
        "send it to john dot smith at example dot com please",
        "EMAIL_ADDRESS",
        "john dot smith at example dot com",
    ),
    ("write to john.smith@example.com please", "EMAIL_ADDRESS", "john.smith@example.com"),
    ("my name is Sarah Connor and I need help", "PERSON", "Sarah Connor"),
    ("my name is sarah connor and I need help", "PERSON", "sarah connor"),
    ("Hello, Acme Bank, Sarah speaking, how can I help?", "PERSON", "Sarah"),
    ("hi this is David from the bank", "PERSON", "David"),
    ("call back and ask for... Marvin at the front desk", "PERSON", "Marvin"),
    ("Can I take your name, please? John Smith. Thank you.", "PERSON", "John Smith."),
    ("I spoke to Sarah yesterday about it.", "PERSON", "Sarah"),
    (
        "my last name is Hartley that's hotel alpha romeo tango lima echo yankee thanks",
        "PERSON",
        "Hartley that's hotel alpha romeo tango lima echo yankee",
    ),
    ("let me spell that for you s m i t h is that ok", "PERSON", "s m i t h"),
    (
        "I live at twelve main street apartment four and I need help",
        "ADDRESS",
        "twelve main street apartment four",
    ),
    (
        "What's the delivery address? It's forty two maple avenue springfield six two seven zero four "
        "it's the blue house",
        "ADDRESS",
        "forty two maple avenue springfield six two seven zero four",
    ),
    ("my zip code is nine oh two one oh thank you very much", "ADDRESS", "nine oh two one oh"),
    ("please send it to 42 Maple Avenue by Friday", "ADDRESS", "42 Maple Avenue"),
    (
        "my date of birth is march fifth nineteen eighty four thank you",
        "DATE_TIME",
        "march fifth nineteen eighty four",
    ),
    ("I was born on the 3rd of May 1990 so yes", "DATE_TIME", "3rd of May 1990"),
    ("my IBAN is GB82 WEST 1234 5698 7654 32 thank you", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    (
        "my account number is three oh one seven eight eight two six and the rest",
        "ACCOUNT_NUMBER",
        "three oh one seven eight eight two six",
    ),
    (
        "the sort code is twelve thirty four fifty six thank you very much",
        "ACCOUNT_NUMBER",
        "twelve thirty four fifty six",
    ),
    ("my pin is seven two five nine thank you very much", "PIN", "seven two five nine"),
    ("the passcode is nineteen eighty four thank you very much", "PIN", "nineteen eighty four"),
]


@pytest.mark.parametrize(("text", "entity", "value"), ENTITY_CASES)
def test_each_entity_is_found_and_covers_its_value(
    detector: SpokenPiiDetector, text: str, entity: str, value: str
) -> None:
    said = words(text)
    spans = [span for span in detector.detect(said, heard_until=finished(said)) if span.entity == entity]
    value_span = value_words(said, value)
    assert any(span.start <= value_span[0].start and value_span[-1].end <= span.end for span in spans)


def test_a_cued_value_covers_no_more_than_padding_beyond_it(detector: SpokenPiiDetector) -> None:
    said = words("my pin is seven two five nine thank you very much")
    (span,) = detector.detect(said, heard_until=finished(said))
    assert span.entity == "PIN"
    assert span.source == "cue"
    # From the cue: the words between it and the value may be the value's first digits, misheard.
    assert span.start == pytest.approx(said[1].end - PAD)
    assert span.end == pytest.approx(said[6].end + PAD)  # to the end of "nine"


def test_an_open_cued_value_runs_from_the_cue_until_it_is_over(detector: SpokenPiiDetector) -> None:
    said = words("my pin is seven two five nine thank you very much")
    (span,) = detector.detect(said[:3])  # "my pin is": the value may start with any word
    assert (span.entity, span.final) == ("PIN", False)
    assert span.start == pytest.approx(said[1].end - PAD)  # from the end of the cue "pin"
    assert span.end >= said[2].end
    (span,) = detector.detect(said[:5])  # "... seven two": it has started, and may still go on
    assert (span.entity, span.final) == ("PIN", False)
    assert span.start == pytest.approx(said[1].end - PAD)
    assert span.end >= said[4].end


def test_a_cued_card_number_is_one_span_whatever_its_checksum(detector: SpokenPiiDetector) -> None:
    spans = spans_of(detector, "my card number is 4111 1111 1111 1112 ok")
    assert entities(spans) == ["CREDIT_CARD"]
    assert spans[0].source == "cue"


def test_luhn_valid_card_without_cue_is_a_card_with_high_score(detector: SpokenPiiDetector) -> None:
    (span,) = spans_of(detector, "ok 4111 1111 1111 1111 thanks")
    assert (span.entity, span.source) == ("CREDIT_CARD", "asr")
    assert span.score >= 0.9


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("ok 4821 7730 thanks", "ACCOUNT_NUMBER"),
        ("ok 900 70 4123 thanks", "US_SSN"),
        ("ok 555-123-4567 thanks", "PHONE_NUMBER"),
        ("ok 1 555-123-4567 thanks", "PHONE_NUMBER"),
        ("ok 4111 1111 1111 1112 thanks", "CREDIT_CARD"),
        ("ok four three two one thanks", "PIN"),
    ],
)
def test_an_uncued_digit_run_is_labelled_by_its_length(
    detector: SpokenPiiDetector, text: str, entity: str
) -> None:
    assert entities(spans_of(detector, text)) == [entity]


def test_the_cue_wins_over_the_length_of_the_digits(detector: SpokenPiiDetector) -> None:
    # Ten digits would be a phone number; the cue says what they are.
    assert entities(spans_of(detector, "my account number is 555-123-4567 thanks")) == ["ACCOUNT_NUMBER"]


# --- cues before their value --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("my card number is", "CREDIT_CARD"),
        ("can I have the long number on the card", "CREDIT_CARD"),
        ("and my social security number is", "US_SSN"),
        ("what's your date of birth", "DATE_TIME"),
        ("and the security code is", "CARD_CVV"),
        ("the expiry date is", "CARD_EXPIRY"),
        ("you can call me on", "PHONE_NUMBER"),
        ("my email is", "EMAIL_ADDRESS"),
        ("my name is", "PERSON"),
        ("my account number is", "ACCOUNT_NUMBER"),
        ("and my pin is", "PIN"),
        ("my zip code is", "ADDRESS"),
        ("I live at", "ADDRESS"),
        ("my IBAN is", "IBAN_CODE"),
    ],
)
def test_a_cue_at_the_end_opens_a_span_before_the_value(
    detector: SpokenPiiDetector, text: str, entity: str
) -> None:
    said = words(text)
    spans = detector.detect(said)
    assert entities(spans) == [entity]
    (span,) = spans
    assert span.source == "cue"
    assert not span.final
    assert span.end == pytest.approx(said[-1].end + PAD)


def test_a_cue_span_starts_where_the_cue_ends() -> None:
    exact = SpokenPiiDetector(DetectorOptions(padding_s=0.0))
    said = words("ok my card number is", start=3.0)
    (span,) = exact.detect(said)
    assert span.start == pytest.approx(said[3].end)  # "number" ends "card number"
    assert span.end == pytest.approx(said[4].end)


def test_a_cue_span_stays_open_while_the_value_is_still_coming(detector: SpokenPiiDetector) -> None:
    said = words("my card number is four one one one one")
    (span,) = detector.detect(said)
    assert (span.entity, span.final) == ("CREDIT_CARD", False)
    assert span.end == pytest.approx(said[-1].end + PAD)


def test_a_cue_without_a_value_closes_without_a_span(detector: SpokenPiiDetector) -> None:
    said = words("what's your card number? Sorry, I have to find my wallet first, one moment please")
    assert detector.detect(said, heard_until=finished(said)) == []


def test_a_value_ends_where_the_next_cue_starts(detector: SpokenPiiDetector) -> None:
    said = words(
        "card number 4242 4242 4242 4242 it expires oh four two seven "
        "and the security code is three one nine ok"
    )
    spans = detector.detect(said, heard_until=finished(said))
    assert entities(spans) == ["CREDIT_CARD", "CARD_EXPIRY", "CARD_CVV"]
    card, expiry, cvv = spans
    assert card.end < value_words(said, "oh four two seven")[0].start
    assert expiry.end < value_words(said, "three one nine")[0].start
    assert cvv.start > expiry.end


# --- digit runs growing word by word ------------------------------------------------------------------

CARD = "so it's four one one one one one one one one one one one one one one one thanks"


def test_a_growing_digit_run_becomes_a_span_at_four_digits_and_grows(detector: SpokenPiiDetector) -> None:
    said = words(CARD)
    digits_start = 2
    previous_end = 0.0
    for count in range(1, len(said)):
        spans = detector.detect(said[:count])
        digits = count - digits_start
        if digits < 4:
            assert spans == [], count
            continue
        (span,) = spans
        assert span.start == pytest.approx(said[digits_start].start - PAD)
        assert span.end == pytest.approx(said[count - 1].end + PAD)
        assert span.end > previous_end
        assert not span.final
        previous_end = span.end


def test_a_growing_run_is_labelled_a_card_until_it_can_be_told(detector: SpokenPiiDetector) -> None:
    said = words(CARD)
    growing = detector.detect(said[:8])
    assert entities(growing) == ["CREDIT_CARD"]
    assert growing[0].score < 0.5
    assert detector.detect(said[:18])[0].score >= 0.9  # sixteen digits that pass the checksum


def test_a_run_threshold_is_configurable() -> None:
    strict = SpokenPiiDetector(DetectorOptions(min_run_digits=6))
    said = words(CARD)
    assert strict.detect(said[:7]) == []
    assert entities(strict.detect(said[:8])) == ["CREDIT_CARD"]


def test_a_cued_number_growing_word_by_word_keeps_one_span(detector: SpokenPiiDetector) -> None:
    """From the cue, however far the value has come: its start never moves."""
    said = words("my card number is four one one one one one one one one one one one one one one one")
    starts = []
    for count in range(3, len(said) + 1):
        spans = detector.detect(said[:count])
        assert entities(spans) == ["CREDIT_CARD"]
        starts.append(round(spans[0].start, 6))
        assert spans[0].end == pytest.approx(said[count - 1].end + PAD)
    cue = round(said[2].end - PAD, 6)
    assert starts == [cue] * (len(said) - 2)


def test_mangled_digit_words_inside_a_cued_number_stay_covered(detector: SpokenPiiDetector) -> None:
    said = words("my card number is four one one one ate for won one one one one one one one one thanks bye")
    spans = [
        span for span in detector.detect(said, heard_until=finished(said)) if span.entity == "CREDIT_CARD"
    ]
    digits = value_words(said, "four one one one ate for won one one one one one one one one")
    assert covering(spans, digits[0])
    assert covering(spans, digits[-1])


# --- final and tentative ------------------------------------------------------------------------------


def test_a_closed_span_on_final_words_is_final(detector: SpokenPiiDetector) -> None:
    (span,) = detector.detect(words("my pin is seven two five nine thank you very much"))
    assert span.final


def test_a_span_on_tentative_words_is_not_final(detector: SpokenPiiDetector) -> None:
    said = words("my pin is seven two", final=True) + words(
        "five nine thank you very much", start=2.0, final=False
    )
    (span,) = detector.detect(said)
    assert not span.final


def test_a_span_closed_only_by_a_tentative_word_is_not_final(detector: SpokenPiiDetector) -> None:
    said = words("ok 4111 1111 1111 1111") + words("thanks", start=2.0, final=False)
    (span,) = detector.detect(said)
    assert not span.final  # "thanks" may yet be revised into more digits


def test_a_span_at_the_last_word_is_final_only_after_a_long_silence(detector: SpokenPiiDetector) -> None:
    said = words("ok my pin is seven two five nine")
    assert not detector.detect(said)[0].final
    assert not detector.detect(said, heard_until=said[-1].end + 0.5)[0].final
    assert detector.detect(said, heard_until=finished(said))[0].final


def test_a_long_pause_then_other_words_ends_a_cued_value(detector: SpokenPiiDetector) -> None:
    said = words("my pin is seven two five nine") + words("thank you very much", start=2.8 + 3.0)
    (span,) = detector.detect(said, heard_until=finished(said))
    assert span.entity == "PIN"
    assert span.end == pytest.approx(said[6].end + PAUSE_PAD)


def test_digits_after_a_pause_continue_a_cued_number(detector: SpokenPiiDetector) -> None:
    # Callers pause between the groups of a number, and the recognizer drops words, leaving gaps.
    said = words("call me on five five five") + words("one two three four thanks bye now", start=1.6 + 2.5)
    spans = detector.detect(said, heard_until=finished(said))
    assert entities(spans) == ["PHONE_NUMBER"]
    assert covering(spans, said[3])
    assert covering(spans, said[9])


def test_a_pause_after_a_cue_is_masked_when_no_value_follows(detector: SpokenPiiDetector) -> None:
    # The recognizer lost what was said after "my email is": the pause where it was is masked.
    said = words("and my email is") + words("great thank you", start=1.6 + 3.0)
    (span,) = detector.detect(said, heard_until=finished(said))
    assert (span.entity, span.source) == ("EMAIL_ADDRESS", "cue")
    assert span.start == pytest.approx(said[3].end - PAD)  # after "my email is"
    assert span.end == pytest.approx(said[4].start + PAD)  # until "great"


def test_silence_after_a_cue_is_masked_while_it_lasts(detector: SpokenPiiDetector) -> None:
    said = words("my card number is")
    (span,) = detector.detect(said, heard_until=said[-1].end + 3.0)
    assert (span.entity, span.source, span.final) == ("CREDIT_CARD", "cue", False)
    assert span.end == pytest.approx(said[-1].end + 3.0 + PAD)


def test_silence_after_a_cue_is_masked_no_longer_than_the_value_could_take(
    detector: SpokenPiiDetector,
) -> None:
    said = words("and the security code is")
    (span,) = detector.detect(said, heard_until=said[-1].end + 60.0)
    # Five seconds is the longest a CVV takes; the silence after that is padded like any other.
    assert span.end == pytest.approx(said[-2].end + 5.0 + PAUSE_PAD)


def test_a_name_and_its_spelling_are_one_span(detector: SpokenPiiDetector) -> None:
    said = words("my last name is Hartley that's hotel alpha romeo tango line echo yankee and that's it ok")
    spans = [span for span in detector.detect(said, heard_until=finished(said)) if span.entity == "PERSON"]
    value = value_words(said, "Hartley that's hotel alpha romeo tango line echo yankee")
    assert covering(spans, value[0])
    assert covering(spans, value[-1])


MANGLED_SPELLINGS = [
    # Letters said by their names ("are", "oh", "ess"), each named by a word that starts with it.
    (
        "my last name is Ross are for robert oh for oliver ess for sam and that's it",
        "Ross are for robert oh for oliver ess for sam",
    ),
    # Letters misheard as short words, named by NATO words, starting past the words that may follow a name.
    (
        "my first name is Nadia and go for november and for alpha thanks",
        "Nadia and go for november and for alpha",
    ),
    # "as in", and a letter's name before a NATO word.
    (
        "my name is Greer, are as in robert, ee as in echo, thank you",
        "Greer, are as in robert, ee as in echo,",
    ),
    # Letters named by misheard words, with an article put in; "S" starts the spelling, not the name.
    ("my first name is Sam S for the air M for the mic okay", "Sam S for the air M for the mic"),
    # "b for" heard as "before", and "like".
    ("my first name is Noor en for nancy before bravo oh like oscar okay", "Noor en for nancy before bravo"),
]


@pytest.mark.parametrize(("text", "value"), MANGLED_SPELLINGS)
def test_a_name_and_its_spelling_are_one_span_however_the_letters_were_heard(
    detector: SpokenPiiDetector, text: str, value: str
) -> None:
    said = words(text)
    spans = detector.detect(said, heard_until=finished(said))
    assert entities(spans) == ["PERSON"]
    first, *_, last = value_words(said, value)
    assert covering(spans, first)
    assert covering(spans, last)


def test_letters_named_after_a_spell_cue_are_a_span(detector: SpokenPiiDetector) -> None:
    said = words("can you spell that? sure, are for robert, oh for oliver, ess for sam. thanks")
    spans = detector.detect(said, heard_until=finished(said))
    assert entities(spans) == ["PERSON"]
    first, *_, last = value_words(said, "are for robert, oh for oliver, ess for sam.")
    assert covering(spans, first)
    assert covering(spans, last)


@pytest.mark.parametrize(
    ("text", "name", "after"),
    [
        ("This is Tom, thank you for using our service today", "Tom,", "using"),
        ("my name is Tom and I'm calling for my wife today", "Tom", "wife"),
        ("my name is Jay you for using the app", "Jay", "using"),
        ("my name is Ana, see for yourself what I mean", "Ana,", "yourself"),
    ],
)
def test_words_after_a_name_that_only_look_like_a_spelling_are_not_masked(
    detector: SpokenPiiDetector, text: str, name: str, after: str
) -> None:
    said = words(text)
    spans = detector.detect(said, heard_until=finished(said))
    assert covering(spans, value_words(said, name)[0])
    assert not covering(spans, value_words(said, after)[0])


# --- padding and merging ---------------------------------------------------------------------------------


def test_spans_are_padded_and_clamped_at_zero() -> None:
    wide = SpokenPiiDetector(DetectorOptions(padding_s=0.5))
    said = words("4111 1111 1111 1111 thanks", start=0.1)
    (span,) = wide.detect(said)
    assert span.start == 0.0
    assert span.end == pytest.approx(said[3].end + 0.5)


def test_a_span_ends_further_into_a_pause_than_into_speech(detector: SpokenPiiDetector) -> None:
    # Whisper ends the last word before a pause early, by up to ~0.4 s on the evaluation calls.
    said = words("you can ask for Priya") + words("thanks", start=1.6 + 1.5)
    (span,) = detector.detect(said, heard_until=finished(said))
    assert span.entity == "PERSON"
    assert span.end == pytest.approx(said[4].end + PAUSE_PAD)


def test_a_span_end_in_a_pause_stops_at_the_next_word(detector: SpokenPiiDetector) -> None:
    pause = (PAD + PAUSE_PAD) / 2
    said = words("you can ask for Priya") + words("thanks", start=1.6 + 0.3 + pause)
    (span,) = detector.detect(said, heard_until=finished(said))
    assert span.end == pytest.approx(said[5].start)


def test_a_span_end_reaches_only_into_the_silence_heard(detector: SpokenPiiDetector) -> None:
    said = words("ok the reference is 4821 7730")
    heard = (PAD + PAUSE_PAD) / 2
    (span,) = detector.detect(said, heard_until=said[-1].end + heard)
    assert span.source == "asr"
    assert span.end == pytest.approx(said[-1].end + heard)
    (span,) = detector.detect(said, heard_until=said[-1].end + 0.1)
    assert span.end == pytest.approx(said[-1].end + PAD)


def test_an_open_cued_value_reaches_all_that_was_heard(detector: SpokenPiiDetector) -> None:
    """What was said since the last word may be more of the value, not written yet or missed."""
    said = words("you can ask for Priya")
    (span,) = detector.detect(said, heard_until=said[-1].end + 1.0)
    assert (span.source, span.final) == ("cue", False)
    assert span.end == pytest.approx(said[-1].end + 1.0 + PAD)


def test_overlapping_spans_of_one_entity_merge() -> None:
    spans = merge_spans(
        [
            PiiSpan(1.0, 3.0, "CREDIT_CARD", 0.4, final=True, source="asr"),
            PiiSpan(2.5, 5.0, "CREDIT_CARD", 0.8, final=False, source="cue"),
            PiiSpan(4.0, 6.0, "PHONE_NUMBER", 0.6, final=True),
            PiiSpan(7.0, 8.0, "CREDIT_CARD", 0.9, final=True),
        ]
    )
    assert spans == [
        PiiSpan(1.0, 5.0, "CREDIT_CARD", 0.8, final=False, source="cue"),
        PiiSpan(4.0, 6.0, "PHONE_NUMBER", 0.6, final=True),
        PiiSpan(7.0, 8.0, "CREDIT_CARD", 0.9, final=True),
    ]


def test_two_runs_a_word_apart_merge_once_padded(detector: SpokenPiiDetector) -> None:
    spans = spans_of(detector, "ok 4821 and 7730 thanks")
    assert len(spans) == 1


# --- what is not personal ------------------------------------------------------------------------------

NOT_PERSONAL = [
    "So, how was your week? Busy. I have two kids, so mornings are hectic.",
    "The meeting is at nine thirty in room four.",
    "The meeting is at three o'clock.",
    "The tickets were about a hundred dollars, same as in twenty twenty four.",
    "We moved here in twenty twenty four.",
    "We moved here in 2024.",
    "It cost fifteen hundred dollars.",
    "I paid 1,500 dollars for it.",
    "There were two thousand people there.",
    "The flight leaves at ten thirty and lands at twelve fifteen.",
    "Give me five to ten minutes.",
    "It takes two to three weeks.",
    "I want to go for a walk.",
    "Oh I see, that makes sense.",
    "Thanks for calling, how can I help you today?",
    "Let me check on that for you.",
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country.",
    "I booked a hotel in India for my holiday.",
    "Great, I'll send the confirmation there.",
    "This is great, thank you so much.",
    "Who am I speaking with today?",
    "Is there anything else I can help you with?",
    "Public speaking is hard for me.",
    "We have three hundred and fifty customers in room four twelve.",
]


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_ordinary_speech_gives_no_spans(detector: SpokenPiiDetector, text: str) -> None:
    assert spans_of(detector, text) == []


def test_a_year_at_the_end_of_a_sentence_gives_no_span_even_before_silence(
    detector: SpokenPiiDetector,
) -> None:
    assert detector.detect(words("same as in twenty twenty four.")) == []


def test_a_year_still_being_said_is_masked_until_it_ends(detector: SpokenPiiDetector) -> None:
    # "two zero two five" could be the start of a phone number until the words say otherwise.
    said = words("call two zero two five")
    assert entities(detector.detect(said)) == ["CREDIT_CARD"]


# --- safety: no raw text in errors -------------------------------------------------------------------


class _BrokenAnalyzer:
    def analyze(self, **kwargs: object) -> list[object]:
        raise ValueError(f"cannot read {kwargs['text']}")


def test_an_analyzer_failure_is_a_detector_error_without_the_words() -> None:
    broken = SpokenPiiDetector(analyzer=cast(AnalyzerEngine, _BrokenAnalyzer()))
    with pytest.raises(PiiDetectorError) as caught:
        broken.detect(words("my name is John Smith"))
    assert "John" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_no_words_give_no_spans(detector: SpokenPiiDetector) -> None:
    assert detector.detect([]) == []
    assert detector.detect([Word(0.0, 0.5, " ... ")]) == []


@pytest.mark.parametrize(
    "options",
    [
        {"padding_s": -0.1},
        {"pause_padding_s": -0.1},
        {"min_run_digits": 0},
        {"max_gap_s": -1.0},
        {"mangled_tokens": -1},
    ],
)
def test_impossible_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="detector option"):
        DetectorOptions(**options)  # type: ignore[arg-type]


def test_importing_the_detector_does_not_load_spacy_or_presidio() -> None:
    # Commands that never detect anything must not pay ~1.5 s of imports.
    code = (
        "import sys, bleepline.pii.detector; "
        "print('spacy' in sys.modules, 'presidio_analyzer' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["False", "False"]
