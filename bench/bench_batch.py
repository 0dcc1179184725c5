"""N calls' recognizer windows decoded in one batch against one after another (``WindowBatcher``).

Both sides decode the same jobs (real windows from four fixture calls, 2.4 to 3.0 s, all padded to the
same 4 s bucket), so the difference is the batching alone: one encode, one generate and one alignment
call for N windows, against N of each. ``sequential`` is what calls sharing a model without batching get.

On CPU (int8, one thread) the encoder is compute-bound and little is expected; the point is a GPU, where
``bench/gpu.sh`` runs the same comparison with ``--device cuda``. Timed in CPU seconds (process time, all
threads) and wall seconds: on a GPU only the wall time means anything.

Run: .venv/bin/python -m pytest bench/bench_batch.py     (pytest-benchmark, CPU, tiny.en)
     .venv/bin/python -m bench.bench_batch --windows 4,8 --repeats 5 [--device cuda --model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.speech.batch import WindowBatcher, WindowJob
from bleepline.speech.models import load_whisper, resolve_model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
CALLS = ("phone_awb_8k.wav", "card_kal_8k.wav", "account_pin_rms_8k.wav", "ssn_dob_rms_16k.wav")
RATE = 16_000
WINDOW_S = (3.0, 2.4, 2.8, 2.6)  # one 4 s bucket with the recognizer's 1 s of padding
RESULTS: dict[str, float] = {}


def windows(count: int) -> list[np.ndarray]:
    """``count`` windows of speech, 16 kHz float, cycling through the calls and the lengths."""
    out: list[np.ndarray] = []
    for i in range(count):
        chunks = list(read_audio_chunks(FIXTURES / CALLS[i % len(CALLS)]))
        samples = np.concatenate([c.samples for c in chunks])
        if chunks[0].sample_rate != RATE:
            samples = resample(samples, chunks[0].sample_rate, RATE)
        start = RATE * (3 + i // len(CALLS))
        out.append(
            samples[start : start + int(WINDOW_S[i % len(WINDOW_S)] * RATE)].astype(np.float32) / 32768
        )
    return out


def jobs_for(batcher: WindowBatcher, audio: Sequence[np.ndarray]) -> list[WindowJob]:
    """The jobs the recognizer would submit for these windows (its default options)."""
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(batcher.whisper.hf_tokenizer, False, task="transcribe", language="en")
    prompt = (*tokenizer.sot_sequence, tokenizer.no_timestamps)
    return [
        WindowJob(
            features=batcher.features(window, 1.0),
            prompt=prompt,
            max_length=len(prompt) + int(4.0 * len(window) / RATE) + 4,
            frames=int(len(window) / RATE * 100),
        )
        for window in audio
    ]


def sequential(batcher: WindowBatcher, jobs: Sequence[WindowJob]) -> int:
    """Each window alone, one after another; returns the words heard."""
    return sum(len(batcher.decode(job).alignment) for job in jobs)


def batched(batcher: WindowBatcher, jobs: Sequence[WindowJob]) -> int:
    """All windows at once from their own threads, as calls' listeners submit them; one model call."""
    words = [0] * len(jobs)

    def submit(i: int) -> None:
        words[i] = len(batcher.decode(jobs[i]).alignment)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(words)


@dataclass(frozen=True)
class Timing:
    cpu: list[float]
    wall: list[float]


def timed(run: Callable[[], int], repeats: int) -> Timing:
    run()  # warm-up: first calls allocate
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return Timing(cpu, wall)


# -- pytest-benchmark (CPU, tiny.en) ------------------------------------------------------------------------

cpu_time = pytest.mark.benchmark(timer=time.process_time, group="asr batch: 4 windows, CPU seconds")


@pytest.fixture(scope="module")
def whisper() -> Any:
    return load_whisper(resolve_model())


@cpu_time
@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_four_windows(benchmark: BenchmarkFixture, whisper: Any, mode: str) -> None:
    batcher = WindowBatcher(whisper, max_batch=1 if mode == "sequential" else 4, gather_s=1.0)
    try:
        jobs = jobs_for(batcher, windows(4))
        run = sequential if mode == "sequential" else batched
        words = benchmark.pedantic(  # type: ignore[no-untyped-call]
            run, args=(batcher, jobs), rounds=5, iterations=1, warmup_rounds=1
        )
        assert words >= 4
        if mode == "batched":
            assert batcher.stats.largest_batch == 4
    finally:
        batcher.close()
    if benchmark.stats is not None:
        RESULTS[mode] = benchmark.stats.stats.median


def test_summary(request: pytest.FixtureRequest) -> None:
    """Prints the ratio (runs last)."""
    if request.config.getoption("benchmark_disable"):
        pytest.skip("benchmarks ran untimed (--benchmark-disable): no figures to summarise")
    assert set(RESULTS) == {"sequential", "batched"}
    print(
        f"\n4 windows, CPU s (median): sequential {RESULTS['sequential']:.3f}, "
        f"batched {RESULTS['batched']:.3f}, sequential / batched = "
        f"{RESULTS['sequential'] / RESULTS['batched']:.2f}"
    )


# -- the command: any device and model ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", default=None, help="whisper-tiny-en (default) or a CTranslate2 directory")
    parser.add_argument("--compute-type", default=None, help="default: int8 on cpu, float16 on cuda")
    parser.add_argument("--windows", default="4", help="batch sizes to compare, e.g. 4,8,16")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    spec = resolve_model(args.model, compute_type=compute_type, device=args.device)
    whisper = load_whisper(spec)
    print(f"model {spec.name} ({spec.path}), {spec.device} {spec.compute_type}, repeats {args.repeats}")
    print("| windows | sequential wall s | batched wall s | wall ratio | sequential CPU s | batched CPU s |")
    print("|---|---|---|---|---|---|")
    for count in (int(n) for n in args.windows.split(",")):
        solo = WindowBatcher(whisper, max_batch=1)
        together = WindowBatcher(whisper, max_batch=count, gather_s=1.0)
        try:
            jobs = jobs_for(solo, windows(count))
            alone = timed(partial(sequential, solo, jobs), args.repeats)
            shared = timed(partial(batched, together, jobs), args.repeats)
        finally:
            solo.close()
            together.close()
        print(
            f"| {count} | {_spread(alone.wall)} | {_spread(shared.wall)} | "
            f"{statistics.median(alone.wall) / statistics.median(shared.wall):.2f} | "
            f"{_spread(alone.cpu)} | {_spread(shared.cpu)} |"
        )
    return 0


def _spread(values: Sequence[float]) -> str:
    """median (min-max)"""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    sys.exit(main())
