"""The relay's counters in Prometheus text exposition format 0.0.4, for ``GET /metrics``.

Only counts and seconds, never content: no call id, no address, no word. Labels take values from fixed
sets only (drop reasons, mask reasons, entity types, leg names), so a hostile peer cannot mint series.

Counters must never go down (Prometheus reads a drop as a restart). Running calls' counters are read
live, and a call's own counters vanish when it ends; so the collector remembers each running call's last
counts under its id (in memory only) and keeps them once the call is gone, and every counter is held at
least at the value it last showed. What a call counts between the last scrape and its end is not seen
(drops, packets sent); masked seconds and entity counts come from the ended calls' reports, in full.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bleepline.pii.findings import ENTITIES
from bleepline.redact.policy import MaskReason
from bleepline.server import CallStatus, RelayServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Drop reasons: the static port's own (``ServerStats``) and each call's receive path and port.
DROP_REASONS = (
    "malformed",
    "oversize",
    "wrong_payload_type",
    "stranger",
    "after_end",
    "unproven",
    "still_refused",
    "duplicates",
    "late",
    "decode_errors",
    "unknown_payload_type",
    "stray",
)
LEGS = ("passthrough", "redacted")
#: Entity types outside the detector's own list are counted under this one label.
OTHER_ENTITY = "OTHER"


@dataclass
class _CallCounts:
    """What running calls count, summed."""

    packets: int = 0
    lost: int = 0
    early_ms: int = 0  # audio ahead of the release clock by more than the delay line holds: dropped
    drops: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    masked_s: dict[str, float] = field(default_factory=dict)

    def add(self, status: CallStatus) -> None:
        self.packets += status.packets
        self.lost += status.drops.get("lost", 0)
        self.early_ms += status.drops.get("early_audio_ms", 0)
        self.drops.update({k: v for k, v in status.drops.items() if k in DROP_REASONS})
        self.sent.update({k: v for k, v in status.sent.items() if k in LEGS})
        for reason, seconds in status.masked_s.items():
            self.masked_s[reason] = self.masked_s.get(reason, 0.0) + seconds


@dataclass
class _Family:
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class MetricsCollector:
    """Renders ``server``'s metrics; one per server, since it remembers what earlier scrapes showed."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self._last: dict[str, CallStatus] = {}  # running calls at the last scrape, by id (never shown)
        self._gone = _CallCounts()  # the last counts of calls that have ended since
        self._shown: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def render(self) -> str:
        """The exposition text: HELP and TYPE for each family, then its samples, one a line."""
        return "".join(self._format(family) for family in self.families())

    def families(self) -> list[_Family]:
        server = self.server
        stats = server.stats
        statuses = server.running_statuses()
        running = self._running(statuses)
        reports = list(stats.reports)  # appended from the finishing threads: a copy to sum over
        lags, fills = server.listener_lags(), server.delay_fills()

        drops: Counter[str] = Counter(running.drops)
        drops.update(
            malformed=stats.malformed,
            oversize=stats.oversize,
            wrong_payload_type=stats.wrong_payload_type,
            stranger=stats.stranger,
            after_end=stats.after_end,
            unproven=stats.unproven,
            still_refused=stats.still_refused,
        )
        masked = {str(reason): running.masked_s.get(str(reason), 0.0) for reason in MaskReason}
        entities: Counter[str] = Counter()
        for report in reports:
            for reason, seconds in report.masked_s.items():
                if reason in masked:
                    masked[reason] += seconds
            for entity, count in report.spans_by_entity.items():
                entities[entity if entity in ENTITIES else OTHER_ENTITY] += count

        def one(name: str, kind: str, help: str, value: float) -> _Family:
            return _Family(name, kind, help, [({}, value)])

        def by(name: str, help: str, label: str, values: dict[str, float]) -> _Family:
            return _Family(name, "counter", help, [({label: key}, value) for key, value in values.items()])

        families = [
            one(
                "bleepline_draining",
                "gauge",
                "1 while the relay is ending its calls to stop.",
                server.draining,
            ),
            one("bleepline_calls_active", "gauge", "Calls running now.", server.active_calls),
            one("bleepline_calls_started_total", "counter", "Calls started.", stats.calls_started),
            one(
                "bleepline_calls_ended_total",
                "counter",
                "Calls ended with their recording and transcript finalised.",
                stats.calls_ended,
            ),
            one(
                "bleepline_calls_refused_total",
                "counter",
                "Call set-ups refused (too many calls, no port, not recordable; static mode: once per "
                "source, whose packets are then dropped as still_refused until it goes quiet or says BYE).",
                stats.refused,
            ),
            one(
                "bleepline_static_sources_on_probation",
                "gauge",
                "Static-port sources held on probation now: not yet a plausible stream, so not a call.",
                server.sources_on_probation,
            ),
            one(
                "bleepline_static_sources_refused",
                "gauge",
                "Static-port sources refused and remembered now.",
                server.sources_refused,
            ),
            one(
                "bleepline_static_probation_evictions_total",
                "counter",
                "Static-port sources on probation forgotten to make room (a flood of new sources).",
                stats.probation_evicted,
            ),
            one(
                "bleepline_static_refusal_evictions_total",
                "counter",
                "Refused static-port sources forgotten to make room (a flood of new sources).",
                stats.refusals_evicted,
            ),
            one(
                "bleepline_datagrams_total",
                "counter",
                "UDP datagrams received on the static RTP port.",
                stats.datagrams,
            ),
            one(
                "bleepline_rtp_packets_received_total",
                "counter",
                "RTP packets that reached a call's receive path.",
                running.packets,
            ),
            one(
                "bleepline_rtp_packets_lost_total",
                "counter",
                "RTP packets never received (sequence numbers skipped).",
                running.lost,
            ),
            one(
                "bleepline_early_audio_seconds_total",
                "counter",
                "Audio that came further ahead of the release clock than the delay line holds: dropped.",
                running.early_ms / 1000,
            ),
            by(
                "bleepline_packets_dropped_total",
                "Packets dropped, by reason.",
                "reason",
                {reason: drops[reason] for reason in DROP_REASONS},
            ),
            by(
                "bleepline_rtp_packets_sent_total",
                "RTP packets sent on outgoing legs.",
                "leg",
                {leg: running.sent[leg] for leg in LEGS},
            ),
            by(
                "bleepline_masked_seconds_total",
                "Seconds of audio masked, by reason (unverified: nobody cleared it; fail closed).",
                "reason",
                masked,
            ),
            by(
                "bleepline_redactions_total",
                "Personal data stretches masked in ended calls, by entity type.",
                "entity",
                {entity: entities[entity] for entity in (*ENTITIES, OTHER_ENTITY)},
            ),
            one(
                "bleepline_audio_seconds_total",
                "counter",
                "Seconds of audio in ended calls.",
                sum(r.duration for r in reports),
            ),
            one(
                "bleepline_keypad_entries_total",
                "counter",
                "Keypad entries masked in ended calls.",
                sum(r.keypad_entries for r in reports),
            ),
            one(
                "bleepline_late_masks_total",
                "counter",
                "Masks that came after some of their audio had been released (raise the delay).",
                sum(r.late_masks for r in reports),
            ),
            one(
                "bleepline_late_mask_seconds_total",
                "counter",
                "Seconds of audio released before a late mask came.",
                sum(r.late_mask_s for r in reports),
            ),
            one(
                "bleepline_listener_failures_total",
                "counter",
                "Times a call's recognizer failed (what it missed is masked).",
                sum(r.listener_failures for r in reports),
            ),
            one(
                "bleepline_recognizer_lag_seconds",
                "gauge",
                "Largest recognizer lag of any running call so far (0 without calls).",
                max(lags, default=0.0),
            ),
            one(
                "bleepline_delay_line_fill_ratio",
                "gauge",
                "Fullest delay line of any running call, 0 to 1.",
                max(fills, default=0.0),
            ),
        ]
        return families

    def _running(self, statuses: list[CallStatus]) -> _CallCounts:
        """Running calls' counts plus the last counts of the calls that ended since earlier scrapes."""
        now = {status.call_id: status for status in statuses}
        for call_id, status in self._last.items():
            if call_id not in now:
                # Masked seconds of an ended call come from its report: only the others are kept.
                self._gone.add(
                    CallStatus(status.call_id, "", 0.0, status.packets, status.drops, {}, status.sent)
                )
        self._last = now
        total = _CallCounts(
            self._gone.packets,
            self._gone.lost,
            self._gone.early_ms,
            Counter(self._gone.drops),
            Counter(self._gone.sent),
        )
        for status in statuses:
            total.add(status)
        return total

    def _format(self, family: _Family) -> str:
        lines = [f"# HELP {family.name} {_escape_help(family.help)}", f"# TYPE {family.name} {family.kind}"]
        for labels, value in family.samples:
            number = float(value)
            if family.kind == "counter":
                key = (family.name, tuple(sorted(labels.items())))
                number = max(number, self._shown.get(key, 0.0))
                self._shown[key] = number
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(
                f"{family.name}{{{text}}} {_number(number)}" if text else f"{family.name} {_number(number)}"
            )
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
