from __future__ import annotations

import pytest

from bleepline.pii.numbers import NumberRun, Reading, find_number_runs


def runs_of(said: str) -> list[NumberRun]:
    pieces = said.split(" ")
    return find_number_runs(pieces, [k > 0 for k in range(len(pieces))])


def test_each_digit_remembers_the_word_it_came_from() -> None:
    (run,) = runs_of("nineteen eighty four")
    assert run.digits == "1984"
    assert run.char_pieces == (0, 0, 1, 2)


def test_the_first_and_last_digit_of_a_group_come_from_its_first_and_last_word() -> None:
    (run,) = runs_of("five hundred and twenty")
    assert run.digits == "520"
    assert (run.char_pieces[0], run.char_pieces[-1]) == (0, 3)


def test_a_run_spans_its_separators() -> None:
    (run,) = runs_of("555 dash 123")
    assert (run.first, run.last, run.digits) == (0, 2, "555123")


def test_a_pause_between_pieces_ends_a_run() -> None:
    runs = find_number_runs(["four", "one", "one", "one"], [False, True, False, True])
    assert [run.digits for run in runs] == ["41", "11"]


def test_a_lone_digit_after_a_multiplier_starts_a_new_group() -> None:
    # "one eight hundred five five five" is a phone number, not 1805 and 55.
    (run,) = runs_of("one eight hundred five five five")
    assert run.digits == "1800555"


@pytest.mark.parametrize("said", ["a hundred", "hundred", "and", "double check", "oh well"])
def test_words_that_are_not_a_number_give_no_run(said: str) -> None:
    assert runs_of(said) == []


def test_a_run_reads_as_digits_unless_said_as_a_year_time_or_amount() -> None:
    readings = [run.reading for run in runs_of("call four one one one at nine thirty in nineteen ninety")]
    assert readings == [Reading.DIGITS, Reading.TIME, Reading.YEAR]


def test_a_run_repr_hides_its_digits() -> None:
    (run,) = runs_of("four one one one")
    assert "4111" not in repr(run)
