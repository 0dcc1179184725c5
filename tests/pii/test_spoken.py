from __future__ import annotations

import pytest

from bleepline.pii.numbers import Reading
from bleepline.pii.spoken import SpokenText, TokenKind, normalize
from bleepline.timeline import Word
from tests.pii.conftest import words


def text_of(said: str) -> str:
    return normalize(words(said)).text


def only_token(said: str) -> tuple[TokenKind, Reading | None]:
    spoken = normalize(words(said))
    assert len(spoken.tokens) == 1
    return spoken.tokens[0].kind, spoken.tokens[0].reading


# --- numbers said in words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("four one one one", "4111"),
        ("four five three two", "4532"),
        ("zero one two", "012"),
        ("three oh one seven", "3017"),
        ("four o one", "401"),
        ("double five", "55"),
        ("triple seven", "777"),
        ("double oh seven", "007"),
        ("twenty three", "23"),
        ("twenty-three", "23"),
        ("forty two forty two", "4242"),
        ("five hundred", "500"),
        ("five hundred and twenty", "520"),
        ("fifteen hundred", "1500"),
        ("nineteen eighty four", "1984"),
        ("nineteen oh five", "1905"),
        ("two thousand and five", "2005"),
        ("twenty twenty four", "2024"),
        ("one eight hundred five five five one two one two", "18005551212"),
        ("four two four two four two four two four two four two four two four two", "4242424242424242"),
    ],
)
def test_number_words_become_one_digit_run(said: str, normalised: str) -> None:
    assert text_of(said) == normalised


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("4,111,111,111,111,111", "4111111111111111"),
        ("555-123-4 567", "5551234567"),
        ("123-45-6,70089", "12345670089"),
        ("4111 1111", "41111111"),
        ("4.1.1.1", "4111"),
        ("4 1 1 one one", "41111"),
        ("4, 1, 1, 1.", "4111"),
        ("five.", "5"),
        ("555 dash 123 dash 4567", "5551234567"),
        ("four one uh one one", "4111"),
    ],
)
def test_digits_as_whisper_writes_them_join_into_one_run(said: str, normalised: str) -> None:
    assert text_of(said) == normalised


def test_a_long_pause_splits_a_digit_run() -> None:
    said = words("four one one one") + words("five five", start=1.6 + 1.6)
    assert normalize(said).text == "4111 55"


def test_a_pause_just_under_the_limit_keeps_the_run() -> None:
    said = words("four one one one") + words("five five", start=1.3 + 1.4)
    assert normalize(said).text == "411155"


def test_a_word_that_is_not_a_number_ends_the_run() -> None:
    assert text_of("four one one one please five five") == "4111 please 55"


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("four to four", "424"),
        ("four for four", "444"),
        ("for one one one", "4111"),
        ("one won one", "111"),
        ("eight ate eight", "888"),
        ("i want to go", "i want to go"),
        ("five to ten minutes", "5 to 10 minutes"),
        ("for five minutes", "for 5 minutes"),
        ("m for mike", "m for mike"),
        ("oh i see", "oh i see"),
        ("oh", "oh"),
    ],
)
def test_soundalikes_are_digits_only_among_digits(said: str, normalised: str) -> None:
    assert text_of(said) == normalised


@pytest.mark.parametrize(
    ("said", "reading"),
    [
        ("four one one one", Reading.DIGITS),
        ("two zero two four", Reading.DIGITS),
        ("nineteen eighty four", Reading.YEAR),
        ("twenty twenty four", Reading.YEAR),
        ("2024", Reading.YEAR),
        ("nine thirty", Reading.TIME),
        ("ten fifteen", Reading.TIME),
        ("nine oh five", Reading.TIME),
        ("fifteen hundred", Reading.AMOUNT),
        ("a hundred and five", Reading.AMOUNT),
    ],
)
def test_a_run_says_how_it_was_read(said: str, reading: Reading) -> None:
    assert only_token(said) == (TokenKind.DIGITS, reading)


# --- dates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("march fifth", "march 5th"),
        ("march fifth nineteen ninety", "march 5th 1990"),
        ("the 3rd of may", "the 3rd of may"),
        ("the twenty first of june", "the 21st of june"),
        ("my first name is", "my first name is"),
        ("the second time", "the second time"),
    ],
)
def test_ordinals_become_days_only_beside_a_month(said: str, normalised: str) -> None:
    assert text_of(said) == normalised


# --- letters and e-mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("j o h n", "john"),
        ("J-O-H-N", "john"),
        ("J. O. H. N.", "john"),
        ("juliet oscar hotel november", "john"),
        ("hotel alpha romeo tango lima echo yankee", "hartley"),
        ("M for mike I for india A for alpha", "mia"),
        ("s as in sugar m i t h", "smith"),
        ("m i a", "mia"),
        ("f for foxtrot o p", "fop"),
    ],
)
def test_spelled_letters_become_one_word(said: str, normalised: str) -> None:
    assert text_of(said) == normalised
    assert normalize(words(said)).tokens[0].kind is TokenKind.LETTERS


def test_a_letter_is_not_named_by_a_number() -> None:
    assert text_of("f for four one one") == "f 4411"  # "for" before digits reads as one


@pytest.mark.parametrize(
    "said",
    ["I booked a hotel", "my friend Mike called", "golf on Sunday", "I think I am right", "a b"],
)
def test_everyday_words_are_not_spelling(said: str) -> None:
    kinds = {token.kind for token in normalize(words(said)).tokens}
    assert TokenKind.LETTERS not in kinds or said == "a b"


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("john dot smith at gmail dot com", "john.smith@gmail.com"),
        ("john underscore smith at example dot co dot uk", "john_smith@example.co.uk"),
        ("mary dash jones at mail dot example dot org", "mary-jones@mail.example.org"),
        ("j o h n at gmail dot com", "john@gmail.com"),
        ("john at gmail.com", "john@gmail.com"),
        ("email me at john at gmail dot com", "email me at john@gmail.com"),
        ("John.Smith@Example.com", "john.smith@example.com"),
    ],
)
def test_spoken_email_becomes_an_address(said: str, normalised: str) -> None:
    spoken = normalize(words(said))
    assert spoken.text == normalised
    assert spoken.tokens[-1].kind is TokenKind.EMAIL


@pytest.mark.parametrize("said", ["i live at twelve main street", "see you at three", "at home dot"])
def test_at_is_only_an_email_sign_before_a_domain(said: str) -> None:
    assert "@" not in text_of(said)


# --- ordinary words --------------------------------------------------------------------------------


def test_ordinary_words_are_lower_case_and_single_spaced() -> None:
    said = [
        Word(0.0, 0.3, " Hello,"),
        Word(0.4, 0.7, "  World! "),
        Word(0.8, 1.0, "It\u2019s"),
        Word(1.1, 1.3, "ok."),
    ]
    assert normalize(said).text == "hello world it's ok"


def test_cased_text_keeps_the_capitals_whisper_wrote() -> None:
    spoken = normalize(words("Thanks. My name is John Smith. Great, I will."))
    assert spoken.text == "thanks my name is john smith great i will"
    assert spoken.cased == "Thanks My name is John Smith Great I will"


def test_an_ellipsis_does_not_end_a_sentence() -> None:
    assert normalize(words("ask for... Marvin")).ner_text == "ask for Marvin"


def test_text_for_entity_recognition_drops_capitals_that_only_start_a_sentence() -> None:
    spoken = normalize(words("Thanks. My name is John Smith. Great, I will."))
    assert spoken.ner_text == "thanks my name is John Smith great I will"
    assert len(spoken.ner_text) == len(spoken.cased) == len(spoken.text)


def test_no_words_give_empty_text() -> None:
    spoken = normalize([])
    assert (spoken.text, spoken.tokens, spoken.sources) == ("", (), ())


def test_words_out_of_order_are_read_in_time_order() -> None:
    said = [Word(0.4, 0.7, "one"), Word(0.0, 0.3, "four")]
    assert normalize(said).text == "41"


# --- mapping characters back to words and times -------------------------------------------------------


def test_every_character_knows_its_word() -> None:
    spoken = normalize(words("call four one one one now"))
    assert spoken.text == "call 4111 now"
    assert spoken.sources == (0, 0, 0, 0, -1, 1, 2, 3, 4, -1, 5, 5, 5)


def test_a_digit_span_maps_to_the_times_of_its_words() -> None:
    said = words("my pin is four one one one thanks", start=10.0)
    spoken = normalize(said)
    start = spoken.text.index("4111")
    assert spoken.time_span(start, start + 4) == (said[3].start, said[6].end)
    assert spoken.time_span(start + 1, start + 3) == (said[4].start, said[5].end)


def test_a_number_written_in_one_word_maps_to_that_word() -> None:
    said = [Word(1.0, 1.5, "call"), Word(1.6, 4.0, "555-123-4567"), Word(4.1, 4.3, "now")]
    spoken = normalize(said)
    assert spoken.time_span(5, 15) == (1.6, 4.0)


def test_spoken_email_maps_from_first_to_last_word() -> None:
    said = words("it is john dot smith at gmail dot com ok", start=2.0)
    spoken = normalize(said)
    token = spoken.tokens[2]
    assert token.kind is TokenKind.EMAIL
    assert (token.first_word, token.last_word) == (2, 8)
    assert spoken.time_span(token.start, token.end) == (said[2].start, said[8].end)


def test_time_span_of_spaces_only_is_an_error_without_text() -> None:
    spoken = normalize(words("secret words"))
    with pytest.raises(ValueError, match="come from no word") as caught:
        spoken.time_span(6, 7)
    assert "secret" not in str(caught.value)


def test_repr_shows_no_text() -> None:
    spoken = normalize(words("my card number is four one one one"))
    assert isinstance(spoken, SpokenText)
    shown = repr(spoken) + repr(spoken.tokens)
    assert "4111" not in shown
    assert "card" not in shown
