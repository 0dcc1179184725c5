"""Capacity: concurrent real-time calls over RTP (``bench.capacity``), and files per wall-second.

``bench.capacity`` runs in a process of its own, as it does from the command line: it starts a relay
on its own event loop and a load generator process, and a clean interpreter keeps this runner's loaded
models and threads out of what it measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import file_capacity

ROOT = Path(__file__).resolve().parents[2]

FULL_STEPS = (1, 4, 6, 8, 10, 12, 14)  # up to where this 2-core machine fails, at D = 3 s or 3.5 s
QUICK_STEPS = (1,)
#: Long enough for the fixture (14 s) to be heard through once, and for p99s over thousands of packets.
FULL_STEP_S = 15.0
FULL_REPEATS = 3
QUICK_STEP_S = 4.0


def _one_run(
    steps: Sequence[int], step_s: float, model: str | None, device: str, compute_type: str
) -> dict[str, Any]:
    """One ``bench.capacity`` run: steps of N calls until one fails; the steps and the largest N passed."""
    with tempfile.TemporaryDirectory(prefix="bleepline-bench-") as tmp:
        out = Path(tmp) / "capacity.json"
        command = [
            sys.executable,
            "-m",
            "bench.capacity",
            "--mode",
            "listen",
            "--calls",
            ",".join(str(n) for n in steps),
            "--duration",
            str(step_s),
            "--device",
            device,
            "--compute-type",
            compute_type,
            "--json",
            str(out),
        ]
        if model:
            command += ["--model", model]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        if not out.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            return {
                "skipped": f"bench.capacity wrote no results (exit {done.returncode}): {' / '.join(tail)}"
            }
        steps_run: list[dict[str, Any]] = json.loads(out.read_text())
    passed = 0
    for step in steps_run:  # ascending N; the first failure ends the run
        if not step["ok"]:
            break
        passed = step["calls"]
    failed = next((s for s in steps_run if not s["ok"]), None)
    if failed is None and done.returncode:
        # A step raised: the run ended there, a failure the step table cannot show.
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
        failed = {
            "calls": steps[len(steps_run)] if len(steps_run) < len(steps) else 0,
            "why": f"crashed: {tail}",
        }
    return {
        "steps": steps_run,
        "max_ok_calls": passed,
        "first_failure": {"calls": failed["calls"], "why": failed["why"]} if failed else None,
    }


def rtp_capacity(
    steps: Sequence[int],
    step_s: float,
    repeats: int,
    model: str | None,
    device: str,
    compute_type: str,
) -> dict[str, Any]:
    """``repeats`` runs of the steps. One run's pass or fail at the edge is a coin toss on a shared
    machine, so the capacity is the median run's; its steps are the ones tabulated and plotted."""
    runs = [_one_run(steps, step_s, model, device, compute_type) for _ in range(repeats)]
    done = [r for r in runs if "skipped" not in r]
    if not done:
        return runs[0]
    ranked = sorted(done, key=lambda r: int(r["max_ok_calls"]))
    median = ranked[(len(ranked) - 1) // 2]
    return {
        **median,
        "step_s": step_s,
        "repeats": len(done),
        "max_ok_spread": {
            "min": ranked[0]["max_ok_calls"],
            "median": median["max_ok_calls"],
            "max": ranked[-1]["max_ok_calls"],
        },
        "runs": [{"max_ok_calls": r["max_ok_calls"], "first_failure": r["first_failure"]} for r in done],
    }


def files(quick: bool, model: str | None, device: str, compute_type: str) -> dict[str, Any]:
    paths = file_capacity.audio_files("fixtures")
    if quick:
        return file_capacity.run(paths[:1], [1], 1, model, device, compute_type)
    return file_capacity.run(paths, [1, 2], 3, model, device, compute_type)
