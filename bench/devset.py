"""The development set: 50 calls composed at run time from ../shared/speech and flite, with exact truth.

Nothing here is committed but this script: the calls are composed into bench/results/devset/ (git-ignored)
the first time they are asked for, or when the script's version of them changes (``manifest.json``).

Every call is a script of tools/make_fixtures.py's ``Phrase``/``Spoken``/``Keypad`` pieces, placed by its
``CallBuilder``; a voice may name a recorded source after a ``+`` ("kal+fsdd:george"): a word that source
holds (a digit, "marvin", a NATO word, "yes") is a recorded clip (a random take, trimmed, level-matched),
any other word is flite's. Sources, all of ../shared/speech's speakers:

- digits: FSDD's four speakers, the Speech Commands speakers who said digits (those with all ten say card,
  phone and SSN numbers; those with a few say PINs, security codes and account numbers made of the digits
  they have; those with one or two say harmless numbers in the no-PII calls), the NATO set's digit voice;
- first names: every "marvin" and "sheila" clip (and names from flite);
- spelled surnames: the NATO alphabet; spelled e-mail addresses: flite letters;
- agent turns and carrier phrases: the flite voices kal, kal16, awb, rms, slt.

Values are random but seeded by the call's index: Luhn-valid card numbers (Visa, Mastercard, Amex,
Discover prefixes), phone numbers as 3-3-4 or 3-4 (zero as "oh" from flite, or "zero"), SSNs, dates of
birth, e-mail addresses, names, CVVs, expiry dates, account numbers, PINs, keypad entries; and no-PII
calls with harmless numbers ("two kids", "nine thirty", years).

Run: PYTHONPATH=. .venv/bin/python -m bench.devset [--force] (prints the set and which speakers it uses).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tools import make_fixtures as mf

from bleepline.audio.files import read_audio_chunks

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT.parent / "shared" / "speech"
CACHE = ROOT / "bench" / "results" / "devset"
#: Bump when the composition changes in a way the scripts' text does not show (trimming, levels).
VERSION = "1"
COUNT = 50
#: Cutting a Speech Commands word out of its clip (``trim_word``): a frame is part of the word when it
#: is within WORD_BELOW_PEAK_DB of the loudest and WORD_ABOVE_FLOOR_DB above the clip's background (its
#: 10th-percentile frame; the noise is only 20-40 dB below the word); quieter runs up to WORD_DIP_S long
#: inside the word (the closure in "seven", "eight") do not end it.
WORD_BELOW_PEAK_DB = 35.0
WORD_ABOVE_FLOOR_DB = 10.0
WORD_DIP_S = 0.08

VOICES = ("kal", "kal16", "awb", "rms", "slt")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NATO = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        [
            "alpha",
            "bravo",
            "charlie",
            "delta",
            "echo",
            "foxtrot",
            "golf",
            "hotel",
            "india",
            "juliett",
            "kilo",
            "lima",
            "mike",
            "november",
            "oscar",
            "papa",
            "quebec",
            "romeo",
            "sierra",
            "tango",
            "uniform",
            "victor",
            "whiskey",
            "x-ray",
            "yankee",
            "zulu",
        ],
        strict=True,
    )
)
FIRST_NAMES = ("John", "Maria", "Priya", "Ahmed", "Laura", "Kevin", "Elena", "Tom", "Grace", "Omar")
SURNAMES = (
    "Delgado",
    "Novak",
    "Okafor",
    "Bishop",
    "Fischer",
    "Tanaka",
    "Moreau",
    "Quinn",
    "Varga",
    "Kowalski",
)
DOMAINS = (("example", "com"), ("mail", "net"), ("post", "org"), ("inbox", "com"))
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]


# --- what ../shared/speech holds ---------------------------------------------------------------------


def _audible(path: Path) -> bool:
    """Whether a Speech Commands clip holds a word at all: a few are near-silent takes (peak 20 ms frame
    below -45 dBFS) that level matching would only turn into amplified noise."""
    with wave.open(str(path), "rb") as clip:
        samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2").astype(np.float64) / 32768
        size = clip.getframerate() // 50
    frames = samples[: len(samples) // size * size].reshape(-1, size)
    return bool(len(frames)) and float(np.sqrt(np.mean(frames**2, axis=1)).max()) >= 10 ** (-45 / 20)


class Sources:
    """The recorded words of ../shared/speech, by source: ``source -> word -> takes`` (sorted paths)."""

    def __init__(self, speech: Path = SPEECH) -> None:
        if not speech.is_dir():
            raise FileNotFoundError(f"the development set is composed from {speech}, which is not present")
        self.speech = speech

    @cached_property
    def words(self) -> dict[str, dict[str, list[Path]]]:
        found: dict[str, dict[str, list[Path]]] = {}
        for path in sorted((self.speech / "fsdd").glob("*.wav")):
            digit, speaker, _ = path.stem.split("_")
            found.setdefault(f"fsdd:{speaker}", {}).setdefault(DIGIT_NAMES[int(digit)], []).append(path)
        for folder in sorted(p for p in (self.speech / "speech_commands").iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.wav")):
                if not _audible(path):
                    continue
                speaker = path.stem.split("_")[0]
                found.setdefault(f"commands:{speaker}", {}).setdefault(folder.name, []).append(path)
        nato = self.speech / "nato_alphabet"
        found["nato"] = {word: [nato / f"{letter}.wav"] for letter, word in NATO.items()}
        found["nato-digits"] = {name: [nato / f"{d}.wav"] for d, name in enumerate(DIGIT_NAMES)}
        return found

    def digits(self, source: str) -> str:
        """The digits ``source`` can say, as a string of characters."""
        return "".join(str(d) for d, name in enumerate(DIGIT_NAMES) if name in self.words[source])

    def digit_sources(self, least: int, most: int = 10) -> list[str]:
        """Sources with between ``least`` and ``most`` distinct digits, in a fixed order."""
        return [s for s in sorted(self.words) if least <= len(self.digits(s)) <= most]

    def name_clips(self) -> list[tuple[str, str]]:
        """Every (source, name) pair with a recorded "marvin" or "sheila"."""
        return [
            (s, name) for name in ("marvin", "sheila") for s in sorted(self.words) if name in self.words[s]
        ]


def trim_word(signal: mf.Signal, rate: int) -> mf.Signal:
    """The word of a one-word clip: the loud run around its loudest frame, in whole 5 ms frames.

    make_fixtures' ``trim`` keeps everything from the first to the last loud frame, which in a Speech
    Commands clip takes in the click or breath before and after the word. Only what is cut out is
    placed, so the truth span is exactly the audio placed either way.
    """
    frame = max(1, round(mf.TRIM_FRAME_S * rate))
    usable = len(signal) // frame * frame
    energy = np.sqrt(np.mean(signal[:usable].reshape(-1, frame) ** 2, axis=1))
    if usable == 0 or energy.max() <= 0:
        raise RuntimeError("a recorded clip is silent")
    peak = int(np.argmax(energy))
    floor = float(np.quantile(energy, 0.1)) * 10 ** (WORD_ABOVE_FLOOR_DB / 20)
    loud = energy >= min(max(energy[peak] * 10 ** (-WORD_BELOW_PEAK_DB / 20), floor), energy[peak])
    dip = max(1, round(WORD_DIP_S * rate / frame))
    first = last = peak
    # Step from loud frame to the next loud frame no further than a dip away, each way.
    while hits := np.flatnonzero(loud[last + 1 : last + 1 + dip]).tolist():
        last += hits[0] + 1
    while hits := np.flatnonzero(loud[max(first - dip, 0) : first]).tolist():
        first = max(first - dip, 0) + hits[-1]
    return signal[first * frame : (last + 1) * frame].copy()


class DevBuilder(mf.CallBuilder):
    """make_fixtures' CallBuilder, with recorded clips for the words a voice's source holds."""

    def __init__(self, call: mf.Call, sources: Sources) -> None:
        super().__init__(call)
        self.sources = sources
        self._clips: dict[Path, mf.Signal] = {}
        self._recorded = False

    def _speech(self, voice: str, text: str, pace: float) -> mf.Signal:
        tts, _, source = voice.partition("+")
        takes = self.sources.words.get(source, {}).get(text.lower()) if source else None
        if not takes:
            return super()._speech(tts, text, pace)
        # A take of its own each time a word comes back, as a person never says a word twice alike.
        path = takes[int(self.rng.integers(len(takes)))]
        self._recorded = True
        if path not in self._clips:
            samples = np.concatenate([c.samples for c in read_audio_chunks(path, sample_rate=self.rate)])
            signal = samples.astype(np.float64) / 32768.0
            # FSDD and the NATO set are clean and tight already; Speech Commands clips are a second of
            # microphone noise, clicks and breaths around the word.
            cut = (
                trim_word(signal, self.rate) if source.startswith("commands:") else mf.trim(signal, self.rate)
            )
            self._clips[path] = mf.level(cut, self.rate, self.call.level_dbfs)
        return self._clips[path]

    def _spoken(self, segment: mf.Spoken, gap: int) -> None:
        self._recorded = False
        super()._spoken(segment, gap)
        tts, _, source = segment.voice.partition("+")
        self.pii[-1]["source"] = source if self._recorded else f"tts:{tts}"


# --- values ------------------------------------------------------------------------------------------


def luhn_ok(number: str) -> bool:
    """The Luhn check that card numbers pass."""
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_number(rng: np.random.Generator) -> tuple[str, str]:
    """A Luhn-valid card number and how it is grouped when read out ("4-4-4-4", Amex "4-6-5")."""
    prefix, length, grouping = [
        ("4", 16, (4, 4, 4, 4)),
        (f"5{rng.integers(1, 6)}", 16, (4, 4, 4, 4)),
        ("37", 15, (4, 6, 5)),
        ("6011", 16, (4, 4, 4, 4)),
    ][int(rng.integers(4))]
    body = prefix + "".join(str(int(d)) for d in rng.integers(0, 10, length - len(prefix) - 1))
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    number = body + check
    spaced, at = [], 0
    for size in grouping:
        spaced.append(number[at : at + size])
        at += size
    return number, " ".join(spaced)


def some_digits(rng: np.random.Generator, allowed: str, count: int) -> str:
    return "".join(allowed[int(i)] for i in rng.integers(0, len(allowed), count))


def phone_number(rng: np.random.Generator) -> str:
    """A North American number as read: "3-3-4" with an area code, or a local "3-4"."""
    exchange = str(rng.integers(2, 10)) + some_digits(rng, "0123456789", 2)
    line = some_digits(rng, "0123456789", 4)
    if rng.random() < 0.65:
        return f"{rng.integers(2, 10)}{some_digits(rng, '0123456789', 2)} {exchange} {line}"
    return f"{exchange} {line}"


def ssn(rng: np.random.Generator) -> str:
    area = int(rng.choice([a for a in range(1, 900) if a != 666]))
    return f"{area:03d} {int(rng.integers(1, 100)):02d} {int(rng.integers(1, 10000)):04d}"


def year_words(year: int) -> str:
    if year >= 2000:
        return "two thousand" + (f" {DIGIT_NAMES[year - 2000]}" if year > 2000 else "")
    century, rest = divmod(year, 100)
    head = TEENS[century - 10]
    if rest < 10:
        return f"{head} oh {DIGIT_NAMES[rest]}"
    if rest < 20:
        return f"{head} {TEENS[rest - 10]}"
    return f"{head} {TENS[rest // 10]}" + (f" {DIGIT_NAMES[rest % 10]}" if rest % 10 else "")


def date_of_birth(rng: np.random.Generator) -> tuple[str, str]:
    """(truth text, how it is said): "March 5, 1984", "march fifth, nineteen eighty four"."""
    month, day, year = int(rng.integers(12)), int(rng.integers(1, 21)), int(rng.integers(1945, 2005))
    return (
        f"{MONTHS[month]} {day}, {year}",
        f"{MONTHS[month].lower()} {ORDINALS[day - 1]}, {year_words(year)}",
    )


def spoken_digits(spaced: str, rng: np.random.Generator, oh: float = 0.0) -> tuple[tuple[str, ...], ...]:
    """Digit words by group; each zero is "oh" with probability ``oh`` (flite says "oh")."""
    return tuple(
        tuple(("oh" if rng.random() < oh else "zero") if c == "0" else DIGIT_NAMES[int(c)] for c in group)
        for group in spaced.split()
    )


# --- the calls ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Who speaks: the agent's flite voice, the caller's flite voice and recorded source."""

    agent: str
    caller: str  # "voice+source"

    @property
    def tts(self) -> str:
        return self.caller.partition("+")[0]


def _cast(rng: np.random.Generator, source: str) -> Cast:
    agent, caller = (VOICES[int(i)] for i in rng.permutation(len(VOICES))[:2])
    return Cast(agent, f"{caller}+{source}")


def _card(rng: np.random.Generator, c: Cast) -> tuple[mf.Segment, ...]:
    number, spaced = card_number(rng)
    month, year = int(rng.integers(1, 13)), int(rng.integers(25, 32))
    expiry = f"{month:02d} {year:02d}"
    cvv = some_digits(rng, "0123456789", 4 if number.startswith("37") else 3)
    return (
        mf.Phrase(c.agent, "How would you like to pay today?"),
        mf.Phrase(c.caller, "By card. My card number is"),
        mf.Spoken(c.caller, "CREDIT_CARD", number, spoken_digits(spaced, rng)),
        mf.Phrase(c.agent, "And the expiry date?"),
        mf.Phrase(c.caller, "it expires"),
        mf.Spoken(c.caller, "CARD_EXPIRY", expiry.replace(" ", ""), spoken_digits(expiry, rng, oh=0.7)),
        mf.Phrase(c.agent, "and the security code on the back?"),
        mf.Phrase(c.caller, "it's"),
        mf.Spoken(c.caller, "CARD_CVV", cvv, spoken_digits(cvv, rng)),
        mf.Phrase(c.agent, "Thank you, that's all gone through."),
    )


def _phone(rng: np.random.Generator, c: Cast) -> tuple[mf.Segment, ...]:
    number = phone_number(rng)
    return (
        mf.Phrase(c.agent, "What's the best number to reach you on?"),
        mf.Phrase(c.caller, "You can call me on"),
        mf.Spoken(c.caller, "PHONE_NUMBER", number.replace(" ", ""), spoken_digits(number, rng, oh=0.6)),
        mf.Phrase(c.caller, "any time after five."),
        mf.Phrase(c.agent, "Lovely, I've made a note of that."),
    )


def _ssn_dob(rng: np.random.Generator, c: Cast) -> tuple[mf.Segment, ...]:
    number = ssn(rng)
    truth, said = date_of_birth(rng)
    return (
        mf.Phrase(c.agent, "Can I have your social security number?"),
        mf.Phrase(c.caller, "Sure, it's"),
        mf.Spoken(c.caller, "US_SSN", number.replace(" ", ""), spoken_digits(number, rng, oh=0.3)),
        mf.Phrase(c.agent, "And your date of birth?"),
        mf.Phrase(c.caller, "It's"),
        mf.Spoken(c.caller, "DATE_TIME", truth, mf.pieces(said), pace=0.95),
    )


def _first_name(
    rng: np.random.Generator, c: Cast, names: Sequence[tuple[str, str]], index: int
) -> tuple[Cast, mf.Spoken]:
    """The caller's first name: a recorded "marvin"/"sheila" (the caller is then that speaker) or flite."""
    if index < len(names):
        source, name = names[index]
        c = Cast(c.agent, f"{c.tts}+{source}")
        return c, mf.Spoken(c.caller, "PERSON", name.capitalize(), mf.pieces(name), pace=0.95)
    name = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
    return c, mf.Spoken(c.caller, "PERSON", name, mf.pieces(name), pace=0.95)


def _email(
    rng: np.random.Generator, c: Cast, names: Sequence[tuple[str, str]], index: int
) -> tuple[mf.Segment, ...]:
    c, first = _first_name(rng, c, names, index)
    local = first.value.lower() + (str(rng.integers(1, 10)) if rng.random() < 0.4 else "")
    host, tld = DOMAINS[int(rng.integers(len(DOMAINS)))]
    letters = tuple(DIGIT_NAMES[int(ch)] if ch.isdigit() else ch for ch in local)
    return (
        mf.Phrase(c.agent, "Who am I speaking to?"),
        mf.Phrase(c.caller, "This is"),
        first,
        mf.Phrase(c.agent, "And an email address for the receipt?"),
        mf.Phrase(c.caller, "Yes, it's"),
        mf.Spoken(
            f"{c.tts}",  # spelled by the caller's flite voice: no source holds letter names
            "EMAIL_ADDRESS",
            f"{local}@{host}.{tld}",
            (letters, ("at",), (host,), ("dot",), (tld,)),
            within=mf.LETTER_GAP,
            between=(0.10, 0.25),
            pace=0.95,
        ),
        mf.Phrase(c.agent, "Great, you'll get it in a minute."),
    )


def _name(
    rng: np.random.Generator, c: Cast, names: Sequence[tuple[str, str]], index: int
) -> tuple[mf.Segment, ...]:
    c, first = _first_name(rng, c, names, index)
    surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
    spelled = " ".join(NATO[ch] for ch in surname.lower())
    return (
        mf.Phrase(c.agent, "Can I take your full name, please?"),
        mf.Phrase(c.caller, "My name is"),
        first,
        mf.Phrase(c.caller, "and my last name is"),
        mf.Spoken(c.tts, "PERSON", surname, mf.pieces(surname), pace=0.95),
        mf.Phrase(c.agent, "Could you spell that for me?"),
        mf.Spoken(f"{c.tts}+nato", "PERSON", surname.upper(), mf.words(spelled), within=mf.LETTER_GAP),
        mf.Phrase(c.agent, "Thank you."),
    )


def _booking(
    rng: np.random.Generator, c: Cast, names: Sequence[tuple[str, str]], index: int
) -> tuple[mf.Segment, ...]:
    digits_voice = c.caller
    c, first = _first_name(rng, c, names, index)
    number = phone_number(rng)
    return (
        mf.Phrase(c.agent, "What name is the booking under?"),
        first,
        mf.Phrase(c.agent, "And a phone number in case we need to reach you?"),
        mf.Phrase(digits_voice, "It's"),
        mf.Spoken(digits_voice, "PHONE_NUMBER", number.replace(" ", ""), spoken_digits(number, rng, oh=0.5)),
        mf.Phrase(c.agent, "That's a table for two at nine thirty."),
    )


def _account_pin(rng: np.random.Generator, c: Cast, allowed: str) -> tuple[mf.Segment, ...]:
    account = some_digits(rng, allowed, 4) + " " + some_digits(rng, allowed, 4)
    pin = some_digits(rng, allowed, 4)
    return (
        mf.Phrase(c.agent, "Your account number, please?"),
        mf.Phrase(c.caller, "My account number is"),
        mf.Spoken(c.caller, "ACCOUNT_NUMBER", account.replace(" ", ""), spoken_digits(account, rng, oh=0.5)),
        mf.Phrase(c.agent, "And your four digit pin?"),
        mf.Phrase(c.caller, "It's"),
        mf.Spoken(c.caller, "PIN", pin, spoken_digits(pin, rng)),
    )


def _pin_cvv(rng: np.random.Generator, c: Cast, allowed: str) -> tuple[mf.Segment, ...]:
    pin, cvv = some_digits(rng, allowed, 4), some_digits(rng, allowed, 3)
    return (
        mf.Phrase(c.agent, "For security, can you tell me your pin?"),
        mf.Phrase(c.caller, "Yes, it's"),
        mf.Spoken(c.caller, "PIN", pin, spoken_digits(pin, rng)),
        mf.Phrase(c.agent, "And the three digits on the back of your card?"),
        mf.Spoken(c.caller, "CARD_CVV", cvv, spoken_digits(cvv, rng)),
        mf.Phrase(c.agent, "Thanks, you're verified."),
    )


def _keypad(rng: np.random.Generator, c: Cast) -> tuple[mf.Segment, ...]:
    number, _ = card_number(rng)
    return (
        mf.Phrase(c.agent, "Please key in your card number, followed by the hash key."),
        mf.Keypad(number + "#"),
        mf.Phrase(c.agent, "And now your three digit security code."),
        mf.Keypad(some_digits(rng, "0123456789", 3) + "#"),
        mf.Phrase(c.caller, "Done. Did that work?"),
        mf.Phrase(c.agent, "Yes, thank you."),
    )


def _no_pii(rng: np.random.Generator, c: Cast, sources: Sources, other: str) -> tuple[mf.Segment, ...]:
    """Harmless numbers only: recorded digit words inside ordinary talk (the caller's, and a colleague's
    from ``other``, who joins in), and flite's times and years."""
    a = DIGIT_NAMES[int(some_digits(rng, sources.digits(c.caller.partition("+")[2]), 1))]
    b = DIGIT_NAMES[int(some_digits(rng, sources.digits(other), 1))]
    colleague = f"{VOICES[(VOICES.index(c.tts) + 1) % len(VOICES)]}+{other}"
    year = year_words(int(rng.integers(1990, 2010)))
    return (
        mf.Phrase(c.agent, "So, how was your week?"),
        mf.Phrase(c.caller, "Busy. I have two kids, so mornings are hectic."),
        mf.Phrase(c.agent, "When does the meeting start?"),
        mf.Phrase(c.caller, "At nine thirty, in room"),
        mf.Phrase(c.caller, a),
        mf.Phrase(c.agent, "How many people are coming?"),
        mf.Phrase(colleague, b),
        mf.Phrase(c.caller, f"maybe more. We've used that room since {year}."),
        mf.Phrase(c.agent, "Sounds good, see you there."),
    )


KINDS = ("card", "phone", "ssn_dob", "email", "name", "booking", "account_pin", "pin_cvv", "keypad", "no_pii")
#: The kinds whose numbers need every digit: their callers are the sources that have all ten.
NUMBER_KINDS = ("card", "phone", "ssn_dob", "booking")


def calls(sources: Sources, count: int = COUNT) -> list[mf.Call]:
    """The development set's scripts: ``count`` calls, kinds in turn, speakers spread over all sources."""
    full = sources.digit_sources(10)  # card, phone, SSN numbers need every digit
    some = sources.digit_sources(3, 9)  # PINs, CVVs and account numbers from the digits they have
    few = sources.digit_sources(1, 2)  # harmless numbers only
    names = sources.name_clips()
    made: list[mf.Call] = []
    counters: dict[str, int] = {}
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        turn = counters[kind] = counters.get(kind, -1) + 1
        rng = np.random.default_rng(zlib.crc32(f"devset/{index}".encode()))
        rate = 8000 if rng.random() < 0.6 else 16000
        level = round(float(rng.uniform(-27.0, -16.0)) * 2) / 2
        # Spread each pool over the calls that use it, so every speaker is heard somewhere.
        if kind in NUMBER_KINDS:
            source = full[(turn * len(NUMBER_KINDS) + NUMBER_KINDS.index(kind)) % len(full)]
        elif kind in ("account_pin", "pin_cvv"):
            source = some[(turn * 2 + (kind == "pin_cvv")) % len(some)]
        elif kind == "no_pii":
            source = (few or full)[2 * turn % len(few or full)]
        else:
            source = full[turn % len(full)]
        cast = _cast(rng, source)
        # Name clips: email, name and booking calls take them in turn, until all are used.
        name_index = {"email": 0, "name": 1, "booking": 2}.get(kind, 0) + 3 * turn
        if kind == "card":
            script = _card(rng, cast)
        elif kind == "phone":
            script = _phone(rng, cast)
        elif kind == "ssn_dob":
            script = _ssn_dob(rng, cast)
        elif kind == "email":
            script = _email(rng, cast, names, name_index)
        elif kind == "name":
            script = _name(rng, cast, names, name_index)
        elif kind == "booking":
            script = _booking(rng, cast, names, name_index)
        elif kind == "account_pin":
            script = _account_pin(rng, cast, sources.digits(source))
        elif kind == "pin_cvv":
            script = _pin_cvv(rng, cast, sources.digits(source))
        elif kind == "keypad":
            script = _keypad(rng, cast)
        else:
            other = (few or full)[(2 * turn + 1) % len(few or full)]
            script = _no_pii(rng, cast, sources, other)
        made.append(mf.Call(f"dev{index:02d}_{kind}_{rate // 1000}k", rate, level, script))
    return made


# --- the cache ---------------------------------------------------------------------------------------


def digest(scripts: Sequence[mf.Call], sources: Sources) -> str:
    """What the composed set depends on: the scripts, the version, and which clips there are."""
    text = repr((VERSION, scripts, {s: sorted(w) for s, w in sources.words.items()}))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compose(folder: Path = CACHE, speech: Path = SPEECH, count: int = COUNT) -> list[Path]:
    """Compose every call into ``folder`` (emptied first); the truth files."""
    sources = Sources(speech)
    scripts = calls(sources, count)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    paths = []
    for call in scripts:
        _, truth = mf.write_call(call, folder, DevBuilder(call, sources))
        paths.append(truth)
    manifest = {"digest": digest(scripts, sources), "calls": [c.name for c in scripts]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return paths


def ensure(folder: Path = CACHE, speech: Path = SPEECH, count: int = COUNT) -> list[Path]:
    """The dev set's truth files, composed first when missing or made by another version of this script."""
    sources = Sources(speech)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        paths = [folder / f"{name}.json" for name in saved["calls"]]
        if saved["digest"] == digest(calls(sources, count), sources) and all(p.is_file() for p in paths):
            return paths
    print(f"composing the development set in {folder} ...", file=sys.stderr, flush=True)
    return compose(folder, speech, count)


def speakers_used(paths: Sequence[Path]) -> dict[str, int]:
    """How many PII spans each recorded source speaks (from the truth files' ``source``)."""
    used: dict[str, int] = {}
    for path in paths:
        for item in json.loads(path.read_text())["pii"]:
            used[item["source"]] = used.get(item["source"], 0) + 1
    return dict(sorted(used.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="compose again even if the cache is current")
    args = parser.parse_args(argv)
    paths = compose() if args.force else ensure()
    seconds = sum(json.loads(p.read_text())["duration"] for p in paths)
    print(f"{len(paths)} calls, {seconds / 60:.1f} min, in {CACHE}")
    for source, spans in speakers_used(paths).items():
        print(f"  {source:22s} {spans} spans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
