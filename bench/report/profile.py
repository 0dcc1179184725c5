"""Where the time goes on a path that missed its target: stdlib cProfile, top functions by own time.

cProfile rather than pyinstrument or py-spy: nothing to install, and deterministic (every call counted),
which suits short loops of many small calls; its per-call overhead inflates the absolute times, so the
report gives each function's *share* of the loop's time, which that overhead distorts far less.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bleepline.speech.models import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
TOP = 8


def _top(profiler: cProfile.Profile, units: int, unit: str, what: str) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    return {
        "what": what,
        "unit": unit,
        "units": units,
        "total_s": total,
        "top": [
            {
                "function": f"{_short(path)}:{line} {name}",
                "own_share": tt / total,
                "own_per_unit_us": tt / units * 1e6,
                "calls_per_unit": nc / units,
            }
            for (path, line, name), (_, nc, tt, _, _) in rows
        ],
    }


def _short(path: str) -> str:
    for marker in ("/src/", "/site-packages/", "/bench/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _profile(step: Callable[[], object], units: int, unit: str, what: str) -> dict[str, Any]:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(units):
        step()
    profiler.disable()
    return _top(profiler, units, unit, what)


def media_packet(packets: int = 3000) -> dict[str, Any]:
    """bench_relay's per-packet loop with the keypad detector (the media plane's headline benchmark)."""
    from bench.bench_relay import relay_loop

    loop = relay_loop(with_session=True)
    for _ in range(200):  # past the delay: releases and the redacted leg are in the steady state
        loop()
    return _profile(loop, packets, "packet", "bench_relay's media loop (keypad detector included)")


def streaming(seconds: float = 30.0, model: ModelSpec | None = None) -> dict[str, Any]:
    """One call's listener (VAD, streaming recognizer, detector) on a fixture call, per 20 ms chunk."""
    from bleepline.audio.files import read_audio_chunks
    from bleepline.commands.redact import Redactor
    from bleepline.redact.policy import RedactionPolicy
    from bleepline.speech.models import resolve_model

    listener = Redactor([], RedactionPolicy(), model or resolve_model()).listener(8000)
    chunks = list(read_audio_chunks(ROOT / "fixtures" / "audio" / "card_kal_8k.wav"))[: int(seconds * 50)]
    feed = iter(chunks)
    return _profile(
        lambda: listener.push(next(feed)), len(chunks), "20 ms chunk", "one call's listener (card_kal_8k)"
    )
