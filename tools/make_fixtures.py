"""Regenerate the example recordings in fixtures/audio/ with flite (Debian package `flite`).

The fixtures are committed, so nothing needs flite to run; this script says exactly how they were made.
Besides the plain greeting, it composes small evaluation calls with exact truth: every piece of speech is
synthesised on its own, trimmed, level-matched and placed on the call's timeline, so the first and last
sample of each piece (and so of each PII span and each spoken digit) is known, not estimated.

Usage: .venv/bin/python tools/make_fixtures.py [--only NAME]

Re-running gives byte-identical files on the same flite and FFmpeg (the resampler): gaps and noise come
from generators seeded by the call's name, and the files carry no timestamps.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bleepline.audio.files import AudioFileWriter, read_audio_chunks
from bleepline.audio.resample import resample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"

Signal = npt.NDArray[np.float64]

#: name -> (flite voice, sample rate, text). Telephone calls are 8 kHz.
EXAMPLES: dict[str, tuple[str, int, str]] = {
    "welcome_8k.wav": (
        "slt",
        8000,
        "Thank you for calling. This call may be recorded for quality and training. "
        "Only reviewers holding the private key can play this recording back.",
    ),
}

# --- how pieces are cut and placed -------------------------------------------------------------------

#: A piece starts at its first, and ends with its last, 5 ms frame whose RMS is within 45 dB of the
#: loudest frame: weak onsets ("s" of "six", "f" of "five") stay inside the truth span.
TRIM_FRAME_S = 0.005
TRIM_BELOW_PEAK_DB = 45.0
#: A short raised-cosine fade at each end of a trimmed piece, so cuts do not click.
FADE_S = 0.003
#: Peak ceiling after level matching (about -1 dBFS).
PEAK_CEILING = 0.89
#: A faint line-noise floor everywhere, as on a real call; digital silence makes recognisers invent words.
NOISE_FLOOR_DBFS = -70.0

#: flite's duration_stretch: a word synthesised alone gets phrase-final lengthening (0.6-0.9 s per digit
#: in some voices), longer than people reading a number aloud; phrases are sped up a little less.
DIGIT_PACE = 0.75

#: Gaps in seconds, drawn uniformly from these ranges with the call's seeded generator.
DIGIT_GAP = (0.08, 0.25)  # between digits of one group, as people read numbers
GROUP_GAP = (0.30, 0.50)  # between groups of digits
LETTER_GAP = (0.15, 0.35)  # between spelled letters / NATO words
PHRASE_GAP = (0.40, 0.80)  # between phrases of one speaker
CUE_GAP = (0.20, 0.45)  # "my card number is" ... the number
TURN_GAP = (0.50, 0.90)  # the other party speaks
KEYPAD_GAP = (0.60, 1.00)  # time to reach the keypad, or to start talking again after it
LEAD_IN = (0.30, 0.60)  # silence before the first piece and after the last one

#: Keypad tones: ITU-T Q.23 frequencies; durations, gaps and levels as people press keys.
DTMF_LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770}
DTMF_LOW |= {"7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}
DTMF_HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336, "0": 1336}
DTMF_HIGH |= {"3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633, "C": 1633, "D": 1633}
TONE_S = (0.04, 0.10)
TONE_GAP_S = (0.12, 0.40)  # >= 40 ms; people pause longer between keys than a dialler does
TONE_DBFS = (-20.0, -10.0)  # per frequency component, relative to a full-scale sine
TONE_TWIST_DB = (0.0, 2.0)  # the high tone a little louder, as in real handsets

#: Spoken digit words and the digit each one stands for.
DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}

#: Entity names the truth files may use (the detector's vocabulary).
ENTITIES = frozenset(
    {
        "CREDIT_CARD",
        "CARD_EXPIRY",
        "CARD_CVV",
        "PHONE_NUMBER",
        "US_SSN",
        "EMAIL_ADDRESS",
        "PERSON",
        "ADDRESS",
        "DATE_TIME",
        "ACCOUNT_NUMBER",
        "PIN",
        "IBAN_CODE",
        "DTMF",
    }
)


# --- the script of a call ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """Plain speech with no personal data: one synthesised piece."""

    voice: str
    text: str
    pace: float = 0.95


@dataclass(frozen=True)
class Spoken:
    """Personal data said aloud: each word of ``groups`` is one piece, so every digit gets its own times.

    ``value`` is the truth text (the digits, the name, the address as written); a piece may hold several
    words ("forty two maple avenue") where splitting them would make the speech unnatural.
    """

    voice: str
    entity: str
    value: str
    groups: tuple[tuple[str, ...], ...]
    within: tuple[float, float] = DIGIT_GAP
    between: tuple[float, float] = GROUP_GAP
    pace: float = DIGIT_PACE


@dataclass(frozen=True)
class Keypad:
    """Keys pressed on the phone: in-band DTMF tones, entity DTMF."""

    keys: str


Segment = Phrase | Spoken | Keypad


@dataclass(frozen=True)
class Call:
    """One evaluation call: its file name (no suffix), sample rate, speech level and script."""

    name: str
    rate: int
    level_dbfs: float
    script: tuple[Segment, ...]


def digits(spaced: str, zero: str = "zero") -> tuple[tuple[str, ...], ...]:
    """Digit words in groups, from "4242 4242": how a caller reads a number, one word per digit."""
    words = {d: w for w, d in DIGIT_WORDS.items() if w not in ("zero", "oh")} | {"0": zero}
    return tuple(tuple(words[c] for c in group) for group in spaced.split())


def words(text: str) -> tuple[tuple[str, ...], ...]:
    """One group of one-word pieces (spelled letters, NATO words)."""
    return (tuple(text.split()),)


def pieces(*texts: str) -> tuple[tuple[str, ...], ...]:
    """Several multi-word pieces, each its own group."""
    return tuple((t,) for t in texts)


CALLS: tuple[Call, ...] = (
    Call(
        "card_kal_8k",
        8000,
        -20.0,
        (
            Phrase("slt", "How would you like to pay today?"),
            Phrase("kal", "By card. My card number is"),
            Spoken("kal", "CREDIT_CARD", "3566002020360505", digits("3566 0020 2036 0505")),
            Phrase("kal", "it expires"),
            Spoken("kal", "CARD_EXPIRY", "0427", digits("04 27", zero="oh")),
            Phrase("kal", "and the security code is"),
            Spoken("kal", "CARD_CVV", "319", digits("319")),
            Phrase("slt", "Thanks, all done."),
        ),
    ),
    Call(
        "phone_awb_8k",
        8000,
        -22.0,
        (
            Phrase("rms", "And a contact number?"),
            Phrase("awb", "Yes, you can call me on"),
            Spoken("awb", "PHONE_NUMBER", "2025550147", digits("202 555 0147")),
            Phrase("awb", "any time after five."),
        ),
    ),
    Call(
        "ssn_dob_rms_16k",
        16000,
        -20.0,
        (
            Phrase("rms", "My social security number is"),
            Spoken("rms", "US_SSN", "900704123", digits("900 70 4123")),
            Phrase("rms", "and my date of birth is"),
            Spoken(
                "rms",
                "DATE_TIME",
                "March fifth, nineteen eighty four",
                pieces("march fifth, nineteen eighty four"),
                pace=0.95,
            ),
        ),
    ),
    Call(
        "name_email_slt_16k",
        16000,
        -21.0,
        (
            Phrase("slt", "Hi, my name is"),
            Spoken("slt", "PERSON", "John Smith", pieces("John Smith"), pace=0.95),
            Phrase("slt", "and my email is"),
            Spoken(
                "slt",
                "EMAIL_ADDRESS",
                "john.smith@example.com",
                pieces("john dot smith", "at example dot com"),
                between=(0.10, 0.25),
                pace=0.95,
            ),
            Phrase("kal16", "Great, thank you."),
        ),
    ),
    Call(
        "address_kal_8k",
        8000,
        -19.0,
        (
            Phrase("slt", "What's the delivery address?"),
            Phrase("kal", "It's"),
            Spoken(
                "kal",
                "ADDRESS",
                "42 Maple Avenue, Springfield, 62704",
                pieces("forty two maple avenue, springfield") + digits("62704"),
                pace=0.9,
            ),
            Phrase("kal", "it's the blue house on the corner."),
        ),
    ),
    Call(
        "account_pin_rms_8k",
        8000,
        -23.0,
        (
            Phrase("kal16", "Your account number, please?"),
            Phrase("rms", "My account number is"),
            Spoken("rms", "ACCOUNT_NUMBER", "30178826", digits("3017 8826", zero="oh")),
            Phrase("kal16", "And your four digit pin?"),
            Phrase("rms", "It's"),
            Spoken("rms", "PIN", "7259", digits("7259")),
        ),
    ),
    Call(
        "spelled_name_kal16_8k",
        8000,
        -21.0,
        (
            Phrase("awb", "Could you spell your last name?"),
            Phrase("kal16", "Sure, it's"),
            Spoken("kal16", "PERSON", "Delgado", pieces("Delgado"), pace=0.95),
            Phrase("kal16", "that's"),
            Spoken(
                "kal16",
                "PERSON",
                "DELGADO",
                words("delta echo lima golf alpha delta oscar"),
                within=LETTER_GAP,
            ),
            Phrase("kal16", "and my first name is"),
            Spoken("kal16", "PERSON", "Rosa", pieces("Rosa"), pace=0.95),
            Spoken(
                "kal16", "PERSON", "ROSA", pieces("R for romeo", "O for oscar", "S for sierra", "A for alpha")
            ),
        ),
    ),
    Call(
        "keypad_dtmf_8k",
        8000,
        -20.0,
        (
            Phrase("slt", "Please key in your card number, then hash."),
            Keypad("5555555555554444#"),
            Phrase("slt", "Now the three digit security code."),
            Keypad("602#"),
            Phrase("slt", "Thank you."),
        ),
    ),
    Call(
        "no_pii_awb_8k",
        8000,
        -20.0,
        (
            Phrase("kal", "So, how was your week?"),
            Phrase("awb", "Busy. I have two kids, so mornings are hectic."),
            Phrase("kal", "The meeting is at nine thirty in room four."),
            Phrase("awb", "The tickets were about a hundred dollars, same as in twenty twenty four."),
        ),
    ),
)


# --- synthesis and placement -------------------------------------------------------------------------


def flite(voice: str, text: str, pace: float = 1.0) -> tuple[npt.NDArray[np.int16], int]:
    """Synthesise ``text`` with one flite voice: samples at the voice's own rate, and that rate.

    ``pace`` scales durations (flite's duration_stretch): below 1 is faster.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tts.wav"
        command = ["flite", "--setf", f"duration_stretch={pace}", "-voice", voice, "-t", text, "-o", str(out)]
        subprocess.run(command, check=True)
        with wave.open(str(out), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise RuntimeError(f"flite voice {voice} wrote an unexpected WAV format")
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return samples, rate


def trim(signal: Signal, rate: int) -> Signal:
    """Cut leading and trailing silence at whole frames: the kept part is the piece's truth span."""
    frame = max(1, round(TRIM_FRAME_S * rate))
    usable = len(signal) // frame * frame
    energy = np.sqrt(np.mean(signal[:usable].reshape(-1, frame) ** 2, axis=1))
    if usable == 0 or energy.max() <= 0:
        raise RuntimeError("a synthesised piece is silent")
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-TRIM_BELOW_PEAK_DB / 20))
    return signal[loud[0] * frame : (loud[-1] + 1) * frame].copy()


def level(signal: Signal, rate: int, dbfs: float) -> Signal:
    """Scale a trimmed piece so its speech (frames within 30 dB of the loudest) sits at ``dbfs`` RMS.

    Measuring only the voiced frames keeps short words and long phrases at the same loudness.
    """
    frame = min(round(0.02 * rate), len(signal))
    energy = np.mean(signal[: len(signal) // frame * frame].reshape(-1, frame) ** 2, axis=1)
    active = energy[energy >= energy.max() * 10 ** (-30 / 10)]
    gain = min(
        10 ** (dbfs / 20) / float(np.sqrt(np.mean(active))), PEAK_CEILING / float(np.max(np.abs(signal)))
    )
    faded: Signal = signal * gain
    ramp = min(round(FADE_S * rate), len(faded) // 2)
    if ramp > 0:
        window = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        faded[:ramp] *= window
        faded[-ramp:] *= window[::-1]
    return faded


def dtmf_tone(key: str, length: int, rate: int, low_dbfs: float, twist_db: float) -> Signal:
    """One key's two sine tones, ``length`` samples long, with 2 ms ramps against clicks."""
    t = np.arange(length) / rate
    low = 10 ** (low_dbfs / 20) * np.sin(2 * np.pi * DTMF_LOW[key] * t)
    high = 10 ** (min(low_dbfs + twist_db, TONE_DBFS[1]) / 20) * np.sin(2 * np.pi * DTMF_HIGH[key] * t)
    tone: Signal = low + high
    ramp = min(round(0.002 * rate), length // 2)
    window = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    tone[:ramp] *= window
    tone[-ramp:] *= window[::-1]
    return tone


class CallBuilder:
    """Places pieces one after another on a call's timeline and keeps the truth as it goes."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.rate = call.rate
        self.rng = np.random.default_rng(zlib.crc32(call.name.encode()))
        self.placed: list[tuple[int, Signal]] = []
        self.cursor = self._samples(LEAD_IN)
        self.words: list[dict[str, object]] = []
        self.pii: list[dict[str, object]] = []
        self._cache: dict[tuple[str, str, float], Signal] = {}

    def _samples(self, gap: tuple[float, float]) -> int:
        """A duration drawn from ``gap`` (seconds), in whole samples: every time is on the sample grid."""
        return round(float(self.rng.uniform(*gap)) * self.rate)

    def _time(self, sample: int) -> float:
        return sample / self.rate

    def _speech(self, voice: str, text: str, pace: float) -> Signal:
        key = (voice, text, pace)
        if key not in self._cache:
            raw, native = flite(voice, text, pace)
            at_rate = resample(raw, native, self.rate).astype(np.float64) / 32768.0
            self._cache[key] = level(trim(at_rate, self.rate), self.rate, self.call.level_dbfs)
        return self._cache[key]

    def _place(self, signal: Signal, gap: int) -> tuple[int, int]:
        start = self.cursor + gap
        self.placed.append((start, signal))
        self.cursor = start + len(signal)
        return start, self.cursor

    def _say(self, voice: str, text: str, pace: float, gap: int) -> tuple[int, int]:
        start, end = self._place(self._speech(voice, text, pace), gap)
        self.words.append({"text": text, "start": self._time(start), "end": self._time(end)})
        return start, end

    def build(self) -> tuple[Signal, dict[str, object]]:
        """Place the whole script; returns the mix (full scale 1.0) and the truth file's content."""
        previous: Segment | None = None
        for segment in self.call.script:
            gap = self._gap_before(previous, segment)
            if isinstance(segment, Phrase):
                self._say(segment.voice, segment.text, segment.pace, gap)
            elif isinstance(segment, Spoken):
                self._spoken(segment, gap)
            else:
                self._keypad(segment, gap)
            previous = segment
        total = self.cursor + self._samples(LEAD_IN)
        mix = self.rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), total)
        for start, signal in self.placed:
            mix[start : start + len(signal)] += signal
        truth: dict[str, object] = {
            "audio": f"{self.call.name}.wav",
            "sample_rate": self.rate,
            "duration": self._time(total),
            "text": " ".join(str(w["text"]) for w in self.words),
            "words": self.words,
            "pii": self.pii,
        }
        return mix, truth

    def _gap_before(self, previous: Segment | None, segment: Segment) -> int:
        """The pause before ``segment``, in samples: people pause less after a cue than between turns."""
        if previous is None:
            return 0
        if isinstance(previous, Keypad) or isinstance(segment, Keypad):
            return self._samples(KEYPAD_GAP)
        if previous.voice != segment.voice:
            return self._samples(TURN_GAP)
        if isinstance(segment, Spoken) and isinstance(previous, Phrase):
            return self._samples(CUE_GAP)
        return self._samples(PHRASE_GAP)

    def _spoken(self, segment: Spoken, gap: int) -> None:
        """Place each word of a spoken entity; the span runs from its first word's start to its last's end."""
        if segment.entity not in ENTITIES:
            raise ValueError(f"{self.call.name}: unknown entity {segment.entity}")
        first = last = -1
        said: list[dict[str, object]] = []
        for g, group in enumerate(segment.groups):
            for w, word in enumerate(group):
                if g == 0 and w == 0:
                    pause = gap
                elif w == 0:
                    pause = self._samples(segment.between)
                else:
                    pause = self._samples(segment.within)
                start, end = self._say(segment.voice, word, segment.pace, pause)
                first = start if first < 0 else first
                last = end
                if word in DIGIT_WORDS:
                    said.append(
                        {"digit": DIGIT_WORDS[word], "start": self._time(start), "end": self._time(end)}
                    )
        span: dict[str, object] = {
            "entity": segment.entity,
            "text": segment.value,
            "start": self._time(first),
            "end": self._time(last),
            "source": f"tts:{segment.voice}",
        }
        if said:
            span["digits"] = said
        self.pii.append(span)

    def _keypad(self, segment: Keypad, gap: int) -> None:
        """Place one tone per key, each with its own seeded length, level and pause before it."""
        pressed: list[dict[str, object]] = []
        for i, key in enumerate(segment.keys):
            length = self._samples(TONE_S)
            tone = dtmf_tone(
                key,
                length,
                self.rate,
                float(self.rng.uniform(*TONE_DBFS)),
                float(self.rng.uniform(*TONE_TWIST_DB)),
            )
            start, end = self._place(tone, gap if i == 0 else self._samples(TONE_GAP_S))
            pressed.append({"digit": key, "start": self._time(start), "end": self._time(end)})
        self.pii.append(
            {
                "entity": "DTMF",
                "text": segment.keys,
                "start": pressed[0]["start"],
                "end": pressed[-1]["end"],
                "source": "dtmf",
                "digits": pressed,
            }
        )


def format_truth(truth: dict[str, object]) -> str:
    """Plain JSON with each word and each digit on one line, so a regenerated file diffs well."""
    text = json.dumps(truth, indent=1, ensure_ascii=False)
    # Collapse every innermost object (no nested brackets) onto one line.
    return re.sub(r"\{\n[^{}\[\]]*?\n\s*\}", lambda m: re.sub(r"\n\s*", " ", m.group(0)), text) + "\n"


def write_call(call: Call, folder: Path, builder: CallBuilder | None = None) -> tuple[Path, Path]:
    """Build one call and write NAME.wav (mono 16-bit, plain header) and NAME.json beside it.

    ``builder``: one made for ``call`` that places other pieces than flite's (bench/devset.py).
    """
    mix, truth = (builder or CallBuilder(call)).build()
    pcm = np.clip(np.round(mix * 32767.0), -32768, 32767).astype("<i2")
    wav_path = folder / f"{call.name}.wav"
    # The standard library writes a bare 44-byte header: the bytes depend on the samples alone, not on
    # which FFmpeg build happens to be installed.
    with wave.open(str(wav_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(call.rate)
        out.writeframes(pcm.tobytes())
    json_path = folder / f"{call.name}.json"
    json_path.write_text(format_truth(truth), encoding="utf-8")
    return wav_path, json_path


def synthesise(voice: str, sample_rate: int, text: str, out: Path) -> None:
    """One flite voice saying ``text`` whole, at ``sample_rate`` (the plain examples)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
        with AudioFileWriter(out, sample_rate) as writer:
            for chunk in read_audio_chunks(raw, sample_rate=sample_rate):
                writer.write(chunk)


def main(argv: list[str] | None = None) -> None:
    names = [Path(n).stem for n in EXAMPLES] + [c.name for c in CALLS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=names, metavar="NAME", help=f"one of: {', '.join(names)}")
    args = parser.parse_args(argv)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, (voice, rate, text) in EXAMPLES.items():
        if args.only in (None, Path(name).stem):
            synthesise(voice, rate, text, FIXTURES / name)
            print(f"wrote {FIXTURES / name}")
    for call in CALLS:
        if args.only in (None, call.name):
            wav_path, json_path = write_call(call, FIXTURES)
            print(f"wrote {wav_path} and {json_path.name}")


if __name__ == "__main__":
    main()
