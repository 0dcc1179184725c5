from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bleepline.audio.codecs import L16_8K, OPUS, PCMU, decoder_for, encoder_for
from bleepline.timeline import AudioChunk
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import RtpPacket, TelephoneEvent

PACKET = 160  # 20 ms at 8 kHz
PT_EVENT = 101
FAST = settings(max_examples=150, deadline=None)


def l16_packet(seq: int, ts: int, value: int, ssrc: int = 1, marker: bool = False) -> RtpPacket:
    """A packet of one constant sample value, so the output shows where each packet landed."""
    payload = np.full(PACKET, value, dtype=">i2").tobytes()
    return RtpPacket(11, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker)


def joined(chunks: list[AudioChunk]) -> np.ndarray:
    """All chunks as one array, checking that they are contiguous from sample 0."""
    position = 0
    for chunk in chunks:
        assert chunk.start == position
        assert chunk.sample_rate == 8000
        position = chunk.end
    return np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.int16)


def values(audio: np.ndarray) -> list[int]:
    """The packet values in order, one per 160 samples (0 for silence)."""
    return [int(audio[i]) for i in range(0, len(audio), PACKET)]


def run(receiver: CallReceiver, schedule: list[tuple[float, RtpPacket]], until: float) -> list[AudioChunk]:
    """Deliver packets at their arrival times, polling every 10 ms of virtual time up to ``until``."""
    chunks: list[AudioChunk] = []
    pending = sorted(schedule, key=lambda item: item[0])
    now = 0.0
    while now <= until:
        while pending and pending[0][0] <= now:
            arrival, packet = pending.pop(0)
            receiver.receive(packet, arrival)
        chunks += receiver.poll(now)
        now = round(now + 0.01, 6)
    return chunks


def l16_receiver(window_ms: int = 60) -> CallReceiver:
    return CallReceiver(L16_8K, telephone_event_pt=PT_EVENT, reorder_window_ms=window_ms)


def test_in_order_pcmu_stream_is_contiguous_and_equal_to_the_decoded_audio() -> None:
    rng = np.random.default_rng(1)
    audio = rng.integers(-20000, 20000, size=PACKET * 50, dtype=np.int16)
    encoder, decoder = encoder_for(PCMU), decoder_for(PCMU)
    payloads = [encoder.encode(audio[i : i + PACKET]) for i in range(0, len(audio), PACKET)]
    receiver = CallReceiver(PCMU, telephone_event_pt=PT_EVENT)
    schedule = [
        (i * 0.02, RtpPacket(0, 1000 + i, 5000 + i * PACKET, 7, payload))
        for i, payload in enumerate(payloads)
    ]
    out = joined(run(receiver, schedule, 2.0))
    expected = np.concatenate([decoder.decode(p) for p in payloads])
    assert np.array_equal(out, expected)
    assert receiver.stats.packets == 50
    assert receiver.stats.bytes == 50 * PACKET
    assert receiver.stats.lost == receiver.stats.late == receiver.stats.duplicates == 0


def test_lost_packet_becomes_silence_of_its_length_and_does_not_stall_output() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, i + 1)) for i in range(10) if i != 4]
    chunks: list[AudioChunk] = []
    for arrival, packet in schedule:
        receiver.receive(packet, arrival)
        chunks += receiver.poll(arrival)
    # Packet 5 came at 0.10; by 0.16 the window is over and output goes past the hole.
    chunks += receiver.poll(0.16)
    assert sum(len(c) for c in chunks) >= 6 * PACKET
    chunks += receiver.poll(1.0)
    assert values(joined(chunks)) == [1, 2, 3, 4, 0, 6, 7, 8, 9, 10]
    assert receiver.stats.lost == 1


def test_reordering_within_the_window_is_repaired() -> None:
    receiver = l16_receiver()
    order = [0, 1, 3, 2, 4, 6, 5, 7]
    schedule = [(n * 0.02, l16_packet(seq, seq * PACKET, seq + 1)) for n, seq in enumerate(order)]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert receiver.stats.reordered == 2
    assert receiver.stats.lost == receiver.stats.late == 0


def test_a_packet_later_than_the_window_is_dropped_and_counted() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, i + 1)) for i in range(8) if i != 3]
    schedule.append((0.30, l16_packet(3, 3 * PACKET, 4)))
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1, 2, 3, 0, 5, 6, 7, 8]
    assert receiver.stats.late == 1
    assert receiver.stats.lost == 1


def test_duplicates_are_dropped_and_counted() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, i + 1)) for i in range(5)]
    schedule += [(0.021, l16_packet(1, PACKET, 2)), (0.5, l16_packet(2, 2 * PACKET, 3))]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1, 2, 3, 4, 5]
    assert receiver.stats.duplicates == 2
    assert receiver.stats.late == 0


def test_silence_suppression_gap_is_filled_not_squeezed_out() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(3)]
    # The talker went quiet for a second; the next packet says so with a timestamp jump and the marker.
    schedule += [(1.06 + i * 0.02, l16_packet(3 + i, (53 + i) * PACKET, 2, marker=i == 0)) for i in range(2)]
    out = joined(run(receiver, schedule, 2.0))
    assert len(out) == 55 * PACKET
    assert values(out) == [1, 1, 1] + [0] * 50 + [2, 2]
    assert receiver.stats.lost == 0


def test_sequence_and_timestamp_wrap_in_the_middle_of_a_call() -> None:
    receiver = l16_receiver()
    first_seq, first_ts = 0xFFFC, 0xFFFFFFFF - 2 * PACKET
    schedule = [(i * 0.02, l16_packet(first_seq + i, first_ts + i * PACKET, i + 1)) for i in range(8)]
    schedule[4], schedule[5] = (schedule[4][0], schedule[5][1]), (schedule[5][0], schedule[4][1])
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert receiver.stats.lost == receiver.stats.late == receiver.stats.timestamp_jumps == 0


def test_ssrc_change_continues_the_timeline_after_the_old_stream() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(100 + i, 9000 + i * PACKET, 1, ssrc=1)) for i in range(5)]
    # After a transfer: new SSRC, numbering and clock; 100 ms of quiet (0.08 to 0.20) between the two.
    schedule += [(0.20 + i * 0.02, l16_packet(7 + i, 123456 + i * PACKET, 2, ssrc=2)) for i in range(5)]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1] * 5 + [0] * 5 + [2] * 5
    assert receiver.stats.ssrc_changes == 1
    assert receiver.stats.lost == 0


def test_timestamp_restart_within_a_stream_does_not_warp_the_timeline() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, 50_000 + i * PACKET, 1)) for i in range(5)]
    # The sender's clock restarts after 0.44 s of quiet (0.08 to 0.52): the quiet stays on the timeline.
    schedule += [(0.5 + i * 0.02, l16_packet(5 + i, 3_000_000_000 + i * PACKET, 2)) for i in range(5)]
    out = joined(run(receiver, schedule, 1.0))
    # The restart's first packet is unconfirmed and dropped; its slot is part of the silence.
    assert values(out) == [1] * 5 + [0] * 21 + [2] * 4
    assert receiver.stats.timestamp_jumps == 1
    assert receiver.stats.stray == 1


def test_garbage_opus_payload_is_a_decode_error_and_its_time_is_silence() -> None:
    encoder = encoder_for(OPUS)
    tone = (8000 * np.sin(np.arange(960 * 3) * 0.05)).astype(np.int16)
    payloads = [encoder.encode(tone[i : i + 960]) for i in range(0, len(tone), 960)]
    payloads[1] = b"\xff" * 3
    receiver = CallReceiver(OPUS, telephone_event_pt=None)
    for i, payload in enumerate(payloads):
        receiver.receive(RtpPacket(111, i, i * 960, 5, payload), i * 0.02)
    chunks = receiver.flush()
    assert receiver.stats.decode_errors == 1
    position = 0
    for chunk in chunks:
        assert chunk.start == position
        assert chunk.sample_rate == 48000
        position = chunk.end
    assert position == 3 * 960


def test_unknown_payload_type_is_counted_and_not_taken_for_loss() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(4)]
    schedule[2] = (0.04, RtpPacket(13, 2, 2 * PACKET, 1, b"\x40"))  # comfort noise
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1, 1, 0, 1]
    assert receiver.stats.unknown_payload_type == 1
    assert receiver.stats.lost == 0


def _event(seq: int, ts: int, duration: int, end: bool = False) -> RtpPacket:
    # Event 7 is the key; it must not appear in anything the receiver gives out.
    payload = TelephoneEvent(7, end, 10, duration).serialize()
    return RtpPacket(PT_EVENT, seq, ts, 1, payload)


def test_telephone_events_become_keypress_spans_on_the_timeline() -> None:
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(5)]
    # A key pressed at 0.10 s for 0.12 s; the sender keeps sending audio beside it.
    start = 5 * PACKET
    schedule += [(0.10 + n * 0.02, _event(5 + 2 * n, start, (n + 1) * PACKET)) for n in range(5)]
    schedule += [(0.10 + n * 0.02, l16_packet(6 + 2 * n, start + n * PACKET, 1)) for n in range(5)]
    schedule += [(0.20 + n * 0.001, _event(15 + n, start, 6 * PACKET, end=True)) for n in range(3)]
    chunks: list[AudioChunk] = []
    active: list[float | None] = []
    pending = sorted(schedule, key=lambda item: item[0])
    for arrival, packet in pending:
        receiver.receive(packet, arrival)
        chunks += receiver.poll(arrival)
        active.append(receiver.keypress_active_since)
    chunks += receiver.poll(1.0)
    assert 0.1 in active
    assert receiver.keypress_active_since is None
    spans = receiver.take_keypresses()
    assert spans == [(0.1, 0.22)]
    assert receiver.take_keypresses() == []
    assert values(joined(chunks)) == [1] * 10
    assert receiver.stats.lost == 0
    assert "7" not in repr(receiver.stats)


@FAST
@given(
    count=st.integers(1, 60),
    start_seq=st.integers(0, 0xFFFF),
    start_ts=st.integers(0, 0xFFFFFFFF),
    faults=st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(0, 0.15)), min_size=60, max_size=60),
)
def test_random_loss_reorder_and_duplication_keep_one_contiguous_timeline(
    count: int, start_seq: int, start_ts: int, faults: list[tuple[bool, bool, float]]
) -> None:
    window = 0.06
    receiver = l16_receiver(round(window * 1000))
    schedule: list[tuple[float, RtpPacket]] = []
    for i in range(count):
        dropped, duplicated, delay = faults[i]
        if dropped:
            continue
        packet = l16_packet(start_seq + i, start_ts + i * PACKET, i + 1)
        schedule.append((i * 0.02 + delay, packet))
        if duplicated:
            schedule.append((i * 0.02 + delay / 2, packet))
    chunks = run(receiver, schedule, count * 0.02 + 0.2)
    chunks += receiver.flush()
    out = joined(chunks)  # contiguous from 0, so no overlap
    stats = receiver.stats
    assert stats.packets == len(schedule)
    if not schedule:
        assert len(out) == 0
        return
    # Each packet is 160 samples of value i + 1: the timeline must place it at its timestamp.
    seen = [v for v in values(out) if v]
    assert seen == sorted(set(seen))
    origin = (seen[0] - 1) * PACKET
    for v in seen:
        at = (v - 1) * PACKET - origin
        assert np.all(out[at : at + PACKET] == v)
    # Total emitted samples equal the span of timestamps covered.
    assert len(out) == seen[-1] * PACKET - origin
    assert np.count_nonzero(out) == len(seen) * PACKET
    received = {int(p.payload[1]) for _, p in schedule}
    # Every packet is accounted for: emitted once, or dropped under exactly one counter.
    assert len(schedule) == len(seen) + stats.duplicates + stats.late
    if all(delay < window for dropped, _, delay in faults[:count] if not dropped):
        # Within the window nothing is late and every packet received is in place.
        assert stats.late == 0
        assert set(seen) == received
        assert stats.lost == (max(received) - min(received) + 1) - len(received)
        assert stats.duplicates == len(schedule) - len(received)


# --- timestamp jumps: the sender's clock against the arrival times ----------------------------------------


@pytest.mark.parametrize("jump_s", [1.5, 60.0, 3000.0])
def test_a_forward_timestamp_jump_with_no_wall_clock_gap_is_placed_by_arrival(jump_s: float) -> None:
    # Same SSRC and numbering, timestamps far ahead, 20 ms later: a B2BUA splicing in another source.
    # Inside the timestamp window (1 h), so nothing is a stray; on the timeline it would be a long silence
    # that puts the rest of the call ahead of the release clock.
    receiver = l16_receiver()
    jump = round(jump_s * 8000)
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(5)]
    schedule += [(i * 0.02, l16_packet(i, jump + i * PACKET, 2)) for i in range(5, 10)]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1] * 5 + [2] * 5
    assert receiver.stats.timestamp_jumps == 1
    assert receiver.stats.lost == receiver.stats.stray == receiver.stats.late == 0


def test_a_timestamp_step_within_the_mismatch_allowed_stays_on_the_timeline() -> None:
    # Under a second ahead of the arrival times: jitter as far as the receiver can tell, kept as sent.
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(5)]
    schedule += [(i * 0.02, l16_packet(i, (40 + i) * PACKET, 2)) for i in range(5, 10)]  # 0.8 s ahead
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1] * 5 + [0] * 40 + [2] * 5
    assert receiver.stats.timestamp_jumps == 0


@pytest.mark.parametrize("held_s", [0.0, 0.4])
def test_silence_suppression_keeps_its_gap_when_timestamps_and_arrivals_advance_together(
    held_s: float,
) -> None:
    # DTX: 3 s of quiet with nothing sent; the talk spurt after it carries the 3 s in its timestamps, and
    # arrives 3 s later. The last packet before the quiet may have been held up by the network (jitter).
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(4)]
    schedule.append((0.08 + held_s, l16_packet(4, 4 * PACKET, 1)))
    schedule += [(3.02 + i * 0.02, l16_packet(i, (150 + i) * PACKET, 2)) for i in range(5, 10)]
    out = joined(run(receiver, schedule, 4.0))
    assert values(out) == [1] * 5 + [0] * 150 + [2] * 5
    assert receiver.stats.timestamp_jumps == 0
    assert receiver.stats.lost == 0


def test_a_network_stall_then_a_burst_is_placed_by_timestamps() -> None:
    # Arrival runs ahead of the timestamps (1.5 s stall, then the held packets all at once): that is the
    # network, and the timestamps tell the truth about the audio. No jump, no silence inserted.
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, i + 1)) for i in range(5)]
    schedule += [(1.6 + i * 0.001, l16_packet(i, i * PACKET, i + 1)) for i in range(5, 15)]
    out = joined(run(receiver, schedule, 2.5))
    assert values(out) == list(range(1, 16))
    assert receiver.stats.timestamp_jumps == 0


def test_a_backward_timestamp_jump_is_placed_by_arrival_not_dropped_as_late() -> None:
    # Timestamps 5 s back (inside the 10 s a late packet may lag), numbering on: placed by its timestamps
    # it would fall on audio already out and be dropped, and the call would lag the release clock.
    receiver = l16_receiver()
    back = 5 * 8000
    schedule = [(i * 0.02, l16_packet(i, back + i * PACKET, 1)) for i in range(5)]
    schedule += [(i * 0.02, l16_packet(i, i * PACKET, 2)) for i in range(5, 10)]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1] * 5 + [2] * 5
    assert receiver.stats.timestamp_jumps == 1
    assert receiver.stats.late == receiver.stats.lost == receiver.stats.stray == 0


def test_a_small_step_back_after_a_quiet_is_placed_by_arrival() -> None:
    # A step back the size of one packet after 1.5 s of quiet: never the network (it cannot move a
    # timestamp back); placed by arrival, the quiet stays and nothing overlaps what went out.
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(i, i * PACKET, 1)) for i in range(5)]
    schedule += [(1.6 + (i - 5) * 0.02, l16_packet(i, (i - 2) * PACKET, 2)) for i in range(5, 10)]
    out = joined(run(receiver, schedule, 2.5))
    assert values(out) == [1] * 5 + [0] * 75 + [2] * 5
    assert receiver.stats.timestamp_jumps == 1
    assert receiver.stats.late == 0


@pytest.mark.parametrize("jump_s", [5.0, 60.0])
def test_packets_reordered_across_a_timestamp_jump_land_on_their_own_side(jump_s: float) -> None:
    receiver = l16_receiver()
    jump = round(jump_s * 8000)
    packets = [l16_packet(i, i * PACKET, i + 1) for i in range(5)]
    packets += [l16_packet(i, jump + i * PACKET, i + 1) for i in range(5, 10)]
    # 6 comes first and finds the jump; 4 (before it) and 5 (after it) come behind it.
    order = [0, 1, 2, 3, 6, 4, 5, 7, 8, 9]
    schedule = [(n * 0.02, packets[i]) for n, i in enumerate(order)]
    out = joined(run(receiver, schedule, 1.0))
    assert receiver.stats.timestamp_jumps == 1
    assert receiver.stats.late == receiver.stats.lost == 0
    if jump_s < 10:
        assert values(out) == list(range(1, 11))
        assert receiver.stats.reordered == 2
    else:
        # Further behind the new run than a late packet may lag (10 s), 4's timestamp cannot be told
        # from a stray's: dropped, counted once, and its place is silence.
        assert values(out) == [1, 2, 3, 4, 0, 6, 7, 8, 9, 10]
        assert receiver.stats.stray == 1


def test_a_restart_counts_its_unconfirmed_first_packet_once() -> None:
    # The first packet of a numbering restart is dropped as a stray; its number is spent, not lost too.
    receiver = l16_receiver()
    schedule = [(i * 0.02, l16_packet(100 + i, i * PACKET, 1)) for i in range(5)]
    schedule += [(i * 0.02, l16_packet(40_000 + i, i * PACKET, 2)) for i in range(5, 10)]
    out = joined(run(receiver, schedule, 1.0))
    assert values(out) == [1] * 5 + [0] + [2] * 4
    assert receiver.stats.stray == 1
    assert receiver.stats.lost == receiver.stats.late == 0
