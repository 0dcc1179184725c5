"""``python -m bench``: run every benchmark section and write bench/RESULTS.md with its PNG plots.

Sections: micro (pytest-benchmark suites), leak (leak and over-redaction by delay D), robust (leak and
over-redaction under perturbations: noise, level, telephone band, codecs, loss, tempo), latency (PII word
end to span), files (file-path throughput), capacity (concurrent real-time RTP calls). A section that
fails says so in the report instead of stopping the others. Each section's figures are kept in
``bench/results/results.json`` too; ``--only`` reruns some sections and keeps the others' saved figures.

Run: PYTHONPATH=. .venv/bin/python -m bench [--quick] [--only leak,capacity] [--device cuda --model DIR]
[--out bench/RESULTS-gpu.md]. The full run takes 15 to 18 minutes on the 2-core development machine
(minutes: micro 2-3, leak 0.5, robust 6-8, latency 0.5, files 1-1.5, capacity 4-4.5). ``--render-only``
rebuilds RESULTS.md and the plots from the saved figures without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import pii_latency
from bench.eval_pii import truth_calls
from bench.report import leak, load, machine, micro, plots, profile, render, robust, targets
from bleepline.speech.models import ModelSpec, resolve_model

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("micro", "leak", "robust", "latency", "files", "capacity")


def _sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; got {text!r}")
    return names


def _timed(name: str, timings: dict[str, float], step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"[bench] {name} ...", flush=True)
    began = time.perf_counter()
    try:
        result = step()
    except Exception as exc:  # one broken section must not cost the others their figures
        result = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
    timings[name] = time.perf_counter() - began
    note = f" ({result['skipped']})" if "skipped" in result else ""
    print(f"[bench] {name}: {timings[name]:.0f} s{note}", flush=True)
    return result


def _paths(out: Path) -> tuple[Path, str]:
    """Where plots and saved figures go, and their name prefix: RESULTS-gpu.md gets gpu-*.png, so a GPU
    report beside the CPU one does not overwrite its plots."""
    tag = out.stem.removeprefix("RESULTS").strip("-_")
    return out.parent / "results", f"{tag}-" if tag else ""


def run_sections(
    names: Sequence[str], quick: bool, spec: ModelSpec, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, float]]:
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    model_arg = str(spec.path) if args.model else None
    if "micro" in names:
        results["micro"] = _timed("micro", timings, lambda: micro.run(quick))
    if "leak" in names:
        delays = leak.QUICK_DELAYS if quick else leak.FULL_DELAYS
        results["leak"] = _timed("leak", timings, lambda: leak.run(spec, delays, quick))
    if "robust" in names:
        results["robust"] = _timed("robust", timings, lambda: robust.run(spec, quick))
    if "latency" in names:

        def latency() -> dict[str, Any]:
            calls = truth_calls("fixtures" if quick else "all")
            if quick:
                calls = [p for p in calls if p.stem in leak.QUICK_CALLS]
            return pii_latency.run(calls, spec)

        results["latency"] = _timed("latency", timings, latency)
    if "files" in names:
        results["file_capacity"] = _timed(
            "files", timings, lambda: load.files(quick, model_arg, spec.device, spec.compute_type)
        )
    if "capacity" in names:
        steps, step_s, repeats = (
            (load.QUICK_STEPS, load.QUICK_STEP_S, 1)
            if quick
            else (load.FULL_STEPS, load.FULL_STEP_S, load.FULL_REPEATS)
        )
        results["capacity"] = _timed(
            "capacity",
            timings,
            lambda: load.rtp_capacity(steps, step_s, repeats, model_arg, spec.device, spec.compute_type),
        )
    return results, timings


def profile_misses(
    results: dict[str, Any], timings: dict[str, float], quick: bool, spec: ModelSpec
) -> dict[str, Any]:
    """cProfile each per-packet or per-audio-second path whose target this run missed."""
    profiles: dict[str, Any] = {}
    missed = {t.key for t in targets.check(results) if t.met is False}
    if "media" in missed:
        packets = 500 if quick else 3000
        profiles["media"] = _timed("profile media plane", timings, lambda: profile.media_packet(packets))
    seconds = 5.0 if quick else 30.0
    if "streaming" in missed:
        profiles["streaming"] = _timed("profile streaming", timings, lambda: profile.streaming(seconds, spec))
    if "capacity" in missed:
        # Calls fall behind when their listeners outgrow the cores: the listener's hot spots say why.
        profiles["capacity"] = _timed("profile listener", timings, lambda: profile.streaming(seconds, spec))
    return profiles


def write_report(results: dict[str, Any], out: Path) -> dict[str, Path | None]:
    """Plots and RESULTS.md from ``results``; the plots written (None where there was nothing to plot)."""
    plot_dir, prefix = _paths(out)
    drawn = {
        "micro": plots.micro(results.get("micro", {}), plot_dir / f"{prefix}micro.png"),
        "leak": plots.leak(results.get("leak", {}), plot_dir / f"{prefix}leak.png"),
        "capacity": plots.capacity(
            results.get("capacity", {}), results.get("file_capacity", {}), plot_dir / f"{prefix}capacity.png"
        ),
        "latency": plots.latency(
            results.get("latency", {}), results.get("capacity", {}), plot_dir / f"{prefix}latency.png"
        ),
    }
    out.write_text(render.render(results, drawn, out))
    return drawn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--model", default=None, help="speech model: name or CTranslate2 directory (default tiny.en)"
    )
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--quick", action="store_true", help="tiny inputs (about a minute): for tests, not figures"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rebuild the report from the saved figures; measure nothing",
    )
    parser.add_argument(
        "--only", type=_sections, default=list(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}"
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    data_dir, prefix = _paths(out)
    data_dir.mkdir(parents=True, exist_ok=True)
    saved = data_dir / f"{prefix}results.json"
    if args.render_only:
        if not saved.is_file():
            parser.error(f"{saved} does not exist: run the benchmarks first")
        write_report(json.loads(saved.read_text()), out)
        print(f"[bench] rebuilt {out} from {saved}")
        return 0
    began = time.perf_counter()
    spec = resolve_model(args.model, compute_type=args.compute_type, device=args.device)

    results: dict[str, Any] = {}
    if set(args.only) != set(SECTIONS) and saved.is_file():
        results = json.loads(saved.read_text())  # the sections not rerun keep their saved figures
    results["machine"] = machine.machine_info(spec.name, spec.compute_type, spec.device)
    results["quick"] = args.quick
    results["command"] = " ".join(
        ["PYTHONPATH=. .venv/bin/python -m bench", *(sys.argv[1:] if argv is None else argv)]
    )
    fresh, timings = run_sections(args.only, args.quick, spec, args)
    results.update(fresh)
    results["profiles"] = profile_misses(results, timings, args.quick, spec)
    results["timings"] = timings
    saved.write_text(json.dumps(results, indent=1, default=str))
    drawn = write_report(results, out)
    print(f"[bench] wrote {out} and {sum(p is not None for p in drawn.values())} plots in {data_dir}")
    print(f"[bench] total {(time.perf_counter() - began) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
