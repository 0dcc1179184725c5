"""SRTP calls over the control API, on real sockets: an RTP/SAVP offer with SDES keys is answered with the
relay's own key; the caller's packets are authenticated and decrypted (forgeries and replays dropped and
counted), the recording holds the audio, and the redacted leg comes back encrypted under the answer's key.
Plain RTP is refused unless the operator allows it.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from pathlib import Path

import numpy as np
import pytest
from pylibsrtp import Policy, Session

from bleepline.audio.codecs import PCMU, decoder_for, encoder_for
from bleepline.transport.rtp import RtpPacket, is_rtcp, parse_rtp
from tests.conftest import sine
from tests.harness import request, sdp_offer
from tests.test_call import ScriptedListener
from tests.test_control import AUTH
from tests.test_legs import DELAY_S, JSON, Collector, relay
from tests.test_serve import decoded, udp, wait_for

SSRC = 0x5EC12E7
PACKET = 160


def savp_offer(port: int, key_salt: bytes) -> str:
    key = base64.b64encode(key_salt).decode("ascii")
    return sdp_offer(
        f"audio {port} RTP/SAVP 0",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}",
        "a=rtcp-mux",
        "a=sendrecv",
    )


def answer_key(answer: str) -> bytes:
    (line,) = [line for line in answer.splitlines() if line.startswith("a=crypto:")]
    tag, suite, params = line[len("a=crypto:") :].split()[:3]
    assert (tag, suite) == ("1", "AES_CM_128_HMAC_SHA1_80")
    return base64.b64decode(params.removeprefix("inline:").split("|")[0])


def session(key_salt: bytes, direction: int) -> Session:
    return Session(
        Policy(key=key_salt, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    )


def test_an_srtp_call_is_decrypted_recorded_and_its_redacted_leg_comes_back_encrypted(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, identity = key_pair
    caller_key = secrets.token_bytes(30)
    audio = sine(1.6, 8000, 440.0, 0.3)
    encoder = encoder_for(PCMU)
    plain = [
        RtpPacket(0, 100 + i, 8000 + i * PACKET, SSRC, encoder.encode(audio[i * PACKET : (i + 1) * PACKET]))
        for i in range(len(audio) // PACKET)
    ]
    outbound = session(caller_key, Policy.SSRC_ANY_OUTBOUND)
    protected = [outbound.protect(packet.serialize()) for packet in plain]
    with (
        udp() as sock,
        relay(tmp_path, pub, ScriptedListener([], lag=0.1), allow_plain_rtp=False) as (
            server,
            api,
        ),
    ):
        port = int(sock.getsockname()[1])
        body = json.dumps({"sdp": savp_offer(port, caller_key), "redacted": f"127.0.0.1:{port}"}).encode()
        status, headers, reply = request(api, "POST", "/v1/calls", body, JSON)
        assert status == 201, reply
        answer = reply.decode()
        assert " RTP/SAVP " in answer
        assert "a=sendrecv" in answer
        relay_key = answer_key(answer)
        assert relay_key != caller_key
        relay_port = int(next(line for line in answer.splitlines() if line.startswith("m=audio")).split()[1])
        leg = Collector(sock)
        began = time.monotonic()
        for i, data in enumerate(protected):
            time.sleep(max(0.0, began + i * 0.02 - time.monotonic()))
            sock.sendto(data, ("127.0.0.1", relay_port))
            if i == 20:
                sock.sendto(protected[5], ("127.0.0.1", relay_port))  # a replay
                forged = bytearray(data)
                forged[-1] ^= 0x01  # the authentication tag no longer matches
                sock.sendto(bytes(forged), ("127.0.0.1", relay_port))
        call_id = headers["Location"].rsplit("/", 1)[1]
        time.sleep(DELAY_S + 0.5)
        status, _, reply = request(api, "GET", headers["Location"], None, AUTH)
        drops = json.loads(reply)["drops"]
        assert drops["malformed"] == 2, drops  # the replay and the forgery, counted and dropped
        status, _, _ = request(api, "DELETE", headers["Location"], None, AUTH)
        assert status == 204
        wait_for(lambda: len(leg.received) >= len(plain), 5)
        leg.close()

    decoder = decoder_for(PCMU)
    sent = np.concatenate([decoder.decode(packet.payload) for packet in plain])
    recording = decoded(server.store / f"{call_id}.bleep", tmp_path, identity)
    # Cleared by the listener (all but its last 0.1 s, released before the hang-up): the audio itself.
    heard = len(sent) - 1600
    assert np.array_equal(recording[:heard], sent[:heard])

    inbound = session(relay_key, Policy.SSRC_ANY_INBOUND)
    packets = []
    for _, data in leg.received:
        if is_rtcp(data):
            continue
        assert encoder.encode(audio[:PACKET]) not in data  # nothing in the clear on the wire
        packets.append(parse_rtp(inbound.unprotect(data)))
    packets.sort(key=lambda packet: packet.sequence)
    back = np.concatenate([decoder.decode(packet.payload) for packet in packets])
    assert np.array_equal(back[:heard], sent[:heard])


def test_plain_rtp_is_refused_unless_allowed(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    plain_offer = savp_offer(5000, secrets.token_bytes(30)).replace("RTP/SAVP", "RTP/AVP")
    plain_offer = "".join(line + "\r\n" for line in plain_offer.splitlines() if "a=crypto" not in line)
    with relay(tmp_path, key_pair[0], None, allow_plain_rtp=False) as (server, api):
        status, _, reply = request(api, "POST", "/v1/calls", json.dumps({"sdp": plain_offer}).encode(), JSON)
        assert status == 400
        assert "plain RTP is not allowed" in json.loads(reply)["error"]
        assert server.stats.calls_started == 0


def test_an_srtp_answer_key_never_reaches_the_log(
    tmp_path: Path, key_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caller_key = secrets.token_bytes(30)
    with relay(tmp_path, key_pair[0], None, allow_plain_rtp=False) as (_, api):
        body = json.dumps({"sdp": savp_offer(5000, caller_key)}).encode()
        status, headers, reply = request(api, "POST", "/v1/calls", body, JSON)
        assert status == 201
        relay_key = answer_key(reply.decode())
        request(api, "DELETE", headers["Location"], None, AUTH)
    for key in (caller_key, relay_key):
        assert base64.b64encode(key).decode() not in caplog.text
        assert key.hex() not in caplog.text


def test_an_srtp_caller_behind_nat_is_latched_on_its_first_authentic_packet(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, identity = key_pair
    caller_key = secrets.token_bytes(30)
    audio = sine(1.0, 8000, 440.0, 0.3)
    encoder, decoder = encoder_for(PCMU), decoder_for(PCMU)
    plain = [
        RtpPacket(0, i, i * PACKET, SSRC, encoder.encode(audio[i * PACKET : (i + 1) * PACKET]))
        for i in range(len(audio) // PACKET)
    ]
    outbound = session(caller_key, Policy.SSRC_ANY_OUTBOUND)
    forger = session(secrets.token_bytes(30), Policy.SSRC_ANY_OUTBOUND)
    with udp() as nat, udp() as stranger, relay(tmp_path, pub, ScriptedListener([], lag=0.1)) as (_, api):
        # The offer names port 5000; NAT makes the packets come from another port altogether.
        body = json.dumps({"sdp": savp_offer(5000, caller_key)}).encode()
        status, headers, reply = request(api, "POST", "/v1/calls", body, JSON)
        assert status == 201
        relay_port = int(
            next(line for line in reply.decode().splitlines() if line.startswith("m=")).split()[1]
        )
        # A stranger gets there first, with packets under a key of its own: they cannot latch.
        for packet in plain[:5]:
            stranger.sendto(forger.protect(packet.serialize()), ("127.0.0.1", relay_port))
        began = time.monotonic()
        for i, packet in enumerate(plain):
            time.sleep(max(0.0, began + i * 0.02 - time.monotonic()))
            nat.sendto(outbound.protect(packet.serialize()), ("127.0.0.1", relay_port))
        time.sleep(DELAY_S + 0.3)
        status, _, reply = request(api, "GET", headers["Location"], None, AUTH)
        assert json.loads(reply)["packets"] == len(plain)
        assert request(api, "DELETE", headers["Location"], None, AUTH)[0] == 204
    call_id = headers["Location"].rsplit("/", 1)[1]
    recording = decoded(tmp_path / "store" / f"{call_id}.bleep", tmp_path, identity)
    sent = np.concatenate([decoder.decode(packet.payload) for packet in plain])
    heard = len(sent) - 1600
    assert np.array_equal(recording[:heard], sent[:heard])
