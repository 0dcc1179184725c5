"""SDES-SRTP: contexts from an offer's a=crypto line, the relay's own answer key, and an endpoint that
unprotects before it parses, latches only on packets that authenticate, and never shows a key.

"Caller" objects stand for the far end: it protects with the offer's key and unprotects with the answer's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets

import pytest

from bleepline.transport.errors import MalformedPacketError, SdpError, SrtpError, SrtpProtectError
from bleepline.transport.rtp import RtcpBye, RtpPacket, empty_receiver_report, parse_rtp
from bleepline.transport.sdp import (
    SRTP_KEY_SALT_BYTES,
    CryptoAttribute,
    Negotiated,
    SrtpKey,
    build_answer,
    negotiate,
    parse_offer,
)
from bleepline.transport.srtp import (
    SRTP_SUITES,
    SrtpContexts,
    SrtpInbound,
    SrtpOutbound,
    srtp_for_offer,
)
from tests.transport.test_endpoint import DEADLINE_S, Call, run_call, udp_socket, until

SSRC = 0x1234
# Something that must never surface in a message: call audio is as secret as the key.
AUDIO = b"SECRET-AUDIO-4111" * 9


def offer_text(suite: str, key_salt: bytes, extra: str = "") -> str:
    key = base64.b64encode(key_salt).decode("ascii")
    lines = (
        "v=0",
        "o=SBC 4242 4243 IN IP4 192.0.2.50",
        "s=SBC-Session",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/SAVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        f"a=crypto:3 {suite} inline:{key}|2^31{extra}",
        "a=ptime:20",
        "a=sendrecv",
        "a=rtcp-mux",
    )
    return "\r\n".join(lines) + "\r\n"


def negotiated_offer(suite: str = "AES_CM_128_HMAC_SHA1_80") -> tuple[Negotiated, bytes]:
    """A negotiated RTP/SAVP offer under a fresh key, and that key (master key then salt)."""
    key_salt = secrets.token_bytes(SRTP_KEY_SALT_BYTES[suite])
    negotiated = negotiate(parse_offer(offer_text(suite, key_salt)), srtp_suites=SRTP_SUITES)
    assert negotiated.crypto is not None
    return negotiated, key_salt


def offer_crypto(suite: str = "AES_CM_128_HMAC_SHA1_80") -> CryptoAttribute:
    crypto = negotiated_offer(suite)[0].crypto
    assert crypto is not None
    return crypto


def rtp(seq: int, payload: bytes = AUDIO) -> bytes:
    return RtpPacket(8, seq, seq * 160, SSRC, payload).serialize()


def test_srtp_error_is_a_malformed_packet_with_a_reason() -> None:
    error = SrtpError("srtp_auth", "SRTP packet of 182 bytes failed authentication")
    assert isinstance(error, MalformedPacketError)
    assert error.reason == "srtp_auth"


# --- contexts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SRTP_SUITES)
def test_round_trip_both_directions_with_keys_from_an_sdp_offer(suite: str) -> None:
    negotiated, _ = negotiated_offer(suite)
    assert negotiated.crypto is not None
    relay = srtp_for_offer(negotiated.crypto)
    caller_tx = SrtpOutbound(negotiated.crypto)
    caller_rx = SrtpInbound(relay.answer)

    for seq in range(1, 4):
        protected = caller_tx.protect(rtp(seq))
        assert AUDIO[:16] not in protected  # encrypted, not only authenticated
        assert relay.inbound.unprotect(protected) == rtp(seq)
        assert caller_rx.unprotect(relay.outbound.protect(rtp(seq))) == rtp(seq)
    report = empty_receiver_report(SSRC)
    assert relay.inbound.unprotect_rtcp(caller_tx.protect_rtcp(report)) == report
    assert caller_rx.unprotect_rtcp(relay.outbound.protect_rtcp(report)) == report


def test_answer_has_the_offers_tag_and_suite_and_a_fresh_key_each_call() -> None:
    negotiated, offer_key = negotiated_offer("AES_CM_128_HMAC_SHA1_32")
    assert negotiated.crypto is not None
    first, second = srtp_for_offer(negotiated.crypto), srtp_for_offer(negotiated.crypto)
    keys = {offer_key, first.answer.keys[0].key_salt, second.answer.keys[0].key_salt}
    assert len(keys) == 3
    assert (first.answer.tag, first.answer.suite) == (3, "AES_CM_128_HMAC_SHA1_32")
    assert len(first.answer.keys[0].key_salt) == 30

    answer = build_answer(
        negotiated, address="192.0.2.1", port=20000, session_id=1, direction="recvonly", crypto=first.answer
    )
    (line,) = [line for line in answer.splitlines() if line.startswith("a=crypto:")]
    assert line == f"a=crypto:{first.answer.sdp_value()}"
    # The relay's key as the caller reads it from the answer opens what the relay sends.
    caller_rx = SrtpInbound(parse_offer(answer).crypto[0])
    assert caller_rx.unprotect(first.outbound.protect(rtp(1))) == rtp(1)


def test_a_packet_under_another_key_or_tampered_fails_as_srtp_auth() -> None:
    crypto = offer_crypto()
    relay = SrtpInbound(crypto)
    caller = SrtpOutbound(crypto)
    stranger = SrtpOutbound(offer_crypto())
    tampered = bytearray(caller.protect(rtp(1)))
    tampered[20] ^= 0x01
    for packet in (bytes(tampered), stranger.protect(rtp(2)), rtp(3)):
        with pytest.raises(SrtpError) as caught:
            relay.unprotect(packet)
        assert caught.value.reason == "srtp_auth"
    assert relay.unprotect(caller.protect(rtp(4))) == rtp(4)  # failures left no state behind


def test_a_replayed_packet_fails_as_srtp_replay_and_a_short_one_as_srtp_header() -> None:
    crypto = offer_crypto()
    relay, caller = SrtpInbound(crypto), SrtpOutbound(crypto)
    packet = caller.protect(rtp(1))
    relay.unprotect(packet)
    report = caller.protect_rtcp(empty_receiver_report(SSRC))
    relay.unprotect_rtcp(report)
    failures = (
        (relay.unprotect, packet, "srtp_replay"),
        (relay.unprotect_rtcp, report, "srtp_replay"),
        (relay.unprotect, packet[:8], "srtp_header"),
        (relay.unprotect_rtcp, report[:6], "srtp_header"),
    )
    for unprotect, data, reason in failures:
        with pytest.raises(SrtpError) as caught:
            unprotect(data)
        assert caught.value.reason == reason


def test_a_packet_older_than_the_replay_window_fails_as_srtp_replay() -> None:
    crypto = offer_crypto()
    relay, caller = SrtpInbound(crypto, window_size=64), SrtpOutbound(crypto)
    old = caller.protect(rtp(1))
    relay.unprotect(caller.protect(rtp(100)))
    with pytest.raises(SrtpError) as caught:
        relay.unprotect(old)
    assert caught.value.reason == "srtp_replay"


def test_protect_refuses_a_sequence_number_twice_rather_than_reuse_keystream() -> None:
    outbound = srtp_for_offer(offer_crypto()).outbound
    outbound.protect(rtp(1))
    with pytest.raises(SrtpProtectError, match="could not be protected"):
        outbound.protect(RtpPacket(8, 1, 160, SSRC, b"\x00" * 160).serialize())


@pytest.mark.parametrize(
    ("crypto", "expected"),
    [
        (
            CryptoAttribute(1, "AES_256_CM_HMAC_SHA1_80", (SrtpKey(bytes(46)),)),
            "SRTP suite AES_256_CM_HMAC_SHA1_80 is not supported; use one of AES_CM_128_HMAC_SHA1_80",
        ),
        (CryptoAttribute(1, "F8_128_HMAC_SHA1_80", (SrtpKey(bytes(30)),)), "F8_128_HMAC_SHA1_80 is not"),
        (CryptoAttribute(1, "SECRETSUITE", (SrtpKey(bytes(30)),)), "SRTP suite an unknown suite is not"),
        (
            CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (SrtpKey(bytes(30), mki=1, mki_length=4),)),
            "one key without MKI",
        ),
        (
            CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (SrtpKey(bytes(30)), SrtpKey(bytes(30)))),
            "one key without MKI",
        ),
        (
            CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (SrtpKey(bytes(30)),), ("UNENCRYPTED_SRTP",)),
            "session parameters",
        ),
        (CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (SrtpKey(bytes(31)),)), "key is 31 bytes"),
    ],
)
def test_an_unusable_crypto_line_is_refused_clearly(crypto: CryptoAttribute, expected: str) -> None:
    for build in (srtp_for_offer, SrtpInbound, SrtpOutbound):
        with pytest.raises(SdpError, match=expected) as caught:
            build(crypto)
        assert "SECRETSUITE" not in str(caught.value)
        assert f"a=crypto tag {crypto.tag}" in str(caught.value)


def test_a_replay_window_libsrtp_cannot_take_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="replay window"):
        SrtpInbound(offer_crypto(), window_size=16)


# --- the endpoint --------------------------------------------------------------------------------------


def test_the_endpoint_yields_the_same_packets_from_srtp_as_from_plain_rtp() -> None:
    crypto = offer_crypto("AEAD_AES_128_GCM")
    caller = SrtpOutbound(crypto)
    plain = [rtp(seq, bytes([seq]) * 160) for seq in range(10)]

    async def send_plain(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, *plain)

    async def send_srtp(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, *(caller.protect(packet) for packet in plain))
            assert call.endpoint.source == far_end.getsockname()

    from_plain = run_call(send_plain)
    from_srtp = run_call(send_srtp, srtp=SrtpInbound(crypto))
    assert [packet for packet, _ in from_srtp.packets] == [packet for packet, _ in from_plain.packets]
    assert [packet for packet, _ in from_srtp.packets] == [parse_rtp(packet) for packet in plain]
    assert (from_srtp.endpoint.stats.rtp, from_srtp.endpoint.stats.malformed) == (10, {})


def test_a_tampered_packet_is_dropped_and_counted_as_srtp_auth() -> None:
    crypto = offer_crypto()
    caller = SrtpOutbound(crypto)
    tampered = bytearray(caller.protect(rtp(2)))
    tampered[-1] ^= 0x80  # the authentication tag

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, caller.protect(rtp(1)), bytes(tampered), caller.protect(rtp(3)))

    call = run_call(scenario, srtp=SrtpInbound(crypto))
    assert [packet.sequence for packet, _ in call.packets] == [1, 3]
    assert call.endpoint.stats.malformed == {"srtp_auth": 1}


def test_a_replayed_packet_is_dropped_and_counted_as_srtp_replay() -> None:
    crypto = offer_crypto()
    caller = SrtpOutbound(crypto)
    first, second = caller.protect(rtp(1)), caller.protect(rtp(2))

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, first, second, first, second, caller.protect(rtp(3)))

    call = run_call(scenario, srtp=SrtpInbound(crypto))
    assert [packet.sequence for packet, _ in call.packets] == [1, 2, 3]
    assert call.endpoint.stats.malformed == {"srtp_replay": 2}


def test_a_strangers_forged_packets_cannot_latch_the_source() -> None:
    crypto = offer_crypto()
    caller = SrtpOutbound(crypto)
    forger = SrtpOutbound(offer_crypto())  # right suite, wrong key

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end, udp_socket() as stranger:
            # First on the port, which without SRTP would win the latch: plain RTP, then SRTP under a
            # wrong key, then a bare RTCP BYE.
            await call.deliver(stranger, rtp(1), forger.protect(rtp(2)), RtcpBye((SSRC,)).serialize())
            assert call.endpoint.source is None
            await call.deliver(far_end, caller.protect(rtp(1)))
            assert call.endpoint.source == far_end.getsockname()
            await call.deliver(stranger, forger.protect(rtp(3)))

    call = run_call(scenario, srtp=SrtpInbound(crypto))
    assert [packet.sequence for packet, _ in call.packets] == [1]
    assert call.endpoint.stats.malformed == {"srtp_auth": 2}
    assert call.endpoint.stats.stranger == 2  # the RTCP before a source, the SRTP after the latch


def test_srtcp_from_the_source_is_unprotected_and_a_forged_bye_is_dropped() -> None:
    crypto = offer_crypto()
    caller = SrtpOutbound(crypto)
    bye = empty_receiver_report(SSRC) + RtcpBye((SSRC,), "hung up").serialize()

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, caller.protect(rtp(1)))
            # A BYE in clear, or under another key, from the source's own address (spoofed) ends nothing.
            await call.deliver(far_end, bye, SrtpOutbound(offer_crypto()).protect_rtcp(bye))
            assert call.byes == 0
            await call.deliver(far_end, caller.protect_rtcp(empty_receiver_report(SSRC)))
            await call.deliver(far_end, caller.protect_rtcp(bye))

    call = run_call(scenario, srtp=SrtpInbound(crypto))
    assert call.byes == 1
    assert call.endpoint.stats.rtcp == 2
    assert call.endpoint.stats.malformed == {"rtcp_srtp_unencrypted": 1, "rtcp_srtp_auth": 1}


def test_passthrough_forwards_the_srtp_bytes_as_received() -> None:
    crypto = offer_crypto()
    caller = SrtpOutbound(crypto)
    sent = [caller.protect(rtp(seq)) for seq in range(3)]

    with udp_socket() as target:

        async def scenario(call: Call) -> None:
            loop = asyncio.get_running_loop()
            with udp_socket() as far_end:
                for data in sent:
                    far_end.sendto(data, call.endpoint.local_address)
                    forwarded, _ = await asyncio.wait_for(loop.sock_recvfrom(target, 4096), DEADLINE_S)
                    assert forwarded == data
                await call.deliver(far_end, sent[0])  # a replay is dropped, so not forwarded either

        call = run_call(scenario, forward_to=target.getsockname(), srtp=SrtpInbound(crypto))
    assert call.endpoint.stats.forwarded == 3
    assert call.endpoint.stats.malformed == {"srtp_replay": 1}


# --- no key anywhere -----------------------------------------------------------------------------------


def test_no_key_in_any_repr_str_error_or_log_line(caplog: pytest.LogCaptureFixture) -> None:
    negotiated, offer_key = negotiated_offer()
    assert negotiated.crypto is not None
    contexts = srtp_for_offer(negotiated.crypto)
    answer_key = contexts.answer.keys[0].key_salt
    caller = SrtpOutbound(negotiated.crypto)
    texts: list[str] = []

    def on_packet(packet: RtpPacket, arrival: float) -> None:
        raise RuntimeError("downstream failure")  # makes the endpoint log

    async def main() -> None:
        from bleepline.transport.endpoint import open_endpoint

        endpoint = await open_endpoint(
            "127.0.0.1", 0, on_packet=on_packet, on_bye=lambda: None, srtp=contexts.inbound
        )
        with udp_socket() as far_end:
            first = caller.protect(rtp(1))
            for data in (first, first, rtp(2), first[:5]):
                far_end.sendto(data, endpoint.local_address)
            await until(lambda: endpoint.stats.datagrams == 4)
        endpoint.close()
        texts.extend((repr(endpoint.stats), repr(vars(endpoint))))

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
        errors: list[Exception] = []
        for data in (caller.protect(rtp(5))[:-1] + b"\x00", rtp(6), b"\x80\x00"):
            try:
                contexts.inbound.unprotect(data)
            except SrtpError as error:
                errors.append(error)
        contexts.outbound.protect(rtp(7))
        try:
            contexts.outbound.protect(rtp(7, b"\x00" * 160))
        except SrtpProtectError as error:
            errors.append(error)
        logging.getLogger("bleepline").debug("contexts %s %r %s", contexts, contexts.answer, negotiated)
    assert len(errors) == 4
    assert "downstream failure" not in caplog.text  # the endpoint logs only the exception's type
    assert "RuntimeError" in caplog.text

    objects: list[object] = [
        negotiated,
        negotiated.offer,
        negotiated.crypto,
        contexts,
        contexts.inbound,
        contexts.outbound,
        contexts.answer,
        contexts.answer.keys,
        *errors,
    ]
    texts += [text for obj in objects for text in (repr(obj), str(obj))]
    texts += [repr(error.args) for error in errors]
    texts.append(caplog.text)
    for key in (offer_key, answer_key):
        forms = (base64.b64encode(key).decode(), key.hex(), key.hex().upper(), repr(key)[2:-1])
        for text in texts:
            for form in forms:
                assert form not in text
    for text in texts:
        assert "SECRET-AUDIO" not in text


def test_contexts_is_a_dataclass_of_the_two_directions() -> None:
    contexts = srtp_for_offer(offer_crypto())
    assert isinstance(contexts, SrtpContexts)
    assert contexts.answer is contexts.outbound.crypto
    assert repr(contexts).startswith("SrtpContexts(inbound=SrtpInbound(tag=3, suite=AES_CM_128_HMAC_SHA1_80")
