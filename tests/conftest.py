"""Shared test helpers: generated audio (never real speech from outside the project) and keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from bleepline.store.keys import Identity, write_key_pair

KeyPairMaker = Callable[[str], tuple[Identity, Path, Path]]


def sine(seconds: float, rate: int, frequency: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.round(level * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def noise(samples: int, seed: int = 0) -> np.ndarray:
    """Full-scale random samples: every bit matters, so any change shows."""
    return np.random.default_rng(seed).integers(-32768, 32768, size=samples, dtype=np.int16)


def encode_file(
    path: Path,
    samples: np.ndarray,
    rate: int,
    codec: str,
    channels: int = 1,
    container: str | None = None,
) -> Path:
    """Write ``samples`` (mono int16) to ``path`` with any FFmpeg codec, duplicated to ``channels``."""
    layout = {1: "mono", 2: "stereo"}[channels]
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        planar = np.repeat(samples.reshape(1, -1), channels, axis=0)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planar.T.reshape(1, -1)), format="s16", layout=layout
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def key_pair(tmp_path: Path, identity: Identity) -> tuple[Path, Path]:
    """(recipient.pub, identity.key) for ``identity``, written to disk."""
    return write_key_pair(tmp_path / "keys", identity)


@pytest.fixture
def make_key_pair(tmp_path: Path) -> KeyPairMaker:
    def make(name: str) -> tuple[Identity, Path, Path]:
        ident = Identity.generate()
        public, private = write_key_pair(tmp_path / name, ident)
        return ident, public, private

    return make


@pytest.fixture
def wav_8k(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3.3 s mono 8 kHz WAV of noise, and its samples."""
    samples = noise(8000 * 3 + 2400, seed=7)
    return encode_file(tmp_path / "call.wav", samples, 8000, "pcm_s16le"), samples
