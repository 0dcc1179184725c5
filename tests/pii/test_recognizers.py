from __future__ import annotations

import pytest

from bleepline.pii.recognizers import entity_by_digits, luhn_valid


@pytest.mark.parametrize(
    "digits", ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005"]
)
def test_test_card_numbers_pass_the_checksum(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize("digits", ["4111111111111112", "1234567812345678"])
def test_altered_card_numbers_fail_the_checksum(digits: str) -> None:
    assert not luhn_valid(digits)


@pytest.mark.parametrize(
    ("digits", "entity"),
    [
        ("4821", "PIN"),
        ("62704", "PIN"),
        ("30178826", "ACCOUNT_NUMBER"),
        ("123456789", "US_SSN"),
        ("2025550147", "PHONE_NUMBER"),
        ("12025550147", "PHONE_NUMBER"),
        ("411111111111", "CREDIT_CARD"),
        ("4111111111111112", "CREDIT_CARD"),
        ("1" * 40, "ACCOUNT_NUMBER"),
    ],
)
def test_a_finished_run_is_labelled_by_its_length(digits: str, entity: str) -> None:
    assert entity_by_digits(digits, growing=False)[0] == entity


def test_a_growing_run_is_a_card_until_its_length_tells() -> None:
    assert entity_by_digits("2025", growing=True)[0] == "CREDIT_CARD"
    assert entity_by_digits("202555014", growing=True)[0] == "CREDIT_CARD"


def test_a_checksum_makes_a_card_certain() -> None:
    assert entity_by_digits("4111111111111111", growing=False) == ("CREDIT_CARD", 0.95)
