"""Spoken numbers: finds runs of number words and digits in a transcript and reads them as digit strings.

Callers read numbers out digit by digit ("four one one one"), in pairs ("forty one eleven"), as years
("nineteen eighty four") or as amounts ("fifteen hundred"); Whisper mixes words with digits it wrote itself.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

UNITS = {
    "zero": 0,
    "nought": 0,
    "naught": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
MULTIPLIERS = {"hundred": 100, "thousand": 1000}
REPEATS = {"double": 2, "triple": 3}
#: Words that sound like a digit. They count as one only between digits, never in ordinary speech
#: ("four to four" is 424, "I want to go" is not a number).
SOUNDALIKES = {"oh": 0, "o": 0, "to": 2, "too": 2, "for": 4, "fore": 4, "won": 1, "ate": 8}
#: Said between the groups of a number ("555 dash 123", "four one uh one"); they join the run and
#: leave no trace. Fillers are here because a hesitation does not end a card number.
SEPARATORS = frozenset({"dash", "hyphen", "-", "\u2013", "\u2014", ",", "uh", "um", "er", "erm", "ah", "hmm"})


class Reading(enum.Enum):
    """How a run of digits was said, which hints at what it is."""

    DIGITS = "digits"  # read out digit by digit or in groups: "four one one one", "555-123-4567"
    YEAR = "year"  # "nineteen eighty four", "twenty twenty four", "2024"
    TIME = "time"  # a clock time said as hour and minutes: "nine thirty", "ten fifteen"
    AMOUNT = "amount"  # a quantity with a multiplier: "fifteen hundred", "a hundred", "two thousand"


@dataclass(frozen=True)
class NumberRun:
    """A run of pieces ``first..last`` (inclusive) that reads as ``digits``.

    ``char_pieces[k]`` is the piece that produced ``digits[k]``, so each digit can be placed in time.
    """

    first: int
    last: int
    digits: str
    char_pieces: tuple[int, ...]
    reading: Reading

    def __repr__(self) -> str:
        # The digits may be a card number: keep them out of reprs.
        return f"NumberRun(pieces {self.first}..{self.last}, {len(self.digits)} digits, {self.reading.value})"


class _Role(enum.Enum):
    NONE = enum.auto()
    WRITTEN = enum.auto()  # digits Whisper wrote, separators already removed
    UNIT = enum.auto()
    TEEN = enum.auto()
    TENS = enum.auto()
    MULTIPLIER = enum.auto()
    REPEAT = enum.auto()
    SOUNDALIKE = enum.auto()
    AND = enum.auto()
    A = enum.auto()
    SEPARATOR = enum.auto()


_DIGIT_ROLES = frozenset({_Role.WRITTEN, _Role.UNIT, _Role.TEEN, _Role.TENS})


def _role_of(text: str) -> _Role:
    if text.isascii() and text.isdigit():
        return _Role.WRITTEN
    for table, role in (
        (UNITS, _Role.UNIT),
        (TEENS, _Role.TEEN),
        (TENS, _Role.TENS),
        (MULTIPLIERS, _Role.MULTIPLIER),
        (REPEATS, _Role.REPEAT),
        (SOUNDALIKES, _Role.SOUNDALIKE),
    ):
        if text in table:
            return role
    if text == "and":
        return _Role.AND
    if text in ("a", "an"):
        return _Role.A
    if text in SEPARATORS:
        return _Role.SEPARATOR
    return _Role.NONE


@dataclass(repr=False)  # holds what the caller said: no repr
class _Pieces:
    """The pieces being read, their roles, and the values of resolved soundalikes."""

    texts: Sequence[str]
    adjacent: Sequence[bool]
    roles: list[_Role]
    values: dict[int, int]

    def role(self, index: int) -> _Role:
        return self.roles[index] if 0 <= index < len(self.roles) else _Role.NONE

    def linked(self, index: int) -> bool:
        """Whether piece ``index`` follows piece ``index - 1`` without a long pause."""
        return 0 < index < len(self.roles) and self.adjacent[index]

    def unit_value(self, index: int) -> int:
        text = self.texts[index]
        return self.values[index] if index in self.values else UNITS[text]


def find_number_runs(texts: Sequence[str], adjacent: Sequence[bool]) -> list[NumberRun]:
    """Every run of number pieces in ``texts`` (lower-case pieces, written digits without separators).

    ``adjacent[i]`` says piece ``i`` follows piece ``i - 1`` without a long pause; a pause ends a run.
    """
    pieces = _Pieces(texts, adjacent, [_role_of(text) for text in texts], {})
    _resolve_soundalikes(pieces)
    runs: list[NumberRun] = []
    index = 0
    while index < len(texts):
        end = _run_end(pieces, index)
        if end is None:
            index += 1
            continue
        runs.append(_read_run(pieces, index, end))
        index = end + 1
    return runs


# --- soundalikes ---------------------------------------------------------------------------------------


def _resolve_soundalikes(pieces: _Pieces) -> None:
    """Turn blocks of soundalike words into digits where the digits around them say they are digits."""
    index = 0
    count = len(pieces.roles)
    while index < count:
        if pieces.roles[index] is not _Role.SOUNDALIKE:
            index += 1
            continue
        end = index
        while end + 1 < count and pieces.roles[end + 1] is _Role.SOUNDALIKE and pieces.linked(end + 1):
            end += 1
        if _soundalike_block_is_digits(pieces, index, end):
            for member in range(index, end + 1):
                pieces.roles[member] = _Role.UNIT
                pieces.values[member] = SOUNDALIKES[pieces.texts[member]]
        index = end + 1


def _soundalike_block_is_digits(pieces: _Pieces, first: int, last: int) -> bool:
    only_oh = all(pieces.texts[i] in ("oh", "o") for i in range(first, last + 1))
    # "oh" follows tens and teens in years and times ("nineteen oh five"); "to", "for" and the rest
    # only count next to single digits, so "five to ten" stays a phrase.
    accepted = _DIGIT_ROLES if only_oh else frozenset({_Role.WRITTEN, _Role.UNIT})
    before = _neighbour(pieces, first, -1)
    after = _neighbour(pieces, last, +1)
    if only_oh and before is not None and pieces.role(before) is _Role.REPEAT:  # "double oh seven"
        return True
    if before is not None and after is not None and {pieces.role(before), pieces.role(after)} <= accepted:
        return True
    short = last - first + 1 <= 2
    # At the edge of a run, only a clear run of digits on the other side makes the word a digit:
    # "for one one one" at the start of a card number, but not "for five minutes".
    if short and after is not None and _digits_from(pieces, after, +1) >= 2:
        return True
    return short and before is not None and _digits_from(pieces, before, -1) >= 3


def _neighbour(pieces: _Pieces, index: int, step: int) -> int | None:
    """The nearest piece beyond separators in direction ``step``, if no pause comes between."""
    current = index
    while True:
        link = current if step < 0 else current + 1
        if not pieces.linked(link):
            return None
        current += step
        if pieces.role(current) is not _Role.SEPARATOR:
            return current


def _digits_from(pieces: _Pieces, index: int, step: int) -> int:
    count = 0
    current: int | None = index
    while current is not None and pieces.role(current) in _DIGIT_ROLES:
        count += 1
        current = _neighbour(pieces, current, step)
    return count


# --- runs ----------------------------------------------------------------------------------------------


def _starts_number(pieces: _Pieces, index: int) -> bool:
    role = pieces.role(index)
    if role in _DIGIT_ROLES or role is _Role.MULTIPLIER:
        return True
    nxt = index + 1 if pieces.linked(index + 1) else None
    if role is _Role.REPEAT:
        return nxt is not None and pieces.role(nxt) in (_Role.UNIT, _Role.WRITTEN)
    if role is _Role.A:
        return nxt is not None and pieces.role(nxt) is _Role.MULTIPLIER
    return False


def _run_end(pieces: _Pieces, start: int) -> int | None:
    """The last piece of the run starting at ``start``, or None if no run starts there."""
    if not _starts_number(pieces, start):
        return None
    last = start
    index = start + 1
    while index < len(pieces.roles) and pieces.linked(index):
        role = pieces.role(index)
        if _starts_number(pieces, index):
            last = index
        elif role is _Role.SEPARATOR:
            following = _neighbour(pieces, index, +1)
            if following is None or not _starts_number(pieces, following):
                break
        elif not (role is _Role.AND and _and_continues(pieces, last, index)):
            break
        index += 1
    has_digit = any(pieces.role(i) in _DIGIT_ROLES for i in range(start, last + 1))
    return last if has_digit else None


def _and_continues(pieces: _Pieces, last: int, index: int) -> bool:
    """ "and" belongs to a number only after a multiplier: "five hundred and twenty"."""
    following = pieces.role(index + 1) if pieces.linked(index + 1) else _Role.NONE
    return pieces.role(last) is _Role.MULTIPLIER and following in (_Role.UNIT, _Role.TEEN, _Role.TENS)


# --- reading a run ----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)  # holds digits: no repr
class _Group:
    """One number said as a unit: "4", "23", "1500", "55" from "double five"."""

    digits: str
    pieces: tuple[int, ...]
    role: _Role  # the role of its first piece
    multiplied: bool = False


def _read_run(pieces: _Pieces, first: int, last: int) -> NumberRun:
    groups: list[_Group] = []
    index = first
    while index <= last:
        if pieces.role(index) in (_Role.SEPARATOR, _Role.AND):
            index += 1
            continue
        group, index = _read_group(pieces, index, last)
        groups.append(group)
    digits = "".join(group.digits for group in groups)
    char_pieces = tuple(piece for group in groups for piece in _spread(group))
    return NumberRun(first, last, digits, char_pieces, _reading(pieces, groups, digits))


def _spread(group: _Group) -> list[int]:
    """The piece behind each character of ``group``: first to first, last to last, linear between."""
    chars, count = len(group.digits), len(group.pieces)
    if chars == 1:
        return [group.pieces[0]]
    return [group.pieces[round(k * (count - 1) / (chars - 1))] for k in range(chars)]


def _read_group(pieces: _Pieces, start: int, last: int) -> tuple[_Group, int]:
    role = pieces.role(start)
    text = pieces.texts[start]
    if role is _Role.REPEAT:
        inner, after = _read_group(pieces, start + 1, last)
        repeated = inner.digits * REPEATS[text]
        return _Group(repeated, (start, *inner.pieces), role), after
    nxt_is_multiplier = start + 1 <= last and pieces.role(start + 1) is _Role.MULTIPLIER
    if role is _Role.WRITTEN and not (nxt_is_multiplier and len(text) <= 2):
        return _Group(text, (start,), role), start + 1
    if role is _Role.WRITTEN:
        value, after = int(text), start + 1
    elif role is _Role.A:
        value, after = 1, start + 1
    elif role is _Role.MULTIPLIER:
        value, after = 1, start
    else:
        value, after = _read_small(pieces, start, last)
    value, end, multiplied = _apply_multipliers(pieces, value, after, last)
    return _Group(str(value), tuple(range(start, end)), role, multiplied), end


def _read_small(pieces: _Pieces, start: int, last: int) -> tuple[int, int]:
    """A number under 100 said in words: "seven", "fifteen", "twenty", "twenty three"."""
    role = pieces.role(start)
    text = pieces.texts[start]
    if role is _Role.UNIT:
        return pieces.unit_value(start), start + 1
    if role is _Role.TEEN:
        return TEENS[text], start + 1
    value = TENS[text]
    nxt = start + 1
    # Only a real unit word joins the tens: "twenty three" is 23, but "twenty oh five" is 2005.
    if nxt <= last and pieces.role(nxt) is _Role.UNIT and nxt not in pieces.values:
        unit = UNITS[pieces.texts[nxt]]
        if unit:
            return value + unit, nxt + 1
    return value, nxt


def _apply_multipliers(pieces: _Pieces, value: int, index: int, last: int) -> tuple[int, int, bool]:
    multiplied = False
    for word, size in MULTIPLIERS.items():
        if index <= last and pieces.texts[index] == word:
            value, index = value * size, index + 1
            value, index = _add_remainder(pieces, value, index, last, size)
            multiplied = True
    return value, index, multiplied


def _add_remainder(pieces: _Pieces, value: int, index: int, last: int, size: int) -> tuple[int, int]:
    """Add what follows a multiplier when it belongs to it: "five hundred and twenty", "two thousand five".

    A lone digit followed by more digits starts a new group instead: "one eight hundred five five five"
    is a phone number, not 1805.
    """
    start = index + 1 if index <= last and pieces.role(index) is _Role.AND else index
    if start > last or pieces.role(start) not in (_Role.UNIT, _Role.TEEN, _Role.TENS):
        return value, index
    small, after = _read_small(pieces, start, last)
    if size > 100 and after <= last and pieces.texts[after] == "hundred":
        small, after = _add_remainder(pieces, small * 100, after + 1, last, 100)
    said_and = start != index
    ends_run = after > last or pieces.role(after) is _Role.SEPARATOR
    if small < size and (said_and or pieces.role(start) is not _Role.UNIT or ends_run):
        return value + small, after
    return value, index


def _reading(pieces: _Pieces, groups: Sequence[_Group], digits: str) -> Reading:
    in_pairs_or_more = any(len(group.digits) > 1 for group in groups)
    if len(digits) == 4 and 1900 <= int(digits) <= 2099 and in_pairs_or_more:
        return Reading.YEAR
    if _is_clock_time(pieces, groups):
        return Reading.TIME
    if len(groups) == 1 and groups[0].multiplied:
        return Reading.AMOUNT
    return Reading.DIGITS


def _is_clock_time(pieces: _Pieces, groups: Sequence[_Group]) -> bool:
    """Hour then minutes in words: "nine thirty", "ten fifteen", "eleven forty five", "nine oh five"."""
    if len(groups) not in (2, 3) or any(group.multiplied for group in groups):
        return False
    hour = int(groups[0].digits)
    if not 1 <= hour <= 12 or groups[0].role not in (_Role.UNIT, _Role.TEEN):
        return False
    if len(groups) == 3:
        oh = pieces.texts[groups[1].pieces[0]] in ("oh", "o")
        return oh and len(groups[2].digits) == 1
    return 10 <= int(groups[1].digits) <= 59 and groups[1].role in (_Role.TEEN, _Role.TENS)
