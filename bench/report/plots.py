"""The report's PNG plots (matplotlib, Agg: no display needed). Each takes one section's figures and
returns the file it wrote, or None when the section has nothing to plot (it was not measured)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: a headless machine has no display to open

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def leak(section: dict[str, Any], path: Path) -> Path | None:
    rows = section.get("delays") or []
    if not rows:
        return None
    d = [r["delay_s"] for r in rows]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(d, [100 * r["pii_audible"] for r in rows], "o-", color="tab:red", label="PII speech audible")
    left.plot(d, [100 * r["over_redaction"] for r in rows], "s-", color="tab:blue", label="over-redaction")
    left.set_xlabel("delay D (s)")
    left.set_ylabel("% of speech")
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.bar(d, [r["late_masks"] for r in rows], width=0.15, alpha=0.3, color="tab:gray", label="late masks")
    right.bar(
        d,
        [r["digits_leaked"] for r in rows],
        width=0.08,
        alpha=0.8,
        color="tab:orange",
        label="digits leaked",
    )
    right.set_ylabel("count")
    left.set_zorder(right.get_zorder() + 1)  # the lines over the bars, not hidden behind them
    left.patch.set_visible(False)
    right.set_ylim(bottom=0, top=max(1, *(max(r["late_masks"], r["digits_leaked"]) for r in rows)) * 1.5)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, loc="upper right")
    left.set_title(f"Leak and over-redaction by delay ({section['calls']} calls, {section['audio_s']:.0f} s)")
    return _save(figure, path)


def capacity(rtp: dict[str, Any], files: dict[str, Any], path: Path) -> Path | None:
    steps = rtp.get("steps") or []
    by_workers = files.get("by_workers") or {}
    if not steps and not by_workers:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    if steps:
        n = [s["calls"] for s in steps]
        axes[0].plot(n, [s["lag_ms"][1] for s in steps], "o-", label="event-loop lag p99")
        axes[0].plot(n, [s["through_ms"][1] for s in steps], "s-", label="passthrough p99")
        axes[0].axhline(20, color="gray", linestyle="--", label="step fails above (20 ms)")
        for ax in axes[:2]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_xlabel("concurrent real-time calls")
        axes[0].set_ylabel("ms")
        axes[0].legend(fontsize=8)
        axes[0].set_title("RTP path: lateness")
        axes[1].plot(n, [s["relay_cpu"] for s in steps], "o-", label="relay process CPU (100 % = 1 core)")
        axes[1].plot(n, [s["system_cpu"] for s in steps], "s-", label="whole machine CPU")
        twin = axes[1].twinx()
        twin.bar(n, [s["unverified_s"] for s in steps], width=0.5, alpha=0.3, color="tab:red")
        twin.set_ylabel("unverified s per call (bars)")
        twin.set_ylim(bottom=0, top=max(1.0, *(s["unverified_s"] for s in steps)) * 1.3)
        axes[1].set_xlabel("concurrent real-time calls")
        axes[1].set_ylabel("% CPU")
        axes[1].legend(fontsize=8, loc="upper left")
        axes[1].set_title("RTP path: CPU and unverified masking")
    else:
        for ax in axes[:2]:
            ax.text(0.5, 0.5, "RTP capacity not measured", ha="center", transform=ax.transAxes)
    if by_workers:
        workers = sorted(by_workers, key=int)
        medians = [by_workers[w]["throughput"]["median"] for w in workers]
        low = [m - by_workers[w]["throughput"]["min"] for w, m in zip(workers, medians, strict=True)]
        high = [by_workers[w]["throughput"]["max"] - m for w, m in zip(workers, medians, strict=True)]
        axes[2].bar(workers, medians, yerr=[low, high], capsize=6, color="tab:green")
        axes[2].set_xlabel("worker processes")
        axes[2].set_ylabel("audio-s per wall-s (min-max bars)")
        axes[2].set_title("File path: throughput")
    else:
        axes[2].text(0.5, 0.5, "file path not measured", ha="center", transform=axes[2].transAxes)
    return _save(figure, path)


def latency(pii: dict[str, Any], rtp: dict[str, Any], path: Path) -> Path | None:
    words = [w for w in pii.get("per_word", []) if w.get("real_time_s") is not None]
    steps = rtp.get("steps") or []
    if not words and not steps:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    if words:
        for key, label in (("real_time_s", "simulated real time"), ("audio_clock_s", "audio clock only")):
            values = sorted(w[key] for w in words)
            share = [(k + 1) / len(values) for k in range(len(values))]
            axes[0].step(values, share, where="post", label=label)
        axes[0].axvline(0, color="gray", linestyle=":")
        axes[0].set_xlabel("span known to the delay line, s after the PII word ended")
        axes[0].set_ylabel("share of PII words")
        axes[0].legend()
        axes[0].set_title(f"PII word end to span ({len(words)} words)")
    else:
        axes[0].text(0.5, 0.5, "not measured", ha="center", transform=axes[0].transAxes)
    if steps:
        n = [s["calls"] for s in steps]
        for index, label in ((0, "p50"), (1, "p99"), (2, "max")):
            axes[1].plot(
                n, [s["behind_ms"][index] for s in steps], "o-", label=f"redacted leg lag - D, {label}"
            )
        axes[1].plot(n, [s["through_ms"][1] for s in steps], "s--", label="passthrough added, p99")
        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].set_xlabel("concurrent real-time calls")
        axes[1].set_ylabel("ms")
        axes[1].legend(fontsize=8)
        axes[1].set_title("Live legs: latency beyond the delay D")
    else:
        axes[1].text(0.5, 0.5, "not measured", ha="center", transform=axes[1].transAxes)
    return _save(figure, path)


def micro(section: dict[str, Any], path: Path) -> Path | None:
    rows = [r for r in section.get("rows", []) if r.get("ratio")]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["ratio"])
    figure, ax = plt.subplots(figsize=(9, max(3.0, 0.32 * len(rows) + 1)))
    labels = [f"{r['name']}  (vs {r['baseline']})" for r in rows]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color="tab:purple")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1, color="gray", linestyle=":")
    ax.set_xlabel("median time / its group's baseline median, same run (log scale)")
    ax.set_title("Micro benchmarks against their baselines")
    return _save(figure, path)
