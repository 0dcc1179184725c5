"""Leak and over-redaction of the whole redactor, by delay D: can anything personal get through?

Each call is streamed through a CallSession exactly as `bleepline redact` does; the released audio is
compared with the input sample by sample (masked = the original is no longer there). The listener
(VAD, recognizer, detector) does not depend on D, so it runs once per call and its hearings are replayed
for every D; the delay line, the keypad detector and the masking run for real each time.

Per D it prints:
- PII audible: share of the speech inside true PII spans (20 ms frames above -45 dBFS) that comes out
  unchanged, per entity and overall (DTMF included: keypad tones are personal data too);
- digits leaked: digits with at least a quarter of their speech audible (and digits with any audible
  frame at all);
- over-redaction: share of non-PII speech (outside PII spans and a 0.3 s guard band) that was masked;
- late masks: spans that arrived after part of their audio had been released.

Run: PYTHONPATH=. .venv/bin/python -m bench.eval_redaction [--calls fixtures|shared|all] [--delays 1.5,2,3,5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.eval_pii import truth_calls
from bleepline.audio.files import read_audio_chunks
from bleepline.audio.rechunk import Rechunker
from bleepline.call import CallSession
from bleepline.listener import CallListener, Hearing
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.redact.policy import RedactionPolicy
from bleepline.speech.asr import StreamingRecognizer
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.timeline import AudioChunk, samples_per_chunk

FRAME_S = 0.02
SPEECH_DBFS = -45.0
GUARD_S = 0.3
DIGIT_AUDIBLE = 0.25


class ReplayedListener:
    """Plays back what a listener heard, chunk by chunk, so one recognition serves every delay."""

    def __init__(self, hearings: list[Hearing], ending: Hearing) -> None:
        self._hearings = iter(hearings)
        self._ending = ending

    def push(self, chunk: AudioChunk) -> Hearing:
        return next(self._hearings)

    def end(self, at: float) -> Hearing:
        return self._ending


class Capture:
    """A sink that keeps the released audio in memory."""

    def __init__(self) -> None:
        self.chunks: list[AudioChunk] = []

    def write(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)

    def samples(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks])


@dataclass
class Recorded:
    name: str
    truth: list[dict[str, Any]]
    chunks: list[AudioChunk]
    hearings: list[Hearing]
    ending: Hearing
    #: The clean call on this call's timeline, when the input is a perturbed variant: which frames hold
    #: speech is decided from it, so that added noise does not count as speech (bench/perturb.py).
    speech_reference: np.ndarray | None = None


def chunked(samples: np.ndarray, rate: int) -> list[AudioChunk]:
    """In-memory samples as the 20 ms chunks a file or a call would arrive in."""
    rechunker = Rechunker(rate, samples_per_chunk(rate))
    return [*rechunker.push(np.asarray(samples, dtype=np.int16)), *rechunker.flush()]


def listen(
    name: str,
    chunks: list[AudioChunk],
    truth: list[dict[str, Any]],
    whisper: Any,
    detector: SpokenPiiDetector,
) -> Recorded:
    """Stream ``chunks`` through a real listener once and keep what it heard, chunk by chunk."""
    listener = CallListener(
        chunks[0].sample_rate, StreamingRecognizer(whisper=whisper), SpanTracker(detector)
    )
    hearings = [listener.push(chunk) for chunk in chunks]
    ending = listener.end(chunks[-1].end / chunks[-1].sample_rate)
    return Recorded(name, truth, chunks, hearings, ending)


def record(truth_path: Path, whisper: Any, detector: SpokenPiiDetector) -> Recorded:
    truth = json.loads(truth_path.read_text())
    chunks = list(read_audio_chunks(truth_path.with_name(truth["audio"])))
    return listen(truth_path.stem, chunks, truth["pii"], whisper, detector)


PAD_S: tuple[float, float] | None = None  # (before, after) to override the policy's span padding


def redact(call: Recorded, delay_s: float) -> tuple[np.ndarray, int, float]:
    capture = Capture()
    session = CallSession(
        call.name,
        call.chunks[0].sample_rate,
        listener=ReplayedListener(call.hearings, call.ending),
        policy=_policy(delay_s),
        sinks=[capture],
    )
    for chunk in call.chunks:
        session.push(chunk)
    report = session.end()
    return capture.samples(), report.late_masks, report.late_mask_s


def _policy(delay_s: float) -> RedactionPolicy:
    if PAD_S is None:
        return RedactionPolicy(delay_s=delay_s)
    return RedactionPolicy(delay_s=delay_s, pad_before_s=PAD_S[0], pad_after_s=PAD_S[1])


@dataclass
class Frames:
    """The call in 20 ms frames: which hold speech, and which came out unchanged."""

    rate: int
    speech: np.ndarray
    audible: np.ndarray

    @classmethod
    def compare(
        cls, original: np.ndarray, released: np.ndarray, rate: int, reference: np.ndarray | None = None
    ) -> Frames:
        """Frame by frame: speech (level above -45 dBFS) and audible (speech that came out unchanged).

        With ``reference`` (the clean call on the same timeline), speech is judged on it instead, and a
        frame that is digital zero in ``original`` (a lost packet) holds no speech that could leak.
        """
        if len(original) != len(released):
            raise AssertionError(f"released {len(released)} samples for {len(original)}: timeline broken")
        size = int(rate * FRAME_S)
        count = len(original) // size
        a = original[: count * size].reshape(count, size)
        b = released[: count * size].reshape(count, size)
        speech = _loud(a)
        if reference is not None:
            if len(reference) != len(original):
                raise AssertionError(f"speech reference of {len(reference)} samples for {len(original)}")
            speech = _loud(reference[: count * size].reshape(count, size)) & np.any(a != 0, axis=1)
        same = np.mean(a == b, axis=1) > 0.5
        return cls(rate, speech, same & speech)

    def index(self, start: float, end: float) -> slice:
        return slice(int(start / FRAME_S), max(int(np.ceil(end / FRAME_S)), int(start / FRAME_S) + 1))


def _loud(frames: np.ndarray) -> np.ndarray:
    x = frames.astype(np.float64)
    rms = np.sqrt(np.mean(x * x, axis=1)) / 32768
    loud: np.ndarray = 20 * np.log10(np.maximum(rms, 1e-9)) > SPEECH_DBFS
    return loud


@dataclass
class SpanScore:
    """One true PII span: its speech frames and how many of them came out unchanged."""

    entity: str
    start: float
    end: float
    speech: int
    audible: int


@dataclass
class DigitScore:
    """One true digit (spoken or keyed): its speech frames and how many came out unchanged."""

    entity: str
    digit: str
    start: float
    end: float
    speech: int
    heard: int

    @property
    def leaked(self) -> bool:
        return self.speech > 0 and self.heard / self.speech >= DIGIT_AUDIBLE


@dataclass
class CallScore:
    """What came out of one call at one delay, against its truth."""

    name: str
    spans: list[SpanScore]
    digits: list[DigitScore]
    other_speech: int  # speech frames outside every PII span and its guard band
    other_masked: int
    late_masks: int
    late_mask_s: float

    @property
    def over_redaction(self) -> float | None:
        return self.other_masked / self.other_speech if self.other_speech else None


def score(call: Recorded, delay_s: float) -> CallScore:
    """Redact one call at ``delay_s`` and score the released audio against the call's own truth."""
    original = np.concatenate([c.samples for c in call.chunks])
    released, late, late_seconds = redact(call, delay_s)
    frames = Frames.compare(original, released, call.chunks[0].sample_rate, call.speech_reference)
    outside = frames.speech.copy()
    spans: list[SpanScore] = []
    digits: list[DigitScore] = []
    for item in call.truth:
        guard = frames.index(max(item["start"] - GUARD_S, 0.0), item["end"] + GUARD_S)
        outside[guard] = False
        if item.get("scored") is False:  # personal data, but not measured here: bench/perturb.py says why
            continue
        window = frames.index(item["start"], item["end"])
        spans.append(
            SpanScore(
                item["entity"],
                item["start"],
                item["end"],
                int(frames.speech[window].sum()),
                int(frames.audible[window].sum()),
            )
        )
        for digit in item.get("digits", []):
            span = frames.index(digit["start"], digit["end"])
            digits.append(
                DigitScore(
                    item["entity"],
                    str(digit["digit"]),
                    digit["start"],
                    digit["end"],
                    int(frames.speech[span].sum()),
                    int(frames.audible[span].sum()),
                )
            )
    return CallScore(
        call.name,
        spans,
        digits,
        int(outside.sum()),
        int((outside & ~frames.audible).sum()),
        late,
        late_seconds,
    )


def summarise(scores: Sequence[CallScore], delay_s: float) -> dict[str, Any]:
    """The figures over several scored calls (totals of frames, not means of shares)."""
    audible_by_entity: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for call in scores:
        for span in call.spans:
            counts = audible_by_entity[span.entity]
            counts[0] += span.audible
            counts[1] += span.speech
    every_digit = [d for call in scores for d in call.digits]
    other_speech = sum(c.other_speech for c in scores)
    other_masked = sum(c.other_masked for c in scores)
    audible = sum(c[0] for c in audible_by_entity.values())
    total = sum(c[1] for c in audible_by_entity.values())
    return {
        "delay_s": delay_s,
        "pii_audible": audible / total if total else 0.0,
        "pii_audible_by_entity": {
            e: (c[0] / c[1] if c[1] else 0.0) for e, c in sorted(audible_by_entity.items())
        },
        "digits": len(every_digit),
        "digits_leaked": sum(d.leaked for d in every_digit),
        "digits_with_any_audible_frame": sum(d.heard > 0 for d in every_digit),
        "over_redaction": other_masked / other_speech if other_speech else 0.0,
        "late_masks": sum(c.late_masks for c in scores),
        "late_mask_s": round(sum(c.late_mask_s for c in scores), 2),
    }


def evaluate(calls: Sequence[Recorded], delay_s: float) -> dict[str, Any]:
    return summarise([score(call, delay_s) for call in calls], delay_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=("fixtures", "shared", "all"), default="all")
    parser.add_argument("--delays", default="1.5,2,2.5,3,5", help="comma-separated delays in seconds")
    parser.add_argument("--pad", help="override the policy's span padding: BEFORE,AFTER in seconds")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.pad:
        global PAD_S
        before, after = (float(x) for x in args.pad.split(","))
        PAD_S = (before, after)
    whisper = load_whisper(resolve_model())
    detector = SpokenPiiDetector()
    calls = [record(path, whisper, detector) for path in truth_calls(args.calls)]
    print(f"{len(calls)} calls, {sum(c.chunks[-1].end / c.chunks[-1].sample_rate for c in calls):.0f} s")
    results = [evaluate(calls, float(d)) for d in args.delays.split(",")]
    print(
        f"\n{'D (s)':>6s} {'PII audible':>12s} {'digits leaked':>14s} {'any frame':>10s} "
        f"{'over-redaction':>15s} {'late masks':>11s}"
    )
    for r in results:
        print(
            f"{r['delay_s']:6.1f} {r['pii_audible']:12.2%} {r['digits_leaked']:>6d} of {r['digits']:<5d} "
            f"{r['digits_with_any_audible_frame']:>10d} {r['over_redaction']:15.2%} "
            f"{r['late_masks']:>5d} ({r['late_mask_s']:.1f} s)"
        )
    print("\nPII audible by entity:")
    for r in results:
        shares = ", ".join(f"{e} {v:.1%}" for e, v in r["pii_audible_by_entity"].items() if v)
        print(f"  D={r['delay_s']:.1f}: {shares or 'nothing audible'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
