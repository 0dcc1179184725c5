"""RESULTS.md from the sections' figures. Pure: it reads the dicts ``python -m bench`` collected (or a saved
``results.json``) and never measures anything, so a missing figure can only say why it is missing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.report.targets import Target, check

SECTIONS = (
    "Machine",
    "Targets",
    "Micro benchmarks",
    "Leak and over-redaction by delay D",
    "Robustness by variant",
    "Capacity",
    "End-to-end latency",
    "Hot spots",
    "How this was run",
)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _duration(seconds: float) -> str:
    """A time in the unit that keeps three significant figures readable."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _missing(section: dict[str, Any] | None) -> str | None:
    if not section:
        return "not measured: this section was not run (`--only`)"
    if "skipped" in section:
        return f"not measured: {section['skipped']}"
    return None


def _image(plots: dict[str, Path | None], key: str, alt: str, out: Path) -> list[str]:
    path = plots.get(key)
    if path is None:
        return [f"*(no plot: {alt.lower()} not measured)*"]
    return [f"![{alt}]({path.relative_to(out.parent).as_posix()})"]


def machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    v = m["versions"]
    lines = [
        "## Machine",
        "",
        *_table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']}, {m['cores']} cores"],
                ["RAM", f"{m['ram_gib']:.0f} GiB" if m.get("ram_gib") else "unknown"],
                ["OS, Python", f"{m['os']}, Python {m['python']}"],
                ["versions", ", ".join(f"{k} {val}" for k, val in v.items())],
                ["speech model", f"{m['model']} {m['compute_type']} on {m['device']}"],
                [
                    "GPU",
                    f"{m['gpus']} CUDA device(s) visible to CTranslate2"
                    + (f": {'; '.join(m['gpu_names'])}" if m.get("gpu_names") else ""),
                ],
                ["commit", m["commit"]],
                ["date", m["date"]],
                ["load average at start", m.get("load_average_at_start")],
            ],
        ),
        "",
    ]
    if not m["gpus"]:
        lines += [
            "**No GPU figures here:** this machine has no GPU (CTranslate2 sees no CUDA device). "
            "`bench/gpu.sh` runs the same report on a GPU host with larger models and writes "
            "`bench/RESULTS-gpu-<model>.md`.",
            "",
        ]
    lines += [
        "The machine is shared with other work and its timings are noisy: every timing below carries its "
        "spread (min / median / max over rounds or repeats), and ratios are taken against a baseline "
        "measured in the same run, which moves with the machine's load far less than absolute figures do.",
        "",
    ]
    return lines


def targets(results: dict[str, Any], checked: Sequence[Target]) -> list[str]:
    def verdict(t: Target) -> str:
        if t.met is None:
            return "not measured"
        return "**met**" if t.met else f"**missed**: {t.gap}"

    m = results.get("machine", {})
    lines = ["## Targets", "", "Issue 7's targets for the 2-core CPU machine, Whisper tiny.en int8.", ""]
    if m.get("device", "cpu") != "cpu" or m.get("model", "whisper-tiny-en") != "whisper-tiny-en":
        lines[-2] += (
            f" This run used {m.get('model')} {m.get('compute_type')} on {m.get('device')}: the verdicts "
            "compare it with targets set for another setup, for orientation only."
        )
    lines += _table(
        ["target", "goal", "measured (median, spread)", "verdict"],
        [[t.what, t.target, t.measured, verdict(t)] for t in checked],
    )
    missed = [t for t in checked if t.met is False]
    if missed:
        lines += ["", "Where a target is missed, [Hot spots](#hot-spots) names what limits it."]
    return [*lines, ""]


def micro(results: dict[str, Any], plots: dict[str, Path | None], out: Path) -> list[str]:
    section = results.get("micro")
    lines = ["## Micro benchmarks", ""]
    why = _missing(section)
    if why:
        return [*lines, why, ""]
    assert section is not None
    head = section.get("headline", {})
    lines += [
        f"`{section.get('command', 'pytest bench')}`. Timers: CPU time (process time) for most groups, "
        "wall time where a suite says so (sub-µs stages). The ratio is the median against the median of "
        "the group's baseline in the same run.",
        "",
    ]
    if section.get("pytest_exit"):
        lines += [
            f"pytest exited {section['pytest_exit']}; failures: {', '.join(section.get('failures', []))}",
            "",
        ]
    if "streaming_cpu_per_audio_s" in head:
        s = head["streaming_cpu_per_audio_s"]
        lines += [
            "**Streaming recognizer** (product path, `test_streaming[at_pauses]`, "
            f"{head['audio_seconds']:.0f} s of calls, {head['streaming_rounds']} rounds): "
            f"{s['median']:.3f} CPU-s per audio-s "
            f"(min {s['min']:.3f}, max {s['max']:.3f}).",
        ]
        for key, label in (
            ("offline_cpu_per_audio_s", "offline whole-file"),
            ("naive_cpu_per_audio_s", "naive rolling window"),
        ):
            if key in head:
                lines.append(
                    f"- {label}: {head[key]['median']:.3f} CPU-s per audio-s "
                    f"(min {head[key]['min']:.3f}, max {head[key]['max']:.3f})"
                )
        if "naive_over_streaming" in head:
            r = head["naive_over_streaming"]
            lines.append(
                f"- naive / streaming: **{r['median']:.1f}x** cheaper "
                f"(worst pairing {r['min']:.1f}x, best {r['max']:.1f}x)"
            )
        if "streaming_over_offline" in head:
            r = head["streaming_over_offline"]
            lines.append(
                f"- streaming / offline: {r['median']:.2f}x the cost of transcribing the whole file once "
                f"(range {r['min']:.2f} to {r['max']:.2f}), the floor a live path cannot reach"
            )
        lines.append("")
    else:
        lines += ["Streaming recognizer: not measured in this run (the quick run leaves out bench_asr).", ""]
    if "media_packet_us" in head:
        m = head["media_packet_us"]
        lines += [
            f"**Media plane per 20 ms packet** (`bench_relay::test_receive_hold_with_keypad_release_encode`: "
            f"parse, jitter buffer, decode, keypad detector, delay line, release, re-encode; "
            f"{head['media_packet_rounds']} rounds): median {m['median']:.1f} µs (min {m['min']:.1f}, max "
            f"{m['max']:.1f}), {head.get('media_packet_ratio') or 0:.1f}x the build+parse baseline.",
            "",
        ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in section.get("rows", []):
        groups.setdefault(row["group"], []).append(row)
    for group, rows in groups.items():
        lines += [f"**{group}**", ""]
        lines += _table(
            ["benchmark", "min", "median", "max", "rounds", "x baseline"],
            [
                [
                    f"`{r['name']}`" + (" (baseline)" if r.get("is_baseline") else ""),
                    _duration(r["min"]),
                    _duration(r["median"]),
                    _duration(r["max"]),
                    r["rounds"],
                    f"{r['ratio']:.2f} vs `{r['baseline']}`" if r["ratio"] else "—",
                ]
                for r in rows
            ],
        )
        lines.append("")
    return [*lines, *_image(plots, "micro", "Micro benchmark ratios", out), ""]


def leak(results: dict[str, Any], plots: dict[str, Path | None], out: Path) -> list[str]:
    section = results.get("leak")
    lines = ["## Leak and over-redaction by delay D", ""]
    why = _missing(section)
    if why:
        return [*lines, why, ""]
    assert section is not None
    shared = (
        f"{section['shared_calls']} from `../shared/speech/calls`"
        if section["shared_present"]
        else "none from `../shared/speech/calls` (not present on this machine)"
    )
    lines += [
        f"`bench.eval_redaction` on {section['calls']} calls ({section['fixture_calls']} fixtures, {shared}; "
        f"{section['audio_s']:.0f} s of audio; transcribed once in {section['transcription_wall_s']:.0f} s). "
        "Each D replays that hearing through a real CallSession (delay line, keypad detector, masking). "
        "**No spread is shown because there is none to show**: given the transcription the evaluation is "
        "deterministic, so repeats would print the same figures.",
        "",
    ]
    rows = section["delays"]
    lines += _table(
        ["D", "PII speech audible", "digits leaked (any frame)", "over-redaction", "late masks (s)"],
        [
            [
                f"{r['delay_s']:g} s",
                f"{100 * r['pii_audible']:.1f} %",
                f"{r['digits_leaked']} of {r['digits']} ({r['digits_with_any_audible_frame']})",
                f"{100 * r['over_redaction']:.1f} %",
                f"{r['late_masks']} ({r['late_mask_s']:.1f})",
            ]
            for r in rows
        ],
    )
    audible = [
        f"D={r['delay_s']:g}: "
        + ", ".join(f"{e} {100 * v:.1f} %" for e, v in r["pii_audible_by_entity"].items() if v)
        for r in rows
        if any(r["pii_audible_by_entity"].values())
    ]
    lines += [
        "",
        "PII audible by entity: " + ("; ".join(audible) if audible else "nothing audible at any D."),
        "",
    ]
    return [*lines, *_image(plots, "leak", "Leak and over-redaction vs D", out), ""]


#: Leaked digits listed one by one in the report, at most (all of them are in results.json).
ROBUST_LEAKS_LISTED = 25


def robust(results: dict[str, Any]) -> list[str]:
    section = results.get("robust")
    lines = ["## Robustness by variant", ""]
    why = _missing(section)
    if why:
        return [*lines, why, ""]
    assert section is not None
    lines += [
        f"`bench.eval_robust` at the default D = {section['delay_s']:g} s on {len(section['calls'])} calls "
        f"({', '.join(section['call_sets'])}; {section['audio_s'] / 60:.0f} min of audio over all variants, "
        f"model {section['model']}). Each call x variant of bench/perturb.py is streamed once through the "
        "real listener and a CallSession; speech frames are judged on the clean call on the variant's "
        "timeline, so added noise never counts as speech. Digits leaked: >= 25 % of a digit's speech "
        "frames unchanged (in brackets: any frame). Over-redaction: non-PII speech masked, mean over the "
        "call-variants and the worst one. PERSON found: >= 90 % of the name's speech masked. The plain "
        "run stands first, for comparison.",
        "",
    ]
    by_variant: dict[str, dict[str, Any]] = section["by_variant"]
    order = [v for v in ("plain", *by_variant) if v in by_variant]
    rows = [(v, by_variant[v]) for v in dict.fromkeys(order)]
    if section.get("overall_perturbed"):
        rows.append(("all perturbed", section["overall_perturbed"]))

    def row(label: str, f: dict[str, Any]) -> list[str]:
        persons = f"{f['persons_found']} of {f['persons']}" if f["persons"] else "-"
        worst = f" ({f['over_redaction_max_call']})" if f.get("over_redaction_max_call") else ""
        return [
            "plain (beside)" if label == "plain" else label,
            f"{f['digits_leaked']} of {f['digits']} ({f['digits_with_any_audible_frame']})",
            f"{100 * f['pii_audible']:.1f} %",
            f"{100 * f['over_redaction_mean']:.1f} %",
            f"{100 * f['over_redaction_max']:.1f} %{worst}",
            persons,
            str(f["late_masks"]),
        ]

    lines += _table(
        [
            "variant",
            "digits leaked (any frame)",
            "PII speech audible",
            "over-redaction mean",
            "worst",
            "PERSON found",
            "late marks",
        ],
        [row(label, figures) for label, figures in rows],
    )
    leaks = section["leaks"]
    lines += ["", f"Leaked digits ({len(leaks)})" + (":" if leaks else ": none.")]
    for leak in leaks[:ROBUST_LEAKS_LISTED]:
        lines.append(
            f"- {leak['call']} / {leak['variant']}: {leak['entity']} '{leak['digit']}' "
            f"at {leak['start']:.2f} s ({100 * leak['audible']:.0f} % audible)"
        )
    if len(leaks) > ROBUST_LEAKS_LISTED:
        lines.append(f"- ... and {len(leaks) - ROBUST_LEAKS_LISTED} more (`results.json`, section robust)")
    return [*lines, ""]


def _ms3(values: Sequence[float]) -> str:
    return f"{values[0]:.1f} / {values[1]:.1f} / {values[2]:.1f}"


def capacity(results: dict[str, Any], plots: dict[str, Path | None], out: Path) -> list[str]:
    rtp = results.get("capacity")
    files = results.get("file_capacity")
    lines = ["## Capacity", "", "### RTP path (live calls)", ""]
    why = _missing(rtp)
    if why:
        lines += [why, ""]
    else:
        assert rtp is not None
        lines += [
            f"`bench.capacity --mode listen`: N calls of a 14 s fixture in real time for {rtp['step_s']:g} s "
            "each step (PCMU, passthrough and redacted legs, Whisper and the detector shared as in "
            "`bleepline serve`); a step fails on lost or late packets, event-loop lag or passthrough p99 "
            "over 20 ms, or any `unverified` masking. Steps stop at the first failure. Percentiles are "
            "over every packet of a step (thousands). The steps were run "
            f"{rtp.get('repeats', 1)} time(s); a pass or fail at the edge is partly chance on a shared "
            "machine, so the capacity is the median run's, and the table shows that run.",
            "",
        ]
        lines += _table(
            [
                "N",
                "relay CPU (100 % = 1 core)",
                "machine CPU (all cores)",
                "loop lag p50/p99/max ms",
                "passthrough p50/p99/max ms",
                "unverified s/call",
                "PII masked s/call",
                "verdict",
            ],
            [
                [
                    s["calls"],
                    f"{s['relay_cpu']:.0f} %",
                    f"{s['system_cpu']:.0f} %",
                    _ms3(s["lag_ms"]),
                    _ms3(s["through_ms"]),
                    f"{s['unverified_s']:.2f}",
                    f"{s['masked_pii_s']:.2f}",
                    "ok" if s["ok"] else f"FAIL: {s['why']}",
                ]
                for s in rtp["steps"]
            ],
        )
        spread = rtp.get("max_ok_spread")
        runs = "; ".join(
            f"{r['max_ok_calls']}"
            + (
                f" (failed at {r['first_failure']['calls']}: {r['first_failure']['why']})"
                if r["first_failure"]
                else ""
            )
            for r in rtp.get("runs", [])
        )
        lines += [
            "",
            f"**{rtp['max_ok_calls']} concurrent real-time calls** passed with zero unverified masking "
            "(median run)"
            + (
                f"; over {rtp['repeats']} runs min {spread['min']}, max {spread['max']}: {runs}."
                if spread
                else "."
            ),
            "",
        ]
    lines += ["### File path (`bleepline redact`)", ""]
    why = _missing(files)
    if why:
        lines += [why, ""]
    else:
        assert files is not None
        lines += [
            f"`bench.file_capacity`: {len(files['files'])} fixture files ({files['audio_s']:.0f} s of audio) "
            "through `Redactor.redact` (the command's path: CallSession, encrypted recording, transcript) by "
            "N worker processes, models loaded before the clock starts. Audio-s per wall-s is also the "
            "number of real-time calls N such processes keep up with on average. A file never waits for "
            "the clock, so its `unverified` seconds are not lateness: they are speech the recognizer wrote "
            "no word for (masked, since nothing checked it).",
            "",
        ]
        lines += _table(
            [
                "workers",
                "audio-s per wall-s (median)",
                "min",
                "max",
                "repeats",
                "CPU-s per audio-s",
                "unverified s",
            ],
            [
                [
                    n,
                    f"{r['throughput']['median']:.1f}",
                    f"{r['throughput']['min']:.1f}",
                    f"{r['throughput']['max']:.1f}",
                    r["repeats"],
                    f"{r['cpu_per_audio_s']:.3f}",
                    f"{r['unverified_s']:.2f}",
                ]
                for n, r in files["by_workers"].items()
            ],
        )
        lines.append("")
    return [*lines, *_image(plots, "capacity", "Capacity vs number of calls", out), ""]


def _spread_s(figure: dict[str, float]) -> str:
    return (
        f"min {figure['min']:+.2f} s, median {figure['median']:+.2f} s, p95 {figure['p95']:+.2f} s, "
        f"max {figure['max']:+.2f} s"
    )


def latency(results: dict[str, Any], plots: dict[str, Path | None], out: Path) -> list[str]:
    rtp = results.get("capacity")
    pii = results.get("latency")
    lines = ["## End-to-end latency", "", "### Passthrough and redacted leg", ""]
    if _missing(rtp):
        lines += [f"{_missing(rtp)} (these figures come from the capacity run)", ""]
    else:
        assert rtp is not None
        lines += [
            "From the capacity run: the passthrough leg's added latency (generator send to generator "
            "receive, two loopback hops included) and the redacted leg's lag beyond the delay D (caller's "
            "send to the leg's arrival, minus D; a packet's 20 ms of audio is included, since a packet is "
            "released once all of it is there). p50 / p99 / max over every packet of the step.",
            "",
        ]
        lines += _table(
            ["N calls", "passthrough added ms", "redacted leg lag - D ms", "redacted leg jitter ms"],
            [
                [s["calls"], _ms3(s["through_ms"]), _ms3(s["behind_ms"]), _ms3(s["jitter_ms"])]
                for s in rtp["steps"]
            ],
        )
        lines.append("")
    lines += ["### End of a PII word to its span in the delay line", ""]
    why = _missing(pii)
    if why:
        lines += [why, ""]
    else:
        assert pii is not None
        lines += [
            f"`bench.pii_latency`: {pii['calls']} calls through a real CallSession (CallListener and keypad "
            f"detector) in simulated real time; {pii['words']} truth PII words (each digit of a number, each "
            "word of a name or address); a word is known once the marks so far cover "
            f"{100 * pii['covered_share']:.0f} % of it. Negative: the mask was there before the word "
            "ended (a cue opened it). "
            f"{pii['never_covered']} words were never covered that way (whether their audio leaked is the "
            "leak section's question). The delay D must exceed this, plus the release margin, for nothing "
            f"to be late (D = {pii['delay_s']:g} s here).",
            "",
        ]
        if pii["real_time_s"]:
            lines += [
                f"- simulated real time (compute and backlog included): {_spread_s(pii['real_time_s'])}",
                f"- audio clock only (the algorithm's own wait): {_spread_s(pii['audio_clock_s'])}",
                "",
            ]
            lines += _table(
                ["entity", "median", "p95", "max"],
                [
                    [e, f"{s['median']:+.2f} s", f"{s['p95']:+.2f} s", f"{s['max']:+.2f} s"]
                    for e, s in pii["real_time_by_entity_s"].items()
                ],
            )
            lines.append("")
    return [*lines, *_image(plots, "latency", "Latency distributions", out), ""]


def hot_spots(results: dict[str, Any], checked: Sequence[Target]) -> list[str]:
    lines = ["## Hot spots", ""]
    profiles: dict[str, Any] = results.get("profiles", {})
    missed = [t for t in checked if t.met is False]
    if not missed:
        lines += ["Every measured target was met; no profile was needed.", ""]
        if results.get("capacity", {}).get("first_failure"):
            lines += ["What stops more calls (the median capacity run):", "", *_capacity_limit(results), ""]
        return lines
    for target in missed:
        profile = profiles.get(target.key)
        lines += [f"**{target.what}**: missed, {target.gap}.", ""]
        if target.key == "capacity":
            lines += [*_capacity_limit(results), ""]
        if profile is None or "skipped" in profile:
            lines += ["Not profiled in this run.", ""]
            continue
        lines += [
            f"cProfile over {profile['units']} {profile['unit']}s of {profile.get('what', 'the loop')} "
            "(own time per function; "
            "cProfile's overhead inflates absolute times, the shares are what to read):",
            "",
        ]
        lines += _table(
            ["function", "share of own time", f"µs per {profile['unit']}", f"calls per {profile['unit']}"],
            [
                [
                    f"`{row['function']}`",
                    f"{100 * row['own_share']:.0f} %",
                    f"{row['own_per_unit_us']:.1f}",
                    f"{row['calls_per_unit']:.3g}",
                ]
                for row in profile["top"]
            ],
        )
        lines.append("")
    return lines


def _capacity_limit(results: dict[str, Any]) -> list[str]:
    """What stopped the capacity steps: the failing step's reason, and how busy the relay and the box were."""
    rtp = results.get("capacity", {})
    failure = rtp.get("first_failure")
    step = next((s for s in rtp.get("steps", []) if failure and s["calls"] == failure["calls"]), None)
    if failure is None:
        return ["No capacity step failed; nothing limits it in this run."]
    if step is None:
        return [f"The run stopped at {failure['calls']} calls: {failure['why']}."]
    cores = results.get("machine", {}).get("cores", "?")
    return [
        f"The step with {step['calls']} calls failed: {failure['why']}. The relay process used "
        f"{step['relay_cpu']:.0f} % of a core and the whole machine {step['system_cpu']:.0f} % of its "
        f"{cores} cores; event-loop lag p99 {step['lag_ms'][1]:.1f} ms, unverified "
        f"{step['unverified_s']:.2f} s per call."
        + (
            " Unverified masking means a listener fell behind the delay D: the recognizer's CPU per "
            "audio-second times the number of calls outgrew the cores."
            if "unverified" in failure["why"]
            else " No call fell behind (no unverified masking): the relay's event loop, which every "
            "call's packets and ticks share, ran late first. Its thread shares the GIL with the "
            "listeners' Python work (VAD, detector, spaCy) and the cores with the load generator and, "
            "on this shared machine, other work: the machine CPU figure includes all of that."
        )
    ]


def how(results: dict[str, Any]) -> list[str]:
    timings: dict[str, float] = results.get("timings", {})
    lines = [
        "## How this was run",
        "",
        f"`{results.get('command', 'PYTHONPATH=. .venv/bin/python -m bench')}` — "
        f"{sum(timings.values()) / 60:.1f} min in all. Each section's figures are also in "
        "`bench/results/results.json`.",
        "",
    ]
    lines += _table(
        ["section", "wall time"], [[name, f"{seconds:.0f} s"] for name, seconds in timings.items()]
    )
    return [*lines, ""]


def render(results: dict[str, Any], plots: dict[str, Path | None], out: Path) -> str:
    """The whole RESULTS.md; ``out`` is where it will be written (image links are relative to it)."""
    checked = check(results)
    quick = " (quick run: small inputs, not for quoting)" if results.get("quick") else ""
    lines = [
        f"# bleepline benchmark results{quick}",
        "",
        "Written by `python -m bench` (bench/__main__.py); do not edit by hand. What a user weighs: how much "
        "personal data gets through, how much delay the relay adds, and how many calls a box carries.",
        "",
        *machine(results),
        *targets(results, checked),
        *micro(results, plots, out),
        *leak(results, plots, out),
        *robust(results),
        *capacity(results, plots, out),
        *latency(results, plots, out),
        *hot_spots(results, checked),
        *how(results),
    ]
    return "\n".join(lines).rstrip() + "\n"
