"""The outgoing legs of a negotiated call, over real sockets on 127.0.0.1: the passthrough leg carries the
caller's datagrams byte for byte, the redacted leg carries the released (masked) audio as our own RTP
stream on the call timeline, paced by the release clock and ended with an RTCP BYE; RFC 4733 key presses
are masked like in-band ones; Opus calls are recorded at 48 kHz.

No Whisper here: the listener is scripted (everything cleared after a short lag, spans as given).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.audio.codecs import OPUS, PCMU, decoder_for, encoder_for
from bleepline.audio.files import read_audio_chunks
from bleepline.call import KEYPAD_MARGIN_S, CallSession, Listener
from bleepline.commands.recordings import decrypt_file
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.transcript import TranscriptBuilder
from bleepline.timeline import AudioChunk, PiiSpan
from bleepline.transport.rtp import (
    RtcpBye,
    RtcpSenderReport,
    RtpPacket,
    TelephoneEvent,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
)
from bleepline.transport.sdp import parse_offer
from bleepline.transport.sender import PacedLeg, RtpLegSender
from tests.conftest import sine
from tests.harness import make_server, request, sdp_offer, serving
from tests.test_call import ScriptedListener
from tests.test_control import AUTH, TOKEN, free_ports
from tests.test_serve import udp, wait_for

DELAY_S = 1.0
POLICY = RedactionPolicy(delay_s=DELAY_S)
JSON = {"Content-Type": "application/json", **AUTH}


@contextmanager
def relay(
    tmp_path: Path, pub: Path, listener: Listener | None, *, allow_plain_rtp: bool = True
) -> Iterator[tuple[RelayServer, tuple[str, int]]]:
    """Server and control API on one loop in a thread, with a 1 s delay and the given listener."""
    server = make_server(tmp_path / "store", pub, lambda rate: listener, policy=POLICY)
    with serving(server, token=TOKEN, rtp_ports=free_ports(8), allow_plain_rtp=allow_plain_rtp) as api:
        yield server, api


@dataclass
class Collector:
    """Everything one UDP socket receives, with arrival times, on a thread of its own."""

    sock: socket.socket
    received: list[tuple[float, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def rtp(self) -> list[tuple[float, RtpPacket]]:
        return [(at, parse_rtp(data)) for at, data in list(self.received) if not is_rtcp(data)]

    def sender_reports(self) -> list[tuple[float, RtcpSenderReport]]:
        return [
            (at, report)
            for at, data in list(self.received)
            if is_rtcp(data)
            for report in parse_rtcp(data)
            if isinstance(report, RtcpSenderReport)
        ]

    def byes(self) -> list[RtcpBye]:
        return [
            report
            for _, data in list(self.received)
            if is_rtcp(data)
            for report in parse_rtcp(data)
            if isinstance(report, RtcpBye)
        ]


def offer(
    port: int, codecs: str = "0 101", rtpmaps: tuple[str, ...] = (), direction: str = "sendrecv"
) -> str:
    return sdp_offer(f"audio {port} RTP/AVP {codecs}", *rtpmaps, f"a={direction}")


PCMU_EVENTS = ("a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16")


def post_call(api: tuple[str, int], body: dict[str, Any]) -> tuple[str, int, str]:
    """Sets up a call with a JSON request; returns its location, RTP port and answered direction."""
    status, headers, reply = request(api, "POST", "/v1/calls", json.dumps(body).encode(), JSON)
    assert status == 201, reply
    answer = parse_offer(reply.decode())
    return headers["Location"], answer.port, answer.direction


def status_of(api: tuple[str, int], location: str) -> dict[str, Any]:
    status, _, body = request(api, "GET", location, headers=AUTH)
    assert status == 200
    return dict(json.loads(body))


def recording(server: RelayServer, location: str, tmp_path: Path, key: Path) -> tuple[np.ndarray, int]:
    call_id = location.rsplit("/", 1)[1]
    wav = tmp_path / f"{call_id}.wav"
    decrypt_file(server.store / f"{call_id}.bleep", key, wav)  # raises unless complete and authentic
    chunks = list(read_audio_chunks(wav))
    return np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate


def send_schedule(
    sock: socket.socket, address: tuple[str, int], schedule: list[tuple[float, bytes]]
) -> float:
    """Sends each datagram at its offset (seconds) from now; returns the monotonic time of offset 0."""
    began = time.monotonic()
    for offset, data in schedule:
        wait = began + offset - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.sendto(data, address)
    return began


def audio_packets(
    samples: np.ndarray, *, start: int, seq: int, pt: int = 0, frame: int = 160, codec: Any = PCMU
) -> list[RtpPacket]:
    encoder = encoder_for(codec)
    return [
        RtpPacket(
            pt,
            (seq + i) & 0xFFFF,
            start + i * frame,
            0x77,
            encoder.encode(samples[i * frame : (i + 1) * frame]),
        )
        for i in range(len(samples) // frame)
    ]


def test_both_legs_passthrough_is_byte_identical_and_redacted_is_the_released_audio(
    tmp_path: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, key = key_pair
    # Sender reports every 0.2-0.6 s instead of 2.5-7.5 s, so that a few fit in this short call.
    monkeypatch.setattr(PacedLeg, "REPORT_INTERVAL_S", 0.4)
    # Cleared 0.2 s behind, PII said at 0.3-0.6 s: the released audio is the input with a beep there.
    listener = ScriptedListener([PiiSpan(0.3, 0.6, "CREDIT_CARD", 0.9, final=True)], lag=0.2)
    first, second = sine(1.0, 8000, 440.0, 0.3), sine(1.0, 8000, 660.0, 0.3)
    gap_s = 1.5  # silence suppression: no packets, the timestamps jump (longer than the delay)
    packets = audio_packets(first, start=5000, seq=1000) + audio_packets(
        second, start=5000 + round((1.0 + gap_s) * 8000), seq=1050
    )
    schedule = [(i * 0.02 if i < 50 else i * 0.02 + gap_s, p.serialize()) for i, p in enumerate(packets)]
    with relay(tmp_path, pub, listener) as (server, api), udp() as caller, udp() as raw, udp() as leg:
        raw_rx, leg_rx = Collector(raw), Collector(leg)
        try:
            location, port, direction = post_call(
                api,
                {
                    "sdp": offer(caller.getsockname()[1], rtpmaps=PCMU_EVENTS),
                    "passthrough": f"127.0.0.1:{raw.getsockname()[1]}",
                    "redacted": f"127.0.0.1:{leg.getsockname()[1]}",
                },
            )
            assert direction == "recvonly"  # the redacted leg goes elsewhere, not back to the offerer
            began = send_schedule(caller, ("127.0.0.1", port), schedule)
            ended_at = time.monotonic()
            # Ended right after the last packet: the last D seconds go out after the end, still paced.
            status, _, reply = request(api, "DELETE", location, headers=AUTH)
            assert status == 204, reply
            wait_for(lambda: len(leg_rx.byes()) == 1, 5)
            stats = status_of(api, location)
        finally:
            raw_rx.close()
            leg_rx.close()
        recorded, rate = recording(server, location, tmp_path, key)

    assert rate == 8000
    # Passthrough: the very datagrams sent, in order (loopback neither loses nor reorders).
    assert [data for _, data in raw_rx.received] == [data for _, data in schedule]

    got = leg_rx.rtp()
    ssrc = got[0][1].ssrc
    assert ssrc != 0x77
    assert {p.ssrc for _, p in got} == {ssrc}
    assert {p.payload_type for _, p in got} == {0}
    assert [p.sequence for _, p in got] == [(got[0][1].sequence + i) & 0xFFFF for i in range(len(got))]
    # The timeline, gap included, is contiguous 20 ms packets: the gap went out as silence, in place.
    assert [p.timestamp for _, p in got] == [
        (got[0][1].timestamp + 160 * i) & 0xFFFFFFFF for i in range(len(got))
    ]
    assert got[0][1].marker
    assert len(got) * 160 >= len(recorded) > (len(got) - 1) * 160
    # Its audio is the released audio: the recording, through the codec.
    heard = np.concatenate([decoder_for(PCMU).decode(p.payload) for _, p in got])
    assert np.array_equal(
        heard[: len(recorded)], decoder_for(PCMU).decode(encoder_for(PCMU).encode(recorded))
    )
    assert not heard[len(recorded) :].any()  # the last packet's padding
    # ...which is the input, beeped where PII was said, and silence in the gap.
    through = decoder_for(PCMU).decode(encoder_for(PCMU).encode(first))
    # (The last 0.2 s before the gap went out unverified: the gap outlasts the delay, and the scripted
    # listener, 0.2 s behind, heard nothing more to clear it with before its release came.)
    assert np.array_equal(
        heard[round(0.68 * 8000) : round(0.74 * 8000)], through[round(0.68 * 8000) : round(0.74 * 8000)]
    )
    after = decoder_for(PCMU).decode(encoder_for(PCMU).encode(second))
    assert np.array_equal(
        heard[round(2.6 * 8000) : round(3.4 * 8000)], after[round(0.1 * 8000) : round(0.9 * 8000)]
    )
    assert (
        np.mean(
            heard[round(0.3 * 8000) : round(0.6 * 8000)] == through[round(0.3 * 8000) : round(0.6 * 8000)]
        )
        < 0.1
    )
    assert not heard[round(1.05 * 8000) : round(2.45 * 8000)].any()

    # About D behind the input, before and after the gap: the packet of timeline second t leaves at
    # about (when t was sent) + D, plus up to a packet and the reorder window.
    for index in (0, 25, 50, 75, 99):
        offset = schedule[index][0]
        sent_at = began + offset
        timeline = index * 0.02 if index < 50 else index * 0.02 + gap_s
        [arrived] = [
            at for at, p in got if ((p.timestamp - got[0][1].timestamp) & 0xFFFFFFFF) == timeline * 8000
        ]
        assert DELAY_S - 0.05 < arrived - sent_at < DELAY_S + 0.3, index
    # Paced, the tail after the end too: never more than a few packets in any 100 ms.
    times = np.array([at for at, _ in got])
    assert max(int(np.sum((times >= t) & (times < t + 0.1))) for t in times) <= 8
    tail = times[times > ended_at + 0.1]
    assert len(tail) > 30
    assert tail[-1] - tail[0] > 0.6 * DELAY_S

    [bye] = leg_rx.byes()
    assert bye.ssrcs == (ssrc,)
    # RTCP sender reports all along, not only with the BYE: the leg's SSRC, packets counted as they go.
    reports = leg_rx.sender_reports()
    assert len(reports) >= 5
    assert {report.ssrc for _, report in reports} == {ssrc}
    counts = [report.packet_count for _, report in reports]
    assert counts == sorted(counts)
    assert counts[-1] == len(got)  # the goodbye's report counts every packet
    assert sum(1 for at, _ in reports if at < ended_at) >= 3
    assert stats["sent"] == {"passthrough": len(schedule), "redacted": len(got)}
    assert "127.0.0.1" not in json.dumps(stats)


def test_rfc4733_key_presses_are_masked_and_counted_never_told(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair
    listener = ScriptedListener([], lag=0.2)  # clears everything: only the key presses are masked
    tone = sine(2.0, 8000, 440.0, 0.3)
    encoder = encoder_for(PCMU)
    presses = [(25, 35, 5), (50, 60, 9)]  # (first packet, packet after the last, key): 0.5-0.7 s, 1.0-1.2 s
    schedule: list[tuple[float, bytes]] = []
    seq = 2000
    for i in range(100):
        audio = RtpPacket(
            0, seq & 0xFFFF, 8000 + i * 160, 0x77, encoder.encode(tone[i * 160 : (i + 1) * 160])
        )
        schedule.append((i * 0.02, audio.serialize()))
        seq += 1
        for first, after, digit in presses:
            if first <= i < after:
                done = i == after - 1
                event = TelephoneEvent(digit, end=done, volume=10, duration=(i + 1 - first) * 160)
                for _ in range(3 if done else 1):  # the end packet three times (RFC 4733 2.5.1.4)
                    packet = RtpPacket(
                        101, seq & 0xFFFF, 8000 + first * 160, 0x77, event.serialize(), i == first
                    )
                    schedule.append((i * 0.02 + 0.001, packet.serialize()))
                    seq += 1
    with relay(tmp_path, pub, listener) as (server, api), udp() as caller:
        location, port, _ = post_call(api, {"sdp": offer(caller.getsockname()[1], rtpmaps=PCMU_EVENTS)})
        send_schedule(caller, ("127.0.0.1", port), schedule)
        status, _, reply = request(api, "DELETE", location, headers=AUTH)
        assert status == 204, reply
        stats = status_of(api, location)
        recorded, _ = recording(server, location, tmp_path, key)
        call_id = location.rsplit("/", 1)[1]
        transcript = (server.store / f"{call_id}.transcript.json").read_text()

    assert stats["drops"]["decode_errors"] == 0
    assert stats["masked_s"]["dtmf"] > 0.4
    redactions = json.loads(transcript)["redactions"]
    [entry] = [r for r in redactions if r["entity"] == "DTMF"]
    assert entry["digits"] == 2  # one entry of two keys: the count, never which keys
    assert entry["start"] <= 0.5 + 1e-3
    assert entry["end"] >= 1.2 - 1e-3
    through = decoder_for(PCMU).decode(encoder.encode(tone))
    for first, after, _ in presses:
        a, b = first * 160, after * 160
        assert np.mean(recorded[a:b] == through[a:b]) < 0.05
    assert np.array_equal(recorded[round(1.5 * 8000) :], through[round(1.5 * 8000) : len(recorded)])


def best_lag(a: np.ndarray, b: np.ndarray, most: int) -> tuple[int, float]:
    """The lag of ``b`` behind ``a`` (0..most samples) where they correlate best, and that correlation."""
    n = min(len(a), len(b) - most)
    x = a[:n].astype(np.float64)
    scores = []
    for lag in range(most + 1):
        y = b[lag : lag + n].astype(np.float64)
        scores.append(float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9)))
    lag = int(np.argmax(scores))
    return lag, scores[lag]


def test_an_opus_call_is_recorded_at_48k_and_its_redacted_leg_is_opus(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair
    listener = ScriptedListener([], lag=0.2)
    tone = sine(1.0, 48000, 440.0, 0.3)
    packets = audio_packets(tone, start=90_000, seq=7, pt=111, frame=960, codec=OPUS)
    schedule = [(i * 0.02, p.serialize()) for i, p in enumerate(packets)]
    rtpmaps = ("a=rtpmap:111 opus/48000/2", "a=fmtp:111 useinbandfec=1", "a=rtpmap:101 telephone-event/48000")
    with relay(tmp_path, pub, listener) as (server, api), udp() as caller, udp() as leg:
        leg_rx = Collector(leg)
        try:
            caller_port = caller.getsockname()[1]
            status, headers, reply = request(
                api,
                "POST",
                "/v1/calls",
                json.dumps(
                    {
                        "sdp": offer(caller_port, "111 101", rtpmaps),
                        "redacted": f"127.0.0.1:{leg.getsockname()[1]}",
                    }
                ).encode(),
                JSON,
            )
            assert status == 201, reply
            answer = parse_offer(reply.decode())
            assert [c.encoding for c in answer.codecs] == ["opus/48000/2", "telephone-event/48000"]
            location = headers["Location"]
            send_schedule(caller, ("127.0.0.1", answer.port), schedule)
            time.sleep(DELAY_S)
            status, _, _ = request(api, "DELETE", location, headers=AUTH)
            assert status == 204
            wait_for(lambda: len(leg_rx.byes()) == 1, 5)
            stats = status_of(api, location)
        finally:
            leg_rx.close()
        recorded, rate = recording(server, location, tmp_path, key)

    assert stats["drops"]["decode_errors"] == 0
    assert rate == 48000
    assert abs(len(recorded) - len(tone)) <= 960
    lag, score = best_lag(tone[4800:-4800], recorded[4800:], 960)
    assert score > 0.9
    assert lag < 480  # the codec's own delay (about 6.5 ms), nothing more
    got = [p for _, p in leg_rx.rtp()]
    assert {p.payload_type for p in got} == {111}
    assert [p.timestamp - got[0].timestamp for p in got] == [960 * i for i in range(len(got))]
    decoder = decoder_for(OPUS)  # one for the stream: Opus keeps state from packet to packet
    heard = np.concatenate([decoder.decode(p.payload) for p in got])
    lag, score = best_lag(recorded[4800:-4800], heard[4800:], 960)
    assert score > 0.9
    assert lag < 480


def test_a_drained_tail_leaves_at_the_release_pace_and_a_failing_send_stops_the_leg() -> None:
    sent: list[tuple[float, bytes]] = []
    clock = [100.0]
    leg = PacedLeg(RtpLegSender(PCMU, 0, sample_rate=8000), lambda data: sent.append((clock[0], data)))
    tone = sine(2.0, 8000)
    leg.write(AudioChunk(tone[:160], 8000, 0))  # live: one packet, sent on the tick that made it
    assert leg.pump(clock[0]) == 1
    leg.write(AudioChunk(tone[160:], 8000, 160))  # the end of a call: the rest at once
    leg.finish()
    while leg.pending:
        clock[0] += 0.02
        assert leg.pump(clock[0]) <= 2  # a packet's worth of slack, never a burst
    assert leg.packets_sent == len(sent) == 100
    assert sent[-1][0] - sent[0][0] == pytest.approx(1.96, abs=0.03)  # the 2 s took 2 s, less the slack
    packets = [parse_rtp(data) for _, data in sent]
    assert [p.timestamp - packets[0].timestamp for p in packets] == [160 * i for i in range(100)]

    def broken(data: bytes) -> None:
        raise OSError("network unreachable")

    failing = PacedLeg(RtpLegSender(PCMU, 0, sample_rate=8000), broken)
    failing.write(AudioChunk(tone[:800], 8000, 0))
    assert failing.pump(0.0) == 0
    assert failing.failed
    assert failing.dropped == 5
    failing.write(AudioChunk(tone[800:1600], 8000, 800))  # a sink that failed takes audio and drops it
    assert failing.pending == 0


def test_key_presses_heard_in_band_and_signalled_count_once() -> None:
    transcript = TranscriptBuilder("keys", models={}, policy=POLICY.describe())
    session = CallSession(
        "keys", 8000, listener=None, policy=POLICY, sinks=[], transcript=transcript, paced_by_audio=False
    )
    # The first press is in the audio too (a sender that signals and leaves the tone in): one press.
    audio = np.zeros(16000, dtype=np.int16)
    audio[4000:5600] = sine(0.2, 8000, 697.0, 0.3) + sine(0.2, 8000, 1209.0, 0.3)
    session.push(AudioChunk(audio[:4800], 8000, 0))
    session.keypresses([], 0.5)  # a press under way: masked from its start to the audio held (0.6 s)
    session.push(AudioChunk(audio[4800:], 8000, 4800))
    session.keypresses([(0.5, 0.7)], None)
    session.keypresses([(1.0, 1.2)], None)
    report = session.end()
    assert report.keypad_entries == 1
    assert report.transcript is not None
    [entry] = [r for r in report.transcript.redactions if r.entity == "DTMF"]
    assert entry.digits == 2
    # Two presses of 0.2 s, each widened by the keypad margin and the policy's padding on both sides.
    assert report.masked_s["dtmf"] == pytest.approx(2 * (0.2 + 2 * (KEYPAD_MARGIN_S + 0.05)), abs=0.01)
