"""How much audio `bleepline redact` gets through per wall-clock second with N worker processes.

Each worker process loads the models once (as one `bleepline redact` run does), then redacts whole files
through the same path as the command (``Redactor.redact``: CallSession, encrypted recording, transcript),
taking the next file when it is done. The clock starts when every worker has loaded its models, so the
figure is the steady throughput, not start-up. Throughput in audio-seconds per wall-second is also the
number of real-time calls that many processes could keep up with, on average.

Run: PYTHONPATH=. .venv/bin/python -m bench.file_capacity [--workers 1,2] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from bench.eval_pii import truth_calls

#: The worker's state, set by ``_start`` in each worker process.
_WORKER: dict[str, Any] = {}


@dataclass(frozen=True)
class FileResult:
    audio_s: float
    wall_s: float
    cpu_s: float
    unverified_s: float


@dataclass(frozen=True)
class Round:
    workers: int
    files: int
    audio_s: float
    wall_s: float
    throughput: float  # audio-seconds per wall-second, all workers together
    cpu_per_audio_s: float  # CPU-seconds per audio-second, summed over workers
    unverified_s: float  # masked as unverified in all files: the file path waits for the listener, so 0


def _start(model: str | None, device: str, compute_type: str, barrier: Barrier) -> None:
    from bleepline.commands.redact import Redactor
    from bleepline.redact.policy import RedactionPolicy
    from bleepline.speech.models import resolve_model
    from bleepline.store.keys import Identity, load_recipient, write_key_pair

    tmp = Path(tempfile.mkdtemp(prefix="bleepline-filecap-"))
    public, _ = write_key_pair(tmp / "keys", Identity.generate())
    spec = resolve_model(model, compute_type=compute_type, device=device)
    _WORKER["redactor"] = Redactor([load_recipient(public)], RedactionPolicy(), spec)
    _WORKER["out"] = tmp
    barrier.wait()


def _redact(source: str) -> FileResult:
    from bleepline.commands.redact import RedactOutputs

    out = Path(tempfile.mkdtemp(dir=_WORKER["out"]))
    began_wall, began_cpu = time.perf_counter(), time.process_time()
    report = _WORKER["redactor"].redact(Path(source), RedactOutputs.for_input(Path(source), out))
    wall, cpu = time.perf_counter() - began_wall, time.process_time() - began_cpu
    for path in out.iterdir():  # encrypted, but no need to keep it
        path.unlink()
    out.rmdir()
    return FileResult(report.duration, wall, cpu, report.masked_s.get("unverified", 0.0))


def run_workers(
    files: Sequence[Path], workers: int, repeats: int, model: str | None, device: str, compute_type: str
) -> list[Round]:
    """``repeats`` rounds over ``files`` with one pool of ``workers`` processes (models loaded once)."""
    context = mp.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    rounds: list[Round] = []
    with context.Pool(workers, initializer=_start, initargs=(model, device, compute_type, barrier)) as pool:
        barrier.wait(timeout=300)
        for _ in range(repeats):
            began = time.perf_counter()
            results = pool.map(_redact, [str(f) for f in files], chunksize=1)
            wall = time.perf_counter() - began
            audio = sum(r.audio_s for r in results)
            rounds.append(
                Round(
                    workers=workers,
                    files=len(files),
                    audio_s=audio,
                    wall_s=wall,
                    throughput=audio / wall,
                    cpu_per_audio_s=sum(r.cpu_s for r in results) / audio,
                    unverified_s=sum(r.unverified_s for r in results),
                )
            )
    return rounds


def summarize(rounds: Sequence[Round]) -> dict[str, Any]:
    by_workers: dict[str, Any] = {}
    for workers in sorted({r.workers for r in rounds}):
        mine = [r for r in rounds if r.workers == workers]
        values = [r.throughput for r in mine]
        by_workers[str(workers)] = {
            "throughput": {"min": min(values), "median": statistics.median(values), "max": max(values)},
            "cpu_per_audio_s": statistics.median(r.cpu_per_audio_s for r in mine),
            "unverified_s": max(r.unverified_s for r in mine),
            "repeats": len(mine),
        }
    return {"rounds": [asdict(r) for r in rounds], "by_workers": by_workers}


def run(
    files: Sequence[Path],
    workers: Sequence[int],
    repeats: int,
    model: str | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
) -> dict[str, Any]:
    rounds: list[Round] = []
    for n in workers:
        rounds += run_workers(files, n, repeats, model, device, compute_type)
    result = summarize(rounds)
    result["files"] = [f.name for f in files]
    result["audio_s"] = rounds[0].audio_s if rounds else 0.0
    return result


def audio_files(which: str) -> list[Path]:
    """The evaluation calls' audio (the same set as eval_redaction)."""
    return [p.with_name(json.loads(p.read_text())["audio"]) for p in truth_calls(which)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=("fixtures", "shared", "all"), default="fixtures")
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="model name or CTranslate2 directory")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    files = audio_files(args.calls)
    workers = [int(w) for w in args.workers.split(",")]
    result = run(files, workers, args.repeats, args.model, args.device, args.compute_type)
    print(f"{len(files)} files, {result['audio_s']:.0f} s of audio; {mp.cpu_count()} CPUs")
    for n, row in result["by_workers"].items():
        t = row["throughput"]
        print(
            f"  {n} worker(s): {t['median']:.1f} audio-s per wall-s (min {t['min']:.1f}, max {t['max']:.1f}; "
            f"{row['repeats']} rounds), {row['cpu_per_audio_s']:.3f} CPU-s per audio-s"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
