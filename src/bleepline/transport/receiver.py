"""The receive path of one call: parsed RTP packets in, AudioChunks on the call timeline out.

Packets are put back in order in a short reorder buffer that is released by time, never by arrival, so a
lost packet costs at most the window; gaps, drops and stream restarts become silence on the timeline.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from bleepline.audio.codecs import AudioDecoder, CodecError, CodecSpec, decoder_for
from bleepline.timeline import AudioChunk
from bleepline.transport.errors import TelephoneEventError
from bleepline.transport.rtp import (
    DtmfEventSpan,
    ExtendedSequence,
    ExtendedTimestamp,
    RtpPacket,
    TelephoneEventTracker,
    parse_telephone_event,
)

#: The longest silence put between two streams (SSRC change, timestamp restart), whatever the arrival
#: times say: a sender that went quiet for minutes must not make the relay allocate minutes of zeros.
MAX_RESTART_GAP_S = 5.0

#: How far a stream's timestamps may run from its arrival times, packet to packet, before the next
#: packet counts as a timestamp jump and is placed by arrival time instead. Timestamps that run ahead by
#: more put the call timeline ahead of the release clock, which the delay line only absorbs up to its
#: headroom (2 s); 1 s leaves half of that for jitter, and is far beyond what a network does between one
#: packet and the next (a burst after a stall runs ahead by one packet at a time, and loss or silence
#: suppression advance timestamps and arrival together). A stream whose arrival runs ahead of its
#: timestamps is only a jump if the timestamps went back: otherwise it is a network delay or outage,
#: which the timestamps measure truly.
MAX_CLOCK_MISMATCH_S = 1.0

#: Packets held at most, whatever their times: a burst from a broken sender must not grow the buffer.
MAX_BUFFERED_PACKETS = 512

#: Emitted packets remembered to tell a duplicate from a late packet (about 20 s at 20 ms a packet).
_RECENT_KEYS = 1024

_DEFAULT_PACKET_S = 0.02

# What a buffered packet is, once its payload type has been read at arrival.
_AUDIO = 0
_EVENT = 1
_OTHER = 2
#: A packet dropped (counted as ``stray``) that still holds its sequence number's place, so that the
#: window does not count it again as lost.
_SPENT = 3


@dataclass
class ReceiverStats:
    """Counters of one call's receive path; every packet that does not become audio is in one of them.

    ``bytes`` counts payload bytes. ``lost`` counts sequence numbers skipped over once the window ran
    out (a packet that comes after that is ``late`` as well). ``stray`` counts packets whose sequence
    number or timestamp jumped with nothing yet confirming the jump (the first packet of a restart).
    ``timestamp_jumps`` counts discontinuities of a stream's clock that were placed by arrival time: a
    confirmed restart, or a step forward or back that the arrival times do not bear out. Not drops.
    """

    packets: int = 0
    bytes: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    decode_errors: int = 0
    ssrc_changes: int = 0
    timestamp_jumps: int = 0
    unknown_payload_type: int = 0
    stray: int = 0


class _Stream:
    """One RTP source (SSRC): its counters unwrapped, its decoder, and where its clock sits on the call."""

    def __init__(self, ssrc: int, epoch: int, codec: CodecSpec) -> None:
        self.ssrc = ssrc
        # Streams are emitted one after the other: the epoch orders them in the reorder buffer.
        self.epoch = epoch
        self.sequence = ExtendedSequence()
        self.timestamp = ExtendedTimestamp(codec.clock_rate)
        self.decoder: AudioDecoder = decoder_for(codec)
        self.tracker = TelephoneEventTracker()
        #: Added to an extended timestamp to place it on the (raw) call timeline.
        self.offset = 0
        #: Where the stream's first timestamp goes on the raw timeline; None once it is placed.
        self.anchor: int | None = None
        self.restarts = 0
        #: The newest packet by sequence number that sets the clock, as (sequence, timestamp, arrival):
        #: what the next one's timestamp is checked against. Extended values; None before the first.
        self.reference: tuple[int, int, float] | None = None
        #: The last jump within the timestamp window, for packets reordered across it.
        self.jump: _Jump | None = None


@dataclass(frozen=True)
class _Jump:
    """Where a stream's timestamps jumped: the packets on each side, and the offset used before it.

    A packet reordered across the jump is placed by the side its timestamp lies nearer to, so it lands
    where it would have had it come in order. Only the latest jump is kept: jumps a reorder window apart
    are not worth the bookkeeping.
    """

    before_sequence: int
    before_timestamp: int
    sequence: int
    timestamp: int
    before_offset: int


@dataclass
class _Buffered:
    stream: _Stream
    kind: int
    position: int
    arrival: float
    payload: bytes


class CallReceiver:
    """Turns one call's RTP packets into contiguous AudioChunks, mono int16 at the codec's clock rate.

    Feed ``receive`` each parsed packet with its arrival time (seconds, any monotonic clock) and call
    ``poll`` with the same clock; what it returns starts at sample 0 (the first packet's timestamp)
    and is contiguous. A packet waits at most ``reorder_window_ms`` for the packets before it; then
    they count as lost and their time is silence. A stream's timestamps that jump further than its
    arrival times bear out (``MAX_CLOCK_MISMATCH_S``) are placed by arrival, as a new stream would be,
    and counted in ``timestamp_jumps``. Telephone events (``telephone_event_pt``) are not
    audio: ``take_keypresses`` gives their spans, never the key. ``payload_type`` is the audio payload
    type from the SDP; None takes the first packet's that is not a telephone event.
    """

    def __init__(
        self,
        codec: CodecSpec,
        *,
        telephone_event_pt: int | None,
        reorder_window_ms: int = 60,
        payload_type: int | None = None,
    ) -> None:
        if reorder_window_ms < 0:
            raise ValueError(f"reorder window must be >= 0 ms, got {reorder_window_ms}")
        decoder_for(codec)  # Fail at set-up, not on the first packet, for a codec this build lacks.
        self.codec = codec
        self.rate = codec.clock_rate
        self.stats = ReceiverStats()
        self._window = reorder_window_ms / 1000
        self._event_pt = telephone_event_pt
        self._audio_pt = payload_type
        self._current: _Stream | None = None
        self._previous: _Stream | None = None
        self._epochs = 0
        # The reorder buffer: (epoch, extended sequence) keys in a heap, entries by key.
        self._heap: list[tuple[int, int]] = []
        self._buffer: dict[tuple[int, int], _Buffered] = {}
        self._recent: deque[tuple[int, int]] = deque(maxlen=_RECENT_KEYS)
        self._recent_set: set[tuple[int, int]] = set()
        self._emit_epoch = -1
        self._next_seq: int | None = None
        # Positions are "raw" until the first packet is emitted; its position becomes sample 0, so a
        # packet reordered ahead of the first one to arrive still lands at or after 0.
        self._origin: int | None = None
        self._emitted_until = 0
        # Where the stream received so far ends, and when its latest packet came: the anchor for a
        # stream that takes over from it.
        self._received_end = 0
        self._last_arrival = 0.0
        self._packet_samples = round(_DEFAULT_PACKET_S * self.rate)
        self._keypresses: list[tuple[float, float]] = []

    # --- in ------------------------------------------------------------------------------------------

    def receive(self, packet: RtpPacket, arrival: float) -> None:
        """Take one packet. Nothing is emitted here: ``poll`` releases audio by time."""
        self.stats.packets += 1
        self.stats.bytes += len(packet.payload)
        if packet.payload_type == self._event_pt:
            kind = _EVENT
        elif self._audio_pt is None or packet.payload_type == self._audio_pt:
            self._audio_pt = packet.payload_type
            kind = _AUDIO
        else:
            # Comfort noise or a codec never negotiated: not audio we can place, but it still uses a
            # sequence number, so it goes through the buffer and its gap is not miscounted as loss.
            self.stats.unknown_payload_type += 1
            kind = _OTHER
        stream = self._stream_for(packet.ssrc, arrival)
        before = stream.sequence.highest
        sequence_restarts = stream.sequence.restarts
        sequence = stream.sequence.extend(packet.sequence)
        if sequence is None:
            self.stats.stray += 1
            return
        if before is not None and stream.sequence.restarts != sequence_restarts:
            # The numbering restarted: the stray before this packet, dropped and counted, was the first
            # of the new run, and its number is the one after the old highest. Not lost as well.
            self._spend((stream.epoch, before + 1), stream, arrival)
        key = (stream.epoch, sequence)
        if key in self._buffer or key in self._recent_set:
            self.stats.duplicates += 1
            return
        if self._passed(key):
            self.stats.late += 1
            return
        timestamp = stream.timestamp.extend(packet.timestamp)
        if timestamp is None:
            self.stats.stray += 1
            # Counted once: its sequence number is spent, so the window does not count it as lost too.
            self._spend(key, stream, arrival)
            return
        offset = stream.offset
        if stream.anchor is not None:
            stream.offset = offset = stream.anchor - timestamp
            stream.anchor = None
            stream.reference = (sequence, timestamp, arrival)
        elif stream.timestamp.restarts != stream.restarts:
            # The sender's clock restarted: place the new run after what came before, not where its
            # timestamps would put it.
            stream.restarts = stream.timestamp.restarts
            self.stats.timestamp_jumps += 1
            stream.offset = offset = self._continuation(arrival) - timestamp
            stream.reference = (sequence, timestamp, arrival)
            # A straggler from before a restart is a stray (beyond the window): nothing to place.
            stream.jump = None
        elif kind != _OTHER:
            offset = self._clock(stream, kind, sequence, timestamp, arrival)
        if before is not None and sequence < before:
            self.stats.reordered += 1
        position = timestamp + offset
        if kind == _AUDIO:
            self._received_end = max(self._received_end, position + self._packet_samples)
        self._last_arrival = max(self._last_arrival, arrival)
        self._buffer[key] = _Buffered(stream, kind, position, arrival, packet.payload)
        heapq.heappush(self._heap, key)

    def _clock(self, stream: _Stream, kind: int, sequence: int, timestamp: int, arrival: float) -> int:
        """The offset that places a packet in the timestamp window; a jump the arrival times do not bear
        out re-places the stream by arrival time, as a restart does.

        Comfort noise and unknown payload types never get here: their clock may not be the audio's.
        """
        reference = stream.reference
        if reference is None:  # cannot happen: the first packet set it
            return stream.offset
        ref_sequence, ref_timestamp, ref_arrival = reference
        jump = stream.jump
        if sequence <= ref_sequence:
            # Older than the newest packet: reordered. If it is from before the latest jump, the offset
            # of then places it (a packet whose timestamp lies nearer the old run's is from the old run).
            if jump is not None and sequence < jump.sequence:
                nearer_old = abs(timestamp - jump.before_timestamp) < abs(timestamp - jump.timestamp)
                if sequence <= jump.before_sequence or nearer_old:
                    return jump.before_offset
            return stream.offset
        ahead = (timestamp - ref_timestamp) - round((arrival - ref_arrival) * self.rate)
        limit = round(MAX_CLOCK_MISMATCH_S * self.rate)
        forward = ahead > limit
        # A step back is never the network's doing: the sender's clock moved. Telephone events repeat
        # the start of the key press as their timestamp, so only audio can tell a step back.
        backward = kind == _AUDIO and timestamp < ref_timestamp and ahead < -limit
        if forward or backward:
            self.stats.timestamp_jumps += 1
            stream.jump = _Jump(ref_sequence, ref_timestamp, sequence, timestamp, stream.offset)
            # By arrival, as after a restart; but the numbering goes on, so no nearer to the reference
            # than the packets numbered between them take: they may only be reordered behind this one.
            # Capped as a restart's quiet is, so a long loss does not become a long silence.
            between = min(
                (sequence - ref_sequence) * self._packet_samples, round(MAX_RESTART_GAP_S * self.rate)
            )
            numbered = ref_timestamp + stream.offset + between
            stream.offset = max(self._continuation(arrival), numbered) - timestamp
        if kind == _AUDIO or timestamp > ref_timestamp:
            # An event's repeated timestamps say nothing of the clock's progress; its first packet does.
            stream.reference = (sequence, timestamp, arrival)
        return stream.offset

    def _spend(self, key: tuple[int, int], stream: _Stream, arrival: float) -> None:
        """Hold ``key``'s place for a packet dropped and counted already, unless it is taken or gone."""
        if key in self._buffer or key in self._recent_set or self._passed(key):
            return
        self._buffer[key] = _Buffered(stream, _SPENT, 0, arrival, b"")
        heapq.heappush(self._heap, key)

    def _stream_for(self, ssrc: int, arrival: float) -> _Stream:
        current = self._current
        if current is not None and current.ssrc == ssrc:
            return current
        previous = self._previous
        if previous is not None and previous.ssrc == ssrc and previous.epoch >= self._emit_epoch:
            # A straggler of the stream just replaced, still in time to be put in its place.
            return previous
        stream = _Stream(ssrc, self._epochs, self.codec)
        self._epochs += 1
        if current is None:
            stream.anchor = 0
        else:
            self.stats.ssrc_changes += 1
            # The new stream's first packet lands right after the old one's end, plus the quiet between.
            stream.anchor = self._continuation(arrival)
            self._previous = current
        self._current = stream
        return stream

    def _continuation(self, arrival: float) -> int:
        """Where a stream that takes over at ``arrival`` starts, on the raw timeline (before ts)."""
        anchor = max(self._received_end, self._emitted_until + (self._origin or 0))
        # Arrival marks a packet's end: the wall-clock gap less one packet is the silence between.
        quiet = round((arrival - self._last_arrival) * self.rate) - self._packet_samples
        return anchor + min(max(quiet, 0), round(MAX_RESTART_GAP_S * self.rate))

    def _passed(self, key: tuple[int, int]) -> bool:
        epoch, sequence = key
        if epoch != self._emit_epoch:
            return epoch < self._emit_epoch
        return self._next_seq is not None and sequence < self._next_seq

    # --- out -----------------------------------------------------------------------------------------

    def poll(self, now: float) -> list[AudioChunk]:
        """Audio whose time has come: in order, and gaps before ``now - window`` filled with silence."""
        chunks: list[AudioChunk] = []
        while self._heap:
            key = self._heap[0]
            in_order = key[0] == self._emit_epoch and key[1] == self._next_seq
            if not in_order and not self._waited(now) and len(self._heap) <= MAX_BUFFERED_PACKETS:
                break
            self._release(heapq.heappop(self._heap), chunks)
        return chunks

    def flush(self) -> list[AudioChunk]:
        """The call ended: release everything held, and close a key press still open."""
        chunks: list[AudioChunk] = []
        while self._heap:
            self._release(heapq.heappop(self._heap), chunks)
        for stream in (self._previous, self._current):
            if stream is not None:
                self._add_keypresses(stream.tracker.flush())
        return chunks

    def take_keypresses(self) -> list[tuple[float, float]]:
        """Key presses finished since the last call: (start, end) seconds on the call timeline."""
        spans, self._keypresses = self._keypresses, []
        return spans

    @property
    def keypress_active_since(self) -> float | None:
        """Where on the call timeline (seconds) a key press still in progress began, or None."""
        if self._current is None:
            return None
        span = self._current.tracker.open_span
        return None if span is None else self._seconds(span.start_ts)

    def _waited(self, now: float) -> bool:
        # The oldest packet held decides: once it has waited the window, all before it are given up.
        return min(entry.arrival for entry in self._buffer.values()) + self._window <= now

    def _release(self, key: tuple[int, int], chunks: list[AudioChunk]) -> None:
        entry = self._buffer.pop(key)
        epoch, sequence = key
        if epoch == self._emit_epoch and self._next_seq is not None:
            self.stats.lost += sequence - self._next_seq
        elif epoch != self._emit_epoch:
            self._emit_epoch = epoch
            previous = self._previous
            if previous is not None and previous.epoch < epoch:
                # The replaced stream is over: a key press it left open ends with it.
                self._add_keypresses(previous.tracker.flush())
        self._next_seq = sequence + 1
        if len(self._recent) == _RECENT_KEYS:
            self._recent_set.discard(self._recent[0])
        self._recent.append(key)
        self._recent_set.add(key)
        if entry.kind == _SPENT:
            return  # a placeholder: no position, no audio
        if self._origin is None:
            self._origin = entry.position
        stream = entry.stream
        if entry.kind == _EVENT:
            self._release_event(entry)
            return
        self._add_keypresses(stream.tracker.advance())
        if entry.kind != _AUDIO:
            return
        try:
            samples = stream.decoder.decode(entry.payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        if len(samples):
            self._packet_samples = len(samples)
        start = entry.position - self._origin
        end = start + len(samples)
        if end <= self._emitted_until:
            self.stats.late += 1
            return
        if start > self._emitted_until:
            silence = np.zeros(start - self._emitted_until, dtype=np.int16)
            chunks.append(AudioChunk(silence, self.rate, self._emitted_until))
        elif start < self._emitted_until:
            # Overlaps what went out already (a sender whose timestamps step back): keep only the new.
            samples = samples[self._emitted_until - start :]
            start = self._emitted_until
        chunks.append(AudioChunk(samples, self.rate, start))
        self._emitted_until = end

    def _release_event(self, entry: _Buffered) -> None:
        try:
            event = parse_telephone_event(entry.payload)
        except TelephoneEventError:
            self.stats.decode_errors += 1
            return
        self._add_keypresses(entry.stream.tracker.push(entry.position, event))

    def _add_keypresses(self, spans: tuple[DtmfEventSpan, ...]) -> None:
        for span in spans:
            self._keypresses.append((self._seconds(span.start_ts), self._seconds(span.end_ts)))

    def _seconds(self, position: int) -> float:
        return max(position - (self._origin or 0), 0) / self.rate
