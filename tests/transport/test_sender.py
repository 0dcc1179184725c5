"""Tests for the redacted leg's RTP sender: packetizing, timestamps on the call timeline, gaps, RTCP.

Everything runs on generated tones and noise, without sockets or sleeping.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bleepline.audio import g711
from bleepline.audio.codecs import L16_8K, L16_16K, OPUS, PCMU, decoder_for
from bleepline.timeline import AudioChunk
from bleepline.transport.rtp import RtcpBye, RtcpSenderReport, RtpPacket, ntp_timestamp, parse_rtcp
from bleepline.transport.sender import PacedLeg, RtpLegSender
from tests.conftest import noise, sine

_U32 = 1 << 32


def _chunks(samples: np.ndarray, sizes: list[int], rate: int = 8000, start: int = 0) -> list[AudioChunk]:
    chunks = []
    position = 0
    for size in sizes:
        chunks.append(AudioChunk(samples[position : position + size], rate, start + position))
        position += size
    assert position == len(samples)
    return chunks


def _write_all(sender: RtpLegSender, chunks: list[AudioChunk]) -> list[RtpPacket]:
    packets: list[RtpPacket] = []
    for chunk in chunks:
        packets += sender.write(chunk)
    return packets


def _ts_offsets(packets: list[RtpPacket]) -> list[int]:
    return [(p.timestamp - packets[0].timestamp) % _U32 for p in packets]


def test_pcmu_odd_chunks_become_160_sample_packets() -> None:
    audio = noise(1000, seed=1)
    sender = RtpLegSender(PCMU, 0, sample_rate=8000, ssrc=0x1234)
    packets = _write_all(sender, _chunks(audio, [7, 333, 1, 159, 161, 339]))
    assert len(packets) == 6  # 960 whole samples; 40 wait for more audio
    assert all(len(p.payload) == 160 for p in packets)
    assert all(p.ssrc == 0x1234 and p.payload_type == 0 for p in packets)
    assert [(p.sequence - packets[0].sequence) % 65536 for p in packets] == list(range(6))
    assert _ts_offsets(packets) == [160 * i for i in range(6)]
    assert [p.marker for p in packets] == [True] + [False] * 5

    decoder = decoder_for(PCMU)
    decoded = np.concatenate([decoder.decode(p.payload) for p in packets])
    # Exactly what G.711 quantisation makes of the input, nothing else.
    assert np.array_equal(decoded, g711.ulaw_decode(g711.ulaw_encode(audio[:960])))
    assert (sender.packets, sender.octets, sender.gaps) == (6, 960, 0)


def test_sequence_wraps_around() -> None:
    sender = RtpLegSender(PCMU, 0, sample_rate=8000, initial_sequence=65534)
    packets = sender.write(AudioChunk(noise(640), 8000, 0))
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]


def test_timestamp_wraps_around_and_packet_time_follows() -> None:
    sender = RtpLegSender(PCMU, 0, sample_rate=8000, initial_timestamp=_U32 - 200)
    packets = sender.write(AudioChunk(noise(480), 8000, 8000))
    assert [p.timestamp for p in packets] == [_U32 - 200, _U32 - 40, 120]
    assert [sender.packet_time(p) for p in packets] == [1.0, 1.02, 1.04]


def test_gap_jumps_timestamp_and_sets_marker() -> None:
    sender = RtpLegSender(PCMU, 0, sample_rate=8000)
    audio = noise(480, seed=2)
    packets = sender.write(AudioChunk(audio[:320], 8000, 0))
    packets += sender.write(AudioChunk(audio[320:], 8000, 320 + 800))
    assert _ts_offsets(packets) == [0, 160, 320 + 800]
    assert [p.marker for p in packets] == [True, False, True]
    assert sender.gaps == 1
    assert [sender.packet_time(p) for p in packets] == [0.0, 0.02, 0.14]


def test_gap_mid_packet_pads_the_packet_before_jumping() -> None:
    sender = RtpLegSender(L16_8K, 96, sample_rate=8000)
    audio = noise(250, seed=3)
    packets = sender.write(AudioChunk(audio[:100], 8000, 0))
    packets += sender.write(AudioChunk(audio[100:], 8000, 1000))
    packets += sender.flush()
    assert _ts_offsets(packets) == [0, 1000]
    assert [p.marker for p in packets] == [True, True]
    decoder = decoder_for(L16_8K)
    first, second = (decoder.decode(p.payload) for p in packets)
    assert np.array_equal(first[:100], audio[:100])
    assert not first[100:].any()
    assert np.array_equal(second[:150], audio[100:])
    assert not second[150:].any()


def test_gap_shorter_than_a_packet_is_filled_with_silence() -> None:
    sender = RtpLegSender(L16_8K, 96, sample_rate=8000)
    audio = noise(270, seed=4)
    packets = sender.write(AudioChunk(audio[:100], 8000, 0))
    packets += sender.write(AudioChunk(audio[100:], 8000, 150))
    assert [p.marker for p in packets] == [True, False]
    assert _ts_offsets(packets) == [0, 160]
    decoded = np.concatenate([decoder_for(L16_8K).decode(p.payload) for p in packets])
    expected = np.concatenate([audio[:100], np.zeros(50, dtype=np.int16), audio[100:]])[:320]
    assert np.array_equal(decoded, expected)
    assert sender.gaps == 1


def test_flush_pads_the_last_packet_with_silence() -> None:
    sender = RtpLegSender(L16_8K, 96, sample_rate=8000)
    audio = noise(200, seed=5)
    packets = sender.write(AudioChunk(audio, 8000, 0))
    assert len(packets) == 1
    tail = sender.flush()
    assert [p.marker for p in tail] == [False]
    decoded = decoder_for(L16_8K).decode(tail[0].payload)
    assert len(decoded) == 160
    assert np.array_equal(decoded[:40], audio[160:])
    assert not decoded[40:].any()
    assert sender.flush() == []
    # The padding took the timeline up to 320: audio may not land inside it, but may follow it.
    with pytest.raises(ValueError, match="goes back"):
        sender.write(AudioChunk(audio[:10], 8000, 300))
    after = sender.write(AudioChunk(audio[:160], 8000, 320))
    assert [p.marker for p in after] == [True]
    assert (after[0].timestamp - packets[0].timestamp) % _U32 == 320


def test_flush_with_nothing_written() -> None:
    assert RtpLegSender(PCMU, 0, sample_rate=8000).flush() == []


def test_8k_audio_onto_opus_48k() -> None:
    tone = sine(0.5, 8000, frequency=440.0, level=0.5)
    sender = RtpLegSender(OPUS, 111, sample_rate=8000)
    sizes = [97, 160, 3, 1000, 2740]
    packets = _write_all(sender, _chunks(tone, sizes))
    packets += _write_all(sender, _chunks(tone, sizes, start=4000 + 1600))  # after a 0.2 s gap
    packets += sender.flush()
    offsets = _ts_offsets(packets)
    # 0.5 s is 25 packets of 960 ticks; the second half starts 0.7 s (33600 ticks) in, with a marker.
    assert offsets == [960 * i for i in range(25)] + [33600 + 960 * i for i in range(25)]
    assert [i for i, p in enumerate(packets) if p.marker] == [0, 25]
    assert sender.packet_time(packets[25]) == pytest.approx(0.7)

    decoder = decoder_for(OPUS)
    decoded = np.concatenate([decoder.decode(p.payload) for p in packets[:25]]).astype(np.float64)
    assert len(decoded) == 24000
    middle = decoded[4800:19200]  # away from the encoder's start-up and the end
    spectrum = np.abs(np.fft.rfft(middle))
    peak = np.fft.rfftfreq(len(middle), 1 / 48000)[int(np.argmax(spectrum))]
    assert abs(peak - 440.0) < 5.0
    rms = float(np.sqrt(np.mean(middle**2)))
    assert 0.5 * 16384 / np.sqrt(2) < rms < 1.5 * 16384 / np.sqrt(2)


def test_sender_report_and_bye_parse_back() -> None:
    sender = RtpLegSender(PCMU, 0, sample_rate=8000, ssrc=0xCAFEF00D, initial_timestamp=1000)
    packets = sender.write(AudioChunk(noise(800), 8000, 0))
    assert len(packets) == 5

    # Without an epoch the SR's RTP time is the end of the newest packet.
    (report,) = parse_rtcp(sender.sender_report(1_700_000_000.0))
    assert report == RtcpSenderReport(0xCAFEF00D, ntp_timestamp(1_700_000_000.0), 1800, 5, 800)

    # With one, ``now`` maps through the call timeline: 2.5 s after timeline zero is 20000 ticks in.
    sender.epoch_unix = 1_700_000_000.0
    (report,) = parse_rtcp(sender.sender_report(1_700_000_002.5))
    assert isinstance(report, RtcpSenderReport)
    assert report.rtp_timestamp == 1000 + 20000
    assert report.ntp_timestamp == ntp_timestamp(1_700_000_002.5)

    assert parse_rtcp(sender.bye()) == [RtcpBye((0xCAFEF00D,))]
    assert parse_rtcp(sender.bye("call ended")) == [RtcpBye((0xCAFEF00D,), "call ended")]


def test_sender_report_before_any_packet() -> None:
    sender = RtpLegSender(PCMU, 0, sample_rate=8000, initial_timestamp=77)
    (report,) = parse_rtcp(sender.sender_report(1_700_000_000.0))
    assert isinstance(report, RtcpSenderReport)
    assert (report.rtp_timestamp, report.packet_count, report.octet_count) == (77, 0, 0)


def test_ssrc_and_initial_values_are_random() -> None:
    firsts = [
        RtpLegSender(PCMU, 0, sample_rate=8000).write(AudioChunk(noise(160), 8000, 0))[0] for _ in range(8)
    ]
    assert len({p.ssrc for p in firsts}) == 8
    assert len({p.sequence for p in firsts}) > 1
    assert len({p.timestamp for p in firsts}) > 1


def test_bad_use_is_refused() -> None:
    with pytest.raises(ValueError, match="payload type"):
        RtpLegSender(PCMU, 128, sample_rate=8000)
    with pytest.raises(ValueError, match="Opus"):
        RtpLegSender(OPUS, 111, sample_rate=8000, ptime_ms=40)
    with pytest.raises(ValueError, match="ssrc"):
        RtpLegSender(PCMU, 0, sample_rate=8000, ssrc=1 << 32)
    sender = RtpLegSender(PCMU, 0, sample_rate=8000)
    with pytest.raises(ValueError, match="16000 Hz"):
        sender.write(AudioChunk(noise(160), 16000, 0))
    with pytest.raises(ValueError, match="not made a packet"):
        sender.packet_time(RtpPacket(0, 1, 1, sender.ssrc, b""))
    sender.write(AudioChunk(noise(160), 8000, 100))
    with pytest.raises(ValueError, match="goes back"):
        sender.write(AudioChunk(noise(10), 8000, 200))
    with pytest.raises(ValueError, match="SSRC"):
        sender.packet_time(RtpPacket(0, 1, 1, (sender.ssrc + 1) % _U32, b""))
    assert sender.write(AudioChunk(np.zeros(0, dtype=np.int16), 8000, 5000)) == []


def test_no_way_to_send_telephone_events() -> None:
    # Key presses are call content: the redacted leg carries them only as masked audio.
    names = [name.lower() for name in dir(RtpLegSender)]
    assert not any("event" in name or "dtmf" in name for name in names)


_layouts = st.lists(st.tuples(st.integers(1, 500), st.integers(0, 400) | st.just(0)), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(layout=_layouts, first=st.integers(0, 100_000), initial=st.integers(0, _U32 - 1))
def test_timestamps_follow_the_chunk_timeline(
    layout: list[tuple[int, int]], first: int, initial: int
) -> None:
    sender = RtpLegSender(L16_8K, 96, sample_rate=8000, initial_timestamp=initial)
    rng = np.random.default_rng(len(layout))
    reference = np.zeros(first + sum(size + gap for size, gap in layout) + 320, dtype=np.int16)
    packets: list[RtpPacket] = []
    position = first
    for index, (size, gap) in enumerate(layout):
        position += gap if index else 0  # the first chunk starts at ``first``
        samples = rng.integers(-32768, 32768, size=size, dtype=np.int16)
        reference[position : position + size] = samples
        packets += sender.write(AudioChunk(samples, 8000, position))
        position += size
    packets += sender.flush()

    assert packets[0].timestamp == initial
    decoder = decoder_for(L16_8K)
    covered = np.zeros(len(reference), dtype=bool)
    for index, packet in enumerate(packets):
        # timestamp - first == samples before it on the timeline, and the audio sits exactly there.
        at = first + (packet.timestamp - initial) % _U32
        assert sender.packet_time(packet) == at / 8000
        assert np.array_equal(decoder.decode(packet.payload), reference[at : at + 160])
        assert not covered[at : at + 160].any()
        covered[at : at + 160] = True
        if index:
            step = (packet.timestamp - packets[index - 1].timestamp) % _U32
            assert step >= 160
            assert packet.marker == (step > 160)
            assert packet.sequence == (packets[index - 1].sequence + 1) % 65536
    assert packets[0].marker
    # No audio left behind, and the octet count matches what went out.
    assert not reference[~covered].any()
    assert sender.octets == sum(len(p.payload) for p in packets)


@settings(max_examples=40, deadline=None)
@given(layout=_layouts)
def test_resampled_timestamps_follow_the_chunk_timeline(layout: list[tuple[int, int]]) -> None:
    # 8 kHz call audio onto a 16 kHz L16 leg: positions double, runs start where their audio starts.
    sender = RtpLegSender(L16_16K, 97, sample_rate=8000, initial_timestamp=0)
    packets: list[RtpPacket] = []
    run_starts = []
    position = 0
    for index, (size, gap) in enumerate(layout):
        position += gap if index else 0  # the first chunk starts at 0, where timestamp 0 is
        if index == 0 or gap >= 160:
            run_starts.append(position)
        packets += sender.write(AudioChunk(sine(size / 8000, 8000), 8000, position))
        position += size
    packets += sender.flush()
    starts = [p.timestamp for p in packets if p.marker]
    assert starts == [2 * s for s in run_starts]
    for before, after in itertools.pairwise(packets):
        assert after.timestamp - before.timestamp == 320 or after.marker
        assert after.timestamp - before.timestamp >= 320
    # Every input sample is inside some packet: the last packet reaches the end of the audio.
    assert packets[-1].timestamp + 320 >= 2 * position


def test_a_paced_leg_reports_every_five_seconds_or_so_once_it_sends() -> None:
    sent: list[bytes] = []
    leg = PacedLeg(RtpLegSender(PCMU, 0, sample_rate=8000), sent.append, jitter=random.Random(7))
    reports: list[tuple[float, RtcpSenderReport]] = []
    assert leg.report_due(0.0, 1_700_000_000.0) is None  # nothing sent yet: nothing to report
    for step in range(1500):  # 30 s of 20 ms packets, pumped on their own clock
        now = step * 0.02
        leg.write(AudioChunk(sine(0.02, 8000), 8000, step * 160))
        leg.pump(now)
        report = leg.report_due(now, 1_700_000_000.0 + now)
        if report is not None:
            (parsed,) = parse_rtcp(report)
            assert isinstance(parsed, RtcpSenderReport)
            reports.append((now, parsed))
    times = [0.0] + [at for at, _ in reports]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(reports) >= 4
    assert all(2.5 - 0.02 <= gap <= 7.5 + 0.02 for gap in gaps), gaps
    assert len({round(gap, 1) for gap in gaps}) > 1  # drawn, not fixed: legs must not report in step
    for at, parsed in reports:
        assert parsed.ssrc == leg.sender.ssrc
        assert parsed.packet_count == round(at / 0.02) + 1  # every packet made by then has gone
    assert leg.reports == len(reports)


def test_a_failed_leg_stops_reporting() -> None:
    def refuse(data: bytes) -> None:
        raise OSError("network unreachable")

    leg = PacedLeg(RtpLegSender(PCMU, 0, sample_rate=8000), refuse, jitter=random.Random(1))
    leg.write(AudioChunk(sine(0.02, 8000), 8000, 0))
    leg.pump(0.0)
    assert leg.failed
    assert all(leg.report_due(t, 1_700_000_000.0 + t) is None for t in (0.0, 10.0, 20.0))
