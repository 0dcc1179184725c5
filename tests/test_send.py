"""`bleepline send` into a bare UDP socket: 20 ms G.711 packets paced in real time, contiguous sequence
numbers and timestamps, the file's audio exactly (through G.711), an RTCP BYE at the end, and one-line
errors.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio import g711
from bleepline.cli import EXIT_ERROR, EXIT_USAGE, main
from bleepline.commands.send import parse_destination, stream_file
from bleepline.transport.rtp import RtcpBye, RtpPacket, is_rtcp, parse_rtcp, parse_rtp
from tests.conftest import encode_file, noise, sine

PACKET = 160  # 20 ms at 8 kHz


class Sink:
    """A bare UDP socket on 127.0.0.1 that keeps every datagram with its arrival time, until a BYE."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.got: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:  # timed out, or closed
                return
            self.got.append((time.monotonic(), data))
            if is_rtcp(data):
                return

    def join(self) -> None:
        self._thread.join(15)
        self.sock.close()

    def rtp(self) -> list[tuple[float, RtpPacket]]:
        return [(at, parse_rtp(data)) for at, data in self.got if not is_rtcp(data)]


@pytest.fixture
def sink() -> Iterator[Sink]:
    receiver = Sink()
    yield receiver
    receiver.join()


def send(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["send", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("bleepline: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_a_file_goes_out_paced_contiguous_and_exact_then_a_bye(
    tmp_path: Path, sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = noise(8000 * 2 + 50, seed=3)  # 2 s and a partial packet, which goes out padded
    wav = encode_file(tmp_path / "call.wav", samples, 8000, "pcm_s16le")
    code, out, err = send(capsys, wav, "--to", f"127.0.0.1:{sink.port}", "--ssrc", "0x1234")
    sink.join()
    assert code == 0, err
    assert "sent 101 packets" in out
    assert "RTCP BYE" in out

    packets = sink.rtp()
    assert len(packets) == 101
    first = packets[0][1]
    for i, (_, packet) in enumerate(packets):
        assert packet.payload_type == 0
        assert packet.ssrc == 0x1234
        assert len(packet.payload) == PACKET
        assert packet.sequence == (first.sequence + i) & 0xFFFF
        assert packet.timestamp == (first.timestamp + i * PACKET) & 0xFFFFFFFF
        assert packet.marker == (i == 0)

    # Paced in real time: about 20 ms apart, never bunched, the whole lasting the file's length.
    arrivals = [at for at, _ in packets]
    gaps = np.diff(arrivals)
    assert abs(statistics.median(gaps) - 0.020) < 0.002, gaps
    assert np.mean(gaps < 0.010) < 0.05, gaps
    assert abs((arrivals[-1] - arrivals[0]) - 100 * 0.020) < 0.15

    # The BYE names the call's SSRC and comes last, once the last packet's audio has played out.
    bye_at, bye = sink.got[-1]
    assert is_rtcp(bye)
    byes = [report for report in parse_rtcp(bye) if isinstance(report, RtcpBye)]
    assert [b.ssrcs for b in byes] == [(0x1234,)]
    assert 0.010 < bye_at - arrivals[-1] < 0.1

    # The audio is the file's, through G.711 and back; the padding is silence.
    heard = np.concatenate([g711.ulaw_decode(packet.payload) for _, packet in packets])
    assert np.array_equal(heard[: len(samples)], g711.ulaw_decode(g711.ulaw_encode(samples)))
    assert np.array_equal(heard[len(samples) :], g711.ulaw_decode(g711.ulaw_encode(np.zeros(110, np.int16))))


def test_other_rates_and_channels_are_resampled_to_8k_mono_pcma(
    tmp_path: Path, sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = encode_file(tmp_path / "tone.wav", sine(0.5, 16000, 440.0), 16000, "pcm_s16le", channels=2)
    code, _, err = send(capsys, wav, "--to", f"127.0.0.1:{sink.port}", "--codec", "pcma")
    sink.join()
    assert code == 0, err
    packets = [packet for _, packet in sink.rtp()]
    assert len(packets) == 25  # 0.5 s of 20 ms packets at 8 kHz
    assert {(p.payload_type, len(p.payload)) for p in packets} == {(8, PACKET)}
    heard = np.concatenate([g711.alaw_decode(p.payload) for p in packets]).astype(float)
    spectrum = np.abs(np.fft.rfft(heard))
    assert abs(np.argmax(spectrum) * 8000 / len(heard) - 440.0) < 5.0


def test_a_stall_moves_the_schedule_on_rather_than_sending_a_burst(tmp_path: Path, sink: Sink) -> None:
    wav = encode_file(tmp_path / "call.wav", noise(8000, seed=5), 8000, "pcm_s16le")
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 10:
            now[0] += 0.5  # the machine stalls for half a second

    result = stream_file(wav, parse_destination(f"127.0.0.1:{sink.port}"), clock=lambda: now[0], sleep=sleep)
    sink.join()
    assert result.packets == 50
    assert result.slips == 1
    # The packet due during the stall went out late; the next one still waited its full 20 ms after it,
    # as did every other: none went out back to back to catch up.
    assert len(sleeps) == 49 + 1  # the gaps between packets, and the wait before the BYE
    assert all(abs(s - 0.020) < 1e-6 for s in sleeps)
    assert result.wall_s == pytest.approx(1.0 + 0.5, abs=1e-6)
    assert len(sink.rtp()) == 50


@pytest.mark.parametrize(
    ("to", "fragment"),
    [
        ("nowhere", "must be HOST:PORT"),
        ("127.0.0.1:", "must be HOST:PORT"),
        (":5000", "must be HOST:PORT"),
        ("127.0.0.1:0", "must be HOST:PORT"),
        ("127.0.0.1:70000", "must be HOST:PORT"),
        ("no-such-host.invalid:5000", "cannot resolve"),
    ],
)
def test_a_bad_address_is_one_line(
    to: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = encode_file(tmp_path / "call.wav", noise(800), 8000, "pcm_s16le")
    code, out, err = send(capsys, wav, "--to", to)
    assert code == EXIT_ERROR
    assert_one_line(err, fragment, to)
    assert out == ""


def test_a_bad_file_or_ssrc_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "notes.wav"
    garbage.write_text("not audio")
    wav = encode_file(tmp_path / "call.wav", noise(800), 8000, "pcm_s16le")
    for argv, fragment in (
        ([tmp_path / "missing.wav"], "does not exist"),
        ([garbage], "is not an audio file"),
        ([wav, "--ssrc", "seven"], "--ssrc"),
        ([wav, "--ssrc", str(2**32)], "--ssrc"),
    ):
        code, out, err = send(capsys, *argv, "--to", "127.0.0.1:5004")
        assert code == EXIT_ERROR, argv
        assert_one_line(err, fragment)
        assert out == ""
    with pytest.raises(SystemExit) as exit_info:
        main(["send", str(wav), "--to", "127.0.0.1:5004", "--codec", "opus"])
    assert exit_info.value.code == EXIT_USAGE


def test_nobody_listening_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # the port is free: the first packet draws a "port unreachable"
    wav = encode_file(tmp_path / "call.wav", noise(8000 // 5), 8000, "pcm_s16le")
    code, _, err = send(capsys, wav, "--to", f"127.0.0.1:{port}")
    assert code == EXIT_ERROR
    assert_one_line(err, "nothing is listening")
