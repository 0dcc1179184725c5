"""The live relay over real UDP on 127.0.0.1: a call paced in real time is redacted into a .bleep file,
and garbage, strangers and a stop mid-call neither crash the server nor lose a recording.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bleepline import cli
from bleepline.audio.codecs import PCMU, decoder_for, encoder_for
from bleepline.audio.files import read_audio_chunks
from bleepline.call import Listener
from bleepline.commands.recordings import decrypt_file
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.keys import load_recipient
from bleepline.transport.rtp import RtcpBye, RtpPacket
from tests import harness

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
PACKET = 160  # 20 ms at 8 kHz


@contextmanager
def running(server: RelayServer) -> Iterator[tuple[str, int]]:
    """The server on its own loop in a thread; stopped (and every call finalised) on the way out."""
    with harness.running(server, static=harness.LOOPBACK_ANY):
        assert server.local_address is not None
        yield server.local_address


def make_server(tmp_path: Path, pub: Path, factory: Callable[[int], Listener | None]) -> RelayServer:
    return harness.make_server(tmp_path / "store", pub, factory)


def packets(samples: np.ndarray, ssrc: int) -> list[bytes]:
    encoder = encoder_for(PCMU)
    return [
        RtpPacket(
            payload_type=0,
            sequence=(1000 + i) & 0xFFFF,
            timestamp=(5000 + i * PACKET) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=encoder.encode(samples[i * PACKET : (i + 1) * PACKET]),
            marker=i == 0,
        ).serialize()
        for i in range(len(samples) // PACKET)
    ]


def send_paced(sock: socket.socket, address: tuple[str, int], datagrams: list[bytes]) -> None:
    # Real time, against a deadline per packet: the delay line's clock is the wall clock.
    began = time.monotonic()
    for i, data in enumerate(datagrams):
        wait = began + i * PACKET / 8000 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.sendto(data, address)


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def decoded(path: Path, tmp_path: Path, identity_key: Path) -> np.ndarray:
    wav = tmp_path / f"{path.stem}.wav"
    decrypt_file(path, identity_key, wav)  # raises unless the recording is complete and authentic
    return np.concatenate([c.samples for c in read_audio_chunks(wav)])


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_a_live_call_is_redacted_and_recorded(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    from bleepline.commands.redact import Redactor
    from bleepline.speech.models import resolve_model

    pub, key = key_pair
    policy = RedactionPolicy()
    redactor = Redactor([load_recipient(pub)], policy, resolve_model())
    server = make_server(tmp_path, pub, redactor.listener)
    audio = np.concatenate([c.samples for c in read_audio_chunks(FIXTURES / "phone_awb_8k.wav")])
    sent = audio[4 * 8000 : 12 * 8000]
    truth = json.loads((FIXTURES / "phone_awb_8k.json").read_text())["pii"][0]["digits"]
    with running(server) as address, udp() as sock:
        send_paced(sock, address, packets(sent, ssrc=0x1234))
        sock.sendto(RtcpBye((0x1234,)).serialize(), address)
        store = server.store
        wait_for(lambda: len(list(store.glob("*.transcript.json"))) == 1, 20)
    assert server.stats.calls_started == server.stats.calls_ended == 1
    [recording] = store.glob("*.bleep")
    out = decoded(recording, tmp_path, key)
    assert abs(len(out) - len(sent)) / 8000 < 0.1
    heard = decoder_for(PCMU).decode(encoder_for(PCMU).encode(sent))  # what the relay received
    for digit in truth:
        a, b = round((digit["start"] - 4.0) * 8000), round((digit["end"] - 4.0) * 8000)
        b = min(b, len(out))
        assert np.mean(out[a:b] == heard[a:b]) < 0.01, digit
    transcript = json.loads(next(store.glob("*.transcript.json")).read_text())
    assert transcript["redactions"], transcript
    uuid.UUID(recording.stem)  # named by a fresh UUID, never by the caller's address


def test_garbage_strangers_and_a_stop_mid_call(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    pub, key = key_pair
    server = make_server(tmp_path, pub, lambda rate: None)  # unheard: all masked, and fast
    tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    with running(server) as address, udp() as caller, udp() as stranger:
        for junk in (b"", b"\x00" * 40, b"\x80", b"\xff" * 2000, b"hello world, not rtp"):
            stranger.sendto(junk, address)
        stranger.sendto(RtcpBye((0x55,)).serialize(), address)  # no call from there: a stranger's
        wrong = RtpPacket(payload_type=96, sequence=1, timestamp=0, ssrc=9, payload=b"\x00" * 160)
        stranger.sendto(wrong.serialize(), address)
        send_paced(caller, address, packets(tone, ssrc=0x55))
        # The stranger names the caller's SSRC: the call is keyed by source, so it goes on.
        stranger.sendto(RtcpBye((0x55,)).serialize(), address)
        wait_for(lambda: server.stats.stranger >= 2 and server.active_calls == 1, 5)
        assert server.stats.wrong_payload_type == 1
        assert server.stats.malformed + server.stats.oversize >= 4
    # Stopped with the call still on: it was ended and its files finalised.
    assert server.stats.calls_started == server.stats.calls_ended == 1
    [recording] = server.store.glob("*.bleep")
    assert abs(len(decoded(recording, tmp_path, key)) - len(tone)) / 8000 < 0.1
    assert len(list(server.store.glob("*.transcript.json"))) == 1


@pytest.mark.parametrize("listen", ["nowhere", "host:", ":5000", "host:99999"])
def test_a_bad_listen_address_is_one_line(
    listen: str, tmp_path: Path, key_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, _ = key_pair
    argv = [
        "serve",
        "--rtp-listen",
        listen,
        "--codec",
        "pcmu",
        "--recipient",
        str(pub),
        "--store",
        str(tmp_path / "s"),
    ]
    assert cli.main(argv) == cli.EXIT_ERROR
    assert capsys.readouterr().err.count("\n") == 1


def test_sigterm_ends_the_calls_cleanly_and_exits_0(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    pub, key = key_pair
    store = tmp_path / "store"
    argv = ["serve", "--rtp-listen", "127.0.0.1:0", "--codec", "pcmu", "--recipient", str(pub)]
    process = subprocess.Popen(
        [sys.executable, "-m", "bleepline", *argv, "--store", str(store)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the first line says where it listens (after the models load)
        assert "listening for RTP" in line, line
        host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
        tone = (np.sin(np.arange(4000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
        with udp() as caller:
            send_paced(caller, (host, int(port)), packets(tone, ssrc=7))
        assert "started" in process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "ended (stop)" in err
    [recording] = store.glob("*.bleep")
    assert abs(len(decoded(recording, tmp_path, key)) - len(tone)) / 8000 < 0.1
