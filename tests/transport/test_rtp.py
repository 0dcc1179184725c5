from __future__ import annotations

import contextlib
import itertools
import random
import subprocess
import sys
from collections.abc import Callable

import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given, settings
from hypothesis import strategies as st

from bleepline.errors import BleeplineError
from bleepline.transport.errors import MalformedPacketError, RtcpError, RtpError, TelephoneEventError
from bleepline.transport.rtp import (
    DtmfEventSpan,
    ExtendedSequence,
    ExtendedTimestamp,
    RtcpBye,
    RtcpOther,
    RtcpSenderReport,
    RtpExtension,
    RtpPacket,
    TelephoneEvent,
    TelephoneEventTracker,
    empty_receiver_report,
    is_rtcp,
    ntp_timestamp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
    seq_distance,
    ts_distance,
)

# Property tests stay well under half a second each (the suite's budget is a few seconds on two shared
# cores); no deadline, since a loaded machine would make one flaky.
FAST = settings(max_examples=200, deadline=None)
STATEFUL = settings(max_examples=80, deadline=None)


def wire(text: str) -> bytes:
    """Bytes from hex written with spaces between fields."""
    return bytes.fromhex(text)


# --- RTP fixtures -------------------------------------------------------------------------------------

# PCMU, seq 1234, ts 160000, ssrc 0x12345678, four payload bytes.
RTP_MINIMAL = wire("80 00 04d2 00027100 12345678 fffefdfc")
# Every optional part: P, X, two CSRCs, marker, payload type 101, all counters at their maximum (the
# wrap), a one-word RFC 8285 extension, a telephone-event payload and four bytes of padding.
RTP_FULL = wire("b2 e5 ffff ffffffff deadbeef 00000001 00000002 bede0001 10ff0000 058a0320 00000004")


def test_parse_rtp_reads_a_minimal_packet() -> None:
    packet = parse_rtp(RTP_MINIMAL)
    assert packet == RtpPacket(0, 1234, 160000, 0x12345678, wire("fffefdfc"))
    assert not packet.marker
    assert packet.csrc == ()
    assert packet.extension is None
    assert packet.padding == 0


def test_parse_rtp_reads_csrcs_extension_marker_and_padding() -> None:
    packet = parse_rtp(RTP_FULL)
    assert packet.payload_type == 101
    assert packet.marker
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (0xFFFF, 0xFFFFFFFF, 0xDEADBEEF)
    assert packet.csrc == (1, 2)
    assert packet.extension == RtpExtension(0xBEDE, wire("10ff0000"))
    assert packet.payload == wire("058a0320")
    assert packet.padding == 4


@pytest.mark.parametrize("fixture", [RTP_MINIMAL, RTP_FULL])
def test_serialize_writes_the_parsed_packet_back_byte_for_byte(fixture: bytes) -> None:
    assert parse_rtp(fixture).serialize() == fixture


def test_serialize_builds_the_wire_format_from_fields() -> None:
    packet = RtpPacket(
        101,
        0xFFFF,
        0xFFFFFFFF,
        0xDEADBEEF,
        wire("058a0320"),
        marker=True,
        csrc=(1, 2),
        extension=RtpExtension(0xBEDE, wire("10ff0000")),
        padding=4,
    )
    assert packet.serialize() == RTP_FULL


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (
            wire("80 00 04d2 00027100 123456"),
            "short",
            "RTP packet is shorter than its 12-byte header (11 bytes)",
        ),
        (b"", "short", "RTP packet is shorter than its 12-byte header (0 bytes)"),
        (wire("40 00 04d2 00027100 12345678"), "version", "RTP packet has version 1, expected 2"),
        (wire("00 00 04d2 00027100 12345678"), "version", "RTP packet has version 0, expected 2"),
        (
            wire("81 00 04d2 00027100 12345678 0000"),
            "csrc",
            "RTP packet of 14 bytes is too short for its CSRC count of 1",
        ),
        (
            wire("90 00 04d2 00027100 12345678 bede"),
            "extension",
            "RTP packet of 14 bytes ends inside its extension header",
        ),
        (
            wire("90 00 04d2 00027100 12345678 bede0002 00000000"),
            "extension",
            "RTP header extension of 8 bytes runs past the end of a 20-byte packet",
        ),
        (
            wire("a0 00 04d2 00027100 12345678 ffff00"),
            "padding",
            "RTP padding count is 0; it must count at least its own byte",
        ),
        (
            wire("a0 00 04d2 00027100 12345678 0005"),
            "padding",
            "RTP padding count 5 is more than the 2 bytes after the header",
        ),
        (
            # Padding may not eat into the CSRC list.
            wire("a1 00 04d2 00027100 12345678 00000006"),
            "padding",
            "RTP padding count 6 is more than the 0 bytes after the header",
        ),
    ],
)
def test_parse_rtp_rejects_malformed_packets_with_a_specific_message(
    data: bytes, reason: str, message: str
) -> None:
    with pytest.raises(RtpError) as raised:
        parse_rtp(data)
    assert str(raised.value) == message
    assert raised.value.reason == reason


def test_rtp_errors_are_value_errors_and_bleepline_errors() -> None:
    # The endpoint catches MalformedPacketError; ValueError keeps aiortc-style callers working.
    assert issubclass(RtpError, MalformedPacketError)
    assert issubclass(RtpError, ValueError)
    assert issubclass(RtpError, BleeplineError)


def test_rtp_error_messages_never_quote_the_payload() -> None:
    payload = b"\x42" * 40
    data = wire("a0 00 04d2 00027100 12345678") + payload + bytes((200,))
    with pytest.raises(RtpError) as raised:
        parse_rtp(data)
    assert "42" not in str(raised.value)
    assert "B" * 4 not in str(raised.value)


def test_rtp_packet_repr_shows_the_header_and_only_the_payload_length() -> None:
    packet = RtpPacket(0, 7, 160, 0xABCDEF01, b"secret audio", marker=True)
    assert repr(packet) == "RtpPacket(pt=0, seq=7, ts=160, ssrc=0xabcdef01, 12 payload bytes, marker)"
    assert "secret" not in repr(parse_rtp(packet.serialize()))


@pytest.mark.parametrize(
    "fields",
    [
        {"payload_type": 128},
        {"payload_type": -1},
        {"sequence": 0x10000},
        {"timestamp": 1 << 32},
        {"ssrc": -1},
        {"padding": 256},
        {"csrc": tuple(range(16))},
    ],
)
def test_rtp_packet_refuses_header_fields_that_do_not_fit(fields: dict[str, int]) -> None:
    values = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0, "payload": b""} | fields
    with pytest.raises(ValueError, match="out of range"):
        RtpPacket(**values)  # type: ignore[arg-type]


def test_rtp_extension_must_be_whole_words() -> None:
    with pytest.raises(ValueError, match="whole 32-bit words"):
        RtpExtension(0xBEDE, b"\x10\xff\x00")


def test_rtp_extension_repr_hides_its_data() -> None:
    assert repr(RtpExtension(0xBEDE, bytes(8))) == "RtpExtension(profile=0xbede, 8 bytes)"


rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.binary(max_size=12).map(lambda data: data[: len(data) // 4 * 4]),
    ),
    padding=st.integers(0, 255),
)


@FAST
@given(rtp_packets)
def test_rtp_build_then_parse_gives_the_same_packet(packet: RtpPacket) -> None:
    assert parse_rtp(packet.serialize()) == packet


@FAST
@given(st.binary(max_size=80))
def test_parse_rtp_raises_only_rtp_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    # Whatever parses is consistent enough to build again, to the same length.
    assert len(packet.serialize()) == len(data)


@FAST
@given(st.binary(min_size=12, max_size=80))
def test_parse_rtp_raises_only_rtp_error_on_version_2_noise(noise: bytes) -> None:
    # Random bytes mostly fail the version test; force it so the later checks see noise too.
    data = bytes((0x80 | noise[0] & 0x3F,)) + noise[1:]
    with contextlib.suppress(RtpError):
        parse_rtp(data)


def test_parse_rtp_reads_what_aiortc_writes() -> None:
    theirs = aiortc_rtp.RtpPacket(payload_type=8, marker=1, sequence_number=65535, timestamp=4, ssrc=99)
    theirs.payload = b"\xd5" * 160
    theirs.csrc = [7]
    ours = parse_rtp(theirs.serialize())
    assert ours == RtpPacket(8, 65535, 4, 99, b"\xd5" * 160, marker=True, csrc=(7,))


def test_aiortc_reads_what_serialize_writes() -> None:
    ours = RtpPacket(0, 42, 320, 0x1234, bytes(range(160)), marker=True, padding=3)
    theirs = aiortc_rtp.RtpPacket.parse(ours.serialize())
    fields = (theirs.payload_type, theirs.marker, theirs.sequence_number, theirs.timestamp, theirs.ssrc)
    assert fields == (0, 1, 42, 320, 0x1234)
    assert (theirs.payload, theirs.padding_size) == (bytes(range(160)), 3)


# --- Demultiplexing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (RTP_MINIMAL, False),
        (RTP_FULL, False),  # marker set, payload type 101: second byte 229
        (wire("80 c8"), True),  # SR
        (wire("80 c9 0001 12345678"), True),  # RR
        (wire("80 cf"), True),  # XR (207): past aiortc's 192-208 range, still RTCP
        (wire("80 c0"), True),  # 192, first of RFC 5761's RTCP range
        (wire("80 df"), True),  # 223, last of it
        (wire("80 bf"), False),  # 191: RTP, marker set, payload type 63
        (wire("80 e0"), False),  # 224: RTP, marker set, payload type 96
        (wire("80"), False),
        (b"", False),
    ],
)
def test_is_rtcp_tells_rtcp_from_rtp_by_the_second_byte(data: bytes, expected: bool) -> None:
    assert is_rtcp(data) is expected


# --- Sequence and timestamp arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        (10, 12, 2),
        (12, 10, -2),
        (65535, 0, 1),
        (0, 65535, -1),
        (65530, 5, 11),
        (0, 32767, 32767),
        (0, 32768, -32768),
    ],
)
def test_seq_distance_is_signed_across_the_wrap(a: int, b: int, distance: int) -> None:
    assert seq_distance(a, b) == distance


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        (160, 320, 160),
        (0xFFFFFF60, 0x00000040, 0xA0 + 0x40),
        (0x00000040, 0xFFFFFF60, -(0xA0 + 0x40)),
        (0, 0x7FFFFFFF, 0x7FFFFFFF),
        (0, 0x80000000, -0x80000000),
    ],
)
def test_ts_distance_is_signed_across_the_wrap(a: int, b: int, distance: int) -> None:
    assert ts_distance(a, b) == distance


@FAST
@given(st.integers(0, 0xFFFF), st.integers(-0x8000, 0x7FFF))
def test_seq_distance_inverts_wrapping_addition(a: int, step: int) -> None:
    assert seq_distance(a, (a + step) & 0xFFFF) == step


@FAST
@given(st.integers(0, 0xFFFFFFFF), st.integers(-0x80000000, 0x7FFFFFFF))
def test_ts_distance_inverts_wrapping_addition(a: int, step: int) -> None:
    assert ts_distance(a, (a + step) & 0xFFFFFFFF) == step


def test_extended_sequence_counts_on_across_the_wrap() -> None:
    extended = ExtendedSequence()
    assert [extended.extend(seq) for seq in (65534, 65535, 0, 1)] == [131070, 131071, 131072, 131073]
    assert extended.highest == 131073


def test_extended_sequence_starts_in_the_second_cycle_so_late_packets_stay_positive() -> None:
    extended = ExtendedSequence()
    assert extended.extend(2) == 65538
    assert extended.extend(65535) == 65535  # three behind, from before the wrap


def test_extended_sequence_places_packets_reordered_around_the_wrap() -> None:
    extended = ExtendedSequence()
    assert extended.extend(65534) == 131070
    assert extended.extend(0) == 131072
    assert extended.extend(65535) == 131071  # late, back in the old cycle
    assert extended.extend(1) == 131073
    assert extended.highest == 131073


def test_extended_sequence_gives_duplicates_and_gaps_their_own_numbers() -> None:
    extended = ExtendedSequence()
    assert extended.extend(100) == 65636
    assert extended.extend(100) == 65636
    assert extended.extend(3100) == 65636 + 3000  # max_dropout ahead: still a gap of lost packets
    assert extended.extend(3000) == 65636 + 2900  # max_misorder behind: still a late packet
    assert extended.discarded == 0


def test_extended_sequence_drops_a_single_stray_and_keeps_counting() -> None:
    extended = ExtendedSequence()
    assert extended.extend(1000) == 66536
    assert extended.extend(40000) is None
    assert extended.extend(1001) == 66537
    assert extended.extend(899) is None  # 102 behind: too late to place
    assert extended.extend(1002) == 66538
    assert (extended.discarded, extended.restarts) == (2, 0)


def test_extended_sequence_follows_a_restart_once_two_packets_agree() -> None:
    extended = ExtendedSequence()
    extended.extend(1000)
    assert extended.extend(1001) == 66537
    assert extended.extend(50000) is None  # first of the new run: could be a stray
    assert extended.extend(50001) == 66537 + 2  # confirmed: the run continues the count
    assert extended.extend(50002) == 66537 + 3
    assert extended.extend(1002) is None  # the old run is now the stray
    assert (extended.discarded, extended.restarts) == (2, 1)


def test_extended_sequence_does_not_take_a_duplicated_stray_for_a_restart() -> None:
    extended = ExtendedSequence()
    extended.extend(1000)
    assert extended.extend(50000) is None
    assert extended.extend(50000) is None
    assert extended.extend(1001) == 66537
    assert extended.restarts == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 2**32), st.integers(1, 3000))
def test_extended_sequence_recovers_the_true_count_under_gaps_and_swaps(
    first: int, seed: int, largest_step: int
) -> None:
    # A seeded walk, not a drawn list: long walks cross the wrap several times and stay cheap to draw.
    chance = random.Random(seed)
    true_counts = [first]
    for _ in range(300):
        true_counts.append(true_counts[-1] + chance.choice((1, 1, 1, 2, chance.randint(1, largest_step))))
    arrival = list(true_counts)
    # Swap neighbours to model reordering where the later one stays within max_misorder.
    for index in range(len(arrival) - 1):
        if chance.random() < 0.2 and arrival[index + 1] - arrival[index] <= 100:
            arrival[index], arrival[index + 1] = arrival[index + 1], arrival[index]
    extended = ExtendedSequence()
    offsets = set()
    for count in arrival:
        value = extended.extend(count & 0xFFFF)
        assert value is not None
        offsets.add(value - count)
    assert len(offsets) == 1


def test_extended_timestamp_counts_on_across_the_wrap_and_repeats() -> None:
    extended = ExtendedTimestamp(8000)
    base = 1 << 32
    assert extended.extend(0xFFFFFF60) == base + 0xFFFFFF60
    assert extended.extend(0x00000000) == base + 0x100000000
    assert extended.extend(0x00000000) == base + 0x100000000  # RFC 4733 repeats its timestamp
    assert extended.extend(0xFFFFFF60) == base + 0xFFFFFF60  # late, before the wrap


def test_extended_timestamp_keeps_a_long_hold_on_the_clock() -> None:
    extended = ExtendedTimestamp(8000)
    extended.extend(1000)
    thirty_minutes = 30 * 60 * 8000
    assert extended.extend(1000 + thirty_minutes) == (1 << 32) + 1000 + thirty_minutes
    assert extended.restarts == 0


def test_extended_timestamp_puts_a_restarted_run_right_after_the_old_one() -> None:
    extended = ExtendedTimestamp(8000)  # a restart leaves 20 ms: 160 ticks
    start = extended.extend(5000)
    assert start is not None
    assert extended.extend(5160) == start + 160
    new_base = 5160 + 2_000_000_000  # far beyond an hour at 8 kHz
    assert extended.extend(new_base) is None
    # Confirmed by a packet with the same timestamp, as RFC 4733 events send them.
    assert extended.extend(new_base) == start + 160 + 160
    assert extended.extend(new_base + 160) == start + 160 + 320
    assert extended.restarts == 1


def test_extended_timestamp_treats_a_long_step_back_as_a_jump() -> None:
    extended = ExtendedTimestamp(8000, max_late=1.0)
    extended.extend(100_000)
    assert extended.extend(100_000 - 8000) is not None
    assert extended.extend(100_000 - 8001) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ExtendedTimestamp(0), "clock rate must be positive"),
        (lambda: ExtendedSequence(max_dropout=0), "max_ahead must be"),
        (lambda: ExtendedSequence(max_dropout=40000), "max_ahead must be"),
        (lambda: ExtendedSequence(max_misorder=-1), "max_behind must be"),
    ],
)
def test_unwrappers_refuse_windows_that_cannot_work(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_extended_sequence_refuses_values_beyond_16_bits() -> None:
    with pytest.raises(ValueError, match=r"value must be 0\.\.65535"):
        ExtendedSequence().extend(65536)


# --- RTCP ---------------------------------------------------------------------------------------------

RTCP_SR_ONE_BLOCK = wire(
    "81 c8 000c 12345678 e6a1b2c3 80000000 00027100 00000064 00003e80"
    " deadbeef 00000000 00010064 00000010 00000000 00000000"
)
RTCP_SDES_CNAME = wire("81 ca 0003 12345678 0104 61626364 0000")
RTCP_BYE_DONE = wire("81 cb 0003 12345678 04 646f6e65 000000")
SENDER_REPORT = RtcpSenderReport(0x12345678, 0xE6A1B2C380000000, 160000, 100, 16000)


def test_parse_rtcp_reads_a_compound_of_sr_sdes_and_bye() -> None:
    reports = parse_rtcp(RTCP_SR_ONE_BLOCK + RTCP_SDES_CNAME + RTCP_BYE_DONE)
    assert reports == [SENDER_REPORT, RtcpOther(202), RtcpBye((0x12345678,), "done")]


def test_parse_rtcp_counts_receiver_reports_and_feedback_as_other() -> None:
    rr = empty_receiver_report(0x12345678)
    nack = wire("81 cd 0003 00000001 00000002 00640000")
    assert parse_rtcp(rr + nack) == [RtcpOther(201), RtcpOther(205)]


def test_parse_rtcp_reads_a_bye_without_reason_or_sources() -> None:
    assert parse_rtcp(wire("80 cb 0000")) == [RtcpBye(())]
    assert parse_rtcp(wire("82 cb 0002 00000001 00000002")) == [RtcpBye((1, 2))]


def test_parse_rtcp_replaces_bytes_of_a_reason_that_are_not_utf8() -> None:
    (bye,) = parse_rtcp(wire("81 cb 0002 00000001 02 ff41 00"))
    assert bye == RtcpBye((1,), "\ufffdA")


def test_parse_rtcp_honours_padding_on_the_last_packet() -> None:
    padded_bye = wire("a0 cb 0001 00000004")  # a BYE with no sources and four bytes of padding
    assert parse_rtcp(empty_receiver_report(1) + padded_bye) == [RtcpOther(201), RtcpBye(())]


def test_bye_reason_stays_out_of_the_repr() -> None:
    bye = RtcpBye((0x12345678,), "my card is 4111")
    assert "card" not in repr(bye)
    assert "4111" not in repr(bye)


def test_sender_report_serializes_to_the_wire_format() -> None:
    assert SENDER_REPORT.serialize() == wire(
        "80 c8 0006 12345678 e6a1b2c3 80000000 00027100 00000064 00003e80"
    )


def test_empty_receiver_report_is_eight_bytes() -> None:
    assert empty_receiver_report(0x12345678) == wire("80 c9 0001 12345678")


def test_bye_serializes_its_reason_padded_to_a_word() -> None:
    assert RtcpBye((0x12345678,), "done").serialize() == RTCP_BYE_DONE
    assert RtcpBye((1, 2)).serialize() == wire("82 cb 0002 00000001 00000002")
    assert RtcpBye((1,), "").serialize() == wire("81 cb 0001 00000001")


def test_a_built_compound_parses_back() -> None:
    compound = empty_receiver_report(9) + RtcpBye((9,), "call ended").serialize()
    assert parse_rtcp(compound) == [RtcpOther(201), RtcpBye((9,), "call ended")]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RtcpBye(tuple(range(32))), "at most 31 sources"),
        (lambda: RtcpBye((1,), "x" * 256), "at most 255 UTF-8 bytes"),
        (lambda: RtcpBye((1 << 32,)), "ssrc must be"),
        (lambda: RtcpSenderReport(0, 1 << 64, 0, 0, 0), "ntp_timestamp must be"),
        (lambda: RtcpSenderReport(0, 0, 0, -1, 0), "packet_count must be"),
        (lambda: empty_receiver_report(-1), "ssrc must be"),
    ],
)
def test_rtcp_builders_refuse_fields_that_do_not_fit(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"", "empty", "RTCP packet is empty"),
        (wire("80 c9 00"), "truncated", "RTCP packet at byte 0 is shorter than its 4-byte header"),
        (
            wire("80 c9 0001 12345678 80c9"),
            "truncated",
            "RTCP packet at byte 8 is shorter than its 4-byte header",
        ),
        (wire("40 c9 0001 12345678"), "version", "RTCP packet at byte 0 has version 1, expected 2"),
        (
            wire("80 60 0001 12345678"),
            "type",
            "RTCP packet at byte 0 has type 96, outside RTCP's 192-223",
        ),
        (
            wire("80 c9 0002 12345678"),
            "truncated",
            "RTCP packet at byte 0 declares 12 bytes; 8 remain",
        ),
        (
            wire("a0 c9 0001 12345600"),
            "padding",
            "RTCP packet at byte 0 has padding count 0 for a body of 4 bytes",
        ),
        (
            wire("a0 c9 0001 12345605"),
            "padding",
            "RTCP packet at byte 0 has padding count 5 for a body of 4 bytes",
        ),
        (
            wire("a0 c9 0000"),
            "padding",
            "RTCP packet at byte 0 has padding count 0 for a body of 0 bytes",
        ),
        (
            wire("80 c8 0001 12345678"),
            "sender_report",
            "RTCP SR with 0 report blocks needs 24 bytes, has 4",
        ),
        (
            RTCP_SR_ONE_BLOCK[:1] + bytes((0xC8, 0, 6)) + RTCP_SR_ONE_BLOCK[4:28],
            "sender_report",
            "RTCP SR with 1 report blocks needs 48 bytes, has 24",
        ),
        (
            wire("82 cb 0001 12345678"),
            "bye",
            "RTCP BYE names 2 sources but has 4 bytes for them",
        ),
        (
            wire("80 cb 0001 05616263"),
            "bye",
            "RTCP BYE reason of 5 bytes runs past the end of its packet",
        ),
    ],
)
def test_parse_rtcp_rejects_malformed_compounds_with_a_specific_message(
    data: bytes, reason: str, message: str
) -> None:
    with pytest.raises(RtcpError) as raised:
        parse_rtcp(data)
    assert str(raised.value) == message
    assert raised.value.reason == reason


sender_reports = st.builds(
    RtcpSenderReport,
    ssrc=st.integers(0, 0xFFFFFFFF),
    ntp_timestamp=st.integers(0, (1 << 64) - 1),
    rtp_timestamp=st.integers(0, 0xFFFFFFFF),
    packet_count=st.integers(0, 0xFFFFFFFF),
    octet_count=st.integers(0, 0xFFFFFFFF),
)
byes = st.builds(
    RtcpBye,
    ssrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=31).map(tuple),
    reason=st.none() | st.text(min_size=1, max_size=60),
)


@STATEFUL
@given(st.lists(sender_reports | byes, min_size=1, max_size=4))
def test_rtcp_build_then_parse_gives_the_same_reports(reports: list[RtcpSenderReport | RtcpBye]) -> None:
    compound = b"".join(report.serialize() for report in reports)
    assert parse_rtcp(compound) == reports


@FAST
@given(st.binary(max_size=80))
def test_parse_rtcp_raises_only_rtcp_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(RtcpError):
        parse_rtcp(data)


@FAST
@given(st.lists(st.tuples(st.integers(0, 0x3F), st.integers(192, 223), st.binary(max_size=40)), max_size=4))
def test_parse_rtcp_raises_only_rtcp_error_on_well_framed_noise(
    packets: list[tuple[int, int, bytes]],
) -> None:
    # Valid headers around random bodies reach the per-type readers that arbitrary bytes rarely do.
    compound = b"".join(
        bytes((0x80 | flags, packet_type)) + (len(body) // 4).to_bytes(2, "big") + body[: len(body) // 4 * 4]
        for flags, packet_type, body in packets
    )
    with contextlib.suppress(RtcpError):
        parse_rtcp(compound)


def test_parse_rtcp_reads_what_aiortc_writes() -> None:
    block = aiortc_rtp.RtcpReceiverInfo(
        ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=5, jitter=0, lsr=0, dlsr=0
    )
    info = aiortc_rtp.RtcpSenderInfo(ntp_timestamp=1 << 40, rtp_timestamp=8, packet_count=3, octet_count=480)
    theirs = bytes(aiortc_rtp.RtcpSrPacket(ssrc=77, sender_info=info, reports=[block]))
    theirs += bytes(aiortc_rtp.RtcpByePacket(sources=[77]))
    assert parse_rtcp(theirs) == [RtcpSenderReport(77, 1 << 40, 8, 3, 480), RtcpBye((77,))]


def test_aiortc_reads_what_the_builders_write() -> None:
    ours = SENDER_REPORT.serialize() + empty_receiver_report(5) + RtcpBye((5,), "bye").serialize()
    sr, rr, bye = aiortc_rtp.RtcpPacket.parse(ours)
    assert isinstance(sr, aiortc_rtp.RtcpSrPacket)
    assert (sr.ssrc, sr.sender_info.ntp_timestamp, sr.sender_info.octet_count) == (
        0x12345678,
        0xE6A1B2C380000000,
        16000,
    )
    assert isinstance(rr, aiortc_rtp.RtcpRrPacket)
    assert (rr.ssrc, rr.reports) == (5, [])
    assert isinstance(bye, aiortc_rtp.RtcpByePacket)
    assert bye.sources == [5]


def test_ntp_timestamp_counts_from_1900_in_32_32_fixed_point() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(0.5) == (2_208_988_800 << 32) + (1 << 31)
    # 2036-02-07T06:28:16Z starts NTP era 1: the 64-bit field wraps to zero.
    assert ntp_timestamp(2_085_978_496.0) == 0


# --- RFC 4733 telephone events ------------------------------------------------------------------------


def test_parse_telephone_event_reads_event_end_volume_and_duration() -> None:
    assert parse_telephone_event(wire("05 8a 0320")) == TelephoneEvent(5, True, 10, 800)
    assert parse_telephone_event(wire("0b 3f ffff")) == TelephoneEvent(11, False, 63, 65535)


def test_parse_telephone_event_ignores_the_reserved_bit_and_trailing_bytes() -> None:
    assert parse_telephone_event(wire("05 ca 0320 0000")) == TelephoneEvent(5, True, 10, 800)


@pytest.mark.parametrize("size", [0, 1, 3])
def test_parse_telephone_event_rejects_a_short_payload(size: int) -> None:
    with pytest.raises(TelephoneEventError) as raised:
        parse_telephone_event(wire("05 8a 0320")[:size])
    assert str(raised.value) == f"telephone-event payload is {size} bytes, shorter than its 4-byte format"
    assert raised.value.reason == "short"


def test_telephone_event_serializes_to_the_wire_format() -> None:
    assert TelephoneEvent(5, True, 10, 800).serialize() == wire("05 8a 0320")
    assert TelephoneEvent(0, False, 0, 0).serialize() == wire("00 00 0000")


def test_telephone_event_repr_does_not_say_which_key() -> None:
    assert repr(TelephoneEvent(9, False, 10, 800)) == "TelephoneEvent(end=False, volume=10, duration=800)"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((256, False, 0, 0), "event must be"),
        ((1, False, 64, 0), "volume must be"),
        ((1, False, 0, 1 << 16), "duration must be"),
    ],
)
def test_telephone_event_refuses_fields_that_do_not_fit(
    fields: tuple[int, bool, int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TelephoneEvent(*fields)


@FAST
@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_telephone_event_build_then_parse_gives_the_same_event(
    event: int, end: bool, volume: int, duration: int
) -> None:
    original = TelephoneEvent(event, end, volume, duration)
    assert parse_telephone_event(original.serialize()) == original


@FAST
@given(st.binary(max_size=8))
def test_parse_telephone_event_raises_only_its_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(TelephoneEventError):
        parse_telephone_event(data)


# --- The telephone-event tracker ----------------------------------------------------------------------


def press(
    start: int, durations: list[int], ends: int = 3, event: int = 5
) -> list[tuple[int, TelephoneEvent]]:
    """The packets a sender emits for one press: growing durations, then the end packet ``ends`` times."""
    packets = [(start, TelephoneEvent(event, False, 10, duration)) for duration in durations[:-1]]
    packets += [(start, TelephoneEvent(event, True, 10, durations[-1]))] * ends
    return packets


def feed(tracker: TelephoneEventTracker, packets: list[tuple[int, TelephoneEvent]]) -> list[DtmfEventSpan]:
    spans: list[DtmfEventSpan] = []
    for timestamp, event in packets:
        spans.extend(tracker.push(timestamp, event))
    return spans


def test_tracker_turns_one_redundant_press_into_one_span() -> None:
    tracker = TelephoneEventTracker()
    spans = feed(tracker, press(8000, [400, 800, 1200, 1600]))
    assert spans == [DtmfEventSpan(8000, 9600)]
    assert tracker.stale == 2  # the two retransmissions of the end packet
    assert tracker.lost_ends == 0
    assert tracker.open_span is None


def test_tracker_keeps_the_exact_start_when_the_first_packets_are_lost() -> None:
    tracker = TelephoneEventTracker()
    spans = feed(tracker, press(8000, [400, 800, 1200, 1600])[2:])
    assert spans == [DtmfEventSpan(8000, 9600)]


def test_tracker_closes_a_press_whose_only_surviving_packet_is_an_end() -> None:
    tracker = TelephoneEventTracker()
    assert feed(tracker, press(8000, [1600], ends=1)) == [DtmfEventSpan(8000, 9600)]


def test_tracker_reports_an_open_press_so_masking_can_start_at_once() -> None:
    tracker = TelephoneEventTracker()
    assert tracker.push(8000, TelephoneEvent(5, False, 10, 400)) == ()
    assert tracker.open_span == DtmfEventSpan(8000, 8400, end_seen=False)
    tracker.push(8000, TelephoneEvent(5, False, 10, 800))
    assert tracker.open_span == DtmfEventSpan(8000, 8800, end_seen=False)


def test_tracker_does_not_shrink_a_press_for_a_reordered_packet() -> None:
    tracker = TelephoneEventTracker()
    packets = press(8000, [400, 800, 1200, 1600])
    packets[1], packets[2] = packets[2], packets[1]
    assert feed(tracker, packets) == [DtmfEventSpan(8000, 9600)]


def test_tracker_closes_a_press_when_the_next_starts_before_its_end_arrived() -> None:
    tracker = TelephoneEventTracker()
    first = press(8000, [400, 800], ends=0)  # its end packets are all lost
    spans = feed(tracker, first + press(9000, [400, 800]))
    assert spans == [DtmfEventSpan(8000, 8400, end_seen=False), DtmfEventSpan(9000, 9800)]
    assert tracker.lost_ends == 1


def test_tracker_cuts_a_lost_end_at_the_next_press() -> None:
    tracker = TelephoneEventTracker()
    tracker.push(8000, TelephoneEvent(5, False, 10, 2000))
    spans = tracker.push(9000, TelephoneEvent(5, True, 10, 400))
    assert spans == (DtmfEventSpan(8000, 9000, end_seen=False), DtmfEventSpan(9000, 9400))


def test_tracker_times_out_a_lost_end_after_quiet_packets() -> None:
    tracker = TelephoneEventTracker(max_quiet_packets=3)
    tracker.push(8000, TelephoneEvent(5, False, 10, 800))
    assert tracker.advance() == ()
    tracker.push(8000, TelephoneEvent(5, False, 10, 1200))  # its own packet resets the count
    assert tracker.advance() == ()
    assert tracker.advance() == ()
    assert tracker.advance() == (DtmfEventSpan(8000, 9200, end_seen=False),)
    assert tracker.advance() == ()
    assert tracker.lost_ends == 1


def test_tracker_ignores_late_packets_of_a_press_it_closed() -> None:
    tracker = TelephoneEventTracker(max_quiet_packets=2)
    tracker.push(8000, TelephoneEvent(5, False, 10, 800))
    tracker.advance()
    assert tracker.advance() == (DtmfEventSpan(8000, 8800, end_seen=False),)
    # The end arrives after the timeout closed the press: it must not open a second one.
    assert feed(tracker, press(8000, [1600], ends=3)) == []
    assert tracker.stale == 3


def test_tracker_gives_out_a_press_only_a_late_packet_reported() -> None:
    tracker = TelephoneEventTracker()
    tracker.push(9000, TelephoneEvent(5, False, 10, 400))
    # The only packet of an earlier press, overtaken by the next one: masked all the same, up to the
    # next start, and its retransmissions are stale.
    assert tracker.push(8000, TelephoneEvent(5, True, 10, 1600)) == (DtmfEventSpan(8000, 9000),)
    assert tracker.push(8000, TelephoneEvent(5, True, 10, 1600)) == ()
    assert tracker.stale == 1
    assert tracker.open_span == DtmfEventSpan(9000, 9400, end_seen=False)


def test_tracker_ignores_a_late_packet_from_before_the_last_span() -> None:
    tracker = TelephoneEventTracker()
    feed(tracker, press(8000, [800]))
    tracker.push(12000, TelephoneEvent(5, False, 10, 400))
    assert tracker.push(7000, TelephoneEvent(5, False, 10, 400)) == ()
    assert tracker.stale == 3  # two end retransmissions and the late packet


def test_tracker_flush_closes_what_is_open() -> None:
    tracker = TelephoneEventTracker()
    assert tracker.flush() == ()
    tracker.push(8000, TelephoneEvent(5, False, 10, 800))
    assert tracker.flush() == (DtmfEventSpan(8000, 8800, end_seen=False),)
    assert tracker.open_span is None


def test_tracker_tells_repeated_presses_of_one_key_apart() -> None:
    tracker = TelephoneEventTracker()
    spans = feed(tracker, press(8000, [800]) + press(10000, [800]))
    assert spans == [DtmfEventSpan(8000, 8800), DtmfEventSpan(10000, 10800)]


packet_streams = st.lists(
    st.tuples(
        st.integers(0, 20000),
        st.builds(TelephoneEvent, st.integers(0, 15), st.booleans(), st.just(10), st.integers(0, 4000)),
        st.integers(0, 3),  # audio packets after it
    ),
    max_size=40,
)


def run_tracker(stream: list[tuple[int, TelephoneEvent, int]]) -> list[DtmfEventSpan]:
    tracker = TelephoneEventTracker(max_quiet_packets=4)
    spans: list[DtmfEventSpan] = []
    for timestamp, event, audio in stream:
        spans.extend(tracker.push(timestamp, event))
        for _ in range(audio):
            spans.extend(tracker.advance())
    spans.extend(tracker.flush())
    return spans


@STATEFUL
@given(packet_streams)
def test_tracker_spans_come_once_per_start_in_order(stream: list[tuple[int, TelephoneEvent, int]]) -> None:
    spans = run_tracker(stream)
    # A press cut short by the next one ends at its start; one closed by the quiet timeout keeps its
    # last reported end, which a (hostile) sender may have put past the next start: overlap is harmless
    # to masking, so only the order is pinned.
    for earlier, later in itertools.pairwise(spans):
        assert earlier.start_ts < later.start_ts
    assert all(span.start_ts <= span.end_ts for span in spans)


@STATEFUL
@given(packet_streams, st.integers(0, 15))
def test_tracker_output_does_not_depend_on_which_key(
    stream: list[tuple[int, TelephoneEvent, int]], key: int
) -> None:
    same_key = [
        (timestamp, TelephoneEvent(key, event.end, event.volume, event.duration), audio)
        for timestamp, event, audio in stream
    ]
    assert run_tracker(same_key) == run_tracker(stream)


def test_span_fields_hold_times_only() -> None:
    assert [name for name in DtmfEventSpan.__dataclass_fields__] == ["start_ts", "end_ts", "end_seen"]


def test_a_press_across_the_timestamp_wrap_comes_out_whole() -> None:
    # RTP packets as they arrive: payload type 101, the event's timestamp 80 ticks before the wrap.
    start = 0xFFFFFFB0
    packets = [
        RtpPacket(101, seq, start, 1, event.serialize(), marker=(seq == 1)).serialize()
        for seq, (_, event) in enumerate(press(start, [400, 800, 1200]), start=1)
    ]
    timestamps = ExtendedTimestamp(8000)
    tracker = TelephoneEventTracker()
    spans: list[DtmfEventSpan] = []
    timestamps.extend(start - 160)  # the audio packet before the press
    for data in packets:
        packet = parse_rtp(data)
        extended = timestamps.extend(packet.timestamp)
        assert extended is not None
        spans.extend(tracker.push(extended, parse_telephone_event(packet.payload)))
    assert len(spans) == 1
    (span,) = spans
    assert span.end_ts - span.start_ts == 1200
    assert span.start_ts % (1 << 32) == start


# --- Layering -----------------------------------------------------------------------------------------


def test_transport_imports_nothing_of_speech_pii_redact_or_store() -> None:
    code = (
        "import sys, bleepline.transport.rtp, bleepline.transport.errors\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "(['bleepline', 'speech'], ['bleepline', 'pii'], ['bleepline', 'redact'], ['bleepline', 'store'])]\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
