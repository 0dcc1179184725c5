"""How soon after a PII word is said does the delay line know to mask it?

Each call is streamed through a real ``CallSession`` (the product's ``CallListener``: VAD, streaming
recognizer, detector; and the keypad detector) in simulated real time. Chunk k arrives when its audio is
over (its end on the call timeline); the session starts on it when it has arrived and the previous chunk is
done, and is done after the wall time its ``push`` actually took. So the "real time" figure includes the
recognizer's own compute and any backlog it builds, as one call on one otherwise idle core would see it,
without sleeping through the calls. The "audio clock" figure leaves the compute out: the latency of the
algorithm alone (how much audio it must hear before it decides).

Every mark the session gives the delay line (PII and keypad spans; not ``unverified``) is logged with the
time it arrived. A truth PII word (each digit of a number, else each truth word inside a PII item, else the
item) counts as known once the marks so far, padded as the delay line pads them, cover at least
``COVERED`` of it; its latency is that moment minus the word's end. Negative: the mask was there before
the word was over (a cue like "my card number is" opens a span before the value is said). A word never
covered this way is counted, not timed (eval_redaction says whether its audio leaked).

Run: PYTHONPATH=. .venv/bin/python -m bench.pii_latency [--calls fixtures|shared|all] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.eval_pii import truth_calls
from bleepline.audio.files import read_audio_chunks
from bleepline.call import CallSession
from bleepline.commands.redact import Redactor
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import MaskReason, RedactionPolicy
from bleepline.speech.models import ModelSpec, resolve_model

#: Share of a word's duration the marks must cover for the word to count as known to the delay line.
COVERED = 0.9
#: Truth words (phrases in the truth files) are matched to a PII item with this much slack at its edges.
_EDGE_S = 0.02


@dataclass(frozen=True)
class PiiWord:
    call: str
    entity: str
    start: float
    end: float


@dataclass(frozen=True)
class WordLatency:
    call: str
    entity: str
    word_end: float
    audio_clock_s: float | None  # mark arrival on the audio clock minus the word's end; None: never covered
    real_time_s: float | None  # the same on the simulated real-time clock (compute and backlog included)


def pii_words(name: str, truth: dict[str, Any]) -> list[PiiWord]:
    """The truth's PII words: digits where the item lists them, else truth words inside it, else the item."""
    words: list[PiiWord] = []
    for item in truth["pii"]:
        entity = str(item["entity"])
        parts = [(float(d["start"]), float(d["end"])) for d in item.get("digits", [])]
        if not parts:
            parts = [
                (float(w["start"]), float(w["end"]))
                for w in truth.get("words", [])
                if w["start"] >= item["start"] - _EDGE_S and w["end"] <= item["end"] + _EDGE_S
            ]
        if not parts:
            parts = [(float(item["start"]), float(item["end"]))]
        words += [PiiWord(name, entity, start, end) for start, end in parts]
    return words


class LoggedDelayLine(DelayLine):
    """A delay line that notes every PII or keypad mark it is given, for the caller to time-stamp."""

    def __init__(self, sample_rate: int, policy: RedactionPolicy) -> None:
        super().__init__(sample_rate, policy)
        self.new_marks: list[tuple[float, float]] = []

    def mask(
        self,
        start: float,
        end: float,
        reason: MaskReason,
        entity: str | None = None,
        *,
        provisional: bool = False,
    ) -> None:
        if MaskReason(reason) in (MaskReason.PII, MaskReason.DTMF):
            # Padded as the delay line pads it: that is the stretch that will be masked.
            self.new_marks.append((start - self.policy.pad_before_s, end + self.policy.pad_after_s))
        super().mask(start, end, reason, entity, provisional=provisional)


def _covered_share(start: float, end: float, marks: Sequence[tuple[float, float]]) -> float:
    """Share of ``[start, end)`` under the union of ``marks``."""
    length = end - start
    if length <= 0:
        return 1.0 if any(lo <= start <= hi for lo, hi in marks) else 0.0
    clipped = sorted((max(lo, start), min(hi, end)) for lo, hi in marks if hi > start and lo < end)
    total, reach = 0.0, start
    for lo, hi in clipped:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total / length


def measure_call(truth_path: Path, redactor: Redactor) -> list[WordLatency]:
    """One call through a CallSession in simulated real time; a latency per truth PII word."""
    truth = json.loads(truth_path.read_text())
    chunks = list(read_audio_chunks(truth_path.with_name(truth["audio"])))
    rate = chunks[0].sample_rate
    policy = redactor.policy
    session = CallSession(truth_path.stem, rate, listener=redactor.listener(rate), policy=policy, sinks=[])
    delay = LoggedDelayLine(rate, policy)
    session.delay = delay  # before the first chunk: every mark goes through the logged line
    words = pii_words(truth_path.stem, truth)
    found: dict[int, tuple[float, float]] = {}  # word index -> (audio clock, real-time clock) when covered
    marks: list[tuple[float, float]] = []
    busy_until = 0.0

    def stamp(arrived: float, took: float) -> None:
        nonlocal busy_until
        done = max(arrived, busy_until) + took
        busy_until = done
        if not delay.new_marks:
            return
        marks.extend(delay.new_marks)
        delay.new_marks.clear()
        for k, word in enumerate(words):
            if k not in found and _covered_share(word.start, word.end, marks) >= COVERED:
                found[k] = (arrived, done)

    for chunk in chunks:
        began = time.perf_counter()
        session.push(chunk)
        stamp(chunk.end / rate, time.perf_counter() - began)
    duration = chunks[-1].end / rate
    began = time.perf_counter()
    session.end()
    stamp(duration, time.perf_counter() - began)
    return [
        WordLatency(
            word.call,
            word.entity,
            word.end,
            found[k][0] - word.end if k in found else None,
            found[k][1] - word.end if k in found else None,
        )
        for k, word in enumerate(words)
    ]


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / p95 / max (seconds); empty for no values."""
    if not values:
        return {}
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": float(array.min()),
        "median": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "max": float(array.max()),
    }


def summarize(latencies: Sequence[WordLatency]) -> dict[str, Any]:
    timed = [w for w in latencies if w.real_time_s is not None]
    by_entity: dict[str, dict[str, float]] = {}
    for entity in sorted({w.entity for w in timed}):
        by_entity[entity] = spread(
            [w.real_time_s for w in timed if w.entity == entity and w.real_time_s is not None]
        )
    return {
        "words": len(latencies),
        "never_covered": len(latencies) - len(timed),
        "covered_share": COVERED,
        "audio_clock_s": spread([w.audio_clock_s for w in timed if w.audio_clock_s is not None]),
        "real_time_s": spread([w.real_time_s for w in timed if w.real_time_s is not None]),
        "real_time_by_entity_s": by_entity,
        "per_word": [asdict(w) for w in latencies],
    }


def run(calls: Sequence[Path], model: ModelSpec, policy: RedactionPolicy | None = None) -> dict[str, Any]:
    """Every call measured with one set of loaded models; the summary dict (JSON-ready)."""
    redactor = Redactor([], policy or RedactionPolicy(), model)
    latencies: list[WordLatency] = []
    for path in calls:
        latencies += measure_call(path, redactor)
    result = summarize(latencies)
    result["calls"] = len(calls)
    result["delay_s"] = redactor.policy.delay_s
    return result


def _show(result: dict[str, Any]) -> None:
    print(f"{result['calls']} calls, {result['words']} PII words, {result['never_covered']} never covered")
    for clock in ("audio_clock_s", "real_time_s"):
        s = result[clock]
        if s:
            print(
                f"  {clock:14s} min {s['min']:+.2f}  median {s['median']:+.2f}  p95 {s['p95']:+.2f}  "
                f"max {s['max']:+.2f} s"
            )
    for entity, s in result["real_time_by_entity_s"].items():
        print(f"  {entity:16s} median {s['median']:+.2f}  max {s['max']:+.2f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=("fixtures", "shared", "all"), default="all")
    parser.add_argument("--model", default=None, help="model name or CTranslate2 directory")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    model = resolve_model(args.model, compute_type=args.compute_type, device=args.device)
    result = run(truth_calls(args.calls), model)
    _show(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
