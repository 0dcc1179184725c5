"""A recording as a WAV file, decrypted on the fly: byte ranges served from sealed chunks, never from disk.

The WAV's size is known before anything is decrypted: a 44-byte header and two bytes a sample, and the
number of samples follows from the lengths of the chunk frames (``RecordingReader.frames``). So a range
request starts at the chunk that holds its first byte, skipping the ones before it unread, and stops at
the chunk that holds its last. Every byte of audio handed out comes from a chunk that has just passed
authentication; a chunk that fails ends the stream there (the caller drops the connection, so a player
sees a short response, never a forged one).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bleepline.store.keys import Identity
from bleepline.store.recording import ChunkFrame, RecordingReader

WAV_HEADER_BYTES = 44
_BYTES_PER_SAMPLE = 2
#: A RIFF size field is 32 bits: a longer recording cannot be one WAV (at 8 kHz that is ~74 hours).
_MOST_DATA_BYTES = 0xFFFF_FFFF - 36
#: Digits in a range position: more than any WAV can have, and it keeps int() away from huge strings.
_MOST_DIGITS = 15


def wav_header(sample_rate: int, samples: int) -> bytes:
    """The 44-byte header of a PCM16 mono WAV of ``samples`` samples (what Python's ``wave`` writes)."""
    data_bytes = samples * _BYTES_PER_SAMPLE
    if data_bytes > _MOST_DATA_BYTES:
        raise ValueError("the recording is too long for one WAV file")
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * _BYTES_PER_SAMPLE, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive, as HTTP counts them."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiableError(ValueError):
    """A Range header for bytes that this resource does not have (or that cannot be read as bytes)."""


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """The one byte range a ``Range`` header asks of a ``size``-byte resource; None for the whole of it.

    Another unit, or several ranges, are ignored (RFC 9110 lets a server answer those with the whole
    resource; a player asks for one range at a time). A malformed or unsatisfiable byte range raises
    ``RangeNotSatisfiableError``, answered 416.
    """
    if value is None:
        return None
    unit, equals, spec = value.strip().partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not _is_position(first, allow_empty=True) or not _is_position(last, allow_empty=True):
        raise RangeNotSatisfiableError("malformed byte range")
    if not first:  # "-N": the last N bytes
        if not last or int(last) == 0:
            raise RangeNotSatisfiableError("empty suffix range")
        return ByteRange(max(size - int(last), 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiableError("range outside the resource")
    return ByteRange(start, min(end, size - 1))


def _is_position(text: str, *, allow_empty: bool) -> bool:
    if not text:
        return allow_empty
    # isascii too: isdigit() takes other scripts' digits, which int() reads.
    return text.isascii() and text.isdigit() and len(text) <= _MOST_DIGITS


class DecryptedWav:
    """One recording, unlocked, served as WAV bytes. Open it (and read from it) off the event loop.

    ``read(byte_range)`` yields verified bytes; it raises the store's ``RecordingIntegrityError`` at a
    chunk that fails, after the genuine bytes before it. ``close()`` may be called from another thread
    while a read is under way: it waits for the chunk being decrypted.
    """

    def __init__(self, path: Path, identity: Identity) -> None:
        self._reader = RecordingReader(path)
        try:
            self._reader.unlock(identity)
            self._frames = self._reader.frames()
        except BaseException:
            self._reader.close()
            raise
        self.sample_rate = self._reader.header.sample_rate
        self.samples = self._frames[-1].first_sample + self._frames[-1].samples if self._frames else 0
        self.header = wav_header(self.sample_rate, self.samples)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def size(self) -> int:
        return WAV_HEADER_BYTES + self.samples * _BYTES_PER_SAMPLE

    def read(self, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """The bytes of ``byte_range`` (the whole WAV for None), a chunk's worth at a time."""
        wanted = byte_range or ByteRange(0, self.size - 1)
        # The header part rides with the first audio: so the first piece a caller gets has already been
        # through decryption, and a recording damaged at its start fails before anything is sent.
        prefix = self.header[wanted.start : wanted.end + 1] if wanted.start < WAV_HEADER_BYTES else b""
        if wanted.end < WAV_HEADER_BYTES:
            yield prefix
            return
        # From here on, offsets into the PCM data.
        first = max(wanted.start, WAV_HEADER_BYTES) - WAV_HEADER_BYTES
        last = wanted.end - WAV_HEADER_BYTES
        start_frame = self._frame_holding(first // _BYTES_PER_SAMPLE)
        chunks = self._reader.chunks(start_frame) if start_frame is not None else iter(())
        while True:
            with self._lock:
                if self._closed:
                    return
                # Decrypt under the lock: close() must not pull the file from under a read.
                chunk = next(chunks, None)
            if chunk is None:
                break
            chunk_first = chunk.start * _BYTES_PER_SAMPLE
            data = chunk.samples.astype("<i2", copy=False).tobytes()
            piece = prefix + data[max(first - chunk_first, 0) : last + 1 - chunk_first]
            prefix = b""
            if piece:
                yield piece
            if chunk_first + len(data) > last:
                # Done: the chunks after this one are not read (nor, for a file cut short, missed).
                return
        if prefix:
            yield prefix

    def _frame_holding(self, sample: int) -> ChunkFrame | None:
        for frame in self._frames:
            if frame.first_sample + frame.samples > sample:
                return frame
        return None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._reader.close()
