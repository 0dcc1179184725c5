"""Read-only views of a call for the control API and metrics: counters only, never content or the
caller's address."""

from __future__ import annotations

from dataclasses import dataclass, field

from bleepline.relay.calls import _Call


@dataclass(frozen=True)
class CallStatus:
    """One call as the control API shows it: counters only, never content or the caller's address."""

    call_id: str
    state: str
    duration_s: float
    packets: int
    drops: dict[str, int]
    masked_s: dict[str, float]
    #: RTP packets sent on the outgoing legs, ``passthrough`` and ``redacted`` (0 for a leg not set up).
    sent: dict[str, int] = field(default_factory=dict)


def call_drops(call: _Call) -> dict[str, int]:
    """A call's drops by reason: its receive path's, its own port's (negotiated calls), and audio that got
    further ahead of the release clock than the delay line holds."""
    rs = call.receiver.stats
    drops = {
        "lost": rs.lost,
        "duplicates": rs.duplicates,
        "late": rs.late,
        "decode_errors": rs.decode_errors,
        "unknown_payload_type": rs.unknown_payload_type,
        "stray": rs.stray,
    }
    if call.endpoint is not None:
        es = call.endpoint.stats
        drops["stranger"] = es.stranger
        drops["oversize"] = es.oversize
        drops["malformed"] = sum(es.malformed.values())
    drops["early_audio_ms"] = early_audio_ms(call)
    return drops


def early_audio_ms(call: _Call) -> int:
    """Milliseconds of the call's audio dropped as early by its delay line: a drop count like the others
    (whole numbers, whatever the codec's rate), so a timeline run ahead of the release clock shows."""
    delay = call.live.session.delay.stats
    return round(delay.early_audio_samples * 1000 / delay.sample_rate)


def sent_counts(call: _Call) -> dict[str, int]:
    """RTP packets sent on a call's outgoing legs, ``passthrough`` and ``redacted`` (0 for a leg not set
    up)."""
    return {
        "passthrough": call.endpoint.stats.forwarded if call.endpoint is not None else 0,
        "redacted": call.leg.packets_sent if call.leg is not None else 0,
    }
