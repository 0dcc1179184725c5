"""Robustness of the whole redactor: the evaluation calls under deterministic perturbations (bench/perturb).

Each call x variant is streamed once through the real listener (CallListener + StreamingRecognizer +
SpanTracker(SpokenPiiDetector), as bench/eval_redaction.py's ``record``) and then through a CallSession
at the default delay (``RedactionPolicy().delay_s``); the released audio is compared with the variant's
input frame by frame, with eval_redaction's ``Frames``/``score``. Which frames hold speech is judged on
the clean call moved onto the variant's timeline (``perturb.speech_reference``), so added noise is never
counted as speech that leaked or was over-redacted. The plain run is always made too, to stand beside.

Per variant (and over all perturbed variants):
- digits leaked: digits with >= 25 % of their speech frames unchanged; "any frame": with at least one;
- PII audible: share of the speech frames inside true PII spans that came out unchanged (DTMF included);
- over-redaction: share of non-PII speech (outside spans and a 0.3 s guard) masked, as the mean over
  call-variants and the worst single call-variant;
- PERSON found: PERSON spans with >= 90 % of their speech frames masked;
- late marks: spans that arrived after part of their audio had been released.
Then every leaked digit as (call, variant, digit, time on the variant's timeline).

Run: PYTHONPATH=. .venv/bin/python -m bench.eval_robust [--calls fixtures|shared|dev|all]
[--variants v1,v2] [--jobs N] [--json OUT]; ``--five`` is the external check: exactly the variants
pad137,pad410,noise25,quiet,tele on ../shared/speech/calls (plus the plain run beside).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import eval_redaction, perturb
from bench.eval_pii import SHARED_CALLS, truth_calls
from bleepline.audio.files import read_audio_chunks
from bleepline.redact.policy import RedactionPolicy
from bleepline.speech.models import ModelSpec, load_whisper, resolve_model

#: A PERSON span counts as found when at least this share of its speech frames is masked.
PERSON_FOUND = 0.90
CALL_SETS = ("fixtures", "shared", "dev", "all")


@dataclass(frozen=True)
class Job:
    """One call x variant to stream."""

    path: str  # the call's truth JSON
    variant: str
    delay_s: float | None = None  # the policy's default when None


def call_paths(which: str) -> list[Path]:
    """The truth files of a call set; ``dev`` (and ``all``) compose the development set if missing."""
    paths: list[Path] = []
    if which in ("fixtures", "shared", "all"):
        paths += truth_calls("all" if which == "all" else which)
    if which in ("dev", "all"):
        from bench import devset  # composing needs flite; only the dev set pays for importing it

        paths += devset.ensure()
    return paths


def load_call(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """The call's samples as the relay would read them (the same decoder as ``bleepline redact``)."""
    truth = json.loads(path.read_text())
    chunks = list(read_audio_chunks(path.with_name(truth["audio"])))
    return np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate, truth


_models: dict[ModelSpec | None, tuple[Any, Any]] = {}
_spec: ModelSpec | None = None  # the model this process's jobs use (None: the default tiny.en)


def _use(spec: ModelSpec | None) -> None:
    """Pool initializer: which model the worker's jobs run on."""
    global _spec
    _spec = spec


def _load_models(spec: ModelSpec | None = None) -> tuple[Any, Any]:
    """Whisper and the detector, once per process (each worker loads its own)."""
    if spec not in _models:
        from bleepline.pii.detector import SpokenPiiDetector

        _models[spec] = (load_whisper(spec or resolve_model()), SpokenPiiDetector())
    return _models[spec]


def run_job(job: Job) -> dict[str, Any]:
    """Perturb, listen, redact at the default delay and score one call x variant (picklable result)."""
    whisper, detector = _load_models(_spec)
    path = Path(job.path)
    samples, rate, truth = load_call(path)
    began = time.perf_counter()
    varied = perturb.perturb(job.variant, samples, rate, truth, path.stem)
    recorded = eval_redaction.listen(
        path.stem, eval_redaction.chunked(varied.samples, varied.rate), varied.truth["pii"], whisper, detector
    )
    recorded.speech_reference = perturb.speech_reference(job.variant, samples, rate)
    scored = eval_redaction.score(
        recorded, job.delay_s if job.delay_s is not None else RedactionPolicy().delay_s
    )
    return {
        "call": path.stem,
        "variant": job.variant,
        "audio_s": len(varied.samples) / varied.rate,
        "wall_s": time.perf_counter() - began,
        "score": asdict(scored),
    }


def _score(row: dict[str, Any]) -> eval_redaction.CallScore:
    data = dict(row["score"])
    data["spans"] = [eval_redaction.SpanScore(**s) for s in data["spans"]]
    data["digits"] = [eval_redaction.DigitScore(**d) for d in data["digits"]]
    return eval_redaction.CallScore(**data)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures over some call-variants: eval_redaction's totals plus the per-call-variant ones."""
    scores = [_score(r) for r in rows]
    figures = eval_redaction.summarise(scores, RedactionPolicy().delay_s)
    over = [(s.over_redaction, r["call"]) for s, r in zip(scores, rows, strict=True)]
    shares = [(share, call) for share, call in over if share is not None]
    persons = [p for s in scores for p in s.spans if p.entity == "PERSON" and p.speech > 0]
    figures.update(
        {
            "call_variants": len(rows),
            "over_redaction_mean": statistics.fmean(x for x, _ in shares) if shares else 0.0,
            "over_redaction_max": max(shares)[0] if shares else 0.0,
            "over_redaction_max_call": max(shares)[1] if shares else None,
            "persons": len(persons),
            "persons_found": sum((p.speech - p.audible) / p.speech >= PERSON_FOUND for p in persons),
        }
    )
    return figures


def leaks(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every leaked digit: call, variant, digit, where on the variant's timeline, share audible."""
    found = []
    for row in rows:
        for digit in _score(row).digits:
            if digit.leaked:
                found.append(
                    {
                        "call": row["call"],
                        "variant": row["variant"],
                        "entity": digit.entity,
                        "digit": digit.digit,
                        "start": round(digit.start, 3),
                        "audible": round(digit.heard / digit.speech, 2),
                    }
                )
    return found


def report(rows: Sequence[dict[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    by_variant = {v: summarise([r for r in rows if r["variant"] == v]) for v in variants}
    perturbed = [r for r in rows if r["variant"] != "plain"]
    return {
        "delay_s": RedactionPolicy().delay_s,
        "calls": sorted({r["call"] for r in rows}),
        "variants": list(variants),
        "by_variant": by_variant,
        "overall_perturbed": summarise(perturbed) if perturbed else None,
        "leaks": leaks(rows),
        "rows": [
            {
                "call": r["call"],
                "variant": r["variant"],
                "over_redaction": _score(r).over_redaction,
                "digits_leaked": sum(d.leaked for d in _score(r).digits),
                "late_masks": r["score"]["late_masks"],
            }
            for r in rows
        ],
    }


def _row(label: str, f: dict[str, Any]) -> str:
    persons = f"{f['persons_found']}/{f['persons']}" if f["persons"] else "-"
    return (
        f"{label:18s} {f['digits_leaked']:>5d} of {f['digits']:<5d} {f['digits_with_any_audible_frame']:>9d} "
        f"{f['pii_audible']:>11.2%} {f['over_redaction_mean']:>9.2%} {f['over_redaction_max']:>8.2%} "
        f"{persons:>8s} {f['late_masks']:>6d}"
    )


def print_report(result: dict[str, Any]) -> None:
    print(
        f"\nD = {result['delay_s']} s, {len(result['calls'])} calls\n"
        f"{'variant':18s} {'digits leaked':>14s} {'any frame':>9s} {'PII audible':>11s} "
        f"{'over mean':>9s} {'over max':>8s} {'PERSON':>8s} {'late':>6s}"
    )
    by_variant = result["by_variant"]
    if "plain" in by_variant:
        print(_row("plain (beside)", by_variant["plain"]))
    for variant, figures in by_variant.items():
        if variant != "plain":
            print(_row(variant, figures))
    if result["overall_perturbed"]:
        print(_row("all perturbed", result["overall_perturbed"]))
    worst = {v: f["over_redaction_max_call"] for v, f in by_variant.items() if f["over_redaction_max_call"]}
    print("\nworst over-redaction by variant: " + ", ".join(f"{v} {c}" for v, c in worst.items()))
    print(f"\nleaked digits ({len(result['leaks'])}):")
    for leak in result["leaks"]:
        print(
            f"  {leak['call']:28s} {leak['variant']:10s} {leak['entity']:14s} '{leak['digit']}' "
            f"at {leak['start']:7.3f} s ({leak['audible']:.0%} audible)"
        )


def run(
    paths: Sequence[Path],
    variants: Sequence[str],
    jobs: int = 1,
    spec: ModelSpec | None = None,
    delay_s: float | None = None,
) -> dict[str, Any]:
    """Every call x variant (plain always among them) on ``spec`` (default tiny.en); the figures."""
    _use(spec)
    if "plain" not in variants:
        variants = ["plain", *variants]
    work = [Job(str(p), v, delay_s) for p in paths for v in variants]
    began = time.perf_counter()
    if jobs <= 1:
        rows = []
        for job in work:
            rows.append(run_job(job))
            print(f"  {Path(job.path).stem:28s} {job.variant:10s} {rows[-1]['wall_s']:6.1f} s", flush=True)
    else:
        # Spawned, not forked: a forked child would inherit the parent's threads and locks mid-flight.
        with multiprocessing.get_context("spawn").Pool(jobs, initializer=_use, initargs=(spec,)) as pool:
            rows = pool.map(run_job, work, chunksize=1)
    result = report(rows, variants)
    if delay_s is not None:
        result["delay_s"] = delay_s
    result["model"] = (spec or resolve_model()).name
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["audio_s"] = round(sum(r["audio_s"] for r in rows), 1)
    return result


def _variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = sorted(set(names) - set(perturb.VARIANTS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"variants are {', '.join(perturb.VARIANTS)}; got {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", choices=CALL_SETS, default="all")
    parser.add_argument("--variants", type=_variants, default=list(perturb.VARIANTS))
    parser.add_argument(
        "--five",
        action="store_true",
        help="the external check: pad137,pad410,noise25,quiet,tele on ../shared/speech/calls",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes over call x variant")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--delay", type=float, help="the delay D in seconds (default: the policy's)")
    args = parser.parse_args(argv)
    if args.five:
        if not SHARED_CALLS.is_dir():
            parser.error(f"--five needs {SHARED_CALLS}, which is not present")
        paths, variants = sorted(SHARED_CALLS.glob("*.json")), list(perturb.FIVE)
    else:
        paths, variants = call_paths(args.calls), args.variants
    if not paths:
        parser.error(f"no calls in set {args.calls!r}")
    print(f"{len(paths)} calls x {len(set(variants) | {'plain'})} variants (plain included)", flush=True)
    result = run(paths, variants, args.jobs, delay_s=args.delay)
    print_report(result)
    print(f"\n{result['audio_s']:.0f} s of audio in {result['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
