"""The call codecs a relay meets on RTP: G.711 µ-law and A-law, L16, and Opus (through PyAV).

Each codec turns one packet's payload into mono int16 samples at its clock rate and back. A payload that
cannot be decoded raises ``CodecError``: the endpoint drops the packet and counts it, and the timeline
fills the gap with silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

from bleepline.audio import g711
from bleepline.errors import BleeplineError
from bleepline.timeline import Samples


class CodecError(BleeplineError):
    """A payload that does not decode, or a codec this build does not carry."""


@dataclass(frozen=True)
class CodecSpec:
    """A codec as SDP names it: encoding name, RTP clock rate and channel count."""

    name: str
    clock_rate: int
    channels: int = 1

    @property
    def key(self) -> tuple[str, int]:
        return self.name.upper(), self.clock_rate


class AudioDecoder(Protocol):
    def decode(self, payload: bytes) -> Samples:
        """One packet's payload to mono int16 samples at the codec's clock rate."""
        ...


class AudioEncoder(Protocol):
    def encode(self, samples: Samples) -> bytes:
        """One packet's worth of mono int16 samples (at the clock rate) to a payload."""
        ...


PCMU = CodecSpec("PCMU", 8000)
PCMA = CodecSpec("PCMA", 8000)
L16_8K = CodecSpec("L16", 8000)
L16_16K = CodecSpec("L16", 16000)
OPUS = CodecSpec("opus", 48000, 2)
SUPPORTED = (PCMU, PCMA, L16_8K, L16_16K, OPUS)


class _Ulaw:
    def decode(self, payload: bytes) -> Samples:
        return g711.ulaw_decode(payload)

    def encode(self, samples: Samples) -> bytes:
        return g711.ulaw_encode(samples).tobytes()


class _Alaw:
    def decode(self, payload: bytes) -> Samples:
        return g711.alaw_decode(payload)

    def encode(self, samples: Samples) -> bytes:
        return g711.alaw_encode(samples).tobytes()


class _L16:
    """Linear 16-bit PCM in network byte order (RFC 3551)."""

    def decode(self, payload: bytes) -> Samples:
        if len(payload) % 2:
            raise CodecError(f"L16 payload of {len(payload)} bytes is not whole samples")
        return np.frombuffer(payload, dtype=">i2").astype(np.int16)

    def encode(self, samples: Samples) -> bytes:
        return np.asarray(samples, dtype=np.int16).astype(">i2").tobytes()


class _OpusDecoder:
    """Opus at 48 kHz; RTP always says two channels (RFC 7587), mixed down here."""

    def __init__(self) -> None:
        self._context = av.CodecContext.create("libopus", "r")
        self._context.sample_rate = 48000
        self._context.layout = "stereo"

    def decode(self, payload: bytes) -> Samples:
        if not payload:
            raise CodecError("empty Opus payload")
        try:
            frames = self._context.decode(av.Packet(payload))
        except (av.error.FFmpegError, ValueError):
            raise CodecError(f"Opus payload of {len(payload)} bytes does not decode") from None
        parts = [_mono(frame) for frame in frames]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class _OpusEncoder:
    def __init__(self, bit_rate: int = 32000) -> None:
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = 48000
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = bit_rate
        context.open()
        self._context = context
        self._pts = 0

    def encode(self, samples: Samples) -> bytes:
        frame = av.AudioFrame.from_ndarray(
            np.asarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        frame.pts = self._pts
        self._pts += len(samples)
        packets = self._context.encode(frame)
        return b"".join(bytes(p) for p in packets)


def _mono(frame: av.AudioFrame) -> Samples:
    data = frame.to_ndarray()
    if frame.format.name == "s16" and len(frame.layout.channels) == 2:  # packed: L R L R ...
        pairs = data.reshape(-1, 2).astype(np.int32)
        return ((pairs[:, 0] + pairs[:, 1]) // 2).astype(np.int16)
    if frame.format.name == "s16":
        mono: Samples = data.reshape(-1).astype(np.int16)
        return mono
    floats = data.reshape(len(frame.layout.channels), -1).mean(axis=0)  # planar float
    mixed: Samples = np.clip(np.round(floats * 32767), -32768, 32767).astype(np.int16)
    return mixed


#: Per codec: how to make a decoder and an encoder (fresh ones per stream: Opus keeps state).
_REGISTRY: dict[tuple[str, int], tuple[type[AudioDecoder], type[AudioEncoder]]] = {
    PCMU.key: (_Ulaw, _Ulaw),
    PCMA.key: (_Alaw, _Alaw),
    L16_8K.key: (_L16, _L16),
    L16_16K.key: (_L16, _L16),
    OPUS.key: (_OpusDecoder, _OpusEncoder),
}


def decoder_for(spec: CodecSpec) -> AudioDecoder:
    """A fresh decoder for one stream."""
    return _lookup(spec)[0]()


def encoder_for(spec: CodecSpec) -> AudioEncoder:
    """A fresh encoder for one outgoing stream."""
    return _lookup(spec)[1]()


def _lookup(spec: CodecSpec) -> tuple[type[AudioDecoder], type[AudioEncoder]]:
    try:
        return _REGISTRY[spec.key]
    except KeyError:
        raise CodecError(f"unsupported codec {spec.name}/{spec.clock_rate}") from None
