"""bench/devset.py: the values are valid, and a composed set's truth agrees with itself and its audio.

The composition runs on a stand-in for ../shared/speech (tone bursts named as its files are) with flite
replaced by tone bursts too: what is checked is the placing and the truth, not the voices.
"""

from __future__ import annotations

import itertools
import json
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from bench import devset
from tools import make_fixtures as mf


def _write(path: Path, rate: int, signal: npt.NDArray[np.float64]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.round(signal * 32767).astype("<i2").tobytes())


def _burst(rate: int, seconds: float, frequency: float, pad_s: float = 0.0) -> npt.NDArray[np.float64]:
    n = round(seconds * rate)
    tone = 0.3 * np.sin(2 * np.pi * frequency * np.arange(n) / rate) * np.hanning(n)
    pad = np.random.default_rng(int(frequency)).normal(0.0, 0.001, round(pad_s * rate))
    return np.concatenate([pad, tone, pad])


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    """A tree shaped like ../shared/speech: FSDD, Speech Commands, the NATO alphabet."""
    root = tmp_path / "speech"
    for digit in range(10):
        for speaker in ("george", "jackson"):
            for take in (5, 6):
                _write(
                    root / "fsdd" / f"{digit}_{speaker}_{take}.wav",
                    8000,
                    _burst(8000, 0.35, 300 + 40 * digit),
                )
    # Speakers with all ten digits, with four, and with one; first names; a word for the crowd.
    for speaker, digits in (("aaaa1111", range(10)), ("bbbb2222", (1, 4, 7, 9)), ("cccc3333", (2,))):
        for digit in digits:
            word = devset.DIGIT_NAMES[digit]
            _write(
                root / "speech_commands" / word / f"{speaker}_nohash_0.wav",
                16000,
                _burst(16000, 0.4, 350 + 30 * digit, pad_s=0.3),
            )
    for name in ("marvin", "sheila"):
        _write(
            root / "speech_commands" / name / "dddd4444_nohash_0.wav", 16000, _burst(16000, 0.5, 500, 0.25)
        )
    for i, letter in enumerate("abcdefghijklmnopqrstuvwxyz"):
        _write(root / "nato_alphabet" / f"{letter}.wav", 48000, _burst(48000, 0.5, 400 + 10 * i))
    for digit in range(10):
        _write(root / "nato_alphabet" / f"{digit}.wav", 44100, _burst(44100, 0.45, 320 + 25 * digit))
    return root


@pytest.fixture
def no_flite(monkeypatch: pytest.MonkeyPatch) -> None:
    """flite stand-in: a tone burst as long as the text would take to say."""

    def fake(voice: str, text: str, pace: float = 1.0) -> tuple[npt.NDArray[np.int16], int]:
        burst = _burst(16000, 0.08 * len(text) * pace + 0.1, 200 + 7 * len(text), pad_s=0.05)
        return np.round(burst * 32767).astype(np.int16), 16000

    monkeypatch.setattr(mf, "flite", fake)


def test_card_numbers_pass_luhn_and_group_as_read() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        number, spaced = devset.card_number(rng)
        assert devset.luhn_ok(number)
        assert spaced.replace(" ", "") == number
        assert [len(g) for g in spaced.split()] == ([4, 6, 5] if number.startswith("37") else [4, 4, 4, 4])
    assert devset.luhn_ok("4111111111111111")
    assert not devset.luhn_ok("4111111111111112")


def test_other_values() -> None:
    rng = np.random.default_rng(2)
    for _ in range(100):
        phone = devset.phone_number(rng)
        assert [len(g) for g in phone.split()] in ([3, 3, 4], [3, 4])
        area, group, serial = devset.ssn(rng).split()
        assert 0 < int(area) < 900
        assert int(area) != 666
        assert len(group) == 2
        assert len(serial) == 4
    assert devset.year_words(1984) == "nineteen eighty four"
    assert devset.year_words(1905) == "nineteen oh five"
    assert devset.year_words(1990) == "nineteen ninety"
    assert devset.year_words(2003) == "two thousand three"
    assert devset.spoken_digits("40 12", rng) == (("four", "zero"), ("one", "two"))
    assert devset.spoken_digits("0", rng, oh=1.0) == (("oh",),)


def test_trim_word_keeps_the_word_and_drops_a_click_apart_from_it() -> None:
    rate = 16000
    signal = np.random.default_rng(0).normal(0.0, 0.002, rate)
    word = _burst(rate, 0.3, 440)
    signal[6000 : 6000 + len(word)] += word
    signal[14000:14080] += 0.2  # a click half a second after the word
    cut = devset.trim_word(signal, rate)
    assert 0.2 * rate < len(cut) < 0.32 * rate


def test_composed_truth_is_consistent(speech: Path, no_flite: None, tmp_path: Path) -> None:
    count = 2 * len(devset.KINDS)
    paths = devset.compose(tmp_path / "dev", speech, count)
    assert len(paths) == count
    kinds: set[str] = set()
    for path in paths:
        truth = json.loads(path.read_text())
        with wave.open(str(path.with_name(truth["audio"]))) as audio:
            frames, rate = audio.getnframes(), audio.getframerate()
        assert rate == truth["sample_rate"]
        assert truth["duration"] == frames / rate
        words = truth["words"]
        assert all(0 <= a["start"] < a["end"] <= b["start"] for a, b in itertools.pairwise(words))
        for item in truth["pii"]:
            kinds.add(item["entity"])
            assert item["entity"] in mf.ENTITIES
            assert 0 <= item["start"] < item["end"] <= truth["duration"]
            digits = item.get("digits", [])
            for d in digits:
                assert item["start"] <= d["start"] < d["end"] <= item["end"]
            assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(digits))
            if item["entity"] in (
                "CREDIT_CARD",
                "PHONE_NUMBER",
                "US_SSN",
                "ACCOUNT_NUMBER",
                "PIN",
                "CARD_CVV",
            ):
                assert "".join(d["digit"] for d in digits) == item["text"]
            if item["entity"] == "CREDIT_CARD":
                assert devset.luhn_ok(item["text"])
            if item["entity"] == "DTMF":
                assert "".join(d["digit"] for d in digits) == item["text"]
        if "_no_pii_" in path.name:
            assert truth["pii"] == []
    assert {"CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "EMAIL_ADDRESS", "PERSON", "DTMF", "PIN"} <= kinds


def test_composition_is_deterministic_and_cached(speech: Path, no_flite: None, tmp_path: Path) -> None:
    sources = devset.Sources(speech)
    assert devset.calls(sources, 12) == devset.calls(sources, 12)
    first = devset.ensure(tmp_path / "a", speech, 12)
    audio = [p.with_suffix(".wav").read_bytes() for p in first]
    again = devset.compose(tmp_path / "b", speech, 12)
    assert [p.with_suffix(".wav").read_bytes() for p in again] == audio
    stamp = first[0].stat().st_mtime_ns
    assert devset.ensure(tmp_path / "a", speech, 12) == first  # current: not composed again
    assert first[0].stat().st_mtime_ns == stamp


def test_every_speaker_is_used(speech: Path) -> None:
    sources = devset.Sources(speech)
    voices = {
        piece.voice.partition("+")[2]
        for call in devset.calls(sources, 3 * len(devset.KINDS))
        for piece in call.script
        if not isinstance(piece, mf.Keypad)
    }
    assert {s for s in sources.words if sources.digits(s)} <= voices
