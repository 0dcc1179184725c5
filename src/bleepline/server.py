"""The live relay in static mode (Asterisk externalMedia style): one UDP port, one call per RTP source.

Each source address and SSRC is a call of its own, redacted through ``LiveCall`` into ``<uuid>.bleep``
plus its transcript; a call ends on RTCP BYE from its source, on silence past the idle timeout, or at stop.
A source becomes a call only once it has sent a plausible stream, and a source refused stays refused
until it goes quiet or says BYE (``relay.sources``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bleepline.audio.codecs import CodecSpec
from bleepline.call import AudioSink, CallSession
from bleepline.live import LiveCall
from bleepline.redact.policy import RedactionPolicy
from bleepline.relay.admission import (
    BUSY_BACKLOG_S,
    LISTENING_CALLS_PER_CORE,
    OVER_CAPACITY,
    admit,
    default_listening_calls,
    recognizer_busy,
)
from bleepline.relay.calls import (
    DEFAULT_MAX_CALLS,
    NEGOTIABLE_CODECS,
    STATIC_PAYLOAD_TYPES,
    TICK_S,
    CallKey,
    CallRefusedError,
    ListenerFactory,
    MediaSource,
    ServerStats,
    _Call,
    negotiable_codec,
)
from bleepline.relay.legs import (
    DEFAULT_PTIME_MS,
    check_leg_families,
    leg_address,
    redacted_leg,
    send_leg_report,
    send_leg_tail,
)
from bleepline.relay.sources import SourceGate
from bleepline.relay.status import CallStatus, call_drops, sent_counts
from bleepline.store.keys import RecipientKey
from bleepline.store.recording import RecordingWriter
from bleepline.store.transcript import TranscriptBuilder, write_transcript
from bleepline.transport.endpoint import MAX_DATAGRAM_BYTES, open_endpoint
from bleepline.transport.errors import MalformedPacketError
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import RtcpBye, RtpPacket, is_rtcp, parse_rtcp, parse_rtp
from bleepline.transport.sdp import Negotiated
from bleepline.transport.srtp import SrtpContexts

# The public import point for the relay: its parts live in ``bleepline.relay``.
__all__ = [
    "BUSY_BACKLOG_S",
    "DEFAULT_MAX_CALLS",
    "DEFAULT_PTIME_MS",
    "LISTENING_CALLS_PER_CORE",
    "NEGOTIABLE_CODECS",
    "OVER_CAPACITY",
    "STATIC_PAYLOAD_TYPES",
    "TICK_S",
    "CallKey",
    "CallRefusedError",
    "CallStatus",
    "ListenerFactory",
    "MediaSource",
    "RelayServer",
    "ServerStats",
    "default_listening_calls",
    "negotiable_codec",
]

log = logging.getLogger(__name__)


class RelayServer(asyncio.DatagramProtocol):
    """Receives RTP on one socket and runs one ``LiveCall`` per (source, SSRC). Use ``run`` in a loop."""

    def __init__(
        self,
        *,
        codec: CodecSpec,
        recipients: list[RecipientKey],
        store: Path,
        policy: RedactionPolicy,
        listener_factory: ListenerFactory,
        models: dict[str, str],
        idle_timeout_s: float = 10.0,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_listening_calls: int | None = None,
        over_capacity: str = "refuse",
    ) -> None:
        if codec.name not in STATIC_PAYLOAD_TYPES:
            raise ValueError(f"static mode takes PCMU or PCMA, not {codec.name}")
        if over_capacity not in OVER_CAPACITY:
            raise ValueError(
                f"over_capacity must be one of {', '.join(OVER_CAPACITY)}, not {over_capacity!r}"
            )
        self.codec = codec
        self.payload_type = STATIC_PAYLOAD_TYPES[codec.name]
        self.recipients = recipients
        self.store = store
        self.policy = policy
        self.listener_factory = listener_factory
        self.models = models
        self.idle_timeout_s = idle_timeout_s
        self.max_calls = max_calls
        self.max_listening_calls = (
            max_listening_calls if max_listening_calls is not None else default_listening_calls()
        )
        self.over_capacity = over_capacity
        self.stats = ServerStats()
        self.local_address: tuple[str, int] | None = None
        self._calls: dict[CallKey, _Call] = {}
        # Keys of ended calls: a packet trailing its BYE must not open a new call (and a new file).
        self._ended: set[CallKey] = set()
        # Static-mode sources with no call: on probation (not yet a plausible stream) or refused.
        self._sources = SourceGate(self.stats, clock_rate=codec.clock_rate, quiet_s=idle_timeout_s)
        self._finishing: set[asyncio.Task[None]] = set()
        # Negotiated calls by id, ended ones included, so the control API can report on them afterwards.
        self._negotiated: dict[str, _Call] = {}
        self._webrtc_serial = 0  # numbers WebRTC calls' keys
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def run(
        self, host: str | None, port: int = 0, ready: Callable[[tuple[str, int]], None] | None = None
    ) -> None:
        """Serve until ``stop``; then end every call (recordings finalised) and return.

        ``host`` None opens no static port: only negotiated calls (``start_negotiated_call``) are served.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self._stopping = False
        transport: asyncio.BaseTransport | None = None
        if host is not None:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
            sockname = transport.get_extra_info("sockname")
            self.local_address = (sockname[0], sockname[1])
            log.info("listening for RTP (%s) on %s:%d", self.codec.name, *self.local_address)
            if ready is not None:
                ready(self.local_address)
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await self._stop.wait()
        finally:
            # From here no negotiated call may start: nothing would tick it or end it.
            self._stopping = True
            ticker.cancel()
            if transport is not None:
                transport.close()
            for call in list(self._calls.values()):
                self._end_call(call, "stop")
            # A finishing call may start more work (its redacted leg's tail): wait until none is left.
            while self._finishing:
                await asyncio.gather(*self._finishing, return_exceptions=True)
            log.info("stopped: %d calls served", self.stats.calls_ended)

    def stop(self) -> None:
        """Ask ``run`` to finish; safe from a signal handler on the loop or from any thread."""
        loop, event = self._loop, self._stop
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    # -- datagrams ---------------------------------------------------------------------------------------

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from a far end gone away: nothing for a receive-only port to do.
        log.debug("socket error: %s", type(exc).__name__)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        stats.datagrams += 1
        if len(data) > MAX_DATAGRAM_BYTES:
            stats.oversize += 1
            return
        source = (str(addr[0]), int(addr[1]))  # IPv6 adds flow info and scope id; host and port identify
        arrival = self._now()
        try:
            if is_rtcp(data):
                self._rtcp(data, source)
            else:
                self._rtp(parse_rtp(data), source, arrival)
        except MalformedPacketError:
            stats.malformed += 1
        except Exception as exc:  # one bad packet or a bug downstream must not stop the port
            log.error("packet handling failed (%s); dropped", type(exc).__name__)

    def _rtp(self, packet: RtpPacket, source: tuple[str, int], arrival: float) -> None:
        if packet.payload_type != self.payload_type:
            self.stats.wrong_payload_type += 1
            return
        key = (source, packet.ssrc)
        call = self._calls.get(key)
        if call is not None:
            self._deliver(call, packet, arrival)
            return
        if key in self._ended:
            self.stats.after_end += 1
            return
        sources = self._sources
        if sources.is_refused(key, arrival):
            return  # never a call mid-stream: it would start after what came before (a cue, a number)
        held = sources.probe(key, packet, arrival)
        if held is None:
            return  # on probation: held until the source has sent a plausible stream
        # Admission is asked only now, and the call starts at the first packet held: nothing is lost.
        call = self._start_call(key, held[0][1])
        if call is None:
            sources.refuse(key, arrival, len(held))
            return
        for kept, at in held:
            self._deliver(call, kept, at)

    def _deliver(self, call: _Call, packet: RtpPacket, arrival: float) -> None:
        self.stats.rtp += 1
        call.last_activity = max(call.last_activity, arrival)
        if isinstance(call.receiver, CallReceiver):  # always: a call keyed by a source address is RTP
            call.receiver.receive(packet, arrival)

    def _rtcp(self, data: bytes, source: tuple[str, int]) -> None:
        # Only a source with a call may send RTCP: anyone else's BYE could be forged to cut a call short.
        mine = [call for call in self._calls.values() if call.key[0] == source]
        if not mine:
            self._rtcp_without_call(data, source)
            return
        self.stats.rtcp += 1
        for report in parse_rtcp(data):
            if isinstance(report, RtcpBye):
                for call in mine:
                    if call.key[1] in report.ssrcs:
                        self._end_call(call, "bye")
                self._sources.bye(source, report.ssrcs)

    def _rtcp_without_call(self, data: bytes, source: tuple[str, int]) -> None:
        """A BYE may end a refusal or a probation of the source's; anything else is a stranger's."""
        try:
            reports = parse_rtcp(data)
        except MalformedPacketError:
            self.stats.stranger += 1  # unreadable, from an address with no call: a stranger's all the same
            return
        byes = [ssrc for report in reports if isinstance(report, RtcpBye) for ssrc in report.ssrcs]
        if byes and self._sources.bye(source, byes):
            self.stats.rtcp += 1
        else:
            self.stats.stranger += 1

    # -- calls -------------------------------------------------------------------------------------------

    async def start_negotiated_call(
        self,
        negotiated: Negotiated,
        host: str,
        ports: range,
        *,
        passthrough: tuple[str, int] | None = None,
        redacted: tuple[str, int] | None = None,
        srtp: SrtpContexts | None = None,
    ) -> _Call:
        """Start a call set up by SDP: its own UDP port on ``host``, the first free one in ``ports``.

        Plain RTP is taken only from the offer's address and port (no latching: the offer names the
        source, and a latch would let whoever sends first own the call); SRTP latches onto the first
        packet that authenticates, wherever NAT made it come from. Raises ``CallRefusedError`` if it
        cannot be.

        ``passthrough``: every RTP datagram from the source is forwarded there first, byte for byte.
        ``redacted``: the call's released (masked) audio is sent there as RTP in the call's codec and
        payload type, from the call's own port, with its own SSRC, sequence numbers and timestamps on the
        call timeline, paced by the release clock; telephone-events never go on it. Both are numeric
        (host, port) of the same address family as ``host``; anything else raises ``ValueError``.

        ``srtp`` (an RTP/SAVP offer's keys, ``srtp_for_offer``): the caller's packets are authenticated
        and decrypted with its key, replays dropped, and the redacted leg is encrypted with the relay's
        (the answer's) key. The passthrough leg forwards the caller's packets as they came, encrypted.
        """
        if self._stopping or self._loop is None:
            raise CallRefusedError("the relay is stopping")
        codec = negotiable_codec(negotiated.codec)
        if codec is None:
            raise ValueError(f"negotiated calls take PCMU, PCMA or Opus, not {negotiated.codec}")
        if (negotiated.crypto is None) != (srtp is None):
            raise ValueError("an SRTP offer needs its keys, and a plain RTP one has none")
        legs = {"passthrough": passthrough, "redacted": redacted}
        for name, destination in legs.items():
            if destination is not None:
                legs[name] = leg_address(name, destination)
        if len(self._calls) >= self.max_calls:
            self.stats.refused += 1
            raise CallRefusedError("too many calls")
        heard = self._admit()
        if heard is None:
            raise CallRefusedError("the recognizer is at capacity: no call could be heard in time now")
        holder: list[_Call] = []  # the endpoint exists before the call it feeds

        def on_packet(packet: RtpPacket, arrival: float) -> None:
            # A call with a redacted leg keeps its port open while the leg's tail goes out: what comes
            # in after the end is not the call's any more.
            if holder and holder[0].state == "active":
                holder[0].last_activity = arrival
                if isinstance(holder[0].receiver, CallReceiver):  # always: this call is RTP
                    holder[0].receiver.receive(packet, arrival)

        def on_bye() -> None:
            if holder:
                self._end_call(holder[0], "bye")

        endpoint = None
        for port in ports:
            try:
                endpoint = await open_endpoint(
                    host,
                    port,
                    on_packet=on_packet,
                    on_bye=on_bye,
                    expected_source=negotiated.remote_rtp,
                    # SRTP: latch on the first packet that authenticates (NAT rewrites the offer's
                    # address; only the key holder can send one). Plain RTP: the offer's address only,
                    # since a latch would let whoever sends first own the call.
                    latch=srtp is not None,
                    forward_to=legs["passthrough"],
                    srtp=None if srtp is None else srtp.inbound,
                    # Idle calls are ended by the tick, which knows the call; the endpoint's timer is moot.
                    inactivity_timeout_s=max(self.idle_timeout_s, 1.0),
                )
                break
            except OSError:
                continue
        if endpoint is None:
            self.stats.refused += 1
            raise CallRefusedError("no RTP port free")
        try:
            check_leg_families(legs, endpoint)
            outbound = None if srtp is None else srtp.outbound
            leg, leg_rtcp = redacted_leg(negotiated, codec, endpoint, legs["redacted"], outbound)
        except ValueError:
            endpoint.close()
            raise
        events = negotiated.telephone_event
        receiver = CallReceiver(
            codec,
            telephone_event_pt=None if events is None else events.payload_type,
            payload_type=negotiated.codec.payload_type,
        )
        # SSRC -1 never occurs on the wire: this key can never collide with a static-mode call.
        key: CallKey = (endpoint.local_address, -1)
        sinks: list[AudioSink] = [] if leg is None else [leg]
        call = self._start_call(
            key, self._loop.time(), receiver=receiver, source="control", sinks=sinks, heard=heard
        )
        if call is None:
            endpoint.close()
            raise CallRefusedError("the call could not be recorded")
        call.endpoint = endpoint
        call.leg = leg
        call.leg_rtcp = leg_rtcp
        call.srtp = srtp
        holder.append(call)
        self._negotiated[call.call_id] = call
        return call

    def negotiated_status(self, call_id: str) -> CallStatus | None:
        """Counters of a negotiated call, running or ended; None for an id that is not one."""
        call = self._negotiated.get(call_id)
        if call is None:
            return None
        rs = call.receiver.stats
        drops = call_drops(call)
        report = call.report
        if report is not None:
            duration = report.duration
        else:
            now = self._loop.time() if self._loop is not None else call.started
            duration = max(0.0, now - call.started)
        return CallStatus(
            call_id=call.call_id,
            state=call.state,
            duration_s=round(duration, 3),
            packets=rs.packets,
            drops=drops,
            masked_s=dict(report.masked_s) if report is not None else {},
            sent=sent_counts(call),
        )

    def negotiated_calls(self) -> list[tuple[str, str]]:
        """(id, state) of every negotiated call this server has had."""
        return [(call_id, call.state) for call_id, call in self._negotiated.items()]

    async def end_negotiated_call(self, call_id: str) -> bool:
        """End a negotiated call and wait until its recording is finalised; False for an unknown id."""
        call = self._negotiated.get(call_id)
        if call is None:
            return False
        self._end_call(call, "ended by control")
        pending = [task for task in self._finishing if task.get_name() == f"finish-{call_id}"]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return True

    # -- WebRTC calls and extra sinks (bleepline.webrtc) ---------------------------------------------------

    def start_webrtc_call(self, receiver: MediaSource) -> _Call:
        """Start a call fed by a WebRTC track's frames (``receiver``), through the same admission,
        recording, transcript and tick as every other call; listed and ended like a negotiated call.

        Raises ``CallRefusedError`` (stopping, too many calls, the recognizer at capacity, no recording).
        The caller feeds ``receiver`` and keeps ``last_activity`` up to date: the idle timeout applies.
        """
        if self._stopping or self._loop is None:
            raise CallRefusedError("the relay is stopping")
        if len(self._calls) >= self.max_calls:
            self.stats.refused += 1
            raise CallRefusedError("too many calls")
        heard = self._admit()
        if heard is None:
            raise CallRefusedError("the recognizer is at capacity: no call could be heard in time now")
        self._webrtc_serial += 1
        # "webrtc" is no address a datagram comes from: the key collides with no RTP call.
        key: CallKey = (("webrtc", self._webrtc_serial), -1)
        call = self._start_call(key, self._loop.time(), receiver=receiver, source="whip", heard=heard)
        if call is None:
            raise CallRefusedError("the call could not be recorded")
        self._negotiated[call.call_id] = call
        return call

    async def end_webrtc_call(self, call_id: str, why: str) -> bool:
        """End a call (any negotiated one) for ``why`` and wait until its recording and transcript are
        finalised; False for an id that is not one. An ending or ended call is waited for, not ended twice."""
        call = self._negotiated.get(call_id)
        if call is None:
            return False
        self._end_call(call, why)
        pending = [task for task in self._finishing if task.get_name() == f"finish-{call_id}"]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return True

    def running_call(self, call_id: str) -> _Call | None:
        """A negotiated or WebRTC call that is still running (not ending); None otherwise."""
        call = self._negotiated.get(call_id)
        return call if call is not None and call.state == "active" else None

    def add_sink(self, call_id: str, sink: AudioSink, on_end: Callable[[str], None] | None = None) -> bool:
        """Send a running call's released (redacted) audio to ``sink`` too, from the next release on:
        never anything released before. ``on_end`` is told when the call starts ending. False if the
        call is not running. ``sink.write`` must be quick and never raise (a ``CallSession`` sink)."""
        call = self.running_call(call_id)
        if call is None:
            return False
        session = call.live.session
        # A new list, swapped in whole: the release (the tick here, or the end's drain on a worker
        # thread) iterates whichever list it took, never one changing under it.
        session.sinks = [*session.sinks, sink]
        if on_end is not None:
            call.on_end.append(on_end)
        return True

    def remove_sink(self, call_id: str, sink: AudioSink) -> None:
        """Stop sending a call's released audio to ``sink`` (added by ``add_sink``); the recording stays."""
        call = self._negotiated.get(call_id)
        if call is None:
            return
        session = call.live.session
        session.sinks = [s for s in session.sinks if s is not sink]

    def recognizer_busy(self) -> bool:
        """Whether the recognizer can hear no more calls now: ``max_listening_calls`` are being heard, or
        a call's listener is falling behind (``BUSY_BACKLOG_S`` of audio queued)."""
        return recognizer_busy(self._calls.values(), self.max_listening_calls)

    def _admit(self) -> bool | None:
        """Whether a new call is heard (True), taken unheard (False), or refused (None, counted)."""
        return admit(
            active=len(self._calls),
            max_calls=self.max_calls,
            busy=self.recognizer_busy,
            over_capacity=self.over_capacity,
            stats=self.stats,
        )

    def _start_call(
        self,
        key: CallKey,
        arrival: float,
        *,
        receiver: MediaSource | None = None,
        source: str = "serve",
        sinks: Sequence[AudioSink] = (),
        heard: bool | None = None,
    ) -> _Call | None:
        if heard is None:
            heard = self._admit()
            if heard is None:
                return None
        # A UUID, never the caller's address: file names outlive the call and travel with the recording.
        call_id = str(uuid.uuid4())
        if receiver is None:
            receiver = CallReceiver(self.codec, telephone_event_pt=None, payload_type=self.payload_type)
        rate = receiver.codec.clock_rate
        try:
            writer = RecordingWriter(
                self.store / f"{call_id}.bleep",
                self.recipients,
                sample_rate=rate,
                call_id=call_id,
                redacted=True,
                metadata={"models": self.models, "policy": self.policy.describe(), "source": source},
            )
        except Exception as exc:
            self.stats.refused += 1
            log.error("call could not be recorded (%s); its packets are dropped", type(exc).__name__)
            return None
        session = CallSession(
            call_id,
            rate,
            # Unheard (the recognizer at capacity, over_capacity "mask"): nothing is ever cleared, so the
            # whole call is masked as unverified. Recorded all the same: its length and timing are kept.
            listener=self.listener_factory(rate) if heard else None,
            policy=self.policy,
            # The recording first: a redacted leg that fails must not keep audio from it.
            sinks=[writer, *sinks],
            transcript=TranscriptBuilder(call_id, models=self.models, policy=self.policy.describe()),
            paced_by_audio=False,
        )
        # The loop's clock releases the audio, as it stamps arrivals and ticks: one clock for the call.
        live = LiveCall(session, clock=self._now)
        call = _Call(call_id, key, receiver, live, writer, arrival, started=arrival)
        self._calls[key] = call
        self.stats.calls_started += 1
        if not heard:
            self.stats.calls_unheard += 1
            log.warning("call %s: the recognizer is at capacity; the call is recorded all masked", call_id)
        # Never the caller's address: it identifies a person as much as what they say.
        if source == "serve":
            log.info("call %s: started (static port)", call_id)
        elif source == "whip":
            log.info("call %s: started (WebRTC, WHIP)", call_id)
        else:  # the key holds the relay's own port, not a source
            log.info("call %s: started on port %d", call_id, key[0][1])
        return call

    def _now(self) -> float:
        """The clock of arrivals, ticks and releases: the loop's (monotonic; read from worker threads)."""
        return self._loop.time() if self._loop is not None else 0.0

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._tick(self._now())

    def _tick(self, now: float) -> None:
        """Poll, release and pace every call at ``now``; end idle calls; forget idle sources."""
        self._sources.expire(now)
        for call in list(self._calls.values()):
            try:
                receiver = call.receiver
                for chunk in receiver.poll(now):
                    call.live.push(chunk)
                # Key presses signalled out of band (RFC 4733) are masked as the audio they go with
                # is held, D seconds before it is released.
                call.live.keypresses(receiver.take_keypresses(), receiver.keypress_active_since)
                call.live.tick()
                if call.leg is not None:
                    # What this tick released goes out now: the release clock paces the leg.
                    call.leg.pump(now)
                    send_leg_report(call, now)
            except Exception as exc:  # one call's bug must not stop the others
                log.error("call %s: tick failed (%s); ending it", call.call_id, type(exc).__name__)
                self._end_call(call, "error")
                continue
            if now - call.last_activity >= self.idle_timeout_s:
                self._end_call(call, "idle")

    def _end_call(self, call: _Call, why: str) -> None:
        if self._calls.pop(call.key, None) is None:
            return
        call.state = "ending"
        for told in call.on_end:
            try:
                told(why)
            except Exception as exc:  # a watcher's bug must not keep the recording from being finalised
                log.error("call %s: end watcher failed (%s)", call.call_id, type(exc).__name__)
        if call.endpoint is None:
            self._ended.add(call.key)
        elif call.leg is None:
            # A negotiated call's port is its own: closed, nothing can trail into it. With a redacted leg
            # it stays open until the leg's tail and BYE are sent from it (``_send_leg_tail``).
            call.endpoint.close()
        receiver = call.receiver
        for chunk in receiver.flush():
            call.live.push(chunk)
        call.live.keypresses(receiver.take_keypresses(), None)  # flush closed any press left open
        # LiveCall.end waits for the listener's last word (seconds): off the loop, so other calls go on.
        self._spawn(self._finish_call(call, why), f"finish-{call.call_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish_call(self, call: _Call, why: str) -> None:
        try:
            await asyncio.to_thread(self._finish, call, why)
        finally:
            if call.leg is not None:
                # Its own task: ending a call over the API waits for the recording, not for the leg's
                # last D seconds; ``run`` waits for both before it returns.
                self._spawn(send_leg_tail(call, self.policy.delay_s), f"leg-{call.call_id}")

    def _finish(self, call: _Call, why: str) -> None:
        try:
            report = call.live.end()
            call.writer.close()
            assert report.transcript is not None
            write_transcript(
                report.transcript,
                self.store / f"{call.call_id}.transcript.json",
                self.store / f"{call.call_id}.vtt",
            )
        except Exception as exc:
            call.writer.abort()
            call.state = "failed"
            log.error("call %s: could not be finalised (%s)", call.call_id, type(exc).__name__)
            return
        call.report = report
        call.state = "ended"
        self.stats.calls_ended += 1
        self.stats.reports.append(report)
        masked = ", ".join(
            f"{reason} {seconds:.1f} s" for reason, seconds in report.masked_s.items() if seconds
        )
        log.info(
            "call %s: ended (%s) after %.1f s; masked: %s",
            call.call_id,
            why,
            report.duration,
            masked or "nothing",
        )

    # -- read-only views for health checks and metrics -----------------------------------------------------

    @property
    def draining(self) -> bool:
        """True from ``stop`` until ``run`` returns (calls being ended), and after: no new call is taken."""
        return self._stopping

    def running_statuses(self) -> list[CallStatus]:
        """Counters of every running call, static or negotiated, masked seconds so far included.

        For metrics, which sum them: the ids are for telling calls apart between scrapes, never for output.
        """
        statuses = []
        for call in list(self._calls.values()):
            rs = call.receiver.stats
            drops = call_drops(call)
            delay = call.live.session.delay.stats
            masked = dict(delay.masked_samples)  # a copy first: the listener's thread may add to it
            now = self._loop.time() if self._loop is not None else call.started
            statuses.append(
                CallStatus(
                    call_id=call.call_id,
                    state=call.state,
                    duration_s=round(max(0.0, now - call.started), 3),
                    packets=rs.packets,
                    drops=drops,
                    masked_s={str(reason): samples / delay.sample_rate for reason, samples in masked.items()},
                    sent=sent_counts(call),
                )
            )
        return statuses

    @property
    def sources_on_probation(self) -> int:
        """Static-mode sources held on probation now (not yet a plausible stream)."""
        return self._sources.on_probation

    @property
    def sources_refused(self) -> int:
        """Static-mode sources refused and remembered now (their packets dropped until they go quiet)."""
        return self._sources.refused

    def listener_lags(self) -> list[float]:
        """Each running call's largest recognizer lag so far, in seconds (push to end of hearing)."""
        return [call.live.stats.max_lag_s for call in list(self._calls.values())]

    def delay_fills(self) -> list[float]:
        """How full each running call's delay line is now, 0..1."""
        return [call.live.session.delay.stats.fill for call in list(self._calls.values())]
