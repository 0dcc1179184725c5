"""The live relay in static mode (Asterisk externalMedia style): one UDP port, one call per RTP source.

Each source address and SSRC is a call of its own, redacted through ``LiveCall`` into ``<uuid>.bleep``
plus its transcript; a call ends on RTCP BYE from its source, on silence past the idle timeout, or at stop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bleepline.audio.codecs import PCMA, PCMU, CodecSpec
from bleepline.call import CallReport, CallSession, Listener
from bleepline.live import LiveCall
from bleepline.redact.policy import RedactionPolicy
from bleepline.store.keys import RecipientKey
from bleepline.store.recording import RecordingWriter
from bleepline.store.transcript import TranscriptBuilder, write_transcript
from bleepline.transport.endpoint import MAX_DATAGRAM_BYTES, RtpEndpoint, open_endpoint
from bleepline.transport.errors import MalformedPacketError
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import RtcpBye, RtpPacket, is_rtcp, parse_rtcp, parse_rtp
from bleepline.transport.sdp import Negotiated

log = logging.getLogger(__name__)

#: How often held audio is released and receivers are polled: one packet's time at 20 ms ptime.
TICK_S = 0.02

#: Calls at once; past it a new source is dropped and counted, so a flood of sources cannot exhaust memory.
DEFAULT_MAX_CALLS = 64

#: Static payload types (RFC 3551): the only audio a static-mode call accepts, so stray UDP never
#: becomes a call.
STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}

#: What an SDP-negotiated call may use: the static-mode codecs, by their SDP encoding names.
NEGOTIABLE_CODECS = {"PCMU/8000": PCMU, "PCMA/8000": PCMA}

CallKey = tuple[tuple[str, int], int]  # (source host and port, SSRC)
ListenerFactory = Callable[[int], Listener | None]


@dataclass
class ServerStats:
    """Counters without content: every datagram is in ``datagrams`` and in at most one drop counter."""

    datagrams: int = 0
    rtp: int = 0
    rtcp: int = 0
    malformed: int = 0
    oversize: int = 0
    wrong_payload_type: int = 0
    stranger: int = 0  # RTCP from an address with no call: it could be a forged BYE
    after_end: int = 0  # packets of a call already ended
    refused: int = 0  # new sources past max_calls, or a call that could not be set up
    calls_started: int = 0
    calls_ended: int = 0
    reports: list[CallReport] = field(default_factory=list)


class CallRefusedError(Exception):
    """A negotiated call could not be set up: no port free in the range, too many calls, or stopping."""


@dataclass
class _Call:
    call_id: str
    key: CallKey
    receiver: CallReceiver
    live: LiveCall
    writer: RecordingWriter
    last_activity: float
    started: float = 0.0
    endpoint: RtpEndpoint | None = None  # a negotiated call's own port; None for static mode
    state: str = "active"  # then "ending" (being finalised), then "ended" or "failed"
    report: CallReport | None = None


@dataclass(frozen=True)
class CallStatus:
    """One call as the control API shows it: counters only, never content or the caller's address."""

    call_id: str
    state: str
    duration_s: float
    packets: int
    drops: dict[str, int]
    masked_s: dict[str, float]


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
    ) -> None:
        if codec.name not in STATIC_PAYLOAD_TYPES:
            raise ValueError(f"static mode takes PCMU or PCMA, not {codec.name}")
        self.codec = codec
        self.payload_type = STATIC_PAYLOAD_TYPES[codec.name]
        self.recipients = recipients
        self.store = store
        self.policy = policy
        self.listener_factory = listener_factory
        self.models = models
        self.idle_timeout_s = idle_timeout_s
        self.max_calls = max_calls
        self.stats = ServerStats()
        self.local_address: tuple[str, int] | None = None
        self._calls: dict[CallKey, _Call] = {}
        # Keys of ended calls: a packet trailing its BYE must not open a new call (and a new file).
        self._ended: set[CallKey] = set()
        self._finishing: set[asyncio.Task[None]] = set()
        # Negotiated calls by id, ended ones included, so the control API can report on them afterwards.
        self._negotiated: dict[str, _Call] = {}
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
            if self._finishing:
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
        arrival = self._loop.time() if self._loop is not None else 0.0
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
        if call is None:
            if key in self._ended:
                self.stats.after_end += 1
                return
            call = self._start_call(key, arrival)
            if call is None:
                return
        self.stats.rtp += 1
        call.last_activity = arrival
        call.receiver.receive(packet, arrival)

    def _rtcp(self, data: bytes, source: tuple[str, int]) -> None:
        # Only a source with a call may send RTCP: anyone else's BYE could be forged to cut a call short.
        mine = [call for call in self._calls.values() if call.key[0] == source]
        if not mine:
            self.stats.stranger += 1
            return
        self.stats.rtcp += 1
        for report in parse_rtcp(data):
            if isinstance(report, RtcpBye):
                for call in mine:
                    if call.key[1] in report.ssrcs:
                        self._end_call(call, "bye")

    # -- calls -------------------------------------------------------------------------------------------

    async def start_negotiated_call(self, negotiated: Negotiated, host: str, ports: range) -> _Call:
        """Start a call set up by SDP: its own UDP port on ``host``, the first free one in ``ports``.

        Only RTP from the offer's address and port is taken (no latching: the offer names the source,
        and a latch would let whoever sends first own the call). Raises ``CallRefusedError`` if it cannot be.
        """
        if self._stopping or self._loop is None:
            raise CallRefusedError("the relay is stopping")
        codec = NEGOTIABLE_CODECS.get(negotiated.codec.encoding)
        if codec is None or negotiated.crypto is not None:
            raise ValueError(f"negotiated calls take plain RTP with PCMU or PCMA, not {negotiated.codec}")
        if len(self._calls) >= self.max_calls:
            self.stats.refused += 1
            raise CallRefusedError("too many calls")
        holder: list[_Call] = []  # the endpoint exists before the call it feeds

        def on_packet(packet: RtpPacket, arrival: float) -> None:
            if holder:
                holder[0].last_activity = arrival
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
                    latch=False,
                    # Idle calls are ended by the tick, which knows the call; the endpoint's timer is moot.
                    inactivity_timeout_s=max(self.idle_timeout_s, 1.0),
                )
                break
            except OSError:
                continue
        if endpoint is None:
            self.stats.refused += 1
            raise CallRefusedError("no RTP port free")
        events = negotiated.telephone_event
        receiver = CallReceiver(
            codec,
            telephone_event_pt=None if events is None else events.payload_type,
            payload_type=negotiated.codec.payload_type,
        )
        # SSRC -1 never occurs on the wire: this key can never collide with a static-mode call.
        key: CallKey = (endpoint.local_address, -1)
        call = self._start_call(key, self._loop.time(), receiver=receiver, source="control")
        if call is None:
            endpoint.close()
            raise CallRefusedError("the call could not be recorded")
        call.endpoint = endpoint
        holder.append(call)
        self._negotiated[call.call_id] = call
        return call

    def negotiated_status(self, call_id: str) -> CallStatus | None:
        """Counters of a negotiated call, running or ended; None for an id that is not one."""
        call = self._negotiated.get(call_id)
        if call is None:
            return None
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

    def _start_call(
        self, key: CallKey, arrival: float, *, receiver: CallReceiver | None = None, source: str = "serve"
    ) -> _Call | None:
        if len(self._calls) >= self.max_calls:
            self.stats.refused += 1
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
            listener=self.listener_factory(rate),
            policy=self.policy,
            sinks=[writer],
            transcript=TranscriptBuilder(call_id, models=self.models, policy=self.policy.describe()),
            paced_by_audio=False,
        )
        call = _Call(call_id, key, receiver, LiveCall(session), writer, arrival, started=arrival)
        self._calls[key] = call
        self.stats.calls_started += 1
        if source == "serve":
            log.info("call %s: started from %s:%d", call_id, *key[0])
        else:  # the key holds the relay's own port, not a source
            log.info("call %s: started on port %d", call_id, key[0][1])
        return call

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            for call in list(self._calls.values()):
                try:
                    for chunk in call.receiver.poll(now):
                        call.live.push(chunk)
                    call.live.tick()
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
        if call.endpoint is not None:
            # A negotiated call's port is its own: closed, nothing can trail into it.
            call.endpoint.close()
        else:
            self._ended.add(call.key)
        for chunk in call.receiver.flush():
            call.live.push(chunk)
        # LiveCall.end waits for the listener's last word (seconds): off the loop, so other calls go on.
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._finish, call, why), name=f"finish-{call.call_id}"
        )
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

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
