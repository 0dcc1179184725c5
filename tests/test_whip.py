"""WHIP ingest over real WebRTC on 127.0.0.1: an aiortc client publishes audio, the relay records it as a
call (``<call_id>.bleep`` and its transcript, through the same machinery as RTP calls), and every way a
session ends — DELETE, the client closing, the client vanishing, ICE never connecting, the relay stopping
— ends the call with its recording finalised. Bad offers and tokens get one-line JSON errors.

The listener is scripted (or absent) except in one slow test, which publishes a fixture call through the
real listener (Whisper tiny.en and the PII detector) and checks it against the fixture's truth.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bleepline.call import Listener
from bleepline.commands.keys import open_identity
from bleepline.control import make_app, start_control
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.keys import load_recipient
from bleepline.store.recording import RecordingReader
from bleepline.timeline import PiiSpan
from bleepline.webrtc.gateway import WebRtcGateway, WebRtcOptions
from bleepline.webrtc.ice import host_addresses
from tests.harness import make_server
from tests.test_call import ScriptedListener
from tests.test_control import free_ports

TOKEN = "whip-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SDP = {"Content-Type": "application/sdp", **AUTH}
LOOPBACK = ("127.0.0.1",)
RATE = 48000
DELAY_S = 1.0


# -- the relay and its clients, all on the test's own loop ---------------------------------------------


@dataclass
class Relay:
    server: RelayServer
    gateway: WebRtcGateway
    http: aiohttp.ClientSession
    store: Path
    clients: list[RTCPeerConnection] = field(default_factory=list)

    async def post(self, path: str, body: str | bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        async with self.http.post(path, data=body, headers=SDP if headers is None else headers) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def call(self, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
        async with self.http.request(method, path, headers=AUTH if headers is None else headers) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    def client(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no public STUN server
        self.clients.append(pc)
        return pc


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@asynccontextmanager
async def relay(
    tmp_path: Path,
    pub: Path,
    listener: Listener | None = None,
    *,
    delay_s: float = DELAY_S,
    idle_timeout_s: float = 5.0,
    ice_timeout_s: float = 5.0,
    max_calls: int = 8,
    max_listeners_per_call: int = 8,
    listener_factory: Callable[[int], Listener | None] | None = None,
) -> AsyncIterator[Relay]:
    """The relay, its control API with WHIP/WHEP on 127.0.0.1 only, and an HTTP client."""
    store = tmp_path / "store"
    server = make_server(
        store,
        pub,
        listener_factory or (lambda rate: listener),
        policy=RedactionPolicy(delay_s=delay_s),
        idle_timeout_s=idle_timeout_s,
        max_calls=max_calls,
    )
    gateway = WebRtcGateway(
        server,
        WebRtcOptions(
            ice_addresses=LOOPBACK, ice_timeout_s=ice_timeout_s, max_listeners_per_call=max_listeners_per_call
        ),
    )
    app = make_app(server, token=TOKEN, rtp_host="127.0.0.1", rtp_ports=free_ports(4), webrtc=gateway)
    runner, (host, port) = await start_control(app, "127.0.0.1", 0)
    running = asyncio.create_task(server.run(None))
    await asyncio.sleep(0.05)  # run() sets up its stop event before its first await
    http = aiohttp.ClientSession(base_url=f"http://{host}:{port}")
    state = Relay(server, gateway, http, store)
    try:
        yield state
    finally:
        for pc in state.clients:
            await pc.close()
        await http.close()
        server.stop()
        await asyncio.wait_for(running, 30)
        await runner.cleanup()
        assert gateway.sessions == {"publishers": 0, "listeners": 0}


class SignalTrack(MediaStreamTrack):
    """Plays ``samples`` (mono int16 at ``rate``) in real time, 20 ms a frame; then silence, or ends."""

    kind = "audio"

    def __init__(self, samples: np.ndarray, rate: int = RATE, *, then_silence: bool = True) -> None:
        super().__init__()
        self.samples = samples
        self.rate = rate
        self.then_silence = then_silence
        self.frame = rate // 50
        self.sent = 0
        self.started: float | None = None  # loop time of the first frame

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        else:
            wait = self.started + self.sent / self.rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        chunk = self.samples[self.sent : self.sent + self.frame]
        if len(chunk) < self.frame:
            if not self.then_silence and len(chunk) == 0:
                self.stop()
                raise MediaStreamError
            chunk = np.concatenate([chunk, np.zeros(self.frame - len(chunk), dtype=np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, self.rate)
        self.sent += self.frame
        return frame


async def offer_from(pc: RTCPeerConnection) -> str:
    with host_addresses(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    return pc.localDescription.sdp


async def publish(relay_: Relay, track: MediaStreamTrack) -> tuple[RTCPeerConnection, str]:
    """A WHIP client publishing ``track``; returns its peer connection and the session's Location."""
    pc = relay_.client()
    pc.addTransceiver(track, direction="sendonly")
    reply = await relay_.post("/v1/whip", await offer_from(pc))
    assert reply.status == 201, reply.body
    assert reply.headers["Content-Type"].startswith("application/sdp")
    await pc.setRemoteDescription(RTCSessionDescription(reply.body.decode(), "answer"))
    return pc, reply.headers["Location"]


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def recording(store: Path, call_id: str, key: Path, tmp_path: Path) -> np.ndarray:
    """The call's decrypted recording at 48 kHz; raises unless it is complete and authentic."""
    with RecordingReader(store / f"{call_id}.bleep") as reader:
        reader.unlock(open_identity(key))
        assert reader.header.sample_rate == RATE
        samples = [chunk.samples for chunk in reader.chunks()]
    joined: np.ndarray = np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)
    return joined


def state_of(relay_: Relay, call_id: str) -> str | None:
    status = relay_.server.negotiated_status(call_id)
    return None if status is None else status.state


def speechlike(seconds: float, seed: int = 1) -> np.ndarray:
    """Band-limited noise (300-3400 Hz), -12 dBFS or so: every stretch unlike any other, so alignments are
    found unambiguously, and it survives Opus well enough to correlate."""
    count = round(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(count))
    freqs = np.fft.rfftfreq(count, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    wave = np.fft.irfft(spectrum, count)
    scaled: np.ndarray = np.round(wave / np.max(np.abs(wave)) * 0.5 * 32767).astype(np.int16)
    return scaled


def align(signal: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Where ``signal`` sits in ``reference`` (the offset into ``reference`` of its first sample) and the
    normalised correlation there, by FFT cross-correlation."""
    a = reference.astype(np.float64)
    b = signal.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    offset = int(np.argmax(corr[: len(a)]))
    part = a[offset : offset + len(b)]
    b = b[: len(part)]
    score = float(np.dot(part, b) / (np.linalg.norm(part) * np.linalg.norm(b) + 1e-9))
    return offset, score


def windowed_error(reference: np.ndarray, output: np.ndarray) -> float:
    """rms(output - reference) / rms(reference): 0 is the same audio; a masked stretch is about 1 or more."""
    a = reference.astype(np.float64)
    b = output[: len(a)].astype(np.float64)
    return float(np.sqrt(np.mean((b - a) ** 2)) / (np.sqrt(np.mean(a * a)) + 1e-9))


# -- tests ------------------------------------------------------------------------------------------------


def test_a_whip_session_is_a_recorded_call_ended_by_delete(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair
    signal = speechlike(3.0)
    # Cleared 0.2 s behind; personal data said at 1.0-1.5 s: the recording is the input, beeped there.
    listener = ScriptedListener([PiiSpan(1.0, 1.5, "CREDIT_CARD", 0.9, final=True)], lag=0.2)

    async def scenario() -> tuple[str, np.ndarray, dict[str, Any], dict[str, Any]]:
        async with relay(tmp_path, pub, listener) as r:
            track = SignalTrack(signal)
            _, location = await publish(r, track)
            assert location.startswith("/v1/whip/")
            call_id = location.rsplit("/", 1)[1]
            listed = (await r.call("GET", "/v1/calls")).json()
            assert {"id": call_id, "state": "active"} in listed["calls"]
            await wait_until(lambda: track.sent >= len(signal) + RATE // 2, 15, "the signal to be sent")
            ended = await r.call("DELETE", location)
            assert ended.status == 204, ended.body
            # 204 comes once the recording and transcript are final; the session is gone.
            assert state_of(r, call_id) == "ended"
            assert r.gateway.sessions["publishers"] == 0
            status = (await r.call("GET", f"/v1/calls/{call_id}")).json()
            again = await r.call("DELETE", location)
            assert again.status == 404
            transcript = json.loads((r.store / f"{call_id}.transcript.json").read_text())
            return call_id, recording(r.store, call_id, key, tmp_path), status, transcript

    call_id, recorded, status, transcript = asyncio.run(scenario())
    assert transcript["call_id"] == call_id
    assert status["state"] == "ended"
    assert status["packets"] > 100  # frames
    assert status["drops"]["decode_errors"] == 0
    # The timeline: the whole signal and the silence after it, up to the end, never squeezed.
    assert len(recorded) >= len(signal)
    offset, score = align(signal[: RATE // 2], recorded[:RATE])
    assert offset < 0.03 * RATE  # Opus and its resampler delay the audio by a few ms only
    assert score > 0.9
    through = recorded[offset:]

    # Intact before and after the personal data, beeped over it.
    def error(start: float, end: float) -> float:
        a, b = round(start * RATE), round(end * RATE)
        return windowed_error(signal[a:b], through[a:b])

    # (Opus is lossy: on this noise-like signal the error of audio passed intact is about 0.4.)
    assert error(0.2, 0.9) < 0.6
    assert error(1.8, 2.8) < 0.6
    assert error(1.05, 1.45) > 0.9
    assert status["masked_s"]["pii"] >= 0.5


def test_patch_is_refused_since_the_answer_holds_every_candidate(
    tmp_path: Path, key_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    pub, _ = key_pair
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with relay(tmp_path, pub) as r:
            pc, location = await publish(r, SignalTrack(speechlike(1.0)))
            answer = pc.remoteDescription
            assert answer is not None
            assert "a=candidate:" in answer.sdp  # gathered in full before answering
            assert all(
                line.split()[4] == "127.0.0.1"
                for line in answer.sdp.splitlines()
                if line.startswith("a=candidate:")
            )
            patched = await r.call(
                "PATCH", location, headers={"Content-Type": "application/trickle-ice-sdpfrag", **AUTH}
            )
            assert patched.status == 405
            assert "trickle" in patched.json()["error"]
            assert patched.body.count(b"\n") <= 1
            assert (await r.call("DELETE", location)).status == 204

    asyncio.run(scenario())
    # Logged at debug and all: no SDP, no ICE credentials, no candidate, no address.
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "call " in text  # the relay's own lines are there
    for secret in ("ice-pwd", "ice-ufrag", "fingerprint", "candidate", "127.0.0.1", "v=0"):
        assert secret not in text, secret


def test_bad_offers_and_tokens_get_clear_errors_and_start_no_call(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, _ = key_pair

    async def offer_of(kinds: tuple[str, ...], codec: str | None = None) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            for kind in kinds:
                transceiver = pc.addTransceiver(kind, direction="sendonly")
                if codec is not None:
                    from aiortc.rtcrtpsender import RTCRtpSender

                    caps = RTCRtpSender.getCapabilities(kind).codecs
                    transceiver.setCodecPreferences([c for c in caps if c.mimeType == codec])
            return await offer_from(pc)
        finally:
            await pc.close()

    async def scenario() -> None:
        async with relay(tmp_path, pub) as r:
            good = await offer_of(("audio",))
            cases = {
                "garbage": ("this is not SDP at all", SDP, 400),
                "truncated": ("v=0\r\nm=audio x\r\n", SDP, 400),
                "video only": (await offer_of(("video",)), SDP, 400),
                "audio and video": (await offer_of(("audio", "video")), SDP, 400),
                "PCMU only": (await offer_of(("audio",), "audio/PCMU"), SDP, 400),
                "no ICE": (
                    "\r\n".join(x for x in good.splitlines() if "ice-pwd" not in x) + "\r\n",
                    SDP,
                    400,
                ),
                "JSON": (good, {"Content-Type": "application/json", **AUTH}, 415),
                "no token": (good, {"Content-Type": "application/sdp"}, 401),
                "wrong token": (
                    good,
                    {"Content-Type": "application/sdp", "Authorization": "Bearer nope"},
                    401,
                ),
            }
            for name, (body, headers, expected) in cases.items():
                reply = await r.post("/v1/whip", body, headers)
                assert reply.status == expected, (name, reply.body)
                error = reply.json()["error"]
                assert "\n" not in error
                # Nothing of the offer quoted: no line of it, no address.
                assert not any(len(line) > 8 and line in error for line in body.splitlines()), name
                assert "127.0.0.1" not in error, name
            assert r.server.stats.calls_started == 0
            assert list(r.store.iterdir()) == []
            assert (await r.call("DELETE", "/v1/whip/00000000-0000-4000-8000-000000000000")).status == 404
            assert (await r.call("DELETE", "/v1/whip/not-a-uuid")).status == 404
            assert (await r.call("DELETE", "/v1/whip/x", headers={})).status == 401

    asyncio.run(scenario())


def test_ice_that_never_connects_ends_the_session_and_finalises_the_call(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair

    async def scenario() -> str:
        async with relay(tmp_path, pub, ice_timeout_s=1.0, idle_timeout_s=30.0) as r:
            pc = r.client()
            pc.addTransceiver(SignalTrack(speechlike(1.0)), direction="sendonly")
            offer = await offer_from(pc)
            await pc.close()  # gone before the answer: its candidates lead nowhere
            reply = await r.post("/v1/whip", offer)
            assert reply.status == 201, reply.body
            call_id = reply.headers["Location"].rsplit("/", 1)[1]
            await wait_until(lambda: state_of(r, call_id) == "ended", 10, "the call to end")
            await wait_until(lambda: r.gateway.sessions["publishers"] == 0, 5, "the session to close")
            return call_id

    call_id = asyncio.run(scenario())
    assert len(recording(tmp_path / "store", call_id, key, tmp_path)) == 0  # finalised, and empty


def test_a_client_that_closes_or_vanishes_ends_its_call(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    pub, key = key_pair
    signal = speechlike(1.0)

    async def scenario() -> tuple[str, str]:
        async with relay(tmp_path, pub, ScriptedListener([], lag=0.2), idle_timeout_s=1.0) as r:
            closing, vanishing = SignalTrack(signal), SignalTrack(signal)
            closer, closed_at = await publish(r, closing)
            vanisher, vanished_at = await publish(r, vanishing)
            closed_id, vanished_id = closed_at.rsplit("/", 1)[1], vanished_at.rsplit("/", 1)[1]

            def frames(call_id: str) -> int:
                status = r.server.negotiated_status(call_id)
                return 0 if status is None else status.packets

            # The whole signal has reached the relay (and a little of the silence after it).
            frames_wanted = len(signal) // 960 + 5
            await wait_until(
                lambda: frames(closed_id) >= frames_wanted and frames(vanished_id) >= frames_wanted,
                10,
                "audio",
            )
            # One hangs up (DTLS close_notify, RTCP BYE): its call ends at once, without a DELETE.
            await closer.close()
            await wait_until(lambda: state_of(r, closed_id) == "ended", 5, "the closed call to end")
            assert state_of(r, vanished_id) == "active"
            # The other vanishes: its sockets go without a word. No media for the idle timeout: ended.
            for transceiver in vanisher.getTransceivers():
                transceiver.sender.replaceTrack(None)
                for protocol in transceiver.sender.transport.transport._connection._protocols:
                    assert protocol.transport is not None
                    protocol.transport.close()
            await wait_until(lambda: state_of(r, vanished_id) == "ended", 10, "the vanished call to end")
            await wait_until(lambda: r.gateway.sessions["publishers"] == 0, 5, "the sessions to close")
            return closed_id, vanished_id

    for call_id in asyncio.run(scenario()):
        recorded = recording(tmp_path / "store", call_id, key, tmp_path)
        _, score = align(signal[: RATE // 2], recorded[:RATE])
        assert score > 0.9
        assert len(recorded) >= len(signal)


def test_admission_refuses_a_call_past_max_calls_without_leaking_a_session(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, _ = key_pair

    async def scenario() -> None:
        async with relay(tmp_path, pub, max_calls=1) as r:
            _, location = await publish(r, SignalTrack(speechlike(1.0)))
            pc = r.client()
            pc.addTransceiver(SignalTrack(speechlike(1.0)), direction="sendonly")
            refused = await r.post("/v1/whip", await offer_from(pc))
            assert refused.status == 503
            assert "too many calls" in refused.json()["error"]
            assert r.gateway.sessions["publishers"] == 1
            assert r.server.stats.calls_started == 1
            # Ended over the control API like any call: its WebRTC session closes with it.
            call_id = location.rsplit("/", 1)[1]
            assert (await r.call("DELETE", f"/v1/calls/{call_id}")).status == 204
            await wait_until(lambda: r.gateway.sessions["publishers"] == 0, 5, "the session to close")
            assert (await r.call("DELETE", location)).status == 404

    asyncio.run(scenario())


def test_stopping_the_relay_finalises_a_running_whip_call(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair

    async def scenario() -> str:
        async with relay(tmp_path, pub, ScriptedListener([], lag=0.2)) as r:
            track = SignalTrack(speechlike(1.0))
            _, location = await publish(r, track)
            await wait_until(lambda: track.sent >= RATE, 10, "audio")
            return location.rsplit("/", 1)[1]
        # Leaving the block stops the relay: the call is ended and the session closed (checked there).

    call_id = asyncio.run(scenario())
    assert len(recording(tmp_path / "store", call_id, key, tmp_path)) > RATE // 2


@dataclass(frozen=True)
class FixtureCall:
    recorded: np.ndarray  # the decrypted recording, 48 kHz
    transcript: dict[str, Any]


@pytest.fixture(scope="module")
def fixture_call(tmp_path_factory: pytest.TempPathFactory) -> FixtureCall:
    """The fixture call published over WHIP in real time, through the real listener (Whisper tiny.en and
    the PII detector), ended with DELETE once sent."""
    from bleepline.commands.redact import Redactor
    from bleepline.speech.models import resolve_model
    from bleepline.store.keys import Identity, write_key_pair
    from tests.test_real_peers import CALL, FIXTURES, mono_wav

    work = tmp_path_factory.mktemp("whip-fixture")
    pub, key = write_key_pair(work / "keys", Identity.generate())
    samples, rate = mono_wav(FIXTURES / f"{CALL}.wav")
    assert rate == 8000
    policy = RedactionPolicy()
    redactor = Redactor([load_recipient(pub)], policy, resolve_model())

    async def scenario() -> str:
        async with relay(
            work, pub, delay_s=policy.delay_s, idle_timeout_s=10.0, listener_factory=redactor.listener
        ) as r:
            # 8 kHz as the fixture is: aiortc's encoder resamples it to Opus's 48 kHz, as a browser would.
            track = SignalTrack(samples, rate)
            _, location = await publish(r, track)
            await wait_until(lambda: track.sent >= len(samples), 30, "the fixture to be sent")
            await asyncio.sleep(0.3)  # the last frames' way through the network and the jitter buffer
            ended = await r.call("DELETE", location)
            assert ended.status == 204
            return location.rsplit("/", 1)[1]

    call_id = asyncio.run(scenario())
    transcript = json.loads((work / "store" / f"{call_id}.transcript.json").read_text())
    return FixtureCall(recording(work / "store", call_id, key, work), transcript)


@pytest.mark.slow
def test_a_fixture_call_over_whip_keeps_its_timeline_and_its_plain_speech(fixture_call: FixtureCall) -> None:
    from tests.speech_frames import Frames
    from tests.test_real_peers import CODECS, lag_of, reference, truth

    opus = CODECS["OPUS"]
    ref = reference(opus)
    recorded = fixture_call.recorded
    # Live, the call lasts until it is ended: never shorter than what was sent, never squeezed.
    assert len(ref) - RATE // 50 <= len(recorded) <= len(ref) + 2 * RATE
    lag = lag_of(recorded, ref, RATE)
    assert lag < 0.03 * RATE  # aligned within Opus's own delay (and its resampler's)
    frames = Frames.compare(ref, recorded[lag:], RATE)
    outside = frames.speech.copy()
    for item in truth()["pii"]:
        outside[frames.frames(max(0.0, item["start"] - 0.3), item["end"] + 0.3)] = False
    assert float(np.mean(frames.error[outside] < 0.6)) >= 0.6  # test_real_peers' floor for Opus
    # The transcript: the number redacted, never written.
    text = json.dumps(fixture_call.transcript)
    for digits in ("2025550147", "202 555", "555-0147", "0147"):
        assert digits not in text
    assert any(r["entity"] == "PHONE_NUMBER" for r in fixture_call.transcript["redactions"])


@pytest.mark.slow
def test_a_fixture_call_over_whip_has_every_digit_masked(fixture_call: FixtureCall) -> None:
    from tests.test_real_peers import CODECS, check_redacted

    check_redacted(CODECS["OPUS"], fixture_call.recorded, "WHIP recording")
