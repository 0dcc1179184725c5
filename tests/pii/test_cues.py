from __future__ import annotations

import pytest

from bleepline.pii.cues import find_cues


def cues_in(text: str) -> list[tuple[str, str]]:
    return [(match.rule.entity, text[match.start : match.end]) for match in find_cues(text)]


def test_the_longer_of_overlapping_cues_wins() -> None:
    # "security number" alone would announce a card's security code.
    assert cues_in("social security number") == [("US_SSN", "social security number")]


def test_overlapping_phrases_of_one_cue_join() -> None:
    assert cues_in("and my email is") == [("EMAIL_ADDRESS", "my email is")]
    assert cues_in("my social security number is") == [("US_SSN", "my social security number")]


def test_cues_come_in_the_order_they_were_said() -> None:
    text = "card number 4242 it expires 0427 and the security code is 319"
    assert [entity for entity, _ in cues_in(text)] == ["CREDIT_CARD", "CARD_EXPIRY", "CARD_CVV"]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("the 3 digits on the back", "3 digits on the back"),
        ("my count number is", "my count number"),
        ("what's your dob", "dob"),
        ("routing number", "routing number"),
    ],
)
def test_cues_are_read_on_the_normalised_text(text: str, phrase: str) -> None:
    assert [found for _, found in cues_in(text)] == [phrase]


@pytest.mark.parametrize("text", ["pin@example.com", "spinning", "a visage", "the cardigan"])
def test_a_cue_word_inside_another_word_is_no_cue(text: str) -> None:
    assert cues_in(text) == []
