from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bleepline.store import format as fmt
from bleepline.store.errors import (
    NotARecipientError,
    RecordingFormatError,
    RecordingIntegrityError,
    RecordingWriteError,
    StoreError,
    TruncatedRecordingError,
)
from bleepline.store.keys import Identity, RecipientKey
from bleepline.store.recording import ChunkFrame, RecordingReader, RecordingWriter
from bleepline.timeline import AudioChunk
from tests.conftest import noise

RATE = 8000


def write_recording(
    path: Path,
    samples: np.ndarray,
    recipients: list[RecipientKey],
    chunk_seconds: float = 1.0,
    **kwargs: object,
) -> Path:
    with RecordingWriter(path, recipients, sample_rate=RATE, chunk_seconds=chunk_seconds, **kwargs) as writer:  # type: ignore[arg-type]
        for start in range(0, len(samples), 160):
            writer.write(AudioChunk(samples[start : start + 160], RATE, start))
    return path


def read_all(path: Path, identity: Identity) -> np.ndarray:
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        parts = [c.samples for c in reader.chunks()]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def frame_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, total length) of every chunk frame in the file."""
    data = path.read_bytes()
    _, _, header_length = fmt.PREAMBLE.unpack_from(data)
    offset = fmt.PREAMBLE.size + header_length + fmt.MAC_SIZE
    frames = []
    while offset < len(data):
        length, _ = fmt.decode_frame(struct.unpack_from(">I", data, offset)[0])
        frames.append((offset, 4 + length))
        offset += 4 + length
    return frames


def test_round_trip_is_sample_exact_with_the_exact_length(tmp_path: Path, identity: Identity) -> None:
    samples = noise(RATE * 3 + 123)
    path = write_recording(tmp_path / "a.bleep", samples, [identity.recipient])
    back = read_all(path, identity)
    assert back.dtype == np.int16
    assert np.array_equal(back, samples)


def test_chunks_come_out_on_the_timeline(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(RATE * 2 + 5), [identity.recipient])
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        chunks = list(reader.chunks())
    assert [c.start for c in chunks] == [0, RATE, 2 * RATE]
    assert [len(c) for c in chunks] == [RATE, RATE, 5]


def test_header_says_what_the_writer_was_told(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(
        tmp_path / "a.bleep",
        noise(100),
        [identity.recipient],
        call_id="call-42",
        redacted=False,
        metadata={"model": "tiny.en"},
    )
    with RecordingReader(path) as reader:
        header = reader.header
    assert (header.call_id, header.redacted, header.sample_rate) == ("call-42", False, RATE)
    assert header.metadata == {"model": "tiny.en"}
    assert header.created_at.endswith("Z")
    assert reader.recipient_key_ids == [identity.key_id]


def test_the_writer_holds_no_way_to_read_back(tmp_path: Path, identity: Identity) -> None:
    writer = RecordingWriter(tmp_path / "a.bleep", [identity.recipient], sample_rate=RATE)
    writer.write(AudioChunk(noise(RATE), RATE, 0))
    # Only public keys went in; the file key is dropped when the writer closes.
    assert not any(isinstance(v, Identity) for v in vars(writer).values())
    writer.close()
    assert writer._file_key == b""


def test_each_of_two_recipients_can_decrypt(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    samples = noise(RATE)
    path = write_recording(tmp_path / "a.bleep", samples, [alice.recipient, bob.recipient])
    assert np.array_equal(read_all(path, alice), samples)
    assert np.array_equal(read_all(path, bob), samples)


def test_wrong_identity_is_told_so(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(RATE), [identity.recipient])
    stranger = Identity.generate()
    with RecordingReader(path) as reader, pytest.raises(NotARecipientError) as caught:
        reader.unlock(stranger)
    assert stranger.key_id in str(caught.value)
    assert identity.key_id in str(caught.value)


def test_every_single_modified_byte_is_detected(tmp_path: Path, identity: Identity) -> None:
    samples = noise(RATE // 2)
    path = write_recording(
        tmp_path / "a.bleep",
        samples,
        [identity.recipient, Identity.generate().recipient],
        chunk_seconds=0.1,
    )
    original = path.read_bytes()
    damaged = tmp_path / "damaged.bleep"
    undetected = []
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0x01 << (position % 8)
        damaged.write_bytes(bytes(data))
        try:
            back = read_all(damaged, identity)
        except StoreError:
            continue
        undetected.append((position, np.array_equal(back, samples)))
    assert undetected == []


def test_file_cut_anywhere_never_reads_as_complete(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(RATE // 2), [identity.recipient], chunk_seconds=0.1)
    original = path.read_bytes()
    cut = tmp_path / "cut.bleep"
    for length in range(1, len(original), 7):
        cut.write_bytes(original[:length])
        with pytest.raises((TruncatedRecordingError, RecordingFormatError)):
            read_all(cut, identity)


def test_cut_at_a_chunk_boundary_names_the_truncation_and_keeps_the_verified_prefix(
    tmp_path: Path, identity: Identity
) -> None:
    samples = noise(RATE // 2)
    path = write_recording(tmp_path / "a.bleep", samples, [identity.recipient], chunk_seconds=0.1)
    frames = frame_offsets(path)
    offset, _ = frames[3]
    path.write_bytes(path.read_bytes()[: offset + 10])  # three whole chunks and a piece of the 4th
    got: list[np.ndarray] = []
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        with pytest.raises(TruncatedRecordingError) as caught:
            for chunk in reader.chunks():
                got.append(chunk.samples)
    assert "truncated" in str(caught.value)
    assert caught.value.verified_chunks == 3
    assert caught.value.verified_samples == 3 * 800
    assert np.array_equal(np.concatenate(got), samples[: 3 * 800])


def _rewrite_frames(path: Path, order: list[int]) -> None:
    data = path.read_bytes()
    frames = frame_offsets(path)
    head = data[: frames[0][0]]
    path.write_bytes(head + b"".join(data[o : o + n] for o, n in (frames[i] for i in order)))


@pytest.mark.parametrize(
    "order",
    [
        [1, 0, 2, 3, 4, 5],
        [0, 1, 1, 2, 3, 4, 5],
        [0, 2, 3, 4, 5],
        [0, 1, 2, 3, 4, 5, 5],
        [0, 1, 2, 3, 5, 4],
    ],
    ids=["swapped", "duplicated", "dropped", "final-repeated", "final-moved"],
)
def test_reordered_duplicated_or_dropped_chunks_are_detected(
    tmp_path: Path, identity: Identity, order: list[int]
) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(RATE // 2), [identity.recipient], chunk_seconds=0.1)
    assert len(frame_offsets(path)) == 6  # five full chunks and an empty final one
    _rewrite_frames(path, order)
    with pytest.raises(RecordingIntegrityError):
        read_all(path, identity)


def test_chunks_from_another_recording_are_rejected(tmp_path: Path, identity: Identity) -> None:
    a = write_recording(tmp_path / "a.bleep", noise(RATE, 1), [identity.recipient])
    b = write_recording(tmp_path / "b.bleep", noise(RATE, 2), [identity.recipient])
    a_frames, b_frames = frame_offsets(a), frame_offsets(b)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    o, n = b_frames[0]
    spliced = data_a[: a_frames[0][0]] + data_b[o : o + n] + data_a[a_frames[1][0] :]
    a.write_bytes(spliced)
    with pytest.raises(RecordingIntegrityError, match="chunk 0"):
        read_all(a, identity)


def test_future_version_is_refused_clearly(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(100), [identity.recipient])
    data = bytearray(path.read_bytes())
    data[len(fmt.MAGIC)] = fmt.FORMAT_VERSION + 1
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingFormatError, match="version 2, newer than this bleepline reads"):
        RecordingReader(path)


@pytest.mark.parametrize(
    ("content", "problem"), [(b"", "is empty"), (b"RIFF....WAVEfmt ", "not a bleepline recording")]
)
def test_files_that_are_not_recordings(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "x.bleep"
    path.write_bytes(content)
    with pytest.raises(RecordingFormatError, match=problem):
        RecordingReader(path)


def test_header_lies_are_caught_even_when_json_is_valid(tmp_path: Path, identity: Identity) -> None:
    """Rewrite the header consistently (valid JSON, right length): the MAC still catches it."""
    path = write_recording(tmp_path / "a.bleep", noise(RATE), [identity.recipient], redacted=False)
    data = path.read_bytes()
    _, version, length = fmt.PREAMBLE.unpack_from(data)
    start = fmt.PREAMBLE.size
    doc = json.loads(data[start : start + length])
    doc["redacted"] = True
    forged = json.dumps(doc).encode()
    path.write_bytes(fmt.PREAMBLE.pack(fmt.MAGIC, version, len(forged)) + forged + data[start + length :])
    with RecordingReader(path) as reader, pytest.raises(RecordingIntegrityError, match="header"):
        reader.unlock(identity)


def test_gaps_in_the_timeline_are_written_as_silence(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "a.bleep"
    tone = noise(160)
    with RecordingWriter(path, [identity.recipient], sample_rate=RATE) as writer:
        writer.write(AudioChunk(tone, RATE, 400))  # the call's first packets were lost
        writer.write(AudioChunk(tone, RATE, 16000))  # two seconds of loss
    back = read_all(path, identity)
    assert len(back) == 16160
    assert np.array_equal(back[400:560], tone)
    assert not back[:400].any()
    assert not back[560:16000].any()


def test_going_back_on_the_timeline_is_a_bug_not_silently_accepted(
    tmp_path: Path, identity: Identity
) -> None:
    with RecordingWriter(tmp_path / "a.bleep", [identity.recipient], sample_rate=RATE) as writer:
        writer.write(AudioChunk(noise(160), RATE, 0))
        with pytest.raises(ValueError, match="must not go back"):
            writer.write(AudioChunk(noise(160), RATE, 100))


def test_writer_refuses_to_overwrite(tmp_path: Path, identity: Identity) -> None:
    path = write_recording(tmp_path / "a.bleep", noise(100), [identity.recipient])
    before = path.read_bytes()
    with pytest.raises(RecordingWriteError, match="already exists"):
        RecordingWriter(path, [identity.recipient], sample_rate=RATE)
    assert path.read_bytes() == before


def test_writer_killed_mid_call_leaves_a_readable_truncated_file(tmp_path: Path, identity: Identity) -> None:
    """An exception (or a kill) before close(): every flushed chunk is there, the end is marked missing."""
    path = tmp_path / "a.bleep"
    samples = noise(RATE * 3)
    with (
        pytest.raises(RuntimeError),
        RecordingWriter(path, [identity.recipient], sample_rate=RATE) as writer,
    ):
        for start in range(0, len(samples), 160):
            writer.write(AudioChunk(samples[start : start + 160], RATE, start))
        raise RuntimeError("process dies")
    with pytest.raises(TruncatedRecordingError) as caught:
        read_all(path, identity)
    assert caught.value.verified_samples == len(samples)


def test_flush_seals_a_short_chunk_that_reads_back_in_place(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "a.bleep"
    samples = noise(RATE)
    with RecordingWriter(path, [identity.recipient], sample_rate=RATE) as writer:
        writer.write(AudioChunk(samples[:300], RATE, 0))
        writer.flush()
        writer.write(AudioChunk(samples[300:], RATE, 300))
    assert np.array_equal(read_all(path, identity), samples)


FULL_DISK_WRITER = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from bleepline.store.errors import RecordingWriteError
from bleepline.store.keys import load_recipient
from bleepline.store.recording import RecordingWriter
from bleepline.timeline import AudioChunk

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
writer = RecordingWriter(Path(sys.argv[1]), [load_recipient(sys.argv[2])], sample_rate=8000)
block = np.ones(160, dtype=np.int16)
try:
    for i in range(8000):
        writer.write(AudioChunk(block, 8000, i * 160))
except RecordingWriteError as exc:
    print(exc)
    sys.exit(3)
"""


def test_full_disk_is_a_clear_error_and_the_written_part_still_verifies(
    tmp_path: Path, identity: Identity, key_pair: tuple[Path, Path]
) -> None:
    import subprocess
    import sys

    path = tmp_path / "full.bleep"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(path), str(key_pair[0])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == f"{path}: cannot be written: file too large"
    with pytest.raises(TruncatedRecordingError) as caught:
        read_all(path, identity)
    assert caught.value.verified_samples == caught.value.verified_chunks * RATE > 0


def test_metadata_must_be_json(tmp_path: Path, identity: Identity) -> None:
    with pytest.raises(ValueError, match="JSON"):
        RecordingWriter(
            tmp_path / "a.bleep",
            [identity.recipient],
            sample_rate=RATE,
            metadata={"when": object()},
        )
    assert not (tmp_path / "a.bleep").exists()


def _hour_of_chunks(rate: int) -> Iterator[AudioChunk]:
    block = noise(rate // 50, seed=5)
    for index in range(3600 * 50):
        yield AudioChunk(block, rate, index * len(block))


def test_an_hour_streams_in_and_out_in_flat_memory(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "hour.bleep"
    tracemalloc.start()
    try:
        with RecordingWriter(path, [identity.recipient], sample_rate=RATE) as writer:
            for chunk in _hour_of_chunks(RATE):
                writer.write(chunk)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with RecordingReader(path) as reader:
            reader.unlock(identity)
            for chunk in reader.chunks():
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 3600 * RATE  # 57.6 MB of audio went through
    assert write_peak < 2_000_000, write_peak
    assert read_peak < 2_000_000, read_peak


@pytest.mark.parametrize(
    "header",
    [b"[" * 100_000, b'{"format": "bleepline-recording"}', b"\xff\xfe", b'{"format": 1}'],
    ids=["deeply-nested", "missing-fields", "not-utf8", "wrong-format"],
)
def test_hostile_headers_are_refused_as_damage(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "x.bleep"
    path.write_bytes(fmt.PREAMBLE.pack(fmt.MAGIC, 1, len(header)) + header + bytes(fmt.MAC_SIZE))
    with pytest.raises(RecordingIntegrityError, match="damaged header"):
        RecordingReader(path)


def test_impossible_header_length_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "x.bleep"
    path.write_bytes(fmt.PREAMBLE.pack(fmt.MAGIC, 1, 0xFFFF_FFF0) + b"{}")
    with pytest.raises(RecordingIntegrityError, match="impossible header length"):
        RecordingReader(path)


def test_frames_describe_every_chunk_and_agree_with_scan(tmp_path: Path, identity: Identity) -> None:
    samples = noise(RATE * 3 + 500, seed=11)
    path = write_recording(tmp_path / "r.bleep", samples, [identity.recipient])
    with RecordingReader(path) as reader:
        frames = reader.frames()
        layout = reader.scan()
    assert [(f.offset, f.index) for f in frames] == [(o, i) for i, (o, _) in enumerate(frame_offsets(path))]
    assert [f.first_sample for f in frames] == [0, RATE, 2 * RATE, 3 * RATE]
    assert [f.samples for f in frames] == [RATE, RATE, RATE, 500]
    assert [f.final for f in frames] == [False, False, False, True]
    assert layout.chunks == len(frames)
    assert layout.samples == len(samples)


def test_chunks_from_a_later_frame_skip_the_ones_before_and_still_verify(
    tmp_path: Path, identity: Identity
) -> None:
    samples = noise(RATE * 4 + 123, seed=12)
    path = write_recording(tmp_path / "r.bleep", samples, [identity.recipient])
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        frames = reader.frames()
        tail = list(reader.chunks(frames[2]))
    assert tail[0].start == 2 * RATE
    assert np.array_equal(np.concatenate([c.samples for c in tail]), samples[2 * RATE :])
    # A damaged chunk before the start is never read; a damaged one after it still fails.
    data = bytearray(path.read_bytes())
    offset, length = frame_offsets(path)[0]
    data[offset + length - 1] ^= 1
    offset, length = frame_offsets(path)[3]
    data[offset + 10] ^= 1
    path.write_bytes(bytes(data))
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        frames = reader.frames()
        got: list[AudioChunk] = []
        with pytest.raises(RecordingIntegrityError, match="chunk 3"):
            got.extend(reader.chunks(frames[1]))
    assert [c.start for c in got] == [RATE, 2 * RATE]


def test_a_frame_from_the_wrong_place_fails_authentication(tmp_path: Path, identity: Identity) -> None:
    samples = noise(RATE * 3, seed=13)
    path = write_recording(tmp_path / "r.bleep", samples, [identity.recipient])
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        frames = reader.frames()
        # Chunk 2's bytes presented as chunk 1: its nonce counter does not match.
        lying = ChunkFrame(1, frames[2].offset, frames[1].first_sample, frames[1].samples, False)
        with pytest.raises(RecordingIntegrityError, match="chunk 1"):
            list(reader.chunks(lying))
