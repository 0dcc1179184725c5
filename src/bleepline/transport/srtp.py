"""SRTP and SRTCP (RFC 3711) keyed by SDES (RFC 4568), through libsrtp (``pylibsrtp``).

The caller's a=crypto line keys what it sends (``SrtpInbound``); the relay answers with a key of its own,
fresh for every call, that keys what the relay sends back (``SrtpOutbound``). ``srtp_for_offer`` makes both.

Key material lives in the libsrtp sessions and in the answer's ``CryptoAttribute`` only: no repr, str,
error message or log line here holds a key, a salt or a packet's bytes. (Python cannot wipe ``bytes``, so
keys stay in memory until collected; that is the limit of what can be promised.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pylibsrtp

from bleepline.transport.errors import SdpError, SrtpError, SrtpProtectError
from bleepline.transport.sdp import SRTP_KEY_SALT_BYTES, CryptoAttribute, answer_crypto

#: The SDES suite names libsrtp implements, with their libsrtp profiles. The AES-CM ones are what SBCs
#: offer; the GCM ones (RFC 7714) are rarer. AES_192/256_CM and F8 have no libsrtp profile, so are refused.
#: (For the 32-bit suite, SRTCP keeps an 80-bit tag, as RFC 4568 6.2.2 asks and libsrtp's profile does.)
SRTP_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
#: The suites to give ``sdp.negotiate(..., srtp_suites=...)`` to accept all that this module implements.
SRTP_SUITES = tuple(SRTP_PROFILES)

#: Packets the replay window spans: 2.56 s of 20 ms audio. A packet later than that is useless to the
#: jitter buffer anyway, and libsrtp takes 64 to 32767.
DEFAULT_REPLAY_WINDOW = 128

# pylibsrtp raises one exception type whose message is libsrtp's fixed status text; map it to a reason.
# Replay is checked before authentication, so a forged copy of a seen sequence number reads as a replay.
_REASONS = {
    "authentication failure": "srtp_auth",
    "cipher failure": "srtp_auth",
    "replay check failed (bad index)": "srtp_replay",
    "replay check failed (index too old)": "srtp_replay",
    "packet index is too old to consider": "srtp_replay",
    "unsupported parameter": "srtp_header",
    # SRTCP with its E flag clear: sent unencrypted, which no suite accepted here allows (UNENCRYPTED_SRTCP
    # is refused). Plain RTCP reads so, as from a peer that never turned SRTP on, or a forger.
    "unable to perform desired validation": "srtp_unencrypted",
}
_MESSAGES = {
    "srtp_auth": "failed authentication (forged, altered, or under another key)",
    "srtp_replay": "was a replay (sequence number seen before, or older than the replay window)",
    "srtp_header": "is too short for its header and authentication tag",
    "srtp_unencrypted": "is marked unencrypted, which the negotiated suite does not allow",
    "srtp_error": "was refused by libsrtp",
}


def _profile(crypto: CryptoAttribute) -> tuple[int, bytes]:
    """The libsrtp profile and the one key of ``crypto``, or SdpError saying why it cannot be used."""
    profile = SRTP_PROFILES.get(crypto.suite)
    if profile is None:
        # Only a known suite name is quoted: an unknown one is a token from the wire, maybe a key.
        name = crypto.suite if crypto.suite in SRTP_KEY_SALT_BYTES else "an unknown suite"
        supported = ", ".join(SRTP_SUITES)
        raise SdpError(
            f"a=crypto tag {crypto.tag}: SRTP suite {name} is not supported; use one of {supported}"
        )
    # libsrtp (as pylibsrtp drives it) takes one master key per direction, without MKI, and none of the
    # session parameters (UNENCRYPTED_SRTP, KDR...): refused rather than half-honoured, as negotiate does.
    if len(crypto.keys) != 1 or crypto.keys[0].mki is not None:
        raise SdpError(f"a=crypto tag {crypto.tag}: only one key without MKI is supported")
    if crypto.session_params:
        raise SdpError(f"a=crypto tag {crypto.tag}: session parameters are not supported")
    key_salt = crypto.keys[0].key_salt
    expected = SRTP_KEY_SALT_BYTES[crypto.suite]
    if len(key_salt) != expected:
        # libsrtp would take a longer key and silently ignore the rest: refuse it here instead.
        raise SdpError(
            f"a=crypto tag {crypto.tag}: key is {len(key_salt)} bytes, {crypto.suite} needs {expected}"
        )
    return profile, key_salt


class SrtpInbound:
    """Unprotects the SRTP and SRTCP the caller sends, keyed by the offer's a=crypto line.

    One libsrtp session with an any-inbound-SSRC template: a stream per SSRC is created only once a packet
    under that SSRC authenticates, so a stranger's packets can neither create state nor move the replay
    window. Not thread-safe (libsrtp keeps per-stream counters): use it from the endpoint's loop only.
    """

    def __init__(self, crypto: CryptoAttribute, *, window_size: int = DEFAULT_REPLAY_WINDOW) -> None:
        profile, key_salt = _profile(crypto)
        if not 64 <= window_size <= 0x7FFF:
            raise ValueError(f"SRTP replay window must be 64-32767 packets, got {window_size}")
        policy = pylibsrtp.Policy(
            key=key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
        )
        policy.window_size = window_size
        # libsrtp derives its session keys at creation; the policy (and its copy of the key) is not kept.
        self._session = pylibsrtp.Session(policy)
        self.suite = crypto.suite
        self.tag = crypto.tag

    def __repr__(self) -> str:
        return f"SrtpInbound(tag={self.tag}, suite={self.suite}, key hidden)"

    def unprotect(self, data: bytes) -> bytes:
        """The RTP packet inside an SRTP one, authenticated and replay-checked; ``SrtpError`` if it is not."""
        try:
            return self._session.unprotect(data)
        except (pylibsrtp.Error, ValueError) as error:
            raise self._error(error, "SRTP", len(data)) from None

    def unprotect_rtcp(self, data: bytes) -> bytes:
        """The RTCP compound packet inside an SRTCP one; ``SrtpError`` if it does not authenticate."""
        try:
            return self._session.unprotect_rtcp(data)
        except (pylibsrtp.Error, ValueError) as error:
            raise self._error(error, "SRTCP", len(data)) from None

    def _error(self, error: Exception, kind: str, size: int) -> SrtpError:
        # ``from None`` above: libsrtp's text is mapped here, and the chained exception adds nothing.
        reason = (
            _REASONS.get(str(error), "srtp_error") if isinstance(error, pylibsrtp.Error) else "srtp_error"
        )
        return SrtpError(reason, f"{kind} packet of {size} bytes {_MESSAGES[reason]} ({self.suite})")


class SrtpOutbound:
    """Protects the RTP and RTCP the relay sends to the caller, under the key of the relay's answer.

    Retransmitting a sequence number is refused (libsrtp's ``allow_repeat_tx`` stays off): with AES-CM a
    second, different packet under the same index would reuse keystream and leak both payloads.
    """

    def __init__(self, crypto: CryptoAttribute) -> None:
        profile, key_salt = _profile(crypto)
        policy = pylibsrtp.Policy(
            key=key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
        self._session = pylibsrtp.Session(policy)
        self.crypto = crypto

    @property
    def suite(self) -> str:
        return self.crypto.suite

    def __repr__(self) -> str:
        return f"SrtpOutbound(tag={self.crypto.tag}, suite={self.crypto.suite}, key hidden)"

    def protect(self, packet: bytes) -> bytes:
        """The SRTP packet for one serialized RTP packet; ``SrtpProtectError`` if libsrtp refuses it."""
        try:
            return self._session.protect(packet)
        except (pylibsrtp.Error, ValueError) as error:
            raise self._error(error, "RTP", len(packet)) from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        """The SRTCP packet for one serialized RTCP compound packet (sender report, BYE...)."""
        try:
            return self._session.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as error:
            raise self._error(error, "RTCP", len(packet)) from None

    def _error(self, error: Exception, kind: str, size: int) -> SrtpProtectError:
        # libsrtp's texts and pylibsrtp's "packet is too long" are fixed strings: safe to quote.
        return SrtpProtectError(
            f"{kind} packet of {size} bytes could not be protected ({self.suite}): {error}"
        )


@dataclass(frozen=True)
class SrtpContexts:
    """The SRTP state of one call: what the caller sends is unprotected by ``inbound`` (the offer's key),
    what the relay sends is protected by ``outbound`` (the relay's key, announced by ``answer``)."""

    inbound: SrtpInbound
    outbound: SrtpOutbound

    @property
    def answer(self) -> CryptoAttribute:
        """The relay's a=crypto line for ``sdp.build_answer(..., crypto=...)``: the offer's tag and suite,
        the relay's key."""
        return self.outbound.crypto


def srtp_for_offer(offered: CryptoAttribute, *, window_size: int = DEFAULT_REPLAY_WINDOW) -> SrtpContexts:
    """Both directions of a call's SRTP from the offer's chosen a=crypto line (``Negotiated.crypto``).

    The relay's own key is fresh from ``secrets`` for every call: each direction has its own key (RFC 4568
    6.1), since with a shared one either side could forge the other's packets, and an SSRC clash would
    reuse keystream. Raises ``SdpError`` for a suite or key
    libsrtp cannot use, with a message that quotes no key.
    """
    inbound = SrtpInbound(offered, window_size=window_size)
    key_salt = secrets.token_bytes(SRTP_KEY_SALT_BYTES[offered.suite])
    return SrtpContexts(inbound=inbound, outbound=SrtpOutbound(answer_crypto(offered, key_salt)))
