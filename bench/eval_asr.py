"""Evaluate the streaming recognizer: accuracy against the truth, latency, and cost, beside offline Whisper.

For each call it streams the audio in 20 ms chunks through the StreamingRecognizer and, in the same run,
transcribes the whole file offline with faster-whisper (beam 1, temperature 0). It prints:

- word error rate of the final streaming transcript and of the offline transcript against the call's
  truth text (fixtures carry it; calls without a truth text are compared with the offline transcript);
- latency: for every final word, the audio time at which it was first emitted (tentative) and made final,
  minus the word's end (Whisper's own word end, on the call timeline); median and p95;
- CPU seconds per audio second of both, and step costs (median, p95).

With ``--pauses`` the recognizer is driven as the product's listener drives it (``CallListener``): the
voice activity detector's pauses flush it, so words said before a pause are final at once. The VAD's own
CPU time is counted in the streaming cost then.

Run: .venv/bin/python -m bench.eval_asr [--calls fixtures|shared|all] [--pauses]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.eval_pii import truth_calls
from bleepline.audio.files import read_audio_chunks
from bleepline.speech.asr import StreamingRecognizer, comparable
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.speech.vad import VoiceActivityDetector
from bleepline.timeline import Word


@dataclass(frozen=True)
class AsrResult:
    name: str
    audio_seconds: float
    streaming_cpu: float
    offline_cpu: float
    streaming_wer: float
    offline_wer: float | None  # None when the call has no truth text
    to_tentative: list[float]
    to_final: list[float]
    step_cpu: list[float]


def words_of(text: str) -> list[str]:
    return [w for w in (comparable(t) for t in text.split()) if w]


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1] / max(len(reference), 1)


def evaluate(truth_path: Path, whisper: Any, pauses: bool = False) -> AsrResult:
    truth = json.loads(truth_path.read_text())
    audio_path = truth_path.with_name(truth["audio"])
    chunks = list(read_audio_chunks(audio_path))
    recognizer = StreamingRecognizer(whisper=whisper)
    vad = VoiceActivityDetector(chunks[0].sample_rate) if pauses else None
    vad_cpu = 0.0
    first_seen: list[tuple[float, str, float]] = []  # (word start, text, audio time first emitted)
    to_tentative: list[float] = []
    to_final: list[float] = []
    final: list[Word] = []

    def take(now: float) -> None:
        for update in recognizer.updates():
            for word in update.tentative:
                if not _seen(first_seen, word):
                    first_seen.append((word.start, comparable(word.text), now))
            for word in update.final:
                emitted = _seen(first_seen, word) or now
                to_tentative.append(emitted - word.end)
                to_final.append(now - word.end)
                final.append(word)

    for chunk in chunks:
        if vad is not None:
            began = time.process_time()
            regions = vad.push(chunk)
            vad_cpu += time.process_time() - began
        recognizer.push(chunk)
        if vad is not None and regions and not vad.in_speech:
            recognizer.flush()  # as CallListener does at a pause
        take(chunk.end / chunk.sample_rate)
    recognizer.end()
    duration = chunks[-1].end / chunks[-1].sample_rate
    take(duration)

    samples = np.concatenate([c.samples for c in read_audio_chunks(audio_path, sample_rate=16000)])
    began = time.process_time()
    segments, _ = whisper.transcribe(
        samples.astype(np.float32) / 32768,
        language="en",
        beam_size=1,
        temperature=0.0,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    offline_text = " ".join(s.text for s in segments)
    offline_cpu = time.process_time() - began

    streaming = words_of(" ".join(w.text for w in final))
    reference = truth.get("text")
    return AsrResult(
        name=truth_path.stem,
        audio_seconds=duration,
        streaming_cpu=recognizer.stats.cpu_seconds + vad_cpu,
        offline_cpu=offline_cpu,
        streaming_wer=word_error_rate(words_of(reference or offline_text), streaming),
        offline_wer=word_error_rate(words_of(reference), words_of(offline_text)) if reference else None,
        to_tentative=to_tentative,
        to_final=to_final,
        step_cpu=list(recognizer.stats.step_cpu),
    )


def _seen(first_seen: list[tuple[float, str, float]], word: Word) -> float | None:
    text = comparable(word.text)
    for start, seen_text, at in first_seen:
        if seen_text == text and abs(start - word.start) < 0.3:
            return at
    return None


def _percentile(values: Sequence[float], share: float) -> float:
    return float(np.percentile(values, share)) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=("fixtures", "shared", "all"), default="all")
    parser.add_argument(
        "--pauses", action="store_true", help="flush at the VAD's pauses, as the listener does"
    )
    args = parser.parse_args(argv)
    whisper = load_whisper(resolve_model())
    results = [evaluate(path, whisper, args.pauses) for path in truth_calls(args.calls)]
    print(
        f"{'call':28s} {'stream WER':>10s} {'offline WER':>11s} {'stream CPU/s':>12s} {'offline CPU/s':>13s}"
    )
    for r in results:
        offline = f"{r.offline_wer:.3f}" if r.offline_wer is not None else "(ref)"
        print(
            f"{r.name:28s} {r.streaming_wer:10.3f} {offline:>11s} {r.streaming_cpu / r.audio_seconds:12.3f}"
            f" {r.offline_cpu / r.audio_seconds:13.3f}"
        )
    with_truth = [r for r in results if r.offline_wer is not None]
    audio = sum(r.audio_seconds for r in results)
    streaming_cpu = sum(r.streaming_cpu for r in results)
    offline_cpu = sum(r.offline_cpu for r in results)
    tentative = [x for r in results for x in r.to_tentative]
    final = [x for r in results for x in r.to_final]
    steps = [x for r in results for x in r.step_cpu]
    print(
        f"\nWER against the truth ({len(with_truth)} calls with a truth text): streaming "
        f"{statistics.fmean(r.streaming_wer for r in with_truth):.3f}, offline "
        f"{statistics.fmean(r.offline_wer or 0.0 for r in with_truth):.3f}"
    )
    print(
        f"CPU-s per audio-s over {audio:.0f} s: streaming {streaming_cpu / audio:.3f}, offline "
        f"{offline_cpu / audio:.3f}, ratio {streaming_cpu / offline_cpu:.2f}"
    )
    print(
        f"step CPU: median {1000 * statistics.median(steps):.0f} ms, "
        f"p95 {1000 * _percentile(steps, 95):.0f} ms"
    )
    print(
        f"word end -> tentative: median {statistics.median(tentative):.2f} s, "
        f"p95 {_percentile(tentative, 95):.2f} s"
    )
    print(
        f"word end -> final:     median {statistics.median(final):.2f} s, p95 {_percentile(final, 95):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
