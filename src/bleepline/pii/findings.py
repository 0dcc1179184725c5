"""Findings: personal data located in spoken text, before padding and merging into timeline spans.

Every recognizer and cue produces the same value, so the detector can place, pad and merge them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from bleepline.pii.spoken import SpokenText

# Entity names, exactly as spans, transcripts and reviewers see them.
CREDIT_CARD = "CREDIT_CARD"
CARD_EXPIRY = "CARD_EXPIRY"
CARD_CVV = "CARD_CVV"
PHONE_NUMBER = "PHONE_NUMBER"
US_SSN = "US_SSN"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
PERSON = "PERSON"
ADDRESS = "ADDRESS"
DATE_TIME = "DATE_TIME"
IBAN_CODE = "IBAN_CODE"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"
PIN = "PIN"
ENTITIES = (
    CREDIT_CARD,
    CARD_EXPIRY,
    CARD_CVV,
    PHONE_NUMBER,
    US_SSN,
    EMAIL_ADDRESS,
    PERSON,
    ADDRESS,
    DATE_TIME,
    IBAN_CODE,
    ACCOUNT_NUMBER,
    PIN,
)

#: How a span was found (``PiiSpan.source``).
FROM_WORDS = "asr"
FROM_CUE = "cue"


@dataclass(frozen=True)
class Finding:
    """``entity`` between ``start`` and ``end`` (seconds), found from the words ``evidence`` (first, last).

    ``evidence`` covers every word whose revision could change the finding: the cue, the value, and the
    word after it that shows the value has ended. ``open`` findings run to the last word given and may
    still grow.
    """

    entity: str
    score: float
    source: str
    start: float
    end: float
    evidence: tuple[int, int]
    open: bool
    #: How far the span reaches past the words, if not the detector's padding (``DetectorOptions``); it
    #: reaches into a pause after them as far as any span does.
    padding_s: float | None = None


@dataclass(frozen=True)
class Ending:
    """How a value that ends at some token is known to have ended, if it is."""

    closed: bool
    last_evidence: int  # the last word whose revision could reopen the value


def ending_after(spoken: SpokenText, token: int, heard_until: float | None, max_gap_s: float) -> Ending:
    """Whether the value ending with ``token`` is over: a later token follows, or a long enough silence.

    ``heard_until`` is how far the audio has been heard: silence after the last word up to then counts
    as a pause.
    """
    last_word = spoken.tokens[token].last_word
    if token + 1 < len(spoken.tokens):
        return Ending(True, max(last_word, spoken.tokens[token + 1].first_word))
    silence = None if heard_until is None else heard_until - spoken.words[last_word].end
    return Ending(silence is not None and silence > max_gap_s, last_word)
