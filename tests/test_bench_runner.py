"""``python -m bench``'s report assembly: every section, honest gaps, valid PNGs (bench/report/)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench import __main__ as runner
from bench import file_capacity, pii_latency
from bench.report import micro, render, targets

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def _bench(
    group: str | None, name: str, median: float, param: str | None = None, **extra: float
) -> dict[str, Any]:
    return {
        "group": group,
        "name": name,
        "fullname": f"bench/bench_x.py::{name}",
        "param": param,
        "extra_info": extra,
        "options": {"timer": "process_time"},
        "stats": {"min": median * 0.9, "median": median, "max": median * 1.5, "rounds": 5},
    }


def _pytest_benchmark_json(media_s: float = 30e-6) -> dict[str, Any]:
    asr, delay = micro.ASR_GROUP, "delay line: one 20 ms packet"
    return {
        "benchmarks": [
            _bench(asr, "test_streaming[at_pauses]", 3.3, "at_pauses", audio_seconds=53.0),
            _bench(asr, "test_offline_whole_file", 2.2, audio_seconds=53.0),
            _bench(asr, "test_naive_rolling_window", 38.0, audio_seconds=53.0),
            _bench(micro.RELAY_GROUP, "test_baseline_build_and_parse", 4e-6),
            _bench(micro.RELAY_GROUP, micro.MEDIA_PACKET, media_s),
            _bench(delay, "test_delay_baseline_copy_into_chunk[8000]", 2e-6, "8000"),
            _bench(delay, "test_delay_baseline_copy_into_chunk[48000]", 4e-6, "48000"),
            _bench(delay, "test_packet[cleared-48000]", 8e-6, "cleared-48000"),
            _bench(None, "test_bare_aead_one_second", 6e-6),
            _bench(None, "test_seal_one_chunk", 20e-6),
        ]
    }


def _step(calls: int, ok: bool, unverified: float = 0.0) -> dict[str, Any]:
    return {
        "mode": "listen",
        "calls": calls,
        "relay_cpu": 40.0 * calls,
        "system_cpu": 30.0 + 10 * calls,
        "send_late_p99_ms": 0.5,
        "lag_ms": [0.5, 4.0 * calls, 9.0 * calls],
        "through_ms": [0.2, 3.0, 8.0],
        "through_missing": 0,
        "jitter_ms": [10.0, 100.0, 150.0],
        "behind_ms": [60.0, 180.0, 230.0],
        "redacted_missing": 0,
        "drops": 0,
        "rcvbuf_errors": 0,
        "unverified_s": unverified,
        "masked_pii_s": 0.4,
        "ok": ok,
        "why": "" if ok else "unverified masking",
    }


def canned_results(media_s: float = 30e-6) -> dict[str, Any]:
    """Figures shaped as each section returns them, small and made up (never written to the tree)."""
    leak_rows = [
        {
            "delay_s": d,
            "pii_audible": 0.0,
            "pii_audible_by_entity": {"CREDIT_CARD": 0.0},
            "digits": 40,
            "digits_leaked": 0,
            "digits_with_any_audible_frame": 1,
            "over_redaction": 0.2 / d,
            "late_masks": 1 if d < 2 else 0,
            "late_mask_s": 0.3 if d < 2 else 0.0,
        }
        for d in (1.5, 3.0)
    ]
    rounds = [file_capacity.Round(w, 9, 130.0, 130.0 / (8 * w), 8.0 * w, 0.09, 0.0) for w in (1, 2, 2)]
    words = [
        pii_latency.WordLatency("call", "CREDIT_CARD", 5.0 + k, -0.2 + 0.1 * k, 0.1 * k) for k in range(12)
    ] + [pii_latency.WordLatency("call", "PERSON", 3.0, None, None)]
    latency = pii_latency.summarize(words)
    latency.update(calls=2, delay_s=3.0)
    steps = [_step(1, True), _step(4, True), _step(6, False, unverified=0.8)]
    return {
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "ram_gib": 24.0,
            "os": "Linux",
            "python": "3.11.7",
            "versions": {"numpy": "2", "ctranslate2": "4"},
            "model": "whisper-tiny-en",
            "compute_type": "int8",
            "device": "cpu",
            "gpus": 0,
            "commit": "abc1234",
            "date": "2026-01-01 00:00 UTC",
            "load_average_at_start": [1.0, 1.0, 1.0],
        },
        "quick": False,
        "micro": micro.tabulate(_pytest_benchmark_json(media_s)),
        "leak": {
            "calls": 2,
            "fixture_calls": 2,
            "shared_calls": 0,
            "shared_present": False,
            "audio_s": 38.0,
            "transcription_wall_s": 6.0,
            "delays": leak_rows,
        },
        "capacity": {
            "steps": steps,
            "step_s": 20.0,
            "max_ok_calls": 4,
            "first_failure": {"calls": 6, "why": "unverified masking"},
            "repeats": 3,
            "max_ok_spread": {"min": 4, "median": 4, "max": 6},
            "runs": [
                {"max_ok_calls": 4, "first_failure": {"calls": 6, "why": "unverified masking"}},
                {"max_ok_calls": 4, "first_failure": {"calls": 6, "why": "loop lag p99 28 ms"}},
                {"max_ok_calls": 6, "first_failure": {"calls": 8, "why": "unverified masking"}},
            ],
        },
        "file_capacity": {**file_capacity.summarize(rounds), "files": ["a.wav"] * 9, "audio_s": 130.0},
        "latency": latency,
        "profiles": {
            "media": {
                "unit": "packet",
                "units": 100,
                "total_s": 0.01,
                "top": [
                    {
                        "function": "audio/dtmf.py:1 push",
                        "own_share": 0.6,
                        "own_per_unit_us": 60.0,
                        "calls_per_unit": 1.0,
                    }
                ],
            }
        },
        "timings": {"micro": 200.0, "leak": 180.0},
    }


def test_micro_ratios_pair_each_benchmark_with_its_groups_baseline() -> None:
    rows = {r["name"]: r for r in micro.tabulate(_pytest_benchmark_json())["rows"]}
    # The parameter picks the baseline: 48 kHz against the 48 kHz copy, not the 8 kHz one.
    assert rows["test_packet[cleared-48000]"]["baseline"] == "test_delay_baseline_copy_into_chunk[48000]"
    assert rows["test_packet[cleared-48000]"]["ratio"] == pytest.approx(2.0)
    assert rows["test_seal_one_chunk"]["baseline"] == "test_bare_aead_one_second"
    assert rows["test_streaming[at_pauses]"]["baseline"] == micro.OFFLINE
    assert rows["test_naive_rolling_window"]["is_baseline"]
    head = micro.tabulate(_pytest_benchmark_json())["headline"]
    assert head["streaming_cpu_per_audio_s"]["median"] == pytest.approx(3.3 / 53.0)
    assert head["naive_over_streaming"]["median"] == pytest.approx(38.0 / 3.3)
    assert head["media_packet_us"]["median"] == pytest.approx(30.0)


def test_targets_say_met_missed_or_not_measured() -> None:
    checked = {t.what: t for t in targets.check(canned_results(media_s=80e-6))}
    media = checked["media plane, µs per 20 ms packet"]
    assert media.met is False
    assert "30 µs over" in media.gap
    assert checked["streaming recognizer, CPU-s per audio-s"].met is True
    calls = checked["concurrent real-time calls, zero unverified masking, default D"]
    assert calls.met is False
    assert calls.gap == "2 calls short"
    empty = targets.check({})
    assert all(t.met is None and t.measured == "not measured" for t in empty)


def test_report_has_every_section_and_valid_plots(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    drawn = runner.write_report(canned_results(media_s=80e-6), out)
    text = out.read_text()
    for section in render.SECTIONS:
        assert f"## {section}" in text
    assert "this machine has no GPU" in text
    assert "**missed**" in text
    assert "**met**" in text
    assert "audio/dtmf.py:1 push" in text  # the hot spot of the missed media target is named
    assert "no spread is shown because there is none to show" in text.lower()
    assert "over 3 runs min 4, max 6" in text
    assert set(drawn) == {"micro", "leak", "capacity", "latency"}
    for path in drawn.values():
        assert path is not None
        assert path.read_bytes()[:8] == PNG
        assert path.stat().st_size > 5000  # a drawn figure, not an empty canvas
        assert f"]({path.relative_to(tmp_path).as_posix()})" in text


def test_a_section_not_measured_says_so_and_draws_nothing(tmp_path: Path) -> None:
    results = canned_results()
    del results["capacity"]
    results["leak"] = {"skipped": "failed: ModelError: no model"}
    out = tmp_path / "RESULTS-gpu.md"
    drawn = runner.write_report(results, out)
    text = out.read_text()
    assert "not measured: failed: ModelError: no model" in text
    assert "not measured: this section was not run" in text
    assert drawn["leak"] is None
    # A second report beside the first keeps its own plots.
    assert drawn["micro"] is not None
    assert drawn["micro"].name == "gpu-micro.png"


def test_only_takes_known_sections() -> None:
    assert runner._sections("leak, capacity") == ["leak", "capacity"]
    with pytest.raises(argparse.ArgumentTypeError, match="sections are"):
        runner._sections("leak,gpu")


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path) -> None:
    """The real command, with --quick (about 45 s here): every section measured, nothing skipped."""
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "not measured:" not in text, text
    assert len(list((tmp_path / "results").glob("*.png"))) == 4
