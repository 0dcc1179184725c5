"""Plain talk: which final words provisional masking may be taken back from, and which never."""

from __future__ import annotations

import pytest

from bleepline.pii.plain import Talk, classify, might_be_value
from bleepline.timeline import Word


def said(text: str) -> list[Word]:
    return [Word(0.3 * i, 0.3 * i + 0.25, token) for i, token in enumerate(text.split())]


def kinds(text: str) -> list[Talk]:
    return classify(said(text))


P, V, U = Talk.PLAIN, Talk.VALUE, Talk.UNKNOWN


def test_cue_words_and_fillers_are_plain() -> None:
    assert kinds("and my card number is, uh, it's") == [P] * 7


@pytest.mark.parametrize("word", ["4", "4111,", "four", "twenty-one", "double", "fifth", "May", "x-ray"])
def test_anything_a_number_a_date_or_a_spelling_is_made_of_is_a_value(word: str) -> None:
    assert kinds(f"it is {word} okay")[2] is V


@pytest.mark.parametrize("letter", ["J", "k.", "Z"])
def test_a_letter_is_a_value(letter: str) -> None:
    assert kinds(f"spelled {letter} then")[1] is V


def test_a_and_i_are_everyday_words() -> None:
    assert kinds("is a bit and I think") == [P, P, U, P, P, U]


def test_a_sound_alike_is_a_digit_only_beside_digits() -> None:
    assert kinds("ask for Marvin") == [P, P, V]
    assert kinds("four for two") == [V, V, V]
    assert kinds("four oh two") == [V, V, V]
    assert kinds("you want to go") == [P, U, P, P]


def test_a_number_that_counts_digits_is_plain() -> None:
    assert kinds("the three digits on the back") == [P] * 6
    assert kinds("a four digit pin") == [P, P, P, P]
    assert kinds("it is three two") == [P, P, V, V]


def test_a_capital_inside_a_sentence_may_be_a_name_but_not_at_its_start() -> None:
    assert kinds("this is Jackson speaking") == [P, P, V, P]
    assert kinds("Thanks. Jackson speaking") == [P, U, P]  # a sentence start: no evidence either way
    assert kinds("1111 It expires") == [V, P, P]  # Whisper capitalises a sentence it did not close


def test_a_word_nobody_knows_is_unknown_and_never_plain() -> None:
    assert kinds("prep prep") == [U, U]


def test_might_be_value_needs_no_context() -> None:
    assert might_be_value(Word(0, 1, "someone@example.com"), None)
    assert not might_be_value(Word(0, 1, "hello"), None)


def test_an_everyday_word_beside_a_digit_may_be_a_misheard_digit() -> None:
    # Whisper wrote the "two" of "... on two, five, five" as "I'm" on a live call.
    assert kinds("call me on I'm 5, 5") == [P, P, P, U, V, V]
    assert kinds("my number is 5 5 5 thanks") == [P, P, P, V, V, V, P]  # fillers and thanks stay plain
    assert kinds("I'm ringing about it") == [P, U, P, P]  # nowhere near a value: "I'm" is plain


def test_everyday_numbers_are_number_words_short_numerals_years_times_and_amounts() -> None:
    from bleepline.pii.plain import is_everyday_number

    def everyday(text: str) -> bool:
        return is_everyday_number(Word(0.0, 0.3, text))

    assert all(everyday(t) for t in ("four", "twenty-four", "4", "30.", "2024", "9:30", "$100", "100%"))
    # A numeral of three or more digits otherwise is how Whisper writes a code or a group read out.
    assert not any(everyday(t) for t in ("737", "014", "4111", "1,500", "Mr.", "five-ish"))
