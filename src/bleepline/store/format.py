"""The `.bleep` recording format, version 1: layout, header and the cryptography that binds them.

Layout (all integers big-endian; docs/recording-format.md is the full specification):

    "BLEEPLINE" | version u8 | header length u32 | header JSON | header MAC (32)
    then frames: flags+length u32 (bit 31 = final) | sealed chunk (PCM + 16-byte tag)

A random 32-byte file key is wrapped with HPKE for each recipient. The header MAC and the chunk key are
derived from the file key, so a recipient who unwraps it can check the header (including every other
recipient's wrapped key) and every chunk. Chunk nonces carry a counter and the final flag (age's STREAM),
so truncation, reordering, duplication and modification all fail authentication.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives import hpke as hpke_api
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"BLEEPLINE"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct(">9sBI")  # magic, version, header length
FRAME = struct.Struct(">I")
FINAL_FLAG = 0x8000_0000
LENGTH_MASK = 0x7FFF_FFFF
MAC_SIZE = 32
TAG_SIZE = 16
FILE_KEY_SIZE = 32
SALT_SIZE = 16
MAX_HEADER_BYTES = 1 << 20
MAX_METADATA_BYTES = 64 << 10
MAX_SAMPLE_RATE = 384_000
MAX_CHUNK_SECONDS = 10
CODEC_PCM_S16LE = "pcm_s16le"
HPKE_SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305"

_HPKE = hpke_api.Suite(hpke_api.KEM.X25519, hpke_api.KDF.HKDF_SHA256, hpke_api.AEAD.CHACHA20_POLY1305)
_HPKE_INFO = b"bleepline/v1 file key"
_HEADER_MAC_INFO = b"bleepline/v1 header mac"
_PAYLOAD_INFO = b"bleepline/v1 payload"


class HeaderError(ValueError):
    """The header bytes do not describe a valid version-1 recording."""


@dataclass(frozen=True)
class WrappedKey:
    """The file key sealed with HPKE to one recipient, named by the recipient's key id."""

    key_id: str
    sealed: bytes


@dataclass(frozen=True)
class RecordingHeader:
    """What a recording says about itself. Stored in the clear (authenticated, not encrypted): it must
    never hold personal data, so callers put no phone numbers or names in ``metadata``."""

    call_id: str
    created_at: str
    sample_rate: int
    chunk_samples: int
    redacted: bool
    recipients: tuple[WrappedKey, ...]
    stream_salt: bytes
    metadata: dict[str, Any] = field(default_factory=dict)
    codec: str = CODEC_PCM_S16LE
    channels: int = 1
    version: int = FORMAT_VERSION

    @property
    def max_sealed_chunk(self) -> int:
        return self.chunk_samples * 2 + TAG_SIZE

    def to_json(self) -> bytes:
        document = {
            "format": "bleepline-recording",
            "version": self.version,
            "call_id": self.call_id,
            "created_at": self.created_at,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "codec": self.codec,
            "chunk_samples": self.chunk_samples,
            "redacted": self.redacted,
            "metadata": self.metadata,
            "hpke": HPKE_SUITE_NAME,
            "stream_salt": _b64(self.stream_salt),
            "recipients": [{"key_id": r.key_id, "sealed": _b64(r.sealed)} for r in self.recipients],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RecordingHeader:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise HeaderError("header is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != "bleepline-recording":
            raise HeaderError("header does not describe a bleepline recording")
        try:
            recipients = tuple(
                WrappedKey(_str(r, "key_id"), _unb64(_str(r, "sealed"))) for r in doc["recipients"]
            )
            header = cls(
                version=_int(doc, "version"),
                call_id=_str(doc, "call_id"),
                created_at=_str(doc, "created_at"),
                sample_rate=_int(doc, "sample_rate"),
                channels=_int(doc, "channels"),
                codec=_str(doc, "codec"),
                chunk_samples=_int(doc, "chunk_samples"),
                redacted=_bool(doc, "redacted"),
                metadata=_dict(doc, "metadata"),
                stream_salt=_unb64(_str(doc, "stream_salt")),
                recipients=recipients,
            )
        except (KeyError, TypeError):
            raise HeaderError("header is missing fields or has fields of the wrong type") from None
        header.validate()
        return header

    def validate(self) -> None:
        if self.version != FORMAT_VERSION:
            raise HeaderError(f"header says version {self.version}, preamble {FORMAT_VERSION}")
        if self.codec != CODEC_PCM_S16LE or self.channels != 1:
            raise HeaderError(f"unsupported audio: codec {self.codec}, {self.channels} channels")
        if not 0 < self.sample_rate <= MAX_SAMPLE_RATE:
            raise HeaderError(f"impossible sample rate {self.sample_rate}")
        if not 0 < self.chunk_samples <= MAX_CHUNK_SECONDS * self.sample_rate:
            raise HeaderError(f"impossible chunk size {self.chunk_samples}")
        if not self.recipients:
            raise HeaderError("no recipients: nobody could ever open this recording")
        if len(self.stream_salt) != SALT_SIZE:
            raise HeaderError("stream salt has the wrong length")


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(key)
    return value


def _bool(doc: dict[str, Any], key: str) -> bool:
    value = doc[key]
    if not isinstance(value, bool):
        raise TypeError(key)
    return value


def _dict(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc[key]
    if not isinstance(value, dict):
        raise TypeError(key)
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise TypeError("base64") from None


def encode_preamble(header_json: bytes) -> bytes:
    return PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header_json))


def wrap_file_key(file_key: bytes, recipient_public_key: Any) -> bytes:
    return bytes(_HPKE.encrypt(file_key, recipient_public_key, info=_HPKE_INFO))


def unwrap_file_key(sealed: bytes, private_key: Any) -> bytes | None:
    """The file key, or None when this private key does not open ``sealed``."""
    try:
        file_key = bytes(_HPKE.decrypt(sealed, private_key, info=_HPKE_INFO))
    except InvalidTag:  # also what a malformed encapsulation gives: either way, not ours
        return None
    return file_key if len(file_key) == FILE_KEY_SIZE else None


def _derive(file_key: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(file_key)


def header_mac(file_key: bytes, preamble_and_header: bytes) -> bytes:
    mac = hmac.HMAC(_derive(file_key, _HEADER_MAC_INFO), hashes.SHA256())
    mac.update(preamble_and_header)
    return mac.finalize()


def verify_header_mac(file_key: bytes, preamble_and_header: bytes, tag: bytes) -> bool:
    mac = hmac.HMAC(_derive(file_key, _HEADER_MAC_INFO), hashes.SHA256())
    mac.update(preamble_and_header)
    try:
        mac.verify(tag)
    except InvalidSignature:
        return False
    return True


def payload_cipher(file_key: bytes, stream_salt: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_derive(file_key, _PAYLOAD_INFO, salt=stream_salt))


def chunk_nonce(counter: int, final: bool) -> bytes:
    """11-byte big-endian chunk counter, then 1 if this is the last chunk (age's STREAM nonce)."""
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def encode_frame(sealed_length: int, final: bool) -> bytes:
    return FRAME.pack(sealed_length | (FINAL_FLAG if final else 0))


def decode_frame(word: int) -> tuple[int, bool]:
    return word & LENGTH_MASK, bool(word & FINAL_FLAG)
