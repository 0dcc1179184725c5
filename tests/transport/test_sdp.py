from __future__ import annotations

import base64
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bleepline.transport.sdp import (
    MAX_SDP_CHARS,
    MAX_SDP_LINES,
    AudioOffer,
    Codec,
    CryptoAttribute,
    Negotiated,
    SdpError,
    SrtpKey,
    answer_crypto,
    answer_direction,
    build_answer,
    negotiate,
    parse_offer,
)

# Keys are made up for the tests; what matters is that they are recognisable if they ever leak.
KEY_80 = base64.b64encode(bytes(range(1, 31))).decode()
KEY_32 = base64.b64encode(bytes(range(101, 131))).decode()
RELAY_KEY = bytes(range(201, 231))


def sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


ASTERISK = sdp(
    "v=0",
    "o=- 1712345678 1712345678 IN IP4 203.0.113.10",
    "s=Asterisk",
    "c=IN IP4 203.0.113.10",
    "t=0 0",
    "m=audio 10000 RTP/AVP 0 8 3 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:3 GSM/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)

FREESWITCH = sdp(
    "v=0",
    "o=FreeSWITCH 1712340000 1712340001 IN IP4 198.51.100.20",
    "s=FreeSWITCH",
    "c=IN IP4 198.51.100.20",
    "t=0 0",
    "m=audio 24580 RTP/AVP 102 9 0 8 101 100 13",
    "a=rtpmap:102 opus/48000/2",
    "a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=rtpmap:100 telephone-event/48000",
    "a=fmtp:100 0-16",
    "a=rtpmap:13 CN/8000",
    "a=ptime:20",
    "a=sendrecv",
    "a=rtcp:24581 IN IP4 198.51.100.20",
)

SBC_SAVP = sdp(
    "v=0",
    "o=SBC 4242 4243 IN IP4 192.0.2.50",
    "s=SBC-Session",
    "c=IN IP4 192.0.2.50",
    "t=0 0",
    "m=audio 40000 RTP/SAVP 8 0 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^31",
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_32}|2^31",
    "a=ptime:20",
    "a=sendrecv",
    "a=rtcp-mux",
)

IPV6 = sdp(
    "v=0",
    "o=- 3 3 IN IP6 2001:db8::10",
    "s=-",
    "c=IN IP6 2001:DB8:0:0::10",
    "t=0 0",
    "m=audio 5004 RTP/AVP 8 101",
    "a=rtpmap:101 telephone-event/8000",
)

REAL_OFFERS = (ASTERISK, FREESWITCH, SBC_SAVP, IPV6)


def offer_with(*media: str, session: tuple[str, ...] = ("c=IN IP4 192.0.2.7",)) -> str:
    return sdp("v=0", "o=- 1 1 IN IP4 192.0.2.7", "s=-", *session, "t=0 0", *media)


def answer_for(negotiated: Negotiated, direction: str = "sendrecv", address: str = "192.0.2.1") -> str:
    crypto = None if negotiated.crypto is None else answer_crypto(negotiated.crypto, RELAY_KEY)
    return build_answer(
        negotiated, address=address, port=30000, session_id=42, direction=direction, crypto=crypto
    )


# --- real-world shapes -------------------------------------------------------------------------------


def test_asterisk_offer_reads_address_codecs_in_order_and_attributes() -> None:
    offer = parse_offer(ASTERISK)
    assert (offer.address, offer.port, offer.protocol) == ("203.0.113.10", 10000, "RTP/AVP")
    assert offer.payload_types == (0, 8, 3, 101)
    assert [c.encoding for c in offer.codecs] == [
        "PCMU/8000",
        "PCMA/8000",
        "GSM/8000",
        "telephone-event/8000",
    ]
    assert offer.codec(101) == Codec(101, "telephone-event", 8000, fmtp="0-16")
    assert (offer.ptime, offer.maxptime, offer.direction) == (20, 150, "sendrecv")
    assert (offer.session_id, offer.session_version) == (1712345678, 1712345678)
    assert (offer.rtcp_port, offer.rtcp_mux, offer.crypto) == (None, False, ())


def test_freeswitch_offer_keeps_opus_fmtp_raw_and_reads_its_rtcp_port() -> None:
    offer = parse_offer(FREESWITCH)
    opus = offer.codec(102)
    assert opus is not None
    assert (opus.name, opus.clock_rate, opus.channels) == ("opus", 48000, 2)
    assert (
        opus.fmtp == "useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10"
    )
    assert opus.encoding == "opus/48000/2"
    assert (offer.rtcp_port, offer.rtcp_address) == (24581, "198.51.100.20")


def test_sbc_savp_offer_reads_both_crypto_lines() -> None:
    offer = parse_offer(SBC_SAVP)
    assert offer.protocol == "RTP/SAVP"
    assert offer.rtcp_mux
    first, second = offer.crypto
    assert (first.tag, first.suite, second.tag, second.suite) == (
        1,
        "AES_CM_128_HMAC_SHA1_80",
        2,
        "AES_CM_128_HMAC_SHA1_32",
    )
    assert first.keys == (SrtpKey(bytes(range(1, 31)), lifetime=2**31),)
    assert second.keys[0].key_salt == bytes(range(101, 131))


def test_ipv6_offer_normalises_the_address_and_names_static_payload_types() -> None:
    offer = parse_offer(IPV6)
    assert (offer.address, offer.address_type) == ("2001:db8::10", "IP6")
    assert [c.encoding for c in offer.codecs] == ["PCMA/8000", "telephone-event/8000"]
    negotiated = negotiate(offer)
    answer = answer_for(negotiated, address="2001:db8::1")
    assert "c=IN IP6 2001:db8::1\r\n" in answer
    assert parse_offer(answer).address == "2001:db8::1"


def test_bare_lf_line_endings_are_accepted() -> None:
    assert parse_offer(ASTERISK.replace("\r\n", "\n")) == parse_offer(ASTERISK)


def test_utf8_session_name_is_tolerated_but_never_read() -> None:
    offer = parse_offer(ASTERISK.replace("s=Asterisk", "s=Téléphone de Zoë"))
    assert offer.codecs == parse_offer(ASTERISK).codecs


# --- payload types, direction, ptime, rtcp -----------------------------------------------------------


def test_static_payload_types_need_no_rtpmap() -> None:
    offer = parse_offer(offer_with("m=audio 4000 RTP/AVP 0 8 9 18"))
    assert [c.encoding for c in offer.codecs] == ["PCMU/8000", "PCMA/8000", "G722/8000", "G729/8000"]


def test_dynamic_payload_type_without_rtpmap_is_listed_but_has_no_codec() -> None:
    offer = parse_offer(offer_with("m=audio 4000 RTP/AVP 97 0"))
    assert offer.payload_types == (97, 0)
    assert [c.payload_type for c in offer.codecs] == [0]
    assert offer.codec(97) is None


def test_rtpmap_for_a_payload_type_not_on_the_m_line_is_ignored() -> None:
    offer = parse_offer(offer_with("m=audio 4000 RTP/AVP 0", "a=rtpmap:96 opus/48000/2"))
    assert [c.payload_type for c in offer.codecs] == [0]


def test_identical_repeated_rtpmap_is_harmless_and_names_compare_without_case() -> None:
    offer = parse_offer(
        offer_with(
            "m=audio 4000 RTP/AVP 0 96",
            "a=rtpmap:0 pcmu/8000",
            "a=rtpmap:96 L16/16000",
            "a=rtpmap:96 l16/16000",
        )
    )
    assert [c.encoding for c in offer.codecs] == ["pcmu/8000", "L16/16000"]


@pytest.mark.parametrize(
    ("session", "media", "expected"),
    [
        ((), (), "sendrecv"),
        (("a=sendonly",), (), "sendonly"),
        (("a=sendonly",), ("a=inactive",), "inactive"),
        ((), ("a=recvonly",), "recvonly"),
    ],
)
def test_direction_defaults_to_sendrecv_and_media_level_wins(
    session: tuple[str, ...], media: tuple[str, ...], expected: str
) -> None:
    text = offer_with("m=audio 4000 RTP/AVP 0", *media, session=("c=IN IP4 192.0.2.7", *session))
    assert parse_offer(text).direction == expected


def test_media_level_connection_overrides_the_session_level_one() -> None:
    text = offer_with("m=audio 4000 RTP/AVP 0", "c=IN IP4 198.51.100.99")
    assert parse_offer(text).address == "198.51.100.99"
    no_session_c = offer_with("m=audio 4000 RTP/AVP 0", "c=IN IP4 198.51.100.99", session=())
    assert parse_offer(no_session_c).address == "198.51.100.99"


def test_remote_rtcp_is_the_next_port_unless_a_rtcp_or_rtcp_mux_says_otherwise() -> None:
    plain = negotiate(parse_offer(ASTERISK))
    assert plain.remote_rtp == ("203.0.113.10", 10000)
    assert plain.remote_rtcp == ("203.0.113.10", 10001)
    explicit = negotiate(parse_offer(offer_with("m=audio 4000 RTP/AVP 0", "a=rtcp:5001 IN IP4 198.51.100.3")))
    assert explicit.remote_rtcp == ("198.51.100.3", 5001)
    port_only = negotiate(parse_offer(offer_with("m=audio 4000 RTP/AVP 0", "a=rtcp:5001")))
    assert port_only.remote_rtcp == ("192.0.2.7", 5001)
    assert negotiate(parse_offer(SBC_SAVP)).remote_rtcp == ("192.0.2.50", 40000)


def test_hold_by_the_old_zero_address_is_kept_as_written() -> None:
    offer = parse_offer(offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 0.0.0.0",)))
    assert offer.address == "0.0.0.0"


def test_the_first_usable_audio_stream_is_taken_and_every_m_line_is_kept() -> None:
    text = offer_with(
        "m=video 5006 RTP/AVP 31",
        "m=audio 0 RTP/AVP 0",
        "m=audio 4002 UDP/TLS/RTP/SAVPF 111",
        "m=audio 4004 RTP/AVP 8",
        "m=audio 4006 RTP/AVP 0",
    )
    offer = parse_offer(text)
    assert (offer.stream_index, offer.port, offer.payload_types) == (3, 4004, (8,))
    assert [(m.kind, m.port) for m in offer.media] == [
        ("video", 5006),
        ("audio", 0),
        ("audio", 4002),
        ("audio", 4004),
        ("audio", 4006),
    ]


def test_attributes_of_streams_not_taken_are_not_read() -> None:
    text = offer_with("m=video 5006 RTP/AVP 31", "a=rtpmap:31 ???", "m=audio 4000 RTP/AVP 0")
    assert parse_offer(text).payload_types == (0,)


# --- crypto ------------------------------------------------------------------------------------------


def test_crypto_key_material_never_shows_in_reprs() -> None:
    offer = parse_offer(SBC_SAVP)
    negotiated = negotiate(offer)
    own = answer_crypto(offer.crypto[0], RELAY_KEY)
    relay_text = base64.b64encode(RELAY_KEY).decode()
    for shown in (repr(offer), str(offer), repr(negotiated), repr(offer.crypto), repr(own), str(own.keys[0])):
        for secret in (KEY_80, KEY_32, relay_text, repr(bytes(range(1, 31))), repr(RELAY_KEY)):
            assert secret not in shown
    assert repr(offer.crypto[0]) == (
        "CryptoAttribute(tag=1, suite=AES_CM_128_HMAC_SHA1_80, keys=1 hidden, session_params=0)"
    )
    assert repr(offer.crypto[0].keys[0]) == f"SrtpKey(30 bytes hidden, lifetime={2**31})"
    built = CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (SrtpKey(RELAY_KEY, mki=1, mki_length=4),))
    assert (
        repr(built)
        == "CryptoAttribute(tag=1, suite=AES_CM_128_HMAC_SHA1_80, keys=1 hidden, session_params=0)"
    )
    assert repr(built.keys[0]) == "SrtpKey(30 bytes hidden, lifetime=None, mki=1:4)"


def test_crypto_lifetime_mki_and_session_parameters_are_read() -> None:
    offer = parse_offer(
        offer_with(
            "m=audio 4000 RTP/SAVP 0",
            f"a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1048576|1:4 UNENCRYPTED_SRTCP",
        )
    )
    (crypto,) = offer.crypto
    assert crypto.keys == (SrtpKey(bytes(range(1, 31)), lifetime=2**20, mki=1, mki_length=4),)
    assert crypto.session_params == ("UNENCRYPTED_SRTCP",)
    assert crypto.sdp_value() == f"7 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4 UNENCRYPTED_SRTCP"


def test_crypto_key_without_base64_padding_is_accepted() -> None:
    key = base64.b64encode(bytes(46)).decode()
    assert key.endswith("==")
    line = f"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{key.rstrip('=')}"
    (crypto,) = parse_offer(offer_with("m=audio 4000 RTP/SAVP 0", line)).crypto
    assert crypto.keys[0].key_salt == bytes(46)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80[:-4]}",
            "key is 27 bytes, AES_CM_128_HMAC_SHA1_80 needs 30",
        ),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80[:-1]}!", "key is not base64"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:{KEY_80}", "only inline keys"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^99", "lifetime exponent"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:4|2^20", "lifetime must come once, before"),
        (f"a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}", "tag is not a whole number"),
        (f"a=crypto:1 inline:{KEY_80}", "must read"),
        (f"a=crypto:1 {KEY_80}:x inline:{KEY_80}", "invalid crypto suite name"),
    ],
)
def test_broken_crypto_lines_are_refused_without_quoting_the_key(line: str, problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)) as raised:
        parse_offer(offer_with("m=audio 4000 RTP/SAVP 0", line))
    assert KEY_80 not in str(raised.value)
    assert KEY_80[:-4] not in str(raised.value)


def test_the_first_usable_crypto_line_is_chosen_in_the_offerers_order() -> None:
    assert negotiate(parse_offer(SBC_SAVP)).crypto == parse_offer(SBC_SAVP).crypto[0]
    only_32 = negotiate(parse_offer(SBC_SAVP), srtp_suites=["AES_CM_128_HMAC_SHA1_32"])
    assert only_32.crypto is not None
    assert only_32.crypto.tag == 2


def test_crypto_lines_the_srtp_layer_cannot_honour_are_passed_over() -> None:
    text = offer_with(
        "m=audio 4000 RTP/SAVP 0",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4",
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} KDR=1",
        f"a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{base64.b64encode(bytes(46)).decode()}",
        f"a=crypto:4 F8_128_HMAC_SHA1_80 inline:{KEY_80}",
    )
    message = (
        "no supported SRTP crypto suite in the offer: offered AES_CM_128_HMAC_SHA1_80 (with MKI), "
        "AES_CM_128_HMAC_SHA1_80 (with session parameters), AES_256_CM_HMAC_SHA1_80, F8_128_HMAC_SHA1_80"
    )
    with pytest.raises(SdpError, match=re.escape(message)):
        negotiate(parse_offer(text))


def test_savp_offer_without_crypto_is_refused_at_negotiation() -> None:
    with pytest.raises(SdpError, match="RTP/SAVP offer without an a=crypto line"):
        negotiate(parse_offer(offer_with("m=audio 4000 RTP/SAVP 0")))


def test_crypto_on_a_plain_rtp_offer_is_read_but_not_used() -> None:
    text = offer_with("m=audio 4000 RTP/AVP 0", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}")
    negotiated = negotiate(parse_offer(text))
    assert len(negotiated.offer.crypto) == 1
    assert negotiated.crypto is None
    assert "a=crypto" not in answer_for(negotiated)


def test_answer_crypto_uses_the_offers_tag_and_suite_and_a_fresh_key() -> None:
    offered = parse_offer(SBC_SAVP).crypto[1]
    first, second = answer_crypto(offered), answer_crypto(offered)
    assert (first.tag, first.suite, len(first.keys[0].key_salt)) == (2, "AES_CM_128_HMAC_SHA1_32", 30)
    assert first.keys[0].key_salt != second.keys[0].key_salt
    with pytest.raises(ValueError, match="needs a 30-byte key"):
        answer_crypto(offered, bytes(16))


# --- negotiation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "codec", "events"),
    [
        (ASTERISK, "PCMU/8000", "telephone-event/8000"),
        (FREESWITCH, "opus/48000/2", "telephone-event/48000"),
        (SBC_SAVP, "PCMA/8000", "telephone-event/8000"),
        (IPV6, "PCMA/8000", "telephone-event/8000"),
    ],
)
def test_negotiation_takes_the_offerers_first_supported_codec(offer: str, codec: str, events: str) -> None:
    negotiated = negotiate(parse_offer(offer))
    assert negotiated.codec.encoding == codec
    assert negotiated.telephone_event is not None
    assert negotiated.telephone_event.encoding == events


def test_supported_list_narrows_the_choice_but_the_offerer_still_orders_it() -> None:
    offer = parse_offer(FREESWITCH)
    assert negotiate(offer, ["PCMA/8000", "PCMU/8000"]).codec.encoding == "PCMU/8000"
    assert negotiate(offer, ["pcma/8000"]).codec.payload_type == 8


def test_telephone_event_only_comes_along_at_the_codecs_clock_rate() -> None:
    text = offer_with(
        "m=audio 4000 RTP/AVP 96 101", "a=rtpmap:96 L16/16000", "a=rtpmap:101 telephone-event/8000"
    )
    negotiated = negotiate(parse_offer(text))
    assert (negotiated.codec.encoding, negotiated.telephone_event) == ("L16/16000", None)
    assert negotiated.payload_types == (96,)


def test_no_supported_codec_names_what_was_offered() -> None:
    text = offer_with(
        "m=audio 4000 RTP/AVP 18 9 97 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:18 annexb=no",
    )
    message = (
        "no supported audio codec in the offer: offered G729/8000, G722/8000, telephone-event/8000, "
        "payload type 97 without a=rtpmap"
    )
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        negotiate(parse_offer(text))


def test_opus_must_be_offered_as_two_channels() -> None:
    text = offer_with("m=audio 4000 RTP/AVP 111", "a=rtpmap:111 opus/48000")
    with pytest.raises(SdpError, match=r"offered opus/48000$"):
        negotiate(parse_offer(text))


def test_a_badly_written_supported_list_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="is not written name/rate") as raised:
        negotiate(parse_offer(ASTERISK), ["PCMU"])
    assert not isinstance(raised.value, SdpError)


# --- the answer --------------------------------------------------------------------------------------


def test_answer_to_an_asterisk_offer_reads_exactly() -> None:
    assert answer_for(negotiate(parse_offer(ASTERISK))) == (
        "v=0\r\n"
        "o=bleepline 42 0 IN IP4 192.0.2.1\r\n"
        "s=-\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_answer_to_an_srtp_offer_carries_the_relays_key_and_rtcp_mux() -> None:
    answer = answer_for(negotiate(parse_offer(SBC_SAVP)))
    relay_key = base64.b64encode(RELAY_KEY).decode()
    assert answer.endswith(
        f"a=sendrecv\r\na=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{relay_key}\r\n"
    )
    assert "m=audio 30000 RTP/SAVP 8 101\r\n" in answer
    assert KEY_80 not in answer


def test_answer_to_opus_lists_it_with_two_channels_and_no_stereo_fmtp() -> None:
    answer = answer_for(negotiate(parse_offer(FREESWITCH)))
    assert "m=audio 30000 RTP/AVP 102 100\r\na=rtpmap:102 opus/48000/2\r\n" in answer
    assert "a=fmtp:102" not in answer
    assert "a=fmtp:100 0-16\r\n" in answer
    assert "a=rtcp-mux" not in answer


def test_answer_rejects_every_other_stream_in_place() -> None:
    text = offer_with("m=video 5006 RTP/AVP 31 34", "m=audio 4000 RTP/AVP 0", "m=audio 4002 RTP/AVP 8")
    answer = answer_for(negotiate(parse_offer(text)))
    m_lines = [line for line in answer.split("\r\n") if line.startswith("m=")]
    assert m_lines == ["m=video 0 RTP/AVP 31", "m=audio 30000 RTP/AVP 0", "m=audio 0 RTP/AVP 8"]
    assert parse_offer(answer).stream_index == 1


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendrecv", "recvonly", "recvonly"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("recvonly", "recvonly", "inactive"),
        ("inactive", "sendrecv", "inactive"),
    ],
)
def test_answer_direction_follows_rfc_3264(offered: str, wanted: str, answered: str) -> None:
    assert answer_direction(offered, wanted) == answered


def test_an_answer_direction_the_offer_does_not_allow_is_refused() -> None:
    negotiated = negotiate(parse_offer(offer_with("m=audio 4000 RTP/AVP 0", "a=sendonly")))
    with pytest.raises(SdpError, match="a sendonly offer cannot be answered sendrecv"):
        answer_for(negotiated, "sendrecv")
    assert "a=recvonly\r\n" in answer_for(negotiated, "recvonly")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"address": "relay.example.com"}, "literal IPv4 or IPv6 address"),
        ({"address": "239.1.1.1"}, "unicast address"),
        ({"port": 0}, "port 0 is not from 1 to 65535"),
        ({"session_id": -1}, "must not be negative"),
        ({"direction": "both"}, "direction must be one of"),
        ({"crypto": None}, "needs the relay's own a=crypto line"),
    ],
)
def test_build_answer_refuses_what_would_make_a_broken_answer(
    changes: dict[str, object], problem: str
) -> None:
    negotiated = negotiate(parse_offer(SBC_SAVP))
    assert negotiated.crypto is not None
    arguments: dict[str, object] = {
        "address": "192.0.2.1",
        "port": 30000,
        "session_id": 1,
        "direction": "sendrecv",
        "crypto": answer_crypto(negotiated.crypto),
    }
    arguments.update(changes)
    with pytest.raises(SdpError, match=re.escape(problem)):
        build_answer(negotiated, **arguments)  # type: ignore[arg-type]


def test_build_answer_wants_the_chosen_crypto_tag_and_no_crypto_for_plain_rtp() -> None:
    savp = negotiate(parse_offer(SBC_SAVP))
    wrong_tag = answer_crypto(parse_offer(SBC_SAVP).crypto[1])
    with pytest.raises(SdpError, match="chosen tag 1 and suite AES_CM_128_HMAC_SHA1_80"):
        build_answer(savp, address="192.0.2.1", port=1, session_id=1, direction="sendrecv", crypto=wrong_tag)
    plain = negotiate(parse_offer(ASTERISK))
    with pytest.raises(SdpError, match="must carry no a=crypto"):
        build_answer(plain, address="192.0.2.1", port=1, session_id=1, direction="sendrecv", crypto=wrong_tag)


# --- hostile input -----------------------------------------------------------------------------------


def _without(text: str, prefix: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefix))


HOSTILE = [
    ("", "SDP is empty"),
    ("\r\n\r\n", "SDP is empty"),
    ("hello world", "line 1: not an SDP line of the form x=value"),
    ("GET / HTTP/1.1\r\nHost: x\r\n", "line 1: not an SDP line"),
    ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "must start with a v= line"),
    ("v=1\r\n", "unsupported SDP version"),
    (ASTERISK + ASTERISK, "line 15: a second v= line"),
    (_without(ASTERISK, "o="), "SDP has no o= line"),
    (ASTERISK.replace("o=- 1712345678 1712345678", "o=- abc 1"), "session id is not a whole number"),
    (_without(ASTERISK, "m=").replace("a=", "x="), "SDP has no m= line"),
    (offer_with("m=video 5006 RTP/AVP 31"), "no audio stream (it offers video)"),
    (offer_with("m=video 5006 RTP/AVP 31", "m=application 9 TCP/BFCP *"), "it offers application, video"),
    (offer_with("m=audio 0 RTP/AVP 0"), "audio stream is disabled (port 0)"),
    (offer_with("m=audio 9 UDP/TLS/RTP/SAVPF 111"), "audio over UDP/TLS/RTP/SAVPF is not supported"),
    (offer_with("m=audio 4000/2 RTP/AVP 0"), "range of ports"),
    (offer_with("m=audio 70000 RTP/AVP 0"), "port is not a whole number from 0 to 65535"),
    (offer_with("m=audio -1 RTP/AVP 0"), "port is not a whole number"),
    (offer_with("m=audio 4000 RTP/AVP"), "at least one format"),
    (offer_with("m=audio 4000 RTP/AVP 0 128"), "payload type is not a whole number from 0 to 127"),
    (offer_with("m=audio 4000 RTP/AVP 0 ٣"), "line 6 (m=): non-ASCII character"),
    (offer_with("m=audio 4000 RTP/AVP 0 0"), "a payload type is listed twice"),
    (offer_with("m=audio 4000 RTP/AVP " + " 0" * 129), "more payload types than RTP has (128)"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=()), "no c= line gives the audio stream's address"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 host.example",)), "not a literal IPv4"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 224.2.1.1/127",)), "multicast"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP6 ff02::1",)), "multicast"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 2001:db8::1",)), "not a literal IPv4"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP6 fe80::1%eth0",)), "scoped"),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 1.2.3.4", "c=IN IP4 1.2.3.5")), "more than one"),
    (offer_with("m=audio 4000 RTP/AVP 0", "c=IN IP4 1.2.3.4", "c=IN IP4 1.2.3.5"), "more than one c="),
    (offer_with("m=audio 4000 RTP/AVP 0", session=("c=IN IP4",)), "c= must read"),
    (
        offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 L16/16000", "a=rtpmap:96 L16/8000"),
        "contradictory a=rtpmap",
    ),
    (
        offer_with("m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMA/8000"),
        "contradicts static payload type 0 (PCMU)",
    ),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 opus/0/2"), "clock rate is not a whole number"),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 opus/48000/2/1"), "a=rtpmap must read"),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 o pus/48000"), "a=rtpmap must read"),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96"), "a=rtpmap must read"),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=fmtp:96 a=1", "a=fmtp:96 a=2"), "contradictory a=fmtp"),
    (offer_with("m=audio 4000 RTP/AVP 96", "a=fmtp:96"), "a=fmtp must read"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=ptime:20.5"), "ptime is not a whole number from 1 to 1000"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=ptime:0"), "ptime is not a whole number"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=ptime:" + "9" * 5000), "ptime is not a whole number"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=ptime:20", "a=ptime:30"), "contradictory a=ptime"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=sendonly", "a=recvonly"), "contradictory direction attributes"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=rtcp:0"), "(a=rtcp): port is not a whole number from 1"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=rtcp:4001 IN IP4"), "a=rtcp must read"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=rtcp:4001", "a=rtcp:4003"), "more than one a=rtcp"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=:x"), "a= line without a valid attribute name"),
    (offer_with("m=audio 4000 RTP/AVP 0", "a=tool:Zoë's phone"), "line 7 (a=): non-ASCII character"),
    (ASTERISK.replace("s=Asterisk", "s=A\x00B"), "line 3: control character"),
    (ASTERISK.replace("s=Asterisk", "s=A\rB"), "line 3: control character"),
    ("\ufeff" + ASTERISK, "line 1: not an SDP line"),
    (" v=0\r\n", "line 1: not an SDP line"),
]


@pytest.mark.parametrize(("text", "problem"), HOSTILE)
def test_hostile_offers_are_refused_with_a_specific_one_line_message(text: str, problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)) as raised:
        parse_offer(text)
    assert "\n" not in str(raised.value)
    assert "\r" not in str(raised.value)


def test_duplicate_crypto_tags_are_refused() -> None:
    line = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}"
    with pytest.raises(SdpError, match="a=crypto tag 1 is used twice"):
        parse_offer(offer_with("m=audio 4000 RTP/SAVP 0", line, line))


def test_oversized_offers_are_refused_before_they_are_read() -> None:
    with pytest.raises(SdpError, match=f"at most {MAX_SDP_CHARS} are accepted"):
        parse_offer(ASTERISK + "a=x:" + "y" * MAX_SDP_CHARS + "\r\n")
    with pytest.raises(SdpError, match=f"at most {MAX_SDP_LINES} are accepted"):
        parse_offer(ASTERISK + "a=x\r\n" * MAX_SDP_LINES)
    just_fits = ASTERISK + "a=x\r\n" * (MAX_SDP_LINES - ASTERISK.count("\n"))
    assert parse_offer(just_fits).payload_types == (0, 8, 3, 101)


def test_personal_data_in_free_text_lines_is_never_quoted() -> None:
    phone = "+15551234567"
    text = ASTERISK.replace("o=- ", f"o={phone} ").replace("s=Asterisk", f"s={phone}\r\np={phone}")
    bad = text.replace("m=audio 10000", "m=audio 99999")
    with pytest.raises(SdpError) as raised:
        parse_offer(bad)
    assert phone not in str(raised.value)
    assert parse_offer(text).codecs == parse_offer(ASTERISK).codecs


def test_non_text_input_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="SDP must be text"):
        parse_offer(ASTERISK.encode())  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------------------

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SECRETS = (KEY_80, KEY_32, base64.b64encode(RELAY_KEY).decode())


def _check_error(error: SdpError) -> None:
    message = str(error)
    assert message
    assert "\n" not in message
    assert "\r" not in message
    assert len(message) < 300
    assert not any(secret in message for secret in SECRETS)


def _answer_round_trips(negotiated: Negotiated) -> None:
    direction = answer_direction(negotiated.offer.direction)
    answer = answer_for(negotiated, direction)
    back = parse_offer(answer)
    again = negotiate(back, [negotiated.codec.encoding])
    assert _same_codec(again.codec, negotiated.codec)
    assert (again.telephone_event is None) == (negotiated.telephone_event is None)
    if again.telephone_event is not None and negotiated.telephone_event is not None:
        assert _same_codec(again.telephone_event, negotiated.telephone_event)
    assert back.direction == direction
    assert back.rtcp_mux == negotiated.offer.rtcp_mux
    assert len(back.media) == len(negotiated.offer.media)
    assert back.stream_index == negotiated.offer.stream_index
    if negotiated.crypto is not None:
        assert again.crypto is not None
        assert again.crypto.keys[0].key_salt == RELAY_KEY
        assert (again.crypto.tag, again.crypto.suite) == (negotiated.crypto.tag, negotiated.crypto.suite)


def _same_codec(a: Codec, b: Codec) -> bool:
    return a.payload_type == b.payload_type and a.is_encoding(b.name, b.clock_rate, b.channels)


@FAST
@given(st.text(max_size=400))
def test_random_text_raises_nothing_but_sdp_error(text: str) -> None:
    try:
        parse_offer(text)
    except SdpError as error:
        _check_error(error)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_decoded_leniently_raise_nothing_but_sdp_error(data: bytes) -> None:
    try:
        parse_offer("v=0\r\n" + data.decode("latin-1"))
    except SdpError as error:
        _check_error(error)


TOKENS = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.text(max_size=6),
    st.sampled_from(
        ["", "0", "65536", "128", "IP6", "RTP/SAVP", "inline:", "=", "/", ":", "::", "|", "2^", " "]
    ),
)


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(REAL_OFFERS)).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "insert", "cut", "char"]))
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        if operation == "delete" and len(lines) > 1:
            del lines[i]
        elif operation == "duplicate":
            lines.insert(j, lines[i])
        elif operation == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "token":
            pieces = re.split(r"([ :/|=])", lines[i])
            k = draw(st.integers(0, len(pieces) - 1))
            pieces[k] = draw(TOKENS)
            lines[i] = "".join(pieces)
        elif operation == "insert":
            lines.insert(i, draw(st.text(max_size=30)))
        elif operation == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            k = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:k] + draw(st.characters()) + lines[i][k + 1 :]
    return "\r\n".join(lines)


@FAST
@given(mutated_offers())
def test_mutated_real_offers_raise_nothing_but_sdp_error_and_still_answer(text: str) -> None:
    try:
        negotiated = negotiate(parse_offer(text))
    except SdpError as error:
        _check_error(error)
        return
    _answer_round_trips(negotiated)


POOL = [
    ("PCMU", 8000, 1, 0),
    ("PCMA", 8000, 1, 8),
    ("G722", 8000, 1, 9),
    ("G729", 8000, 1, 18),
    ("opus", 48000, 2, None),
    ("L16", 8000, 1, None),
    ("L16", 16000, 1, None),
    ("telephone-event", 8000, 1, None),
    ("telephone-event", 48000, 1, None),
    ("iLBC", 8000, 1, None),
    ("speex", 16000, 1, None),
]


@st.composite
def generated_offers(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL), unique=True))
    dynamic = iter(
        draw(st.lists(st.integers(96, 127), min_size=len(chosen), max_size=len(chosen), unique=True))
    )
    secure = draw(st.booleans())
    ipv6 = draw(st.booleans())
    media = [f"m=audio {draw(st.integers(1, 65535))} RTP/{'SAVP' if secure else 'AVP'}"]
    attributes: list[str] = []
    for name, rate, channels, static in chosen:
        payload_type = static if static is not None else next(dynamic)
        media[0] += f" {payload_type}"
        if static is None or draw(st.booleans()):
            attributes.append(f"a=rtpmap:{payload_type} {name}/{rate}" + ("/2" if channels == 2 else ""))
        if name == "telephone-event" and draw(st.booleans()):
            attributes.append(f"a=fmtp:{payload_type} 0-15")
    if draw(st.booleans()):
        attributes.append(f"a=ptime:{draw(st.sampled_from([10, 20, 30, 40, 60]))}")
    if draw(st.booleans()):
        attributes.append(f"a={draw(st.sampled_from(['sendrecv', 'sendonly', 'recvonly', 'inactive']))}")
    if draw(st.booleans()):
        attributes.append("a=rtcp-mux")
    if secure:
        attributes.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}")
        attributes.append(f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_32}|2^31")
    attributes = draw(st.permutations(attributes))
    video = ["m=video 5006 RTP/AVP 31"]
    before, after = (video, []) if draw(st.booleans()) else ([], video if draw(st.booleans()) else [])
    connection = "c=IN IP6 2001:db8::7" if ipv6 else "c=IN IP4 192.0.2.7"
    lines = [
        "v=0",
        "o=- 9 9 IN IP4 192.0.2.7",
        "s=-",
        connection,
        "t=0 0",
        *before,
        *media,
        *attributes,
        *after,
    ]
    return ("\n" if draw(st.booleans()) else "\r\n").join(lines) + "\r\n"


@FAST
@given(generated_offers())
def test_generated_offers_negotiate_by_the_offerers_order_and_answers_parse_back(text: str) -> None:
    offer = parse_offer(text)
    supported = [
        ("pcmu", 8000, 1),
        ("pcma", 8000, 1),
        ("l16", 8000, 1),
        ("l16", 16000, 1),
        ("opus", 48000, 2),
    ]
    expected = next(
        (c for c in offer.codecs if (c.name.lower(), c.clock_rate, c.channels) in supported), None
    )
    if expected is None:
        with pytest.raises(SdpError, match="no supported audio codec in the offer"):
            negotiate(offer)
        return
    negotiated = negotiate(offer)
    assert negotiated.codec == expected
    _answer_round_trips(negotiated)


def test_an_answer_is_itself_an_offer_the_relay_could_read() -> None:
    for text in REAL_OFFERS:
        negotiated = negotiate(parse_offer(text))
        answer = answer_for(negotiated)
        assert isinstance(parse_offer(answer), AudioOffer)
        assert answer.endswith("\r\n")
        assert "\n" not in answer.replace("\r\n", "")
        _answer_round_trips(negotiated)
