"""The pytest-benchmark suites in ``bench/``, run once with fixed settings, read back as table rows.

Each benchmark is reported as min / median / max over its rounds, and as a ratio to the baseline of its
group measured in the same run (the same clock, the same moment on a shared machine). The suites name
their baselines: ``*baseline*`` in a group (build+parse, bare copy, Presidio alone), ``bare`` for the
recording's AEAD floor, ``[sequential]`` for the batcher; the ASR group has two, offline whole-file
and the naive rolling window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

ASR_GROUP = "asr: CPU seconds per call"
RELAY_GROUP = "relay media plane: one 20 ms packet"
#: The product path: the recognizer driven as CallListener drives it (VAD pauses flush it).
STREAMING = "test_streaming[at_pauses]"
OFFLINE = "test_offline_whole_file"
NAIVE = "test_naive_rolling_window"
#: Everything a live PCMU call does per packet on the media side: parse, jitter buffer, decode, keypad
#: detector, delay line, release, re-encode for the redacted leg.
MEDIA_PACKET = "test_receive_hold_with_keypad_release_encode"

#: Rounds: µs-scale benchmarks calibrate their own iterations and run for at most this long each;
#: the ASR suite fixes its own rounds (3, the naive baseline 2) with pedantic().
FULL_ARGS = ["--benchmark-max-time=0.25", "--benchmark-min-rounds=5"]
QUICK_ARGS = ["--benchmark-max-time=0.02", "--benchmark-min-rounds=3"]
#: The quick run leaves out the ASR suite (two minutes) and the recording's; bench_hot_path holds the
#: media and delay-line groups' baselines, so it stays.
QUICK_FILES = [
    "bench/bench_relay.py",
    "bench/bench_media.py",
    "bench/bench_delayline.py",
    "bench/bench_hot_path.py",
]


def run(quick: bool) -> dict[str, Any]:
    """Run the suites; the parsed rows, or why there are none. pytest-benchmark's own JSON (megabytes of
    raw timings) goes to a temporary directory: the rows keep what the report needs."""
    with tempfile.TemporaryDirectory(prefix="bleepline-micro-") as tmp:
        return _run(Path(tmp) / "pytest-benchmark.json", quick)


def _run(json_path: Path, quick: bool) -> dict[str, Any]:
    files = QUICK_FILES if quick else ["bench"]
    command = [
        sys.executable,
        "-m",
        "pytest",
        *files,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
        *(QUICK_ARGS if quick else FULL_ARGS),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if not json_path.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        return {"skipped": f"pytest bench wrote no results (exit {done.returncode}): {' / '.join(tail)}"}
    result = tabulate(json.loads(json_path.read_text()))
    result["command"] = " ".join(["python -m pytest", *files, *(QUICK_ARGS if quick else FULL_ARGS)])
    result["pytest_exit"] = done.returncode
    if done.returncode:
        result["failures"] = [
            line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))
        ][:10]
    return result


def _group(bench: dict[str, Any]) -> str:
    if bench.get("group"):
        return str(bench["group"])
    # No group: the file's own (bench_recording.py), by its module name.
    return str(bench["fullname"]).split("::")[0].removeprefix("bench/").removesuffix(".py")


def _is_baseline(name: str) -> bool:
    # bench_batch.py's baseline is its ``sequential`` case: the same windows without batching.
    return "baseline" in name or "_bare_" in name or "[sequential]" in name or name in (OFFLINE, NAIVE)


def _baseline_for(bench: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The group's baseline for ``bench``: the one with the same parameter (e.g. the sample rate) if any."""
    if not candidates:
        return None
    params = set(str(bench.get("param") or "").split("-"))
    for candidate in candidates:
        other = str(candidate.get("param") or "")
        if other and other in params:
            return candidate
    return candidates[0]


def tabulate(data: dict[str, Any]) -> dict[str, Any]:
    """Rows (group, name, min/median/max in seconds, rounds, baseline, ratio) and the headline figures."""
    benches: list[dict[str, Any]] = data.get("benchmarks", [])
    by_group: dict[str, list[dict[str, Any]]] = {}
    for bench in benches:
        by_group.setdefault(_group(bench), []).append(bench)
    rows: list[dict[str, Any]] = []
    for group, members in by_group.items():
        if group == ASR_GROUP:
            baselines = [b for b in members if b["name"] == OFFLINE]
        else:
            baselines = [b for b in members if _is_baseline(b["name"])]
        for bench in members:
            stats = bench["stats"]
            base = None if _is_baseline(bench["name"]) else _baseline_for(bench, baselines)
            rows.append(
                {
                    "group": group,
                    "name": bench["name"],
                    "min": stats["min"],
                    "median": stats["median"],
                    "max": stats["max"],
                    "rounds": stats["rounds"],
                    "timer": str(bench.get("options", {}).get("timer", "")),
                    "is_baseline": _is_baseline(bench["name"]),
                    "baseline": base["name"] if base else None,
                    "ratio": stats["median"] / base["stats"]["median"] if base else None,
                    "audio_seconds": bench.get("extra_info", {}).get("audio_seconds"),
                }
            )
    return {"rows": rows, "headline": headline(rows)}


def _row(rows: list[dict[str, Any]], name: str, group: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["name"] == name and r["group"] == group), None)


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Streaming CPU-s per audio-s (min/median/max) and its ratios; the media plane's µs per packet."""
    out: dict[str, Any] = {}
    streaming = _row(rows, STREAMING, ASR_GROUP)
    if streaming and streaming["audio_seconds"]:
        audio = float(streaming["audio_seconds"])
        out["streaming_cpu_per_audio_s"] = {k: streaming[k] / audio for k in ("min", "median", "max")}
        out["streaming_rounds"] = streaming["rounds"]
        out["audio_seconds"] = audio
        for key, name in (("offline", OFFLINE), ("naive", NAIVE)):
            other = _row(rows, name, ASR_GROUP)
            if other:
                out[f"{key}_cpu_per_audio_s"] = {k: other[k] / audio for k in ("min", "median", "max")}
        naive = _row(rows, NAIVE, ASR_GROUP)
        if naive:
            # How many times cheaper than the naive baseline; the worst case pairs streaming's slowest
            # round with naive's fastest, so the spread is honest in both directions.
            out["naive_over_streaming"] = {
                "median": naive["median"] / streaming["median"],
                "min": naive["min"] / streaming["max"],
                "max": naive["max"] / streaming["min"],
            }
        offline = _row(rows, OFFLINE, ASR_GROUP)
        if offline:
            out["streaming_over_offline"] = {
                "median": streaming["median"] / offline["median"],
                "min": streaming["min"] / offline["max"],
                "max": streaming["max"] / offline["min"],
            }
    media = _row(rows, MEDIA_PACKET, RELAY_GROUP)
    if media:
        out["media_packet_us"] = {k: media[k] * 1e6 for k in ("min", "median", "max")}
        out["media_packet_rounds"] = media["rounds"]
        out["media_packet_ratio"] = media["ratio"]
    return out
