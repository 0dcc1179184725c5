"""Audio files in and out of the call timeline.

Anything PyAV (FFmpeg) can open is read into mono int16 chunks of 20 ms; WAV and FLAC are written back.
Written files appear under their name only once complete, so a failure never leaves half a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import av
import av.container
import numpy as np

from bleepline.audio.errors import AudioFileError
from bleepline.audio.rechunk import Rechunker
from bleepline.timeline import CHUNK_MS, AudioChunk, samples_per_chunk

#: Output containers by file suffix: (FFmpeg muxer, codec).
WRITABLE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
}


@dataclass(frozen=True)
class AudioFileInfo:
    """What an audio file holds, as its container reports it."""

    path: Path
    codec: str
    sample_rate: int
    channels: int
    duration: float | None


def _open_input(path: Path) -> av.container.InputContainer:
    if path.is_dir():
        raise AudioFileError(path, "is a directory, not an audio file")
    if not path.exists():
        raise AudioFileError(path, "does not exist")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "is empty")
    try:
        return av.open(str(path), mode="r")
    except PermissionError:
        raise AudioFileError(path, "cannot be read: permission denied") from None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise AudioFileError(path, "is not an audio file FFmpeg can read") from None


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.AudioStream:
    if not container.streams.audio:
        raise AudioFileError(path, "holds no audio stream")
    return container.streams.audio[0]


def probe_audio(path: str | os.PathLike[str]) -> AudioFileInfo:
    """Describe an audio file without decoding it."""
    path = Path(path)
    with _open_input(path) as container:
        stream = _audio_stream(container, path)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return AudioFileInfo(
            path=path,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
            duration=duration,
        )


def read_audio_chunks(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    chunk_ms: int = CHUNK_MS,
) -> Iterator[AudioChunk]:
    """Decode ``path`` into mono int16 chunks of ``chunk_ms`` on a timeline starting at 0.

    ``sample_rate`` resamples to that rate; None keeps the file's own rate. Channels are mixed down.
    The last chunk may be shorter. Errors name the file and what is wrong with it.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _audio_stream(container, path)
        rate = sample_rate or stream.codec_context.sample_rate
        if not rate or rate <= 0:
            raise AudioFileError(path, "declares no sample rate")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        rechunker = Rechunker(rate, samples_per_chunk(rate, chunk_ms))
        decoded_any = False
        try:
            for frame in container.decode(stream):
                decoded_any = True
                for out in resampler.resample(frame):
                    yield from rechunker.push(_mono_samples(out))
            for out in resampler.resample(None):
                yield from rechunker.push(_mono_samples(out))
        except av.error.FFmpegError:
            where = rechunker.position / rate
            raise AudioFileError(path, f"is damaged: decoding failed at {where:.2f} s") from None
        if not decoded_any:
            raise AudioFileError(path, "holds no decodable audio")
        yield from rechunker.flush()
    finally:
        container.close()


def _mono_samples(frame: av.AudioFrame) -> np.ndarray:
    # A packed s16 mono frame is a (1, n) array; copy, since PyAV reuses its buffers.
    return np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1).copy()


class AudioFileWriter:
    """Writes chunks to a WAV or FLAC file, which appears under ``path`` only on ``commit()``.

    Chunks must follow each other on the timeline; a gap is filled with silence so the file keeps the
    timeline, and the first chunk may start after 0 (silence before it).
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in WRITABLE_FORMATS:
            known = ", ".join(sorted(WRITABLE_FORMATS))
            raise AudioFileError(self.path, f"has an unsupported output type (use {known})")
        if self.path.is_dir():
            raise AudioFileError(self.path, "is a directory")
        self.sample_rate = sample_rate
        self.samples_written = 0
        muxer, codec = WRITABLE_FORMATS[suffix]
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            self._container = av.open(str(self._partial), mode="w", format=muxer)
        except (OSError, av.error.FFmpegError) as exc:
            raise AudioFileError(self.path, f"cannot be written: {_os_reason(exc)}") from None
        stream = self._container.add_stream(codec, rate=sample_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.format = "s16"
        self._stream = stream
        self._closed = False

    def write(self, chunk: AudioChunk) -> None:
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz written to a {self.sample_rate} Hz file")
        if chunk.start < self.samples_written:
            raise ValueError(
                f"chunk starts at sample {chunk.start}, before the end of what was written "
                f"({self.samples_written}): the timeline must not go back"
            )
        if chunk.start > self.samples_written:
            self._encode(np.zeros(chunk.start - self.samples_written, dtype=np.int16))
        self._encode(chunk.samples)

    def write_samples(self, samples: np.ndarray) -> None:
        self._encode(np.asarray(samples, dtype=np.int16))

    def _encode(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.samples_written
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            raise AudioFileError(self.path, f"cannot be written: {_os_reason(exc)}") from None
        self.samples_written += len(samples)

    def commit(self) -> Path:
        """Finish the file and move it into place."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._closed = True
            os.replace(self._partial, self.path)
        except (OSError, av.error.FFmpegError) as exc:
            self.discard()
            raise AudioFileError(self.path, f"cannot be written: {_os_reason(exc)}") from None
        return self.path

    def discard(self) -> None:
        """Abandon the file: nothing is left behind."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError, av.error.FFmpegError):
                self._container.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> AudioFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def write_audio(
    path: str | os.PathLike[str], chunks: Iterator[AudioChunk] | list[AudioChunk], sample_rate: int
) -> Path:
    """Write ``chunks`` to a WAV or FLAC file in one go."""
    with AudioFileWriter(path, sample_rate) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.path
