"""WHEP live listening over real WebRTC on 127.0.0.1: a listener hears the call's released (redacted) audio
— the recording's audio, through Opus — and only what was released after it was let in; several listen at
once; listener tokens open their own call's WHEP endpoint and nothing else, and die with the call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bleepline.timeline import PiiSpan
from tests.test_call import ScriptedListener
from tests.test_whip import (
    AUTH,
    RATE,
    Relay,
    SignalTrack,
    align,
    offer_from,
    publish,
    recording,
    relay,
    speechlike,
    state_of,
    wait_until,
)


@dataclass
class Heard:
    """What a WHEP client received: mono 48 kHz samples, and the loop time each frame came."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    ended: bool = False

    def samples(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


async def _collect(track: MediaStreamTrack, heard: Heard) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            heard.ended = True
            return
        assert isinstance(frame, av.AudioFrame)
        data = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).astype(np.int32)
        heard.frames.append((data.sum(axis=1) // data.shape[1]).astype(np.int16))
        heard.times.append(loop.time())


_READERS: set[asyncio.Task[None]] = set()


def whep_offer_pc(r: Relay, heard: Heard) -> RTCPeerConnection:
    pc = r.client()
    pc.addTransceiver("audio", direction="recvonly")

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(_collect(track, heard))
        _READERS.add(task)
        task.add_done_callback(_READERS.discard)

    return pc


async def listen(r: Relay, call_id: str, token: str, heard: Heard) -> tuple[RTCPeerConnection, str]:
    """A WHEP client on ``call_id`` with ``token``; returns its peer connection and session Location."""
    pc = whep_offer_pc(r, heard)
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    reply = await r.post(f"/v1/calls/{call_id}/whep", await offer_from(pc), headers)
    assert reply.status == 201, reply.body
    assert reply.headers["Content-Type"].startswith("application/sdp")
    await pc.setRemoteDescription(RTCSessionDescription(reply.body.decode(), "answer"))
    return pc, reply.headers["Location"]


async def grant(r: Relay, call_id: str) -> str:
    reply = await r.post(f"/v1/calls/{call_id}/listeners", b"", AUTH)
    assert reply.status == 201, reply.body
    body = reply.json()
    assert body["whep"] == f"/v1/calls/{call_id}/whep"
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 32
    return str(body["token"])


def test_a_listener_hears_the_released_audio_and_nothing_from_before_it_joined(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair
    signal = speechlike(6.0, seed=3)
    # Personal data at 3.5-4.0 s, which the listener hears after it joins: beeped for it too.
    listener = ScriptedListener([PiiSpan(3.5, 4.0, "CREDIT_CARD", 0.9, final=True)], lag=0.2)

    async def scenario() -> tuple[str, Heard, float]:
        async with relay(tmp_path, pub, listener) as r:
            track = SignalTrack(signal)
            _, location = await publish(r, track)
            call_id = location.rsplit("/", 1)[1]
            call = r.server.running_call(call_id)
            assert call is not None
            # Join 2.5 s in: about 1.5 s of the call has been released (the delay is 1 s) by then.
            await wait_until(lambda: track.sent >= round(2.5 * RATE), 10, "the call to be under way")
            token = await grant(r, call_id)
            released_before = call.live.session.delay.released_until
            heard = Heard()
            _, whep_location = await listen(r, call_id, token, heard)
            assert whep_location.startswith(f"/v1/calls/{call_id}/whep/")
            await wait_until(lambda: track.sent >= len(signal) + RATE // 2, 15, "the signal to be sent")
            assert (await r.call("DELETE", location)).status == 204
            # The tail the end released at once (the last D seconds) plays out, then the listener closes.
            await wait_until(lambda: heard.ended or r.gateway.sessions["listeners"] == 0, 10, "the listener")
            await wait_until(lambda: r.gateway.sessions["listeners"] == 0, 10, "the listener to close")
            return call_id, heard, released_before

    call_id, heard, released_before = asyncio.run(scenario())
    recorded = recording(tmp_path / "store", call_id, key, tmp_path)
    got = heard.samples()
    loud = np.flatnonzero(np.abs(got) > 500)
    assert len(loud) > 2 * RATE  # it heard the call
    # Where the first audible second it got sits in the recording: never before it joined.
    first = loud[0]
    piece = got[first : first + RATE]
    offset, score = align(piece, recorded)
    assert score > 0.9  # the recording's audio, through Opus
    assert offset >= (released_before - 0.05) * RATE, (offset / RATE, released_before)
    assert offset <= (released_before + 1.0) * RATE  # and near live, not behind
    # The stretch with personal data: the listener got it beeped, exactly as the recording has it.
    beep_at = round(3.55 * RATE) - offset + first
    heard_beep = got[beep_at : beep_at + round(0.4 * RATE)]
    b_offset, b_score = align(heard_beep, recorded)
    assert b_score > 0.9
    assert abs(b_offset - round(3.55 * RATE)) < 0.1 * RATE
    through = recorded[round(3.55 * RATE) : round(3.95 * RATE)].astype(np.float64)
    original = signal[round(3.55 * RATE) : round(3.95 * RATE)].astype(np.float64)
    assert abs(np.dot(through, original)) / (np.linalg.norm(through) * np.linalg.norm(original)) < 0.1


def test_two_listeners_hear_the_same_call_and_leave_independently(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, key = key_pair
    signal = speechlike(4.0, seed=5)

    async def scenario() -> tuple[str, Heard, Heard, Heard]:
        async with relay(tmp_path, pub, ScriptedListener([], lag=0.2)) as r:
            track = SignalTrack(signal)
            _, location = await publish(r, track)
            call_id = location.rsplit("/", 1)[1]
            first, second, third = Heard(), Heard(), Heard()
            _, first_at = await listen(r, call_id, await grant(r, call_id), first)
            _, second_at = await listen(r, call_id, "whip-test-token", second)  # the control token works too
            assert first_at != second_at
            assert r.gateway.sessions["listeners"] == 2
            await wait_until(lambda: track.sent >= 2 * RATE, 10, "2 s of the call")
            assert (await r.call("DELETE", first_at)).status == 204
            assert (await r.call("DELETE", first_at)).status == 404
            assert r.gateway.sessions["listeners"] == 1
            count = len(first.frames)
            await listen(r, call_id, await grant(r, call_id), third)
            await wait_until(lambda: track.sent >= len(signal), 10, "the signal to be sent")
            assert len(first.frames) <= count + 2  # nothing after it left
            await r.call("DELETE", location)
            await wait_until(lambda: r.gateway.sessions["listeners"] == 0, 10, "the listeners to close")
            return call_id, first, second, third

    call_id, first, second, third = asyncio.run(scenario())
    recorded = recording(tmp_path / "store", call_id, key, tmp_path)
    for name, heard in (("first", first), ("second", second), ("third", third)):
        got = heard.samples()
        loud = np.flatnonzero(np.abs(got) > 500)
        assert len(loud) > RATE // 2, name
        _, score = align(got[loud[0] : loud[0] + RATE // 2], recorded)
        assert score > 0.9, name


def test_a_listener_token_opens_its_own_calls_whep_endpoint_and_nothing_else(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, _ = key_pair

    async def scenario() -> None:
        async with relay(tmp_path, pub, ScriptedListener([], lag=0.2), max_listeners_per_call=2) as r:
            _, a_location = await publish(r, SignalTrack(speechlike(1.0)))
            _, b_location = await publish(r, SignalTrack(speechlike(1.0)))
            a, b = a_location.rsplit("/", 1)[1], b_location.rsplit("/", 1)[1]
            token = await grant(r, a)
            other = await grant(r, a)
            bearer = {"Authorization": f"Bearer {token}"}
            sdp = {"Content-Type": "application/sdp", **bearer}
            offer = await offer_from(whep_offer_pc(r, Heard()))
            # Out of its scope: 403, and nothing done.
            assert (await r.call("GET", "/v1/calls", bearer)).status == 403
            assert (await r.call("GET", f"/v1/calls/{a}", bearer)).status == 403
            assert (await r.call("DELETE", f"/v1/calls/{a}", bearer)).status == 403
            assert (await r.call("DELETE", a_location, bearer)).status == 403
            assert (await r.call("GET", "/metrics", bearer)).status == 403
            assert (await r.post(f"/v1/calls/{a}/listeners", b"", bearer)).status == 403
            assert (await r.post(f"/v1/calls/{b}/whep", offer, sdp)).status == 403
            assert (await r.post("/v1/whip", offer, sdp)).status == 403
            assert state_of(r, a) == "active"
            # No token, or a wrong one: 401.
            plain = {"Content-Type": "application/sdp"}
            assert (await r.post(f"/v1/calls/{a}/whep", offer, plain)).status == 401
            wrong = {**plain, "Authorization": f"Bearer {token[:-2]}xx"}
            assert (await r.post(f"/v1/calls/{a}/whep", offer, wrong)).status == 401
            # Its own call's WHEP endpoint: yes; and DELETE of its own session, not another token's.
            heard = Heard()
            _, mine = await listen(r, a, token, heard)
            assert (await r.call("DELETE", mine, {"Authorization": f"Bearer {other}"})).status == 403
            # Bad offers: 400; past the per-call limit: 503; an unknown call: 404.
            assert (await r.post(f"/v1/calls/{a}/whep", "not sdp", sdp)).status == 400
            sendonly = r.client()
            sendonly.addTransceiver(SignalTrack(speechlike(0.1)), direction="sendonly")
            assert (await r.post(f"/v1/calls/{a}/whep", await offer_from(sendonly), sdp)).status == 400
            await listen(r, a, other, Heard())
            full = await r.post(f"/v1/calls/{a}/whep", await offer_from(whep_offer_pc(r, Heard())), sdp)
            assert full.status == 503
            unknown = "00000000-0000-4000-8000-000000000000"
            control = {"Content-Type": "application/sdp", **AUTH}
            assert (await r.post(f"/v1/calls/{unknown}/whep", offer, control)).status == 404
            assert (await r.post(f"/v1/calls/{unknown}/listeners", b"", AUTH)).status == 404
            assert (await r.call("DELETE", mine, bearer)).status == 204
            # The call ends: its tokens die with it, and it takes no more listeners.
            assert (await r.call("DELETE", a_location)).status == 204
            await wait_until(lambda: r.gateway.sessions["listeners"] == 0, 10, "the listeners to close")
            assert (await r.post(f"/v1/calls/{a}/whep", offer, sdp)).status == 401
            assert (await r.post(f"/v1/calls/{a}/whep", offer, control)).status == 404
            assert (await r.post(f"/v1/calls/{a}/listeners", b"", AUTH)).status == 404
            assert (await r.call("DELETE", b_location)).status == 204

    asyncio.run(scenario())


def test_a_listener_that_never_connects_is_closed_and_the_call_goes_on(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, _ = key_pair

    async def scenario() -> None:
        async with relay(tmp_path, pub, ScriptedListener([], lag=0.2), ice_timeout_s=1.0) as r:
            track = SignalTrack(speechlike(1.0))
            _, location = await publish(r, track)
            call_id = location.rsplit("/", 1)[1]
            pc = whep_offer_pc(r, Heard())
            offer = await offer_from(pc)
            await pc.close()  # gone before the answer
            reply = await r.post(
                f"/v1/calls/{call_id}/whep", offer, {"Content-Type": "application/sdp", **AUTH}
            )
            assert reply.status == 201
            started = time.monotonic()
            await wait_until(lambda: r.gateway.sessions["listeners"] == 0, 10, "the listener to be given up")
            assert time.monotonic() - started < 5
            call = r.server.running_call(call_id)
            assert call is not None
            assert len(call.live.session.sinks) == 1  # only the recording again
            assert state_of(r, call_id) == "active"
            assert (await r.call("DELETE", location)).status == 204

    asyncio.run(scenario())
