"""Aggregates across calls for the analytics page: counts and totals only, never an id or a word.

What goes in: each call's start day, its redaction counts by entity, its masked seconds by reason, and
a recognizer lag figure where a transcript's ``stats`` carries one. What comes out cannot lead back to a
call: no ids, no per-call rows, and the page links nowhere.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bleepline.review.catalog import CallEntry

#: ``stats`` keys read as a call's recognizer lag in seconds (the first one present counts): either one
#: number, or the call's own summary ``{"p50": .., "p95": .., "max": ..}`` as ``redact``/``serve`` write it.
LAG_KEYS = ("recognizer_lag_seconds", "recognizer_lag_s", "asr_lag_s", "lag_seconds", "lag_s")


@dataclass(frozen=True)
class Aggregates:
    calls: int
    calls_per_day: list[tuple[str, int]]  # ("2026-11-29", n), oldest first
    redactions_by_entity: list[tuple[str, int]]  # most first
    masked_by_reason: list[tuple[str, float]]  # seconds
    # ("p50", s), ("p95", s), ("max", s) over the calls' own figures; None: no call recorded lag
    lag_percentiles: list[tuple[str, float]] | None
    lag_calls: int


def aggregate(entries: Iterable[CallEntry], stats_of: Mapping[str, Mapping[str, Any]]) -> Aggregates:
    """``stats_of`` maps a call id to its transcript's ``stats`` (absent for calls without one)."""
    days: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    masked: dict[str, float] = {}
    lags: list[tuple[float, float, float]] = []
    count = 0
    for entry in entries:
        count += 1
        days[entry.created_at.date().isoformat()] += 1
        entities.update(entry.entity_counts)
        for reason, seconds in entry.masked_seconds.items():
            masked[reason] = masked.get(reason, 0.0) + seconds
        lag = lag_of(stats_of.get(entry.call_id, {}))
        if lag is not None:
            lags.append(lag)
    return Aggregates(
        calls=count,
        calls_per_day=sorted(days.items()),
        redactions_by_entity=sorted(entities.items(), key=lambda item: (-item[1], item[0])),
        masked_by_reason=sorted((reason, round(seconds, 1)) for reason, seconds in masked.items()),
        lag_percentiles=_lag_summary(lags) if lags else None,
        lag_calls=len(lags),
    )


def lag_of(stats: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """A call's recognizer lag as (median, p95, max) seconds, or None where its stats carry none."""
    for key in LAG_KEYS:
        value = stats.get(key)
        number = _seconds(value)
        if number is not None:
            return number, number, number
        if isinstance(value, Mapping):
            p50, p95, most = (_seconds(value.get(name)) for name in ("p50", "p95", "max"))
            if p50 is not None:
                high = p95 if p95 is not None else p50
                return p50, high, most if most is not None else high
    return None


def _lag_summary(lags: list[tuple[float, float, float]]) -> list[tuple[str, float]]:
    # Percentiles of the calls' own figures (each call's median, each call's p95), and the worst moment
    # of any call: the per-word lags themselves are not kept, so this is as close as the stats allow.
    return [
        ("p50", round(percentile([lag[0] for lag in lags], 50), 3)),
        ("p95", round(percentile([lag[1] for lag in lags], 95), 3)),
        ("max", round(max(lag[2] for lag in lags), 3)),
    ]


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(float(value), 0.0)
    return None


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile by linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
