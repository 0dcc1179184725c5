"""The redacted leg going out: released call-timeline chunks to RTP packets in the call's codec.

Pure logic, no sockets and no clock: ``RtpLegSender`` makes the packets, ``PacedLeg`` decides when each
leaves from the times its caller gives it, and hands it to the caller's send function.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import deque
from collections.abc import Callable

import numpy as np

from bleepline.audio.codecs import AudioEncoder, CodecSpec, encoder_for
from bleepline.audio.rechunk import Rechunker
from bleepline.audio.resample import StreamResampler
from bleepline.timeline import AudioChunk, Samples
from bleepline.transport.rtp import RtcpBye, RtcpSenderReport, RtpPacket, ntp_timestamp, ts_distance

_log = logging.getLogger(__name__)

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class RtpLegSender:
    """Packetizes one outgoing RTP stream: our own SSRC, sequence numbers and timestamps.

    ``write`` takes the chunks the delay line releases, of any size, at ``sample_rate`` on the call
    timeline; they are resampled to the codec's clock rate when that differs, cut into ``ptime_ms``
    packets and encoded. Timestamps follow the timeline exactly: a packet's timestamp minus the first
    packet's is the number of clock-rate samples between their first samples. Initial sequence number
    and timestamp are random (RFC 3550 section 5.1), and so is the SSRC unless one is given.

    Gaps in the released timeline are never squeezed out. A gap shorter than one packet is filled with
    silence (no packet boundary could jump over it without overlapping audio); a longer one ends the
    current packet padded with silence, and the next packet starts where the audio resumes, with its
    timestamp jumped over the gap and the marker bit set (RFC 3551 section 4.1: start of a talkspurt).
    The very first packet carries the marker too. Codecs with look-ahead (Opus: about 6.5 ms) play out
    that much later than the timestamps say, as on any Opus stream; the timestamps stay on the timeline.

    Telephone events (RFC 4733) are never forwarded on the redacted leg, since the event says which key
    was pressed: this class has no way to send one, by design. Key presses reach the far end only as the
    (masked) audio the delay line releases.
    """

    def __init__(
        self,
        codec: CodecSpec,
        payload_type: int,
        *,
        sample_rate: int,
        ptime_ms: int = 20,
        ssrc: int | None = None,
        initial_sequence: int | None = None,
        initial_timestamp: int | None = None,
        epoch_unix: float | None = None,
    ) -> None:
        if not 0 <= payload_type <= 0x7F:
            raise ValueError(f"RTP payload type must be 0-127, got {payload_type}")
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        if ptime_ms <= 0 or codec.clock_rate * ptime_ms % 1000:
            raise ValueError(
                f"a {ptime_ms} ms packet is not a whole number of samples at {codec.clock_rate} Hz"
            )
        if codec.name.upper() == "OPUS" and ptime_ms != 20:
            # The Opus encoder works in 20 ms frames; a longer ptime would need several frames repacked
            # into one packet (RFC 6716 code 3), which it does not do.
            raise ValueError(f"Opus packets are 20 ms here, got ptime {ptime_ms} ms")
        for name, value, top in (
            ("ssrc", ssrc, _U32),
            ("initial_sequence", initial_sequence, _U16),
            ("initial_timestamp", initial_timestamp, _U32),
        ):
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"{name} must be 0..{top}, got {value}")
        self.codec = codec
        self.payload_type = payload_type
        self.sample_rate = sample_rate
        self.clock_rate = codec.clock_rate
        self.ptime_ms = ptime_ms
        self.samples_per_packet = codec.clock_rate * ptime_ms // 1000
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        #: Unix time at which call-timeline second 0 is (or would have been) sent on this leg. The pacer
        #: sets it, e.g. to the send time of the first packet minus its ``packet_time``; SRs use it.
        self.epoch_unix = epoch_unix
        #: Packets and payload octets made so far (RTCP SR counts payload only), and gaps met in the
        #: released timeline (filled or jumped).
        self.packets = 0
        self.octets = 0
        self.gaps = 0
        self._encoder: AudioEncoder = encoder_for(codec)
        self._sequence = secrets.randbits(16) if initial_sequence is None else initial_sequence
        self._initial_timestamp = secrets.randbits(32) if initial_timestamp is None else initial_timestamp
        # RTP timestamp = (offset + clock-rate timeline position) mod 2**32; fixed by the first packet.
        self._ts_offset: int | None = None
        # A gap of this many input samples or more is a jump rather than silence: one packet's length.
        self._jump_samples = -(-sample_rate * ptime_ms // 1000)
        self._next_in: int | None = None  # input-rate timeline index of the next sample expected
        self._resampler: StreamResampler | None = None
        self._rechunker: Rechunker | None = None  # None between runs (before the first, after a flush)
        self._fed = 0  # clock-rate position just past the last sample given to the rechunker
        self._run_end = 0  # clock-rate position just past the last packet (padding included)
        self._marker = True
        self._last_position: int | None = None  # clock-rate position of the newest packet's first sample

    def write(self, chunk: AudioChunk) -> list[RtpPacket]:
        """Take one released chunk; return the whole packets it completed (a partial one waits)."""
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz written to a {self.sample_rate} Hz sender")
        if len(chunk) == 0:
            return []
        packets: list[RtpPacket] = []
        samples = chunk.samples
        next_in = self._next_in
        if next_in is not None and chunk.start < next_in:
            # The delay line releases in order; going back would send audio twice or overlap padding.
            raise ValueError(f"chunk at {chunk.start} goes back on the timeline (next is {next_in})")
        if next_in is not None and chunk.start > next_in:
            self.gaps += 1
            if chunk.start - next_in >= self._jump_samples:
                packets += self._end_run()
            elif self._resampler is None and self._rechunker is not None:
                samples = np.concatenate([np.zeros(chunk.start - next_in, dtype=np.int16), samples])
            # else: a short gap in a resampled run; StreamResampler fills it with silence itself.
        if self._rechunker is None:
            self._start_run(chunk.start)
        self._next_in = chunk.end
        rechunker = self._rechunker
        assert rechunker is not None
        if self._resampler is None:
            return packets + self._push(rechunker, samples)
        resampled = self._resampler.push(chunk)
        if resampled is not None:
            packets += self._push(rechunker, resampled.samples)
        return packets

    def flush(self) -> list[RtpPacket]:
        """End the stream (or the talkspurt): the last partial packet, padded with silence.

        A later ``write`` must start at or after the padded end; it starts a new run with the marker bit.
        """
        packets = self._end_run()
        if self._next_in is not None:
            # Padding took timeline space: later audio may not land inside it.
            self._next_in = max(self._next_in, -(-self._run_end * self.sample_rate // self.clock_rate))
        return packets

    def packet_time(self, packet: RtpPacket) -> float:
        """The call-timeline second of the packet's first sample, for a pacer to schedule it.

        Meant for packets this sender made recently: the timestamp is unwrapped against the newest one.
        """
        if packet.ssrc != self.ssrc:
            raise ValueError("packet is not from this sender (SSRC differs)")
        if self._last_position is None or self._ts_offset is None:
            raise ValueError("this sender has not made a packet yet")
        newest = (self._ts_offset + self._last_position) & _U32
        return (self._last_position + ts_distance(newest, packet.timestamp)) / self.clock_rate

    def sender_report(self, now_unix: float) -> bytes:
        """An RTCP SR (no report blocks) for Unix time ``now_unix``.

        The RTP timestamp is the call-timeline position that ``epoch_unix`` maps ``now`` to. Without an
        epoch the sender has no clock, so it uses the end of the newest packet made, i.e. it assumes the
        pacer sends packets as they are made.
        """
        if self._ts_offset is None:
            # No packet yet: the timestamp the first one will carry is the best anchor there is.
            rtp_timestamp = self._initial_timestamp
        elif self.epoch_unix is not None:
            position = round((now_unix - self.epoch_unix) * self.clock_rate)
            rtp_timestamp = (self._ts_offset + position) & _U32
        else:
            rtp_timestamp = (self._ts_offset + self._newest_end()) & _U32
        return RtcpSenderReport(
            self.ssrc, ntp_timestamp(now_unix), rtp_timestamp, self.packets & _U32, self.octets & _U32
        ).serialize()

    def bye(self, reason: str | None = None) -> bytes:
        """An RTCP BYE for this leg's SSRC (a caller sends it compound, after an SR)."""
        return RtcpBye((self.ssrc,), reason).serialize()

    def _start_run(self, start_in: int) -> None:
        # Mapping down keeps the timeline; ``max`` keeps a rounding of non-integer rate ratios from
        # putting the new run on top of the previous one's padding.
        position = max(start_in * self.clock_rate // self.sample_rate, self._run_end)
        if self._ts_offset is None:
            self._ts_offset = self._initial_timestamp - position
        self._rechunker = Rechunker(self.clock_rate, self.samples_per_packet, position)
        self._fed = position
        if self.sample_rate != self.clock_rate:
            self._resampler = StreamResampler(self.sample_rate, self.clock_rate)
        self._marker = True

    def _end_run(self) -> list[RtpPacket]:
        rechunker = self._rechunker
        if rechunker is None:
            return []
        packets: list[RtpPacket] = []
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail is not None:
                packets += self._push(rechunker, tail.samples)
            # The resampler drops a burst too short for its filter (under about 25 samples) and may
            # round the end down: pad the run to its full length so its audio's place is still sent.
            assert self._next_in is not None
            target = -(-self._next_in * self.clock_rate // self.sample_rate)
            if self._fed < target:
                packets += self._push(rechunker, np.zeros(target - self._fed, dtype=np.int16))
        end = rechunker.position
        for short in rechunker.flush():
            padded = np.zeros(self.samples_per_packet, dtype=np.int16)
            padded[: len(short)] = short.samples
            packets.append(self._emit(AudioChunk(padded, self.clock_rate, short.start)))
            end = short.start + self.samples_per_packet
        self._run_end = max(self._run_end, end)
        self._rechunker = None
        self._resampler = None
        return packets

    def _newest_end(self) -> int:
        if self._last_position is None:
            return self._run_end
        return max(self._run_end, self._last_position + self.samples_per_packet)

    def _push(self, rechunker: Rechunker, samples: Samples) -> list[RtpPacket]:
        self._fed += len(samples)
        return [self._emit(chunk) for chunk in rechunker.push(samples)]

    def _emit(self, chunk: AudioChunk) -> RtpPacket:
        assert self._ts_offset is not None
        payload = self._encoder.encode(chunk.samples)
        packet = RtpPacket(
            self.payload_type,
            self._sequence,
            (self._ts_offset + chunk.start) & _U32,
            self.ssrc,
            payload,
            marker=self._marker,
        )
        self._marker = False
        self._sequence = (self._sequence + 1) & _U16
        self.packets += 1
        self.octets += len(payload)
        self._last_position = chunk.start
        return packet


class PacedLeg:
    """The redacted leg as a ``CallSession`` sink: ``write`` packetizes, ``pump`` sends on the clock.

    ``write`` takes what the delay line releases (on whichever thread releases it) and queues the packets
    ``sender`` makes, each with its place on the call timeline; ``pump(now)`` sends those whose time has
    come. Call-timeline second ``t`` leaves at ``anchor + t`` on the caller's clock, the anchor being fixed
    by the first packet sent (its ``now`` minus its timeline second). Live, the delay line releases on
    the same clock, so a packet is due as soon as it is made and leaves on the tick that made it. What
    the end of a call drains at once (the last D seconds) leaves at that same rhythm, never in a burst;
    and since every packet keeps its own time, a stall of the clock cannot warp the timestamps either.

    ``slack_s`` is how early a packet may go: a tick's worth, so the phase of the ticks against packet
    boundaries (each tick releases up to "now", rarely a whole packet) never holds a packet a tick longer.

    Fail closed: if packetizing or sending raises, the leg stops for good (``failed``) and the call goes
    on; a redacted leg that falls silent leaks nothing. Only the exception's type is logged.
    """

    #: RFC 3550 6.2: a sender reports at least 5 s apart, each interval drawn from 0.5 to 1.5 times that,
    #: so that legs started together do not report in step.
    REPORT_INTERVAL_S = 5.0

    def __init__(
        self,
        sender: RtpLegSender,
        send: Callable[[bytes], None],
        *,
        slack_s: float = 0.02,
        jitter: random.Random | None = None,
    ) -> None:
        if not slack_s >= 0.0:
            raise ValueError(f"slack must be >= 0 s, got {slack_s}")
        self.sender = sender
        self.slack_s = slack_s
        #: RTCP sender reports made by ``report_due``.
        self.reports = 0
        self._jitter = jitter if jitter is not None else random.Random()
        self._next_report: float | None = None
        #: RTP packets handed to ``send``; RTCP is not counted.
        self.packets_sent = 0
        #: Packets made but never sent: queued when the leg failed.
        self.dropped = 0
        self.failed = False
        self._send = send
        # (call-timeline second of the first sample, datagram). A deque: ``write`` may run on another
        # thread than ``pump`` (a call's end drains the delay line off the event loop); append and
        # popleft are atomic, and each side only ever does one of them.
        self._queue: deque[tuple[float, bytes]] = deque()
        self._anchor: float | None = None

    @property
    def pending(self) -> int:
        """Packets made and not sent yet."""
        return len(self._queue)

    def write(self, chunk: AudioChunk) -> None:
        """Released audio in: packetized and queued. Never raises (a ``CallSession`` sink must not)."""
        if self.failed:
            return
        try:
            self._queue_packets(self.sender.write(chunk))
        except Exception as exc:
            self._fail("packetizing", exc)

    def finish(self) -> None:
        """The call's audio is all written: its last partial packet, padded with silence, is queued."""
        if self.failed:
            return
        try:
            self._queue_packets(self.sender.flush())
        except Exception as exc:
            self._fail("packetizing", exc)

    def pump(self, now: float) -> int:
        """Send every queued packet due by ``now`` (seconds on the caller's clock); returns how many."""
        sent = 0
        queue = self._queue
        while queue and not self.failed:
            at, data = queue[0]
            if self._anchor is None:
                self._anchor = now - at
            if self._anchor + at > now + self.slack_s:
                break
            try:
                self._send(data)
            except Exception as exc:
                self._fail("sending", exc)
                break
            queue.popleft()
            sent += 1
        self.packets_sent += sent
        return sent

    def report_due(self, now: float, now_unix: float) -> bytes | None:
        """An RTCP sender report if one is due at ``now`` (the pump's clock), else None.

        Receivers (recorders, SBCs) watch RTCP to tell a live stream from a dead one and to map its
        timestamps to wall-clock time, so a leg reports all along, not only in its goodbye. The first
        report comes one interval after the first packet went; none once the leg has failed.
        """
        if self.failed or self.packets_sent == 0:
            return None
        if self._next_report is None:
            self._next_report = now + self._interval()
            return None
        if now < self._next_report:
            return None
        self._next_report = now + self._interval()
        self.reports += 1
        return self.sender.sender_report(now_unix)

    def _interval(self) -> float:
        return self.REPORT_INTERVAL_S * self._jitter.uniform(0.5, 1.5)

    def goodbye(self, now_unix: float) -> bytes:
        """The leg's last datagram: an RTCP compound of a sender report and a BYE (RFC 3550 6.1, 6.6)."""
        return self.sender.sender_report(now_unix) + self.sender.bye()

    def _queue_packets(self, packets: list[RtpPacket]) -> None:
        for packet in packets:
            self._queue.append((self.sender.packet_time(packet), packet.serialize()))

    def _fail(self, doing: str, exc: Exception) -> None:
        # The type only: a message could quote what was being encoded or where it was going.
        _log.error("redacted leg stopped: %s failed (%s)", doing, type(exc).__name__)
        self.failed = True
        self.dropped += len(self._queue)
        self._queue.clear()
