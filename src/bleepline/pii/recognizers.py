"""Recognizers of our own for spoken text: runs of digits, spelled letters and spoken e-mail addresses.

They read the tokens of the normalised text, where Presidio's recognizers (``analyzer.py``) read its
characters; digits are judged here because only the tokens know how a number was said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bleepline.pii.findings import (
    ACCOUNT_NUMBER,
    CARD_CVV,
    CARD_EXPIRY,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    FROM_CUE,
    FROM_WORDS,
    PERSON,
    PHONE_NUMBER,
    PIN,
    US_SSN,
    Ending,
    Finding,
    ending_after,
)
from bleepline.pii.numbers import Reading
from bleepline.pii.plain import bare
from bleepline.pii.spoken import SpokenText, TokenKind, ends_sentence, word_set

#: Words after a number that make it a quantity, not an identifier: "1500 dollars", "2024 people".
QUANTITY_WORDS = word_set(
    "dollar dollars bucks buck pound pounds quid euro euros cent cents pence percent per second seconds "
    "minute minutes hour hours day days week weeks month months year years mile miles kilometer "
    "kilometers kilometre kilometres km feet foot inch inches meter meters metre metres people persons "
    "kids children times items pieces calories degrees points pages words steps gallons liters litres "
    "grams kilos kg lbs square"
)
#: Spelled letters that are everyday abbreviations or cue words, not names.
ABBREVIATIONS = word_set(
    "usa ssn cvv cvc csc dob pin iban atm bbc cnn fbi cia irs nba nfl ceo faq vip diy asap eta gps sms "
    "vat otp"
)

#: Scores: how sure each way of finding is. A span is masked whatever its score; the score tells a
#: reviewer (and a future threshold) how much to trust the label.
CARD_CHECKSUM_SCORE = 0.95
CUED_DIGITS_SCORE = 0.85
SPOKEN_EMAIL_SCORE = 0.9
SPELLED_SCORE = 0.5
#: A run of digits with no cue, labelled by its length (closed runs) or as a card in progress (open
#: ones). The lengths are those of the call domain: 4-6 a PIN or ZIP, 9 an SSN, 10-11 a phone number
#: with or without its country code, 12-19 a card (ASR drops and repeats digits, so no checksum needed).
_BY_LENGTH: tuple[tuple[int, int, str, float], ...] = (
    (4, 6, PIN, 0.4),
    (7, 8, ACCOUNT_NUMBER, 0.4),
    (9, 9, US_SSN, 0.5),
    (10, 11, PHONE_NUMBER, 0.6),
    (12, 19, CREDIT_CARD, 0.6),
)
_LONGER_THAN_ANY = (ACCOUNT_NUMBER, 0.4)


def luhn_valid(digits: str) -> bool:
    """The card-number checksum (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def entity_by_digits(digits: str, growing: bool) -> tuple[str, float]:
    """The most likely entity (and score) of a run of digits that no cue announced.

    A run that is still growing is labelled a card number until it is long enough to tell: it is the
    longest number callers read out, the one a partial leak costs most (PCI), and so the safest guess.
    """
    count = len(digits)
    if 13 <= count <= 19 and luhn_valid(digits):
        return CREDIT_CARD, CARD_CHECKSUM_SCORE
    if growing and count < 12:
        return CREDIT_CARD, 0.4
    for shortest, longest, entity, score in _BY_LENGTH:
        if shortest <= count <= longest:
            return entity, score
    return _LONGER_THAN_ANY


def digit_runs(
    spoken: SpokenText,
    cue_entities: Mapping[int, str],
    min_digits: int,
    heard_until: float | None,
    max_gap_s: float,
) -> list[Finding]:
    """Every run of at least ``min_digits`` digits that could be personal, labelled.

    ``cue_entities`` maps the index of a token that a cue announced ("my card number is ...") to the
    cue's entity, which wins over any guess from the digits.
    """
    findings: list[Finding] = []
    for index, token in enumerate(spoken.tokens):
        digits = spoken.token_text(token)
        if token.kind is not TokenKind.DIGITS or len(digits) < min_digits:
            continue
        ending = ending_after(spoken, index, heard_until, max_gap_s)
        cue_entity = cue_entities.get(index)
        if cue_entity is not None:
            entity, score = cue_entity, CUED_DIGITS_SCORE
        elif _not_personal(spoken, index, ending):
            continue
        else:
            entity, score = entity_by_digits(digits, growing=not ending.closed)
        start, end = spoken.time_span(token.start, token.end)
        evidence = (token.first_word, ending.last_evidence)
        findings.append(Finding(entity, score, FROM_WORDS, start, end, evidence, not ending.closed))
    return findings


def _not_personal(spoken: SpokenText, index: int, ending: Ending) -> bool:
    """A finished number that is a year, a clock time, an amount or a quantity of something."""
    token = spoken.tokens[index]
    said_as_number = token.reading is not None and token.reading is not Reading.DIGITS
    # Whisper's full stop after "twenty twenty four." says the year is over; after a card group it
    # proves nothing, so it only counts for numbers said as numbers.
    finished = ending.closed or (said_as_number and ends_sentence(spoken.words[token.last_word]))
    if not finished:
        return False
    if said_as_number:
        return True
    following = spoken.tokens[index + 1] if index + 1 < len(spoken.tokens) else None
    return following is not None and spoken.token_text(following) in QUANTITY_WORDS


#: What a number said digit by digit can be: a digit heard near one of these belongs to it.
DIGIT_ENTITIES = frozenset({CREDIT_CARD, CARD_EXPIRY, CARD_CVV, PHONE_NUMBER, US_SSN, ACCOUNT_NUMBER, PIN})
#: A value resumes after a pause or a few misheard words ("six six" written "thanks, thanks"): digits
#: this close to a digit value, with at most this many other words between (lone letters and repeats
#: not counted: "thanks, thanks" is one), belong to it, and so does everything between them. "Any time,
#: 5" after a phone number is two words, and no part of it. People pause up to a second or two between
#: groups of a number.
BRIDGE_S = 2.5
BRIDGE_WORDS = 1
#: As long as two digits take to say, with the pause after each.
TWO_DIGITS_S = 1.2
BRIDGE_SCORE = 0.5
#: Digits too few to be a value yet, said moments ago: the start of a number, or a harmless one.
LONE_DIGITS_SCORE = 0.3
#: ...masked over the digits, a little of the words' loose edges, and the pause after them (Whisper
#: ends the last word before a pause early) only, since most are harmless and are given back once
#: nothing follows them: the words beside them need not wait with them.
LONE_DIGITS_PAD_S = 0.1
#: A number before one of these counts something: it is no digit of a value.
_NOT_A_DIGIT_BEFORE = QUANTITY_WORDS | word_set(
    "digit digits number numbers letter letters character characters"
)
#: Something digit-like, for bridging: (start, end, first word, last word, the value found or None for a
#: digit token on its own, the token's index or None).
_Item = tuple[float, float, int, int, Finding | None, int | None]


def digit_bridges(
    spoken: SpokenText,
    found: Sequence[Finding],
    heard_until: float | None,
    max_gap_s: float,
) -> list[Finding]:
    """Findings that join a digit value to the digits heard near it, and to any other digit value near it.

    Whisper splits a number it half heard: a run of digits, a few everyday words where digits were, a
    pause it wrote nothing for, then more digits, too few alone to be a value. The recognizers above see
    separate runs, each judged alone; here, a digit value (``DIGIT_ENTITIES``) and every digit within
    ``BRIDGE_S`` and ``BRIDGE_WORDS`` of it, chained, are one stretch with the value's entity. Digits
    chained with no value among them are an open finding while the number may still go on (less than
    ``BRIDGE_S`` heard after it): the first digits of a number must be masked before anyone can know it
    is one. Once over, they are a value only if a recognizer above says so ("nine thirty in room four"
    is no PIN). A number followed by a quantity
    word ("two kids") is never a digit of a value.
    """
    anchors = sorted((f for f in found if f.entity in DIGIT_ENTITIES), key=lambda f: f.start)
    items: list[_Item] = [(a.start, a.end, a.evidence[0], a.evidence[0], a, None) for a in anchors]
    for index, token in enumerate(spoken.tokens):
        # A lone letter right beside digits is a digit misheard ("1 1 1 Q" for "1 1 2 6"): it joins a
        # value it is near, though it never starts one.
        text = spoken.token_text(token)
        letter = len(text) == 1 and text.isalpha() and text not in ("a", "i")  # "a" and "I" are words
        if token.kind is not TokenKind.DIGITS and not letter:
            continue
        following = spoken.tokens[index + 1] if index + 1 < len(spoken.tokens) else None
        if following is not None and spoken.token_text(following) in _NOT_A_DIGIT_BEFORE:
            continue  # "two kids", "the three digits on the back"
        start, end = spoken.time_span(token.start, token.end)
        if any(a.start <= start and end <= a.end for a in anchors):
            continue  # already part of a value
        items.append((start, end, token.first_word, token.last_word, None, index))
    if not items:
        return []
    items.sort(key=lambda item: (item[0], item[1]))
    bridges: list[Finding] = []
    cluster = [items[0]]
    for item in [*items[1:], None]:
        if item is not None and _bridged(spoken, cluster, item):
            cluster.append(item)
            continue
        bridge = _bridge(spoken, cluster, heard_until, max_gap_s)
        if bridge is not None:
            bridges.append(bridge)
        if item is not None:
            cluster = [item]
    return bridges


def _bridged(spoken: SpokenText, cluster: Sequence[_Item], item: _Item) -> bool:
    """Whether ``item`` continues the value of ``cluster``: near enough, and not another value."""
    if (
        item[4] is not None
        and item[4].source == FROM_CUE
        and any(c[4] is not None and c[4].entity != item[4].entity for c in cluster)
    ):
        return False  # the next value, announced by its own cue: each keeps its own span
    reach = max(c[1] for c in cluster)
    if item[0] - reach > BRIDGE_S:
        return False
    words = len(_words_between(spoken, reach, item[0]))
    # Words where digits were take the digits' time: two in the time of two digits ("9. You will 8."
    # for "9 0 1 8"), one over a longer pause ("3 3 i Thanks, thanks. 0").
    return words <= BRIDGE_WORDS or (words <= 2 * BRIDGE_WORDS and item[0] - reach <= TWO_DIGITS_S)


def _words_between(spoken: SpokenText, start: float, end: float) -> set[str]:
    """The different words said wholly between ``start`` and ``end``, lone letters left out.

    A lone letter between digits is a digit misheard ("3 3 i"), and so is a word said again and again
    where digits repeat ("5 5 5" heard as "please, please, please"): those count once, or not at all.
    """
    words = (word for word in spoken.words if word.start >= start and word.end <= end)
    inside = (bare(word) for word in words)
    return {bare for bare in inside if sum(char.isalpha() for char in bare) > 1}


def _bridge(
    spoken: SpokenText,
    cluster: Sequence[_Item],
    heard_until: float | None,
    max_gap_s: float,
) -> Finding | None:
    """One finding over a cluster: a digit value with something near it, or digits that may yet become
    one; None for anything else."""
    anchors = [item[4] for item in cluster if item[4] is not None]
    start = min(item[0] for item in cluster)
    end = max(item[1] for item in cluster)
    first = min(item[2] for item in cluster)
    tokens = [item[5] for item in cluster if item[5] is not None]
    if not anchors:
        # A year, a clock time or an amount is no digit of an unannounced number ("nine thirty in room
        # four" is not 9304): only what was read digit by digit counts, and the finding starts there.
        read = [
            t
            for t in tokens
            if spoken.tokens[t].kind is TokenKind.DIGITS
            and spoken.tokens[t].reading in (None, Reading.DIGITS)
        ]
        if not read:
            return None
        start, end = (
            spoken.time_span(spoken.tokens[read[0]].start, spoken.tokens[read[0]].end)[0],
            spoken.time_span(spoken.tokens[read[-1]].start, spoken.tokens[read[-1]].end)[1],
        )
        first = spoken.tokens[read[0]].first_word
        after = len(_words_between(spoken, end, math.inf))
        resumable = heard_until is not None and heard_until - end < BRIDGE_S and after <= BRIDGE_WORDS
        last = spoken.tokens[read[-1]].last_word
        if resumable:
            return Finding(
                CREDIT_CARD, LONE_DIGITS_SCORE, FROM_WORDS, start, end, (first, last), True, LONE_DIGITS_PAD_S
            )
        return None
    if len(cluster) < 2:
        return None
    entity = max(anchors, key=lambda a: a.score).entity
    last_token = max(tokens) if tokens else None
    if last_token is not None:
        ending = ending_after(spoken, last_token, heard_until, max_gap_s)
        last, still_open = ending.last_evidence, not ending.closed
    else:
        last, still_open = max(a.evidence[1] for a in anchors), False
    last = max(last, *(a.evidence[1] for a in anchors))
    still_open = still_open or any(a.open for a in anchors)
    return Finding(entity, BRIDGE_SCORE, FROM_WORDS, start, end, (first, last), still_open)


def spelled_letters(spoken: SpokenText, heard_until: float | None, max_gap_s: float) -> list[Finding]:
    """Letters spelled out one by one: on a call that is a name, a postcode or an address being given."""
    findings: list[Finding] = []
    for index, token in enumerate(spoken.tokens):
        letters = spoken.token_text(token)
        if token.kind is not TokenKind.LETTERS or len(letters) < 3 or letters in ABBREVIATIONS:
            continue
        findings.append(_token_finding(spoken, index, PERSON, SPELLED_SCORE, heard_until, max_gap_s))
    return findings


def spoken_emails(spoken: SpokenText, heard_until: float | None, max_gap_s: float) -> list[Finding]:
    """E-mail addresses the normaliser put together ("john dot smith at gmail dot com")."""
    return [
        _token_finding(spoken, index, EMAIL_ADDRESS, SPOKEN_EMAIL_SCORE, heard_until, max_gap_s)
        for index, token in enumerate(spoken.tokens)
        if token.kind is TokenKind.EMAIL
    ]


def _token_finding(
    spoken: SpokenText, index: int, entity: str, score: float, heard_until: float | None, max_gap_s: float
) -> Finding:
    token = spoken.tokens[index]
    ending = ending_after(spoken, index, heard_until, max_gap_s)
    start, end = spoken.time_span(token.start, token.end)
    evidence = (token.first_word, ending.last_evidence)
    return Finding(entity, score, FROM_WORDS, start, end, evidence, not ending.closed)
