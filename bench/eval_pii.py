"""Evaluate the live path from audio to PII spans: VAD -> streaming recognizer -> spoken-PII detector.

Streams each call chunk by chunk exactly as a live call would arrive and, after every recognizer step,
runs the detector over the recent words (final and tentative). Every span ever reported counts, since the
redactor masks a span as soon as it is reported. Against the exact truth of each call it prints, per
entity type:

- recall: share of true spans covered (>= 95 % of their duration) by reported spans of any entity;
  for digit entities also the share of individual digits covered;
- precision: share of reported spans that overlap some true PII span;
- first detection: when a reported span first overlapped a true span, relative to the span's start
  (negative = before the PII began, thanks to a cue); the delay line must be at least this long;
- false spans on calls with no PII.

Calls: the project's generated fixtures (fixtures/audio) and, when present, the evaluation calls beside
the project (../shared/speech/calls). DTMF is not spoken and is left to the keypad detector.

Run: .venv/bin/python -m bench.eval_pii [--calls fixtures|shared|all] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bleepline.audio.files import read_audio_chunks
from bleepline.listener import CallListener, Hearing
from bleepline.pii.detector import SpokenPiiDetector, merge_spans
from bleepline.pii.stream import SpanTracker
from bleepline.speech.asr import StreamingRecognizer
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.timeline import PiiSpan

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_CALLS = ROOT / "fixtures" / "audio"
SHARED_CALLS = ROOT.parent / "shared" / "speech" / "calls"
DIGIT_ENTITIES = {"CREDIT_CARD", "CARD_EXPIRY", "CARD_CVV", "PHONE_NUMBER", "US_SSN", "ACCOUNT_NUMBER", "PIN"}
NOT_SPOKEN = {"DTMF"}
COVERED = 0.95  # a true span or digit counts as found when reported spans cover this share of it
DETECTION_CONTEXT_S = 30.0  # final words older than this are not passed to the detector again


@dataclass
class CallResult:
    name: str
    truth: list[dict[str, Any]]
    spans: list[PiiSpan]  # every span reported during the call, merged
    first_seen: dict[int, float]  # truth index -> stream time a reported span first overlapped it
    audio_seconds: float
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def truth_calls(which: str) -> list[Path]:
    calls: list[Path] = []
    if which in ("fixtures", "all"):
        calls += sorted(p for p in FIXTURE_CALLS.glob("*.json"))
    if which in ("shared", "all"):
        if SHARED_CALLS.is_dir():
            calls += sorted(SHARED_CALLS.glob("*.json"))
        else:
            print(f"note: {SHARED_CALLS} is not present; evaluating the fixtures only", file=sys.stderr)
    return calls


def stream_call(truth_path: Path, whisper: Any, detector: SpokenPiiDetector) -> CallResult:
    truth = json.loads(truth_path.read_text())
    chunks = list(read_audio_chunks(truth_path.with_name(truth["audio"])))
    listener = CallListener(
        chunks[0].sample_rate,
        StreamingRecognizer(whisper=whisper),
        SpanTracker(detector, context_s=DETECTION_CONTEXT_S),
    )
    reported: list[PiiSpan] = []
    first_seen: dict[int, float] = {}
    began = time.process_time()
    for chunk in chunks:
        hearing = listener.push(chunk)
        _note(hearing, truth["pii"], reported, first_seen)
    duration = chunks[-1].end / chunks[-1].sample_rate
    _note(listener.end(duration), truth["pii"], reported, first_seen)
    cpu = {
        "total": time.process_time() - began,
        "recognizer": listener.recognizer.stats.cpu_seconds,
    }
    return CallResult(truth_path.stem, truth["pii"], merge_spans(reported), first_seen, duration, cpu)


def _note(
    hearing: Hearing, truth: list[dict[str, Any]], reported: list[PiiSpan], first_seen: dict[int, float]
) -> None:
    reported.extend(hearing.spans)
    for index, item in enumerate(truth):
        if index not in first_seen and any(s.overlaps(item["start"], item["end"]) for s in hearing.spans):
            first_seen[index] = hearing.heard_until


def covered_share(start: float, end: float, spans: Sequence[PiiSpan]) -> float:
    """Share of [start, end) covered by the union of ``spans``."""
    pieces = sorted((max(s.start, start), min(s.end, end)) for s in spans if s.overlaps(start, end))
    total, reach = 0.0, start
    for lo, hi in pieces:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total / (end - start) if end > start else 1.0


def summarise(results: Sequence[CallResult]) -> dict[str, Any]:
    by_entity: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    false_on_clean = 0
    for call in results:
        if not call.truth:
            false_on_clean += len(call.spans)
        for index, item in enumerate(call.truth):
            entity = item["entity"]
            if entity in NOT_SPOKEN:
                continue
            stats = by_entity[entity]
            stats["recall"].append(float(covered_share(item["start"], item["end"], call.spans) >= COVERED))
            for digit in item.get("digits", []):
                stats["digit_recall"].append(
                    float(covered_share(digit["start"], digit["end"], call.spans) >= COVERED)
                )
            if index in call.first_seen:
                stats["first_seen"].append(call.first_seen[index] - item["start"])
        for span in call.spans:
            hit = any(span.overlaps(t["start"], t["end"]) for t in call.truth)
            by_entity[span.entity]["precision"].append(float(hit))
    report: dict[str, Any] = {"entities": {}, "false_spans_on_no_pii_calls": false_on_clean}
    for entity, stats in sorted(by_entity.items()):
        row: dict[str, Any] = {}
        for key in ("recall", "digit_recall", "precision"):
            if stats[key]:
                row[key] = round(statistics.fmean(stats[key]), 3)
                row[f"{key}_n"] = len(stats[key])
        if stats["first_seen"]:
            seen = sorted(stats["first_seen"])
            row["first_seen_median_s"] = round(statistics.median(seen), 2)
            row["first_seen_max_s"] = round(seen[-1], 2)
        report["entities"][entity] = row
    audio = sum(c.audio_seconds for c in results)
    cpu: dict[str, float] = defaultdict(float)
    for call in results:
        for stage, seconds in call.cpu_seconds.items():
            cpu[stage] += seconds
    report["cpu_s_per_audio_s"] = {stage: round(seconds / audio, 4) for stage, seconds in cpu.items()}
    report["audio_seconds"] = round(audio, 1)
    report["calls"] = len(results)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=("fixtures", "shared", "all"), default="all")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    whisper = load_whisper(resolve_model())
    detector = SpokenPiiDetector()
    results = []
    for truth_path in truth_calls(args.calls):
        result = stream_call(truth_path, whisper, detector)
        results.append(result)
        found = ", ".join(f"{s.entity}@{s.start:.1f}-{s.end:.1f}" for s in result.spans) or "none"
        print(f"{result.name:28s} truth {len(result.truth)}  reported: {found}")
    report = summarise(results)
    print(
        f"\n{'entity':16s} {'recall':>8s} {'digits':>8s} {'precision':>9s} {'first seen (median/max s)':>27s}"
    )
    for entity, row in report["entities"].items():
        digits = f"{row['digit_recall']:.3f}" if "digit_recall" in row else "-"
        recall = f"{row['recall']:.3f}" if "recall" in row else "-"
        precision = f"{row['precision']:.3f}" if "precision" in row else "-"
        seen = (
            f"{row['first_seen_median_s']:+.2f} / {row['first_seen_max_s']:+.2f}"
            if "first_seen_median_s" in row
            else "-"
        )
        print(f"{entity:16s} {recall:>8s} {digits:>8s} {precision:>9s} {seen:>27s}")
    print(f"\nfalse spans on no-PII calls: {report['false_spans_on_no_pii_calls']}")
    print(f"CPU-s per audio-s: {report['cpu_s_per_audio_s']} over {report['audio_seconds']} s of audio")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
