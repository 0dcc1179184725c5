"""Who may become a call on the static RTP port: a source on probation until it has sent a plausible
stream, and a source refused stays refused until it goes quiet or says BYE.

Anyone can send a datagram to a static port. One spoofed RTP header must not hold a listener and a
recording open for the idle timeout, so a source (address and SSRC) is admitted only once it has sent
``PROBATION_PACKETS`` packets with consecutive sequence numbers and timestamps that its arrival times bear
out: RFC 3550's probation (appendix A.1, MIN_SEQUENTIAL), tolerant of reordering. Its packets meanwhile
are held, and handed over when it passes, so the call loses no audio and its timeline starts at its first
packet.

A source refused (no room, the recognizer at capacity, no recording) must never become a call later in the
same stream: the call would begin after whatever came before, such as "my card number is", and its
listener would hear the digits that follow without the cue. So it stays refused until no packet came from
it for the idle timeout, or it sends an RTCP BYE; its packets meanwhile are dropped and counted.

Both tables are bounded (the least recently heard source goes first, counted), so a flood of spoofed
sources costs bounded memory. Bookkeeping only: times are given, never read, so tests drive the clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from itertools import pairwise

from bleepline.relay.calls import CallKey, ServerStats
from bleepline.transport.receiver import MAX_CLOCK_MISMATCH_S
from bleepline.transport.rtp import RtpPacket

#: Packets with consecutive sequence numbers a source must send before it is a call (RFC 3550 suggests 2;
#: one more makes a spoofed start need two matching guesses of 16 and 32 bits).
PROBATION_PACKETS = 3
#: A source on probation that sends nothing for this long is forgotten, with what it sent: a real stream
#: sends every 20-60 ms and passes within a few packets.
PROBATION_IDLE_S = 1.0
#: Packets held per source on probation; past it the oldest go (a stream this broken loses its start).
MAX_HELD_PACKETS = 16
#: Sources on probation at once (with MAX_HELD_PACKETS of at most 1500 bytes each: 24 MiB at worst).
MAX_PROBATION_SOURCES = 1024
#: Refused sources remembered at once: a few dozen bytes each.
MAX_REFUSED_SOURCES = 1024

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF

Held = tuple[RtpPacket, float]  # a packet and its arrival time


class _Probation:
    """One source's packets so far, in arrival order, and the first copy of each sequence number."""

    __slots__ = ("held", "last", "seen")

    def __init__(self) -> None:
        self.held: list[Held] = []
        self.seen: dict[int, tuple[int, float]] = {}  # sequence -> (timestamp, arrival)
        self.last = 0.0


def _plausible(before: tuple[int, float], after: tuple[int, float], rate: int) -> bool:
    """Whether two packets numbered one after the other, as (timestamp, arrival), could be one stream: the
    timestamp moves forward, by no more than the time between their arrivals (a pause the sender did not
    fill) plus the slack the receiver allows any packet. A random 32-bit guess passes about once in
    500 000 tries at 8 kHz."""
    step = (after[0] - before[0]) & _U32
    elapsed = max(after[1] - before[1], 0.0)
    return 0 < step <= round((elapsed + MAX_CLOCK_MISMATCH_S) * rate)


class SourceGate:
    """The static port's probation and refusal tables; counts in ``stats`` (``unproven``,
    ``still_refused``, ``probation_evicted``, ``refusals_evicted``)."""

    def __init__(
        self,
        stats: ServerStats,
        *,
        clock_rate: int,
        quiet_s: float,
        probation_packets: int = PROBATION_PACKETS,
        probation_idle_s: float = PROBATION_IDLE_S,
        max_held: int = MAX_HELD_PACKETS,
        max_probation: int = MAX_PROBATION_SOURCES,
        max_refused: int = MAX_REFUSED_SOURCES,
    ) -> None:
        if probation_packets < 1 or max_held < probation_packets or max_probation < 1 or max_refused < 1:
            raise ValueError("need probation_packets >= 1, max_held >= probation_packets and tables >= 1")
        self.stats = stats
        self.clock_rate = clock_rate
        self.quiet_s = quiet_s
        self.probation_packets = probation_packets
        self.probation_idle_s = probation_idle_s
        self.max_held = max_held
        self.max_probation = max_probation
        self.max_refused = max_refused
        # Least recently heard first: eviction and expiry both take from the front.
        self._probation: OrderedDict[CallKey, _Probation] = OrderedDict()
        self._refused: OrderedDict[CallKey, float] = OrderedDict()  # key -> its latest packet's arrival

    @property
    def on_probation(self) -> int:
        return len(self._probation)

    @property
    def refused(self) -> int:
        return len(self._refused)

    def is_refused(self, key: CallKey, arrival: float) -> bool:
        """Whether a packet from ``key`` is dropped as a refused source's (counted, and the refusal lasts
        from this packet on); a refusal quiet for ``quiet_s`` is forgotten first."""
        last = self._refused.get(key)
        if last is None:
            return False
        if arrival - last >= self.quiet_s:
            del self._refused[key]  # it went quiet: what it sends now is a new stream
            return False
        self._refused[key] = arrival
        self._refused.move_to_end(key)
        self.stats.still_refused += 1
        return True

    def probe(self, key: CallKey, packet: RtpPacket, arrival: float) -> list[Held] | None:
        """Hold a packet from a source with no call: None while the source is on probation; once it
        passes, every packet held for it, in arrival order (this one last), and it leaves probation."""
        entry = self._probation.get(key)
        if entry is not None and arrival - entry.last >= self.probation_idle_s:
            self._forget(key)
            entry = None
        if entry is None:
            while len(self._probation) >= self.max_probation:
                self._forget(next(iter(self._probation)))
                self.stats.probation_evicted += 1
            entry = self._probation[key] = _Probation()
        else:
            self._probation.move_to_end(key)
        entry.last = arrival
        entry.held.append((packet, arrival))
        if len(entry.held) > self.max_held:
            del entry.held[0]
            self.stats.unproven += 1
            # Only what is still held may prove the stream, and the dropped packet may be one of them.
            entry.seen = {}
            for held, at in entry.held:
                entry.seen.setdefault(held.sequence, (held.timestamp, at))
        else:
            # A duplicate is held (the call counts it) but the first copy is what is checked.
            entry.seen.setdefault(packet.sequence, (packet.timestamp, arrival))
        if not self._proven(entry.seen, packet.sequence):
            return None
        del self._probation[key]
        return entry.held

    def refuse(self, key: CallKey, arrival: float, held: int) -> None:
        """``key`` passed probation but was not taken: remember it, and count its ``held`` packets dropped."""
        self.stats.still_refused += held
        if key not in self._refused:
            while len(self._refused) >= self.max_refused:
                self._refused.popitem(last=False)
                self.stats.refusals_evicted += 1
        self._refused[key] = arrival
        self._refused.move_to_end(key)

    def bye(self, source: tuple[str, int], ssrcs: Iterable[int]) -> bool:
        """An RTCP BYE from ``source`` for ``ssrcs``: those streams are over, refused or on probation
        (what was held is dropped). Whether any was known."""
        known = False
        for ssrc in ssrcs:
            key = (source, ssrc)
            if self._refused.pop(key, None) is not None:
                known = True
            if key in self._probation:
                self._forget(key)
                known = True
        return known

    def expire(self, now: float) -> None:
        """Forget probations idle for ``probation_idle_s`` and refusals quiet for ``quiet_s``."""
        while self._probation:
            key, entry = next(iter(self._probation.items()))
            if now - entry.last < self.probation_idle_s:
                break
            self._forget(key)
        while self._refused:
            key, last = next(iter(self._refused.items()))
            if now - last < self.quiet_s:
                break
            del self._refused[key]

    def _forget(self, key: CallKey) -> None:
        entry = self._probation.pop(key)
        self.stats.unproven += len(entry.held)

    def _proven(self, seen: dict[int, tuple[int, float]], sequence: int) -> bool:
        """Whether ``sequence`` completes a run of ``probation_packets`` consecutive numbers held, each
        with a plausible timestamp after the one before: in any order of arrival."""
        count = self.probation_packets
        rate = self.clock_rate
        for first in range(sequence - count + 1, sequence + 1):
            run = [(first + i) & _U16 for i in range(count)]
            if all(q in seen for q in run) and all(
                _plausible(seen[a], seen[b], rate) for a, b in pairwise(run)
            ):
                return True
        return False
