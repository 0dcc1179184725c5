"""Issue 7's targets for this 2-core machine with tiny.en int8, checked against the measured figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STREAMING_MAX = 0.15  # CPU-s per audio-s
NAIVE_MIN_RATIO = 3.0  # times cheaper than the naive rolling window
MEDIA_MAX_US = 50.0  # per 20 ms packet
CALLS_MIN = 6  # concurrent real-time calls with zero unverified masking at the default D


@dataclass(frozen=True)
class Target:
    key: str  # which profile explains a miss: "streaming", "media" or "capacity" (the listener per chunk)
    what: str
    target: str
    measured: str
    met: bool | None  # None: not measured
    gap: str  # by how much it was missed ("" when met or not measured)


def _spread(figure: dict[str, float], fmt: str) -> str:
    return f"{figure['median']:{fmt}} (min {figure['min']:{fmt}}, max {figure['max']:{fmt}})"


def check(results: dict[str, Any]) -> list[Target]:
    head = results.get("micro", {}).get("headline", {})
    targets: list[Target] = []
    streaming = head.get("streaming_cpu_per_audio_s")
    if streaming:
        met: bool | None = streaming["median"] <= STREAMING_MAX
        gap = "" if met else f"{streaming['median'] / STREAMING_MAX:.2f}x over"
        targets.append(
            Target(
                "streaming",
                "streaming recognizer, CPU-s per audio-s",
                f"<= {STREAMING_MAX}",
                _spread(streaming, ".3f"),
                met,
                gap,
            )
        )
    else:
        targets.append(
            Target(
                "streaming",
                "streaming recognizer, CPU-s per audio-s",
                f"<= {STREAMING_MAX}",
                "not measured",
                None,
                "",
            )
        )
    ratio = head.get("naive_over_streaming")
    if ratio:
        met = ratio["median"] >= NAIVE_MIN_RATIO
        gap = "" if met else f"{NAIVE_MIN_RATIO / ratio['median']:.2f}x short"
        targets.append(
            Target(
                "streaming",
                "cheaper than the naive rolling window",
                f">= {NAIVE_MIN_RATIO:.0f}x",
                _spread(ratio, ".1f") + "x",
                met,
                gap,
            )
        )
    else:
        targets.append(
            Target(
                "streaming",
                "cheaper than the naive rolling window",
                f">= {NAIVE_MIN_RATIO:.0f}x",
                "not measured",
                None,
                "",
            )
        )
    media = head.get("media_packet_us")
    if media:
        met = media["median"] <= MEDIA_MAX_US
        gap = (
            ""
            if met
            else f"{media['median'] - MEDIA_MAX_US:.0f} µs over ({media['median'] / MEDIA_MAX_US:.1f}x)"
        )
        targets.append(
            Target(
                "media",
                "media plane, µs per 20 ms packet",
                f"<= {MEDIA_MAX_US:.0f} µs",
                _spread(media, ".1f") + " µs",
                met,
                gap,
            )
        )
    else:
        targets.append(
            Target(
                "media",
                "media plane, µs per 20 ms packet",
                f"<= {MEDIA_MAX_US:.0f} µs",
                "not measured",
                None,
                "",
            )
        )
    rtp = results.get("capacity", {})
    if "max_ok_calls" in rtp:
        calls = int(rtp["max_ok_calls"])
        tried = max((s["calls"] for s in rtp.get("steps", [])), default=0)
        failure = rtp.get("first_failure")
        measured = f"{calls} calls" + (
            f" (failed at {failure['calls']}: {failure['why']})"
            if failure
            else f" (all steps up to {tried} passed)"
        )
        # Every step passed but the steps stopped short of the target (a quick run): no verdict.
        met = True if calls >= CALLS_MIN else (False if failure else None)
        targets.append(
            Target(
                "capacity",
                "concurrent real-time calls, zero unverified masking, default D",
                f">= {CALLS_MIN}",
                measured,
                met,
                f"{CALLS_MIN - calls} calls short" if met is False else "",
            )
        )
    else:
        targets.append(
            Target(
                "capacity",
                "concurrent real-time calls, zero unverified masking, default D",
                f">= {CALLS_MIN}",
                "not measured",
                None,
                "",
            )
        )
    return targets
