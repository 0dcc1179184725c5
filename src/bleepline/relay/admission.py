"""Admission control: how many calls the recognizer can hear at once, and what to do with one past that."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from bleepline.relay.calls import ServerStats, _Call

#: What to do with a new call when the recognizer cannot take another: refuse it (503 on the control API,
#: its packets dropped and counted in static mode), or take it unheard: recorded, every sample masked as
#: unverified. Never taken and heard late, which would leak.
OVER_CAPACITY = ("refuse", "mask")
#: Calls the recognizer (Whisper tiny.en int8, one thread each) carries per CPU core in real time with
#: no unverified masking: bench/capacity.py measured 8 on a 2-core machine, with the event loop's lag
#: the first limit. ``max_listening_calls`` overrides it (a GPU host, a bigger model).
LISTENING_CALLS_PER_CORE = 4
#: A running call whose listener has this much audio queued is falling behind: no new call is heard.
BUSY_BACKLOG_S = 0.5


def default_listening_calls() -> int:
    """Calls heard at once by default: ``LISTENING_CALLS_PER_CORE`` per CPU core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, LISTENING_CALLS_PER_CORE * cores)


def recognizer_busy(calls: Iterable[_Call], max_listening_calls: int) -> bool:
    """Whether the recognizer can hear no more calls now: ``max_listening_calls`` are being heard, or
    a call's listener is falling behind (``BUSY_BACKLOG_S`` of audio queued)."""
    heard = [call for call in calls if call.live.session.listener is not None]
    if len(heard) >= max_listening_calls:
        return True
    return any(call.live.backlog_s >= BUSY_BACKLOG_S for call in heard)


def admit(
    *, active: int, max_calls: int, busy: Callable[[], bool], over_capacity: str, stats: ServerStats
) -> bool | None:
    """Whether a new call is heard (True), taken unheard (False), or refused (None, counted in ``stats``).

    ``busy`` is asked only once the call fits under ``max_calls``."""
    if active >= max_calls:
        stats.refused += 1
        return None
    if not busy():
        return True
    if over_capacity == "mask":
        return False
    stats.refused += 1
    stats.refused_busy += 1
    return None
