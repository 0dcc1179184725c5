"""Cues: the phrases that announce personal data on a call ("my card number is"), and where they are said.

Each cue names the entity to come and the shape of its value; ``values.py`` reads the value that follows.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bleepline.pii.findings import (
    ACCOUNT_NUMBER,
    ADDRESS,
    CARD_CVV,
    CARD_EXPIRY,
    CREDIT_CARD,
    DATE_TIME,
    EMAIL_ADDRESS,
    IBAN_CODE,
    PERSON,
    PHONE_NUMBER,
    PIN,
    US_SSN,
)
from bleepline.pii.spoken import word_set


class Shape(enum.Enum):
    """What the value after a cue looks like, which says where it ends."""

    NUMBER = "number"  # digits: card, phone, SSN, CVV, PIN
    CODE = "code"  # letters and digits: account number, IBAN, postcode
    DATE = "date"  # a date: expiry, date of birth
    NAME = "name"  # one to three name words
    SPELLING = "spelling"  # letters and digits spelled out after "spell"
    EMAIL = "email"  # an e-mail address, however it was said
    STREET = "street"  # a street address


@dataclass(frozen=True)
class CueRule:
    """Phrases (regular expressions over the normalised text) that announce ``entity`` in ``shape``.

    ``min_value`` is the least a finished value must hold (digits for numbers, characters for codes,
    tokens otherwise) to be kept; ``capitalised`` asks for a name Whisper wrote with a capital, for cues
    as common as "this is".
    """

    entity: str
    phrases: tuple[str, ...]
    shape: Shape
    max_duration_s: float
    min_value: int = 1
    capitalised: bool = False


_CARD = r"(?:the |your |my )?(?:front of (?:the |your |my )?)?card"
RULES: tuple[CueRule, ...] = (
    CueRule(
        CREDIT_CARD,
        (
            r"(?:credit|debit|bank|payment) card(?: number| no)?",
            r"card (?:numbers?|no)",
            r"card ending(?: in| with)?",
            rf"(?:long |16 digit )?number on {_CARD}",
            r"(?:long|16 digit) number",
            r"(?:my|your|the) card is",
            r"visa",
            r"master ?card",
            r"amex",
            r"american express",
        ),
        Shape.NUMBER,
        max_duration_s=15.0,
        min_value=4,
    ),
    CueRule(
        CARD_EXPIRY,
        (
            r"expiry(?: date)?",
            r"expiration(?: date)?",
            r"expires?(?: on| in| at the end of)?",
            r"exp date",
            r"valid (?:until|till|thru|through|to)",
            r"good (?:thru|through)",
        ),
        Shape.DATE,
        max_duration_s=6.0,
    ),
    CueRule(
        CARD_CVV,
        (
            r"security (?:code|number)",
            r"cvv ?2?",
            r"cvc ?2?",
            r"cv2",
            r"csc",
            r"card verification(?: code| value| number)?",
            r"(?:3|4) digits?(?: security)?(?: code| number)?(?: on the back)?",
            rf"(?:digits|code|number) on the back(?: of {_CARD})?",
        ),
        Shape.NUMBER,
        max_duration_s=5.0,
        min_value=2,
    ),
    CueRule(
        PHONE_NUMBER,
        (
            r"(?:tele)?phone(?: number| no)?",
            r"mobile(?: number| phone| no)?",
            r"cell(?: phone)?(?: number)?",
            r"(?:contact|callback|call back|home|work|daytime|best) number",
            r"(?:my|your) number(?: is)?",
            r"number to (?:call|reach)(?: you| me)?(?: on| at)?",
            r"(?:call|ring|text|reach|contact) (?:me|us|you|him|her)(?: back)? (?:on|at)",
        ),
        Shape.NUMBER,
        max_duration_s=10.0,
        min_value=4,
    ),
    CueRule(
        US_SSN,
        (
            r"social security(?: number| no)?",
            r"(?:my|your|the|his|her) social",
            r"ssn",
            r"social insurance number",
            r"national insurance(?: number)?",
        ),
        Shape.NUMBER,
        max_duration_s=10.0,
        min_value=4,
    ),
    CueRule(
        DATE_TIME,
        (r"date of birth", r"birth ?date", r"birthday", r"born(?: on| in)?", r"dob"),
        Shape.DATE,
        max_duration_s=8.0,
    ),
    CueRule(
        PERSON,
        (
            r"(?:my|your|his|her|the) name(?: is|'s)",
            r"name is",
            r"(?:first|last|full|family|maiden|middle|sur) ?name(?: is|'s)?",
        ),
        Shape.NAME,
        max_duration_s=4.0,
    ),
    CueRule(
        PERSON,
        (
            r"this is",
            r"(?:speak|speaking|talk|talking) (?:to|with)",
            r"ask(?:ing)? for",
            r"(?:your|the) name(?: please)?",
        ),
        Shape.NAME,
        max_duration_s=4.0,
        capitalised=True,
    ),
    CueRule(
        PERSON,
        (r"spell(?:ed|t|ing)?(?: that| it| out)?(?: is| for you)?",),
        Shape.SPELLING,
        max_duration_s=12.0,
    ),
    CueRule(
        EMAIL_ADDRESS,
        (
            r"e-?mail(?: address)?(?: is|'s)",
            r"(?:my|your|the|an) e-?mail(?: address)?",
            r"e-?mail (?:me|us) at",
        ),
        Shape.EMAIL,
        max_duration_s=10.0,
    ),
    CueRule(
        ADDRESS,
        (
            r"i live (?:at|on|in)",
            r"(?:my|your|the|home|billing|delivery|shipping|mailing|postal) address(?: is)?",
            r"address is",
        ),
        Shape.STREET,
        max_duration_s=10.0,
    ),
    CueRule(
        ADDRESS,
        (r"zip(?: code)?", r"post ?code", r"postal code"),
        Shape.CODE,
        max_duration_s=6.0,
        min_value=3,
    ),
    CueRule(
        ACCOUNT_NUMBER,
        (
            r"account(?: numbers?| no| is)",
            r"(?:a|my|your|the) count numbers?",  # how Whisper often hears "account number"
            r"(?:sort|routing|aba|transit|branch) (?:code|number)",
            r"routing",
            r"acct",
            r"(?:member|membership|policy|customer|reference|ref|case|claim|patient|loyalty)"
            r" (?:number|id|no)",
        ),
        Shape.CODE,
        max_duration_s=12.0,
        min_value=3,
    ),
    CueRule(
        IBAN_CODE,
        (r"iban(?: number| code)?", r"international bank account number"),
        Shape.CODE,
        max_duration_s=20.0,
        min_value=4,
    ),
    CueRule(
        PIN,
        (
            r"(?:security )?pin(?: number| code)?",
            r"pass ?code",
            r"access code",
            r"verification code",
            r"(?:one time|otp) (?:code|passcode|password)",
            r"otp",
        ),
        Shape.NUMBER,
        max_duration_s=6.0,
        min_value=3,
    ),
)


def _compile(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@.'-])(?:{phrase})(?![\w@'-])")


# One pattern per phrase, not one alternation per rule: an alternation takes the first phrase that
# matches ("my social"), hiding a longer one at nearly the same place ("social security number").
_PATTERNS = tuple((rule, _compile(phrase)) for rule in RULES for phrase in rule.phrases)

#: Words said before a value that do not start it: "my name is, uh, it's John".
FILLERS = word_set(
    "uh um er erm ah oh is it it's its that's sure yes yeah yep ok okay well so the my right please"
)
#: Words that are never part of a name after a name cue.
NAME_STOP = FILLERS | word_set(
    "and or but i i'm im i've i'll i'd me you your we he she they them is am are was were be been a an of "
    "from with at in on to for by as calling speaking here there today again too also just please thanks "
    "thank hi hello hey good great fine not no actually really going gonna like kind what who how why "
    "when where which this that who's what's there's he's she's spelled spell spelt spelling last first "
    "name surname sir madam mr mrs ms miss dr doctor"
)
STREET_WORDS = word_set(
    "street st road rd avenue ave lane ln drive dr boulevard blvd court ct way place pl terrace close "
    "crescent highway hwy parkway circle square row gardens grove apartment apt unit suite flat floor "
    "building block"
)
#: Words that end a spoken street address.
STREET_STOP = word_set("and but so because it's that's thanks thank please yes no okay ok which where is was")


@dataclass(frozen=True)
class CueMatch:
    """A cue phrase said at characters ``start..end`` of the normalised text."""

    rule: CueRule
    start: int
    end: int


def find_cues(text: str) -> list[CueMatch]:
    """Every cue in the normalised ``text``, in order; where cues overlap, the longer phrase wins."""
    found = _joined(
        [CueMatch(rule, m.start(), m.end()) for rule, pattern in _PATTERNS for m in pattern.finditer(text)]
    )
    kept: list[CueMatch] = []
    # The longer phrase says more: "card number" inside "credit card number".
    for match in sorted(found, key=lambda m: (m.start - m.end, m.start, RULES.index(m.rule))):
        if all(match.end <= other.start or other.end <= match.start for other in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def _joined(matches: list[CueMatch]) -> list[CueMatch]:
    """Overlapping phrases of one rule as one cue: "my email" and "email is" make "my email is"."""
    joined: list[CueMatch] = []
    for match in sorted(matches, key=lambda m: (RULES.index(m.rule), m.start)):
        last = joined[-1] if joined else None
        if last is not None and last.rule is match.rule and match.start < last.end:
            joined[-1] = CueMatch(match.rule, last.start, max(last.end, match.end))
        else:
            joined.append(match)
    return joined
