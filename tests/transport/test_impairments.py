"""A fixture call through a loopback impairment proxy into a live ``RelayServer``: loss, reordering,
duplication, jitter, an SSRC change, a timestamp jump and strangers, each checked against the decrypted
recording, packet by packet, and against the counters.

The call is SDP-negotiated (``start_negotiated_call``): it has its own port and endpoint, so one call's
receiver sees an SSRC change and the endpoint's stranger counters are the call's own. The listener is
scripted to clear everything as it hears it, so the recording holds the received audio unchanged and any
sample out of place shows. Packets go out in real time: after a restart the receiver places the new
stream by arrival times, and the delay line releases by the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio.codecs import PCMU, decoder_for, encoder_for
from bleepline.audio.files import read_audio_chunks
from bleepline.commands.recordings import decrypt_file
from bleepline.listener import Hearing
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import NEGOTIABLE_CODECS, CallStatus, RelayServer
from bleepline.timeline import AudioChunk
from bleepline.transport.endpoint import EndpointStats
from bleepline.transport.receiver import ReceiverStats
from bleepline.transport.rtp import RtcpBye, RtpPacket
from bleepline.transport.sdp import negotiate, parse_offer
from tests import harness

Address = tuple[str, int]
NDArray = np.ndarray

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "no_pii_awb_8k.wav"
RATE = 8000
PACKET = 160  # 20 ms at 8 kHz
PACKETS = 100  # 2 s: long enough for every impairment, short enough to send in real time
SEGMENT_START_S = 2.5  # inside "Busy. I have two kids…": speech, so every packet differs
SSRC = 0x5EED0001
SEQ_BASE = 65500  # the sequence number wraps during the call
TS_BASE = 0xFFFFF000  # and so does the timestamp
#: A 1 kHz burst laid over packets MARKER_FROM.. (after every impairment point): where it lands in the
#: recording says whether the timeline after the impairment is in place.
MARKER_FROM, MARKER_PACKETS = 80, 5
CHANGE_AT = 50  # the packet where an SSRC change or a timestamp jump happens
#: The caller waits this long after its last packet before its BYE, so a packet the proxy still holds
#: (jitter) is not overtaken by the BYE that ends the call.
BYE_AFTER_S = 0.25
POLICY = RedactionPolicy(delay_s=0.5)  # short: the test waits for the release, and the listener is instant


# --- the call's audio ----------------------------------------------------------------------------------


def marker() -> NDArray:
    t = np.arange(MARKER_PACKETS * PACKET) / RATE
    return np.round(16000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)


def call_audio() -> NDArray:
    """Two seconds of the fixture with the marker laid over it, as the caller sends it."""
    chunks = list(read_audio_chunks(FIXTURE))
    audio = np.concatenate([c.samples for c in chunks])
    start = round(SEGMENT_START_S * RATE)
    sent = audio[start : start + PACKETS * PACKET].copy()
    sent[MARKER_FROM * PACKET : (MARKER_FROM + MARKER_PACKETS) * PACKET] = marker()
    return sent


def heard(sent: NDArray) -> NDArray:
    """What the relay decodes from the caller's PCMU: the reference the recording must match."""
    return decoder_for(PCMU).decode(encoder_for(PCMU).encode(sent))


def marker_position(audio: NDArray) -> int:
    """The sample where the marker starts in ``audio`` (peak of the cross-correlation)."""
    template = marker().astype(np.float64)
    correlation = np.correlate(audio.astype(np.float64), template, mode="valid")
    return int(np.argmax(correlation))


@dataclass(frozen=True)
class Stream:
    """How the caller numbers its packets; an SSRC change or a restart switches to another Stream."""

    ssrc: int = SSRC
    seq_base: int = SEQ_BASE
    ts_base: int = TS_BASE


def datagrams(sent: NDArray, streams: Callable[[int], tuple[Stream, int]]) -> list[bytes]:
    """One PCMU packet per 20 ms; ``streams(i)`` gives packet i's stream and its index within it."""
    encoder = encoder_for(PCMU)
    out = []
    for i in range(len(sent) // PACKET):
        stream, k = streams(i)
        out.append(
            RtpPacket(
                payload_type=0,
                sequence=(stream.seq_base + k) & 0xFFFF,
                timestamp=(stream.ts_base + k * PACKET) & 0xFFFFFFFF,
                ssrc=stream.ssrc,
                payload=encoder.encode(sent[i * PACKET : (i + 1) * PACKET]),
                marker=k == 0,
            ).serialize()
        )
    return out


def one_stream(i: int) -> tuple[Stream, int]:
    return Stream(), i


# --- the impairment proxy ------------------------------------------------------------------------------

#: For datagram number i (in the order the caller sent them): the delays, in seconds, with which copies
#: of it are forwarded. () drops it, (0.0, 0.0) duplicates it.
Plan = Callable[[int], Sequence[float]]


def forward_all(i: int) -> Sequence[float]:
    return (0.0,)


class ImpairmentProxy:
    """A loopback UDP proxy: takes the caller's datagrams on ``address`` and sends them on to the relay
    from that same socket (so the relay sees the proxy as the call's source), impaired by ``plan``.

    One thread and ``select``: due copies leave within a fraction of a millisecond of their time.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        host, port = self.sock.getsockname()
        self.address: Address = (str(host), int(port))
        self.received = 0
        self.sent = 0
        self._due: list[tuple[float, int, bytes]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target: Address | None = None
        self._plan: Plan = forward_all
        self.failure: BaseException | None = None

    def start(self, target: Address, plan: Plan) -> None:
        self._target, self._plan = target, plan
        self._thread = threading.Thread(target=self._run, name="impairment-proxy", daemon=True)
        self._thread.start()

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until every copy still held has been sent."""
        deadline = time.monotonic() + timeout
        while self._due and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self._due, "proxy did not drain"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()
        assert self.failure is None, self.failure

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # shown by close(), not lost in the thread
            self.failure = exc

    def _loop(self) -> None:
        assert self._target is not None
        counter = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, data = self._due.pop(0)
                self.sock.sendto(data, self._target)
                self.sent += 1
            wait = 0.05 if not self._due else max(0.0, self._due[0][0] - time.monotonic())
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                continue
            data, _ = self.sock.recvfrom(4096)
            arrived = time.monotonic()
            for delay in self._plan(self.received):
                counter += 1
                self._due.append((arrived + delay, counter, data))
            self._due.sort()
            self.received += 1


# --- the relay -----------------------------------------------------------------------------------------


class ClearingListener:
    """Clears every chunk as it hears it and finds nothing: the recording is the received audio."""

    def push(self, chunk: AudioChunk) -> Hearing:
        end = chunk.end / chunk.sample_rate
        return Hearing(heard_until=end, final_until=end, spans=())

    def end(self, at: float) -> Hearing:
        return Hearing(heard_until=at, final_until=at, spans=())


@dataclass(frozen=True)
class CallHandle:
    """A negotiated call's id, its port, and its live counters (the objects the relay updates)."""

    call_id: str
    port: int
    receiver: ReceiverStats
    endpoint: EndpointStats


class Relay:
    """A ``RelayServer`` with no static port on its own loop in a thread; negotiated calls on demand."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def running(self, *, static_port: bool = False) -> Iterator[Relay]:
        """Run the server; with ``static_port``, also its static-mode port (``server.local_address``)."""
        with harness.running(self.server, static=harness.LOOPBACK_ANY if static_port else None) as self._loop:
            yield self

    def start_call(self, remote: Address) -> CallHandle:
        """Negotiate a PCMU call whose offer names ``remote`` as the media source."""
        offer = "\r\n".join(
            [
                "v=0",
                f"o=- 1 1 IN IP4 {remote[0]}",
                "s=-",
                f"c=IN IP4 {remote[0]}",
                "t=0 0",
                f"m=audio {remote[1]} RTP/AVP 0 101",
                "a=rtpmap:101 telephone-event/8000",
                "a=sendrecv",
                "",
            ]
        )
        negotiated = negotiate(parse_offer(offer), tuple(NEGOTIABLE_CODECS))
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(
            # Port 0: the OS picks a free one, so parallel test runs never race for a port.
            self.server.start_negotiated_call(negotiated, "127.0.0.1", range(1)),
            self._loop,
        )
        call = future.result(5)
        assert call.endpoint is not None
        return CallHandle(
            call.call_id, call.endpoint.local_address[1], call.receiver.stats, call.endpoint.stats
        )

    def status(self, call_id: str) -> CallStatus:
        status = self.server.negotiated_status(call_id)
        assert status is not None
        return status


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def send_paced(sock: socket.socket, address: Address, data: Sequence[bytes]) -> None:
    # Against a deadline per packet, so a late wake-up does not push every later packet back.
    began = time.monotonic()
    for i, datagram in enumerate(data):
        wait = began + i * PACKET / RATE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.sendto(datagram, address)


@dataclass
class Outcome:
    recording: NDArray
    status: CallStatus
    receiver: ReceiverStats
    endpoint: EndpointStats
    ended_after_bye_s: float


def make_server(tmp_path: Path, pub: Path) -> RelayServer:
    return harness.make_server(
        tmp_path / "store",
        pub,
        lambda rate: ClearingListener(),
        policy=POLICY,
        idle_timeout_s=10.0,  # far longer than the test: an early end can only be a BYE or a bug
    )


def decrypted(recording: Path, identity: Path) -> NDArray:
    wav = recording.with_suffix(".wav")
    decrypt_file(recording, identity, wav)  # raises unless the recording is complete and authentic
    return np.concatenate([c.samples for c in read_audio_chunks(wav)])


def run_call(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    data: Sequence[bytes],
    plan: Plan,
    during: Callable[[Address, Address], None] | None = None,
) -> Outcome:
    """Send ``data`` in real time through the proxy impaired by ``plan``, then the real BYE; return the
    decrypted recording and the counters. ``during`` runs mid-call with the call's address on the relay
    and the proxy's address (where the caller sends)."""
    pub, identity = key_pair
    server = make_server(tmp_path, pub)
    store = server.store
    proxy = ImpairmentProxy()
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    try:
        with Relay(server).running() as relay:
            call = relay.start_call(proxy.address)
            relay_address = ("127.0.0.1", call.port)
            proxy.start(relay_address, plan)
            half = len(data) // 2
            send_paced(caller, proxy.address, data[:half])
            if during is not None:
                during(relay_address, proxy.address)
            send_paced(caller, proxy.address, data[half:])
            proxy.drain()
            time.sleep(BYE_AFTER_S)
            # Everything sent and nothing (strangers included) ended the call early.
            assert relay.status(call.call_id).state == "active"
            bye_at = time.monotonic()
            caller.sendto(RtcpBye((SSRC,)).serialize(), proxy.address)
            wait_for(lambda: relay.status(call.call_id).state == "ended", 15, "the call to end")
            ended_after = time.monotonic() - bye_at
            status = relay.status(call.call_id)
    finally:
        caller.close()
        proxy.close()
    recording = decrypted(store / f"{call.call_id}.bleep", identity)
    return Outcome(recording, status, call.receiver, call.endpoint, ended_after)


def assert_clean_end(outcome: Outcome) -> None:
    """Ended by the BYE (at once, not by the idle timeout), with one RTCP packet: the BYE; and nothing
    masked, so the recording is what the relay received."""
    assert outcome.status.state == "ended"
    assert outcome.ended_after_bye_s < 5.0
    assert outcome.endpoint.rtcp == 1
    assert outcome.status.duration_s == pytest.approx(len(outcome.recording) / RATE, abs=1e-3)
    assert not any(outcome.status.masked_s.values()), outcome.status.masked_s


def assert_endpoint_accounts(stats: EndpointStats) -> None:
    """The endpoint's promise: every datagram in exactly one of its outcome counters."""
    assert stats.datagrams == (
        stats.rtp + stats.rtcp + stats.stranger + stats.oversize + sum(stats.malformed.values())
    )


def assert_in_place(recording: NDArray, reference: NDArray, silent: Container[int] = ()) -> None:
    """The recording is the reference packet for packet: same length, the packets in ``silent`` zeros."""
    assert len(recording) == len(reference)
    for i in range(len(reference) // PACKET):
        got = recording[i * PACKET : (i + 1) * PACKET]
        if i in silent:
            assert not got.any(), f"packet {i} was lost but is not silence"
        else:
            assert np.array_equal(got, reference[i * PACKET : (i + 1) * PACKET]), f"packet {i} out of place"
    assert marker_position(recording) == MARKER_FROM * PACKET


# --- the impairments -----------------------------------------------------------------------------------


def test_random_loss_becomes_silence_in_place(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    rng = random.Random(5)
    # About 5 %, never the first or the last packet (they fix where the recording starts and ends).
    candidates = [i for i in range(1, PACKETS - 1) if not MARKER_FROM <= i < MARKER_FROM + MARKER_PACKETS]
    lost = set(rng.sample(candidates, 5)) | {40, 41}  # and one burst of two
    outcome = run_call(tmp_path, key_pair, datagrams(sent, one_stream), lambda i: () if i in lost else (0.0,))
    assert_in_place(outcome.recording, heard(sent), silent=lost)
    assert outcome.receiver.lost == len(lost)
    assert outcome.status.drops["lost"] == len(lost)
    assert outcome.receiver.duplicates == outcome.receiver.late == outcome.receiver.stray == 0
    assert outcome.endpoint.rtp == PACKETS - len(lost)
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_reordering_within_the_window_is_undone(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    # Every seventh packet is held 38 ms: it arrives after the next one (18 ms of margin for the caller's
    # scheduling) and 42 ms inside the 60 ms window that the next one starts.
    swapped = set(range(3, PACKETS - 1, 7))
    outcome = run_call(
        tmp_path, key_pair, datagrams(sent, one_stream), lambda i: (0.038,) if i in swapped else (0.0,)
    )
    assert_in_place(outcome.recording, heard(sent))
    assert outcome.receiver.reordered == len(swapped)
    assert outcome.receiver.lost == outcome.receiver.late == outcome.receiver.duplicates == 0
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_duplicates_are_dropped_and_counted(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    twice = set(range(0, PACKETS, 9))
    thrice = {50}
    later = {33}  # a copy that comes 40 ms after the original: a duplicate, not a late packet

    def plan(i: int) -> Sequence[float]:
        if i in thrice:
            return (0.0, 0.0, 0.0)
        if i in later:
            return (0.0, 0.04)
        return (0.0, 0.0) if i in twice else (0.0,)

    outcome = run_call(tmp_path, key_pair, datagrams(sent, one_stream), plan)
    assert_in_place(outcome.recording, heard(sent))
    extra = len(twice) + 2 * len(thrice) + len(later)
    assert outcome.receiver.duplicates == extra
    assert outcome.status.drops["duplicates"] == extra
    assert outcome.receiver.packets == PACKETS + extra
    assert outcome.receiver.lost == outcome.receiver.late == 0
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_jitter_inside_the_window_keeps_the_timeline(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    rng = random.Random(11)
    # 0-40 ms of delay per packet: packets overtake each other, but none by more than the 60 ms window.
    delays = [rng.uniform(0.0, 0.04) for _ in range(PACKETS)]
    outcome = run_call(
        tmp_path, key_pair, datagrams(sent, one_stream), lambda i: (delays[i],) if i < PACKETS else (0.0,)
    )
    assert_in_place(outcome.recording, heard(sent))
    assert outcome.receiver.lost == outcome.receiver.late == outcome.receiver.duplicates == 0
    assert outcome.receiver.reordered > 0  # the jitter did reorder, or this test proves little
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_an_ssrc_change_mid_call_continues_the_timeline(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    second = Stream(ssrc=0x0BADCAFE, seq_base=12345, ts_base=987654321)

    def streams(i: int) -> tuple[Stream, int]:
        return (Stream(), i) if i < CHANGE_AT else (second, i - CHANGE_AT)

    outcome = run_call(tmp_path, key_pair, datagrams(sent, streams), forward_all)
    reference = heard(sent)
    recording = outcome.recording
    before = CHANGE_AT * PACKET
    assert np.array_equal(recording[:before], reference[:before])
    # The new stream is placed by arrival time (its timestamps say nothing of the old one's): right
    # after the old stream, plus whatever scheduling delay the caller's packet met, less than a packet.
    shift = marker_position(recording) - MARKER_FROM * PACKET
    assert 0 <= shift < PACKET
    assert not recording[before : before + shift].any()
    assert np.array_equal(recording[before + shift :], reference[before:])
    assert outcome.receiver.ssrc_changes == 1
    assert outcome.receiver.lost == outcome.receiver.late == outcome.receiver.stray == 0
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_a_timestamp_jump_continues_the_timeline(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sent = call_audio()
    jumped = Stream(ts_base=(TS_BASE + 2_000_000_000) & 0xFFFFFFFF)  # same SSRC and numbering

    def streams(i: int) -> tuple[Stream, int]:
        return (Stream(), i) if i < CHANGE_AT else (jumped, i)

    outcome = run_call(tmp_path, key_pair, datagrams(sent, streams), forward_all)
    reference = heard(sent)
    recording = outcome.recording
    before = CHANGE_AT * PACKET
    assert np.array_equal(recording[:before], reference[:before])
    # The first packet of the jump is dropped as a stray (nothing confirms the jump yet); the second
    # confirms a restart and is placed by arrival time: where it belongs, give or take scheduling. An
    # event loop kept busy for a packet's time (the listener's thread holds the GIL while it decodes)
    # reads the datagrams queued meanwhile in one burst, with one arrival time: a packet early, at most.
    assert outcome.receiver.stray == 1
    assert outcome.receiver.timestamp_jumps == 1
    shift = marker_position(recording) - MARKER_FROM * PACKET
    assert -PACKET <= shift < PACKET
    resumed = before + PACKET + shift
    assert not recording[before:resumed].any()  # the stray's place is silence
    assert np.array_equal(recording[resumed:], reference[before + PACKET :])
    # The stray is counted once: its sequence number is spent, not skipped over and lost as well.
    assert outcome.receiver.lost == 0
    assert outcome.receiver.late == outcome.receiver.duplicates == 0
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)


def test_strangers_and_a_forged_bye_neither_end_nor_touch_the_call(
    tmp_path: Path, key_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bleepline.server")
    sent = call_audio()
    loud = np.full(PACKET, 30000, dtype=np.int16)
    injected = RtpPacket(0, (SEQ_BASE + 60) & 0xFFFF, 0, SSRC, encoder_for(PCMU).encode(loud)).serialize()
    junk = [b"", b"\x80", b"\x00" * 40, b"not rtp at all", b"\xff" * 2000]
    stranger_datagrams = [
        RtcpBye((SSRC,)).serialize(),  # a forged BYE naming the call's SSRC
        RtcpBye((SSRC,), "bye").serialize(),
        injected,  # audio injected under the call's SSRC and a sequence number it will use
        *junk,
    ]
    # From the call's own source (through the proxy): malformed and oversize, dropped and counted.
    source_junk = [b"\x00" * 20, b"\x80\x00", b"\x80\xcb\x00\x09", b"\xff" * 1600]
    strangers: list[socket.socket] = []
    # The caller's junk reaches the proxy from a socket of its own and goes on like the caller's media.
    caller_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller_side.bind(("127.0.0.1", 0))

    def intrude(relay_address: Address, proxy_address: Address) -> None:
        for _ in range(2):
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.bind(("127.0.0.1", 0))
            strangers.append(stranger)
            for data in stranger_datagrams:
                stranger.sendto(data, relay_address)
        for data in source_junk:
            caller_side.sendto(data, proxy_address)

    try:
        outcome = run_call(tmp_path, key_pair, datagrams(sent, one_stream), forward_all, during=intrude)
    finally:
        caller_side.close()
        for stranger in strangers:
            stranger.close()
    assert_in_place(outcome.recording, heard(sent))
    stats = outcome.endpoint
    # Size is checked before the source: each stranger's 2000-byte datagram is oversize, not a stranger's.
    assert stats.stranger == 2 * (len(stranger_datagrams) - 1)
    assert stats.oversize == 2 + 1
    assert stats.malformed == {"version": 1, "short": 1, "rtcp_truncated": 1}
    assert stats.rtp == PACKETS
    assert outcome.status.drops["stranger"] == stats.stranger
    assert outcome.status.drops["oversize"] == stats.oversize
    assert outcome.status.drops["malformed"] == 3
    assert outcome.receiver.packets == PACKETS
    assert outcome.receiver.lost == outcome.receiver.duplicates == outcome.receiver.late == 0
    assert_endpoint_accounts(stats)
    assert_clean_end(outcome)
    assert "ended (bye)" in caplog.text


def test_static_mode_survives_everything_at_once(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    """Loss, reordering, duplicates and jitter together into the static-mode port, with a stranger's
    forged BYE, garbage and a wrong payload type; then the real BYE, and a duplicate trailing it."""
    pub, identity = key_pair
    server = make_server(tmp_path, pub)
    sent = call_audio()
    data = datagrams(sent, one_stream)
    rng = random.Random(23)
    lost = {7, 31, 32, 64}
    twice = {0, 12, 45, 90}
    delays = {i: rng.uniform(0.0, 0.035) for i in range(PACKETS)}
    bye = PACKETS  # datagram number of the BYE: a copy of the last packet trails it by 100 ms

    def plan(i: int) -> Sequence[float]:
        if i in lost:
            return ()
        if i == PACKETS - 1:
            return (0.0, 0.1 + BYE_AFTER_S)
        if i >= bye:
            return (0.0,)
        return (delays[i], delays[i] + 0.01) if i in twice else (delays[i],)

    proxy = ImpairmentProxy()
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        with Relay(server).running(static_port=True):
            assert server.local_address is not None
            address = server.local_address
            proxy.start(address, plan)
            send_paced(caller, proxy.address, data[: PACKETS // 2])
            stranger.sendto(RtcpBye((SSRC,)).serialize(), address)  # forged: no call from there
            stranger.sendto(b"\x80\x00", address)  # malformed
            stranger.sendto(RtpPacket(96, 1, 0, 7, b"\0" * 160).serialize(), address)  # not PCMU
            send_paced(caller, proxy.address, data[PACKETS // 2 :])
            time.sleep(BYE_AFTER_S)
            assert server.active_calls == 1
            caller.sendto(RtcpBye((SSRC,)).serialize(), proxy.address)
            wait_for(lambda: server.stats.calls_ended == 1, 15, "the call to end")
            wait_for(lambda: server.stats.after_end == 1, 2, "the trailing copy")
            proxy.drain()
    finally:
        caller.close()
        stranger.close()
        proxy.close()
    stats = server.stats
    assert stats.calls_started == stats.calls_ended == 1  # the trailing copy opened no second call
    assert stats.stranger == 1
    assert stats.malformed == 1
    assert stats.wrong_payload_type == 1
    # Every RTP datagram from the caller reached the call (duplicates included), but the one after its end.
    assert stats.rtp == PACKETS - len(lost) + len(twice)
    assert stats.rtcp == 1
    assert stats.datagrams == stats.rtp + stats.rtcp + 3 + stats.after_end
    [report] = stats.reports
    assert not any(report.masked_s.values())
    [recording] = server.store.glob("*.bleep")
    assert_in_place(decrypted(recording, identity), heard(sent), silent=lost)


def test_a_forward_timestamp_jump_of_a_minute_loses_no_audio(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    sent = call_audio()
    # Same SSRC and numbering; timestamps 60 s ahead, 20 ms later (a B2BUA splicing in another source).
    jumped = Stream(ts_base=(TS_BASE + 60 * RATE) & 0xFFFFFFFF)

    def streams(i: int) -> tuple[Stream, int]:
        return (Stream(), i) if i < CHANGE_AT else (jumped, i)

    outcome = run_call(tmp_path, key_pair, datagrams(sent, streams), forward_all)
    reference = heard(sent)
    assert outcome.receiver.lost == outcome.receiver.stray == 0  # nothing dropped on the way in
    # Wherever the relay puts the audio after the jump, it must be in the recording, unmasked.
    at = marker_position(outcome.recording)
    wanted = reference[MARKER_FROM * PACKET : (MARKER_FROM + MARKER_PACKETS) * PACKET]
    assert np.array_equal(outcome.recording[at : at + len(wanted)], wanted)
    # The jump is told from the arrival times and placed by them: the audio after it follows on, as after
    # an SSRC change, and none of it reaches the delay line ahead of its time.
    assert outcome.receiver.timestamp_jumps == 1
    before = CHANGE_AT * PACKET
    shift = at - MARKER_FROM * PACKET
    assert 0 <= shift < PACKET
    assert np.array_equal(outcome.recording[:before], reference[:before])
    assert not outcome.recording[before : before + shift].any()
    assert np.array_equal(outcome.recording[before + shift :], reference[before:])
    assert outcome.status.drops["early_audio_ms"] == 0
    assert outcome.receiver.late == outcome.receiver.duplicates == 0
    assert_endpoint_accounts(outcome.endpoint)
    assert_clean_end(outcome)
