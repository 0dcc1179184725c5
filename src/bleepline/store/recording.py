"""Writing and reading `.bleep` recordings, one sealed chunk of about a second at a time.

The writer needs only recipients' public keys: once a chunk is sealed, the process that wrote it cannot
read it back. The reader verifies the header and every chunk before handing out a single sample.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
from cryptography.exceptions import InvalidTag

from bleepline.store import format as fmt
from bleepline.store.errors import (
    NotARecipientError,
    RecordingFormatError,
    RecordingIntegrityError,
    RecordingWriteError,
    TruncatedRecordingError,
)
from bleepline.store.keys import Identity, RecipientKey
from bleepline.timeline import AudioChunk, Samples


@dataclass(frozen=True)
class RecordingSummary:
    """What a finished recording holds."""

    path: Path
    call_id: str
    sample_rate: int
    samples: int
    chunks: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


class RecordingWriter:
    """Appends audio to a new `.bleep` file, sealing and flushing each chunk as it fills.

    Chunks are placed on the call timeline: a gap before a chunk is written as silence, so the recording
    always starts at sample 0 and keeps the call's length. If the process dies, the file still opens up to
    its last whole chunk and says it was cut short. Refuses to overwrite an existing file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        recipients: Sequence[RecipientKey],
        *,
        sample_rate: int,
        call_id: str | None = None,
        redacted: bool = True,
        metadata: Mapping[str, Any] | None = None,
        chunk_seconds: float = 1.0,
        fsync_each_chunk: bool = False,
    ) -> None:
        self.path = Path(path)
        if not recipients:
            raise ValueError("a recording needs at least one recipient public key")
        chunk_samples = round(sample_rate * chunk_seconds)
        metadata_json = _check_metadata(metadata or {})
        self._file_key = secrets.token_bytes(fmt.FILE_KEY_SIZE)
        stream_salt = secrets.token_bytes(fmt.SALT_SIZE)
        self.header = fmt.RecordingHeader(
            call_id=call_id or str(uuid.uuid4()),
            created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            sample_rate=sample_rate,
            chunk_samples=chunk_samples,
            redacted=redacted,
            metadata=metadata_json,
            stream_salt=stream_salt,
            recipients=tuple(
                fmt.WrappedKey(r.key_id, fmt.wrap_file_key(self._file_key, r.public_key)) for r in recipients
            ),
        )
        try:
            self.header.validate()
        except fmt.HeaderError as exc:
            raise ValueError(str(exc)) from None
        self._cipher = fmt.payload_cipher(self._file_key, stream_salt)
        self._fsync = fsync_each_chunk
        self._buffer = np.zeros(chunk_samples, dtype=np.int16)
        self._buffered = 0
        self._counter = 0
        self.samples_written = 0  # on the timeline, including what is still buffered
        self._closed = False
        header_json = self.header.to_json()
        preamble_and_header = fmt.encode_preamble(header_json) + header_json
        try:
            self._file: BinaryIO = open(self.path, "xb")  # noqa: SIM115 - lives as long as the writer
        except FileExistsError:
            raise RecordingWriteError(self.path, "already exists; refusing to overwrite") from None
        except OSError as exc:
            raise RecordingWriteError(self.path, f"cannot be created: {_reason(exc)}") from None
        self._put(preamble_and_header + fmt.header_mac(self._file_key, preamble_and_header))

    @property
    def sample_rate(self) -> int:
        return self.header.sample_rate

    @property
    def call_id(self) -> str:
        return self.header.call_id

    def write(self, chunk: AudioChunk) -> None:
        """Append a chunk at its place on the timeline (silence fills any gap before it)."""
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz written to a {self.sample_rate} Hz recording")
        if chunk.start < self.samples_written:
            raise ValueError(
                f"chunk starts at sample {chunk.start}, before the end of the recording "
                f"({self.samples_written}): the timeline must not go back"
            )
        if chunk.start > self.samples_written:
            self._append(np.zeros(chunk.start - self.samples_written, dtype=np.int16))
        self._append(chunk.samples)

    def _append(self, samples: Samples) -> None:
        self._check_open()
        position = 0
        while position < len(samples):
            take = min(len(samples) - position, len(self._buffer) - self._buffered)
            self._buffer[self._buffered : self._buffered + take] = samples[position : position + take]
            self._buffered += take
            position += take
            self.samples_written += take
            if self._buffered == len(self._buffer):
                self._seal(final=False)

    def flush(self) -> None:
        """Seal what is buffered now as a (shorter) chunk, e.g. when the call goes quiet."""
        self._check_open()
        if self._buffered:
            self._seal(final=False)

    def close(self) -> RecordingSummary:
        """Seal the final chunk and close the file. The recording is complete only after this."""
        self._check_open()
        self._seal(final=True)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._abandon()
            raise RecordingWriteError(self.path, f"cannot be written: {_reason(exc)}") from None
        self._abandon()
        return RecordingSummary(
            self.path, self.call_id, self.sample_rate, self.samples_written, self._counter
        )

    def abort(self) -> None:
        """Give up on the recording and remove the file (for inputs that turned out to be bad)."""
        self._abandon()
        self.path.unlink(missing_ok=True)

    def _abandon(self) -> None:
        if not self._closed:
            self._closed = True
            self._file_key = b""
            with contextlib.suppress(OSError):
                self._file.close()

    def _seal(self, final: bool) -> None:
        plaintext = self._buffer[: self._buffered].tobytes()
        sealed = self._cipher.encrypt(fmt.chunk_nonce(self._counter, final), plaintext, None)
        self._put(fmt.encode_frame(len(sealed), final) + sealed)
        self._counter += 1
        self._buffered = 0

    def _put(self, data: bytes) -> None:
        try:
            self._file.write(data)
            self._file.flush()  # after each chunk: a killed process loses at most the open chunk
            if self._fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            self._abandon()
            raise RecordingWriteError(self.path, f"cannot be written: {_reason(exc)}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the recording is already closed")

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an error the file is left without its final chunk: it reads as cut short, which it is.
        if exc_type is None:
            self.close()
        else:
            self._abandon()


@dataclass(frozen=True)
class ChunkFrame:
    """One sealed chunk as its frame word describes it: not authenticated until it is decrypted."""

    index: int  # the chunk counter its nonce must carry
    offset: int  # of its frame word, from the start of the file
    first_sample: int  # on the recording's timeline
    samples: int
    final: bool


@dataclass(frozen=True)
class RecordingLayout:
    """What can be learned about a recording without its key: not authenticated."""

    chunks: int
    samples: int
    final_chunk_seen: bool
    trailing_bytes: int  # bytes of a frame cut short at the end of the file

    @property
    def looks_complete(self) -> bool:
        return self.final_chunk_seen and self.trailing_bytes == 0


class RecordingReader:
    """Opens a `.bleep` file: the header can be read by anyone, the audio only after ``unlock()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = _open_for_reading(self.path)
        try:
            self.header, self._authenticated_prefix, self._mac = self._read_header()
        except BaseException:
            self._file.close()
            raise
        self._data_offset = self._file.tell()
        self._file_key: bytes | None = None

    def _read_header(self) -> tuple[fmt.RecordingHeader, bytes, bytes]:
        preamble = self._file.read(fmt.PREAMBLE.size)
        if len(preamble) < len(fmt.MAGIC) or not preamble.startswith(fmt.MAGIC):
            raise RecordingFormatError(self.path, "is not a bleepline recording")
        if len(preamble) < fmt.PREAMBLE.size:
            raise TruncatedRecordingError(self.path, "is cut short inside its header")
        _magic, version, header_length = fmt.PREAMBLE.unpack(preamble)
        if version > fmt.FORMAT_VERSION:
            raise RecordingFormatError(
                self.path,
                f"uses format version {version}, newer than this bleepline reads "
                f"({fmt.FORMAT_VERSION}); upgrade bleepline",
            )
        if version < 1:
            raise RecordingFormatError(self.path, f"has an invalid format version {version}")
        if header_length > fmt.MAX_HEADER_BYTES:
            raise RecordingIntegrityError(self.path, "has an impossible header length (damaged)")
        header_json = self._file.read(header_length)
        mac = self._file.read(fmt.MAC_SIZE)
        if len(header_json) < header_length or len(mac) < fmt.MAC_SIZE:
            raise TruncatedRecordingError(self.path, "is cut short inside its header")
        try:
            header = fmt.RecordingHeader.from_json(header_json)
        except fmt.HeaderError as exc:
            raise RecordingIntegrityError(self.path, f"has a damaged header: {exc}") from None
        return header, preamble + header_json, mac

    @property
    def recipient_key_ids(self) -> list[str]:
        return [r.key_id for r in self.header.recipients]

    def unlock(self, identity: Identity) -> None:
        """Unwrap the file key with ``identity`` and authenticate the header."""
        # Try the stanza named by our key id first, then the others: a damaged key id must read as
        # damage (the header MAC fails), not as "not for you".
        stanzas = sorted(self.header.recipients, key=lambda r: r.key_id != identity.key_id)
        for stanza in stanzas:
            file_key = fmt.unwrap_file_key(stanza.sealed, identity.private_key)
            if file_key is not None:
                break
        else:
            if identity.key_id in self.recipient_key_ids:
                raise RecordingIntegrityError(
                    self.path, f"the wrapped key for key id {identity.key_id} is damaged"
                )
            raise NotARecipientError(
                self.path,
                f"is not encrypted to this identity (key id {identity.key_id}); "
                f"it opens with key ids {', '.join(self.recipient_key_ids)}",
            )
        if not fmt.verify_header_mac(file_key, self._authenticated_prefix, self._mac):
            raise RecordingIntegrityError(self.path, "header failed authentication: file was modified")
        self._file_key = file_key

    def scan(self) -> RecordingLayout:
        """Walk the chunk frames without a key: counts and lengths only, not authenticated."""
        frames, end = self._walk_frames()
        samples = frames[-1].first_sample + frames[-1].samples if frames else 0
        final = any(frame.final for frame in frames)
        return RecordingLayout(len(frames), samples, final, os.fstat(self._file.fileno()).st_size - end)

    def frames(self) -> list[ChunkFrame]:
        """Where each whole chunk frame lies and which samples it holds, from the frame words alone (not
        authenticated): lets a reader start at chunk *k* without decrypting the ones before it."""
        return self._walk_frames()[0]

    def _walk_frames(self) -> tuple[list[ChunkFrame], int]:
        size = os.fstat(self._file.fileno()).st_size
        position = self._data_offset
        frames: list[ChunkFrame] = []
        samples = 0
        while size - position >= fmt.FRAME.size:
            self._file.seek(position)
            length, is_final = fmt.decode_frame(fmt.FRAME.unpack(self._file.read(fmt.FRAME.size))[0])
            if length > self.header.max_sealed_chunk or position + fmt.FRAME.size + length > size:
                break
            count = max(length - fmt.TAG_SIZE, 0) // 2
            frames.append(ChunkFrame(len(frames), position, samples, count, is_final))
            position += fmt.FRAME.size + length
            samples += count
        return frames, position

    def chunks(self, start: ChunkFrame | None = None) -> Iterator[AudioChunk]:
        """Yield the recording's audio, one verified chunk at a time, on a timeline from 0.

        ``start`` (one of ``frames()``) begins there instead of at chunk 0: the chunks before it are
        skipped unread, and every chunk yielded is still authenticated under its own counter, so a frame
        list that lies about offsets only makes decryption fail. Raises ``TruncatedRecordingError`` or
        ``RecordingIntegrityError`` (carrying how much was verified) at the first chunk that is missing
        or fails; what was yielded before is genuine.
        """
        if self._file_key is None:
            raise ValueError("unlock() the recording with an identity first")
        cipher = fmt.payload_cipher(self._file_key, self.header.stream_salt)
        if start is None:
            self._file.seek(self._data_offset)
            counter = samples = 0
        else:
            if start.offset < self._data_offset:
                raise ValueError("a chunk frame cannot start inside the header")
            self._file.seek(start.offset)
            counter, samples = start.index, start.first_sample
        while True:
            word = self._file.read(fmt.FRAME.size)
            if len(word) < fmt.FRAME.size:
                raise TruncatedRecordingError(
                    self.path,
                    _cut_short(counter, samples, self.header.sample_rate),
                    counter,
                    samples,
                )
            length, final = fmt.decode_frame(fmt.FRAME.unpack(word)[0])
            if length < fmt.TAG_SIZE or length > self.header.max_sealed_chunk:
                raise RecordingIntegrityError(
                    self.path,
                    f"chunk {counter} has an impossible length: file was modified",
                    counter,
                    samples,
                )
            sealed = self._file.read(length)
            if len(sealed) < length:
                raise TruncatedRecordingError(
                    self.path,
                    _cut_short(counter, samples, self.header.sample_rate),
                    counter,
                    samples,
                )
            try:
                plaintext = cipher.decrypt(fmt.chunk_nonce(counter, final), sealed, None)
            except InvalidTag:
                raise RecordingIntegrityError(
                    self.path,
                    f"chunk {counter} failed authentication: modified, reordered or duplicated",
                    counter,
                    samples,
                ) from None
            if len(plaintext) % 2:
                raise RecordingIntegrityError(
                    self.path, f"chunk {counter} holds an odd number of bytes", counter, samples
                )
            pcm = np.frombuffer(plaintext, dtype="<i2").astype(np.int16)
            if len(pcm):
                yield AudioChunk(pcm, self.header.sample_rate, samples)
            counter += 1
            samples += len(pcm)
            if final:
                if self._file.read(1):
                    raise RecordingIntegrityError(
                        self.path,
                        "has data after its final chunk: file was modified",
                        counter,
                        samples,
                    )
                return

    def close(self) -> None:
        self._file_key = None
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_for_reading(path: Path) -> BinaryIO:
    if path.is_dir():
        raise RecordingFormatError(path, "is a directory, not a recording")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - owned by the reader
    except FileNotFoundError:
        raise RecordingFormatError(path, "does not exist") from None
    except OSError as exc:
        raise RecordingFormatError(path, f"cannot be read: {_reason(exc)}") from None
    if os.fstat(handle.fileno()).st_size == 0:
        handle.close()
        raise RecordingFormatError(path, "is empty")
    return handle


def _cut_short(chunks: int, samples: int, sample_rate: int) -> str:
    return (
        f"is truncated: it ends after {chunks} chunks without its final chunk "
        f"({samples / sample_rate:.2f} s verified before the cut)"
    )


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    try:
        encoded = json.dumps(dict(metadata), sort_keys=True)
    except (TypeError, ValueError):
        raise ValueError("recording metadata must be JSON-serialisable with string keys") from None
    if len(encoded) > fmt.MAX_METADATA_BYTES:
        raise ValueError(f"recording metadata is over {fmt.MAX_METADATA_BYTES} bytes")
    parsed: dict[str, Any] = json.loads(encoded)
    return parsed


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
