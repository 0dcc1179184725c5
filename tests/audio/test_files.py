from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio.errors import AudioFileError
from bleepline.audio.files import AudioFileWriter, probe_audio, read_audio_chunks, write_audio
from bleepline.timeline import AudioChunk
from tests.conftest import encode_file, noise, sine


def _join(chunks: list[AudioChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks])


def test_wav_reads_sample_exact_into_contiguous_20ms_chunks(
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    path, samples = wav_8k
    chunks = list(read_audio_chunks(path))
    assert all(len(c) == 160 for c in chunks[:-1])
    assert [c.start for c in chunks] == list(range(0, len(samples), 160))
    assert np.array_equal(_join(chunks), samples)
    assert {c.sample_rate for c in chunks} == {8000}


@pytest.mark.parametrize(
    ("name", "codec", "rate", "channels", "container"),
    [
        ("a.flac", "flac", 44100, 2, None),
        ("a.mp3", "libmp3lame", 44100, 2, None),
        ("a.ogg", "libopus", 48000, 2, None),
        ("a.wav", "pcm_s16le", 22050, 2, None),
        ("a.wav", "pcm_mulaw", 8000, 1, None),
        ("a.m4a", "aac", 16000, 1, "ipod"),
    ],
)
def test_any_format_rate_and_channel_count_reads_into_mono_chunks(
    tmp_path: Path, name: str, codec: str, rate: int, channels: int, container: str | None
) -> None:
    tone = sine(2.0, rate, frequency=440.0)
    path = encode_file(tmp_path / name, tone, rate, codec, channels, container)
    chunks = list(read_audio_chunks(path, sample_rate=16000))
    audio = _join(chunks)
    assert all(len(c) == 320 and c.sample_rate == 16000 for c in chunks[:-1])
    # Lossy codecs add priming and padding (AAC: 1024 samples and a partial frame); the length stays
    # within 0.15 s of 2 s.
    assert abs(len(audio) - 32000) < 2400
    # The tone survives: the strongest frequency is still 440 Hz.
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440.0) < 5.0


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    tone = sine(1.0, 8000, level=0.5)
    path = encode_file(tmp_path / "st.wav", tone, 8000, "pcm_s16le", channels=2)
    audio = _join(list(read_audio_chunks(path)))
    assert len(audio) == 8000
    assert np.max(np.abs(audio.astype(np.int32) - tone)) <= 2


def test_probe_reports_the_stream(wav_8k: tuple[Path, np.ndarray]) -> None:
    info = probe_audio(wav_8k[0])
    assert (info.codec, info.sample_rate, info.channels) == ("pcm_s16le", 8000, 1)
    assert info.duration == pytest.approx(3.3, abs=0.01)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_then_read_is_sample_exact(tmp_path: Path, suffix: str) -> None:
    samples = noise(16000 + 77, seed=3)
    chunks = [AudioChunk(samples[i : i + 320], 16000, i) for i in range(0, len(samples), 320)]
    path = write_audio(tmp_path / f"out{suffix}", chunks, 16000)
    back = list(read_audio_chunks(path))
    assert probe_audio(path).sample_rate == 16000
    assert np.array_equal(_join(back), samples)


def test_writer_fills_gaps_with_silence_to_keep_the_timeline(tmp_path: Path) -> None:
    ones = np.ones(160, dtype=np.int16)
    path = write_audio(
        tmp_path / "gap.wav",
        [AudioChunk(ones, 8000, 160), AudioChunk(ones, 8000, 640)],
        8000,
    )
    audio = _join(list(read_audio_chunks(path)))
    expected = np.zeros(800, dtype=np.int16)
    expected[160:320] = 1
    expected[640:800] = 1
    assert np.array_equal(audio, expected)


def test_writer_refuses_to_go_back_in_time(tmp_path: Path) -> None:
    writer = AudioFileWriter(tmp_path / "x.wav", 8000)
    writer.write(AudioChunk(np.zeros(160, dtype=np.int16), 8000, 0))
    with pytest.raises(ValueError, match="must not go back"):
        writer.write(AudioChunk(np.zeros(160, dtype=np.int16), 8000, 80))
    writer.discard()


def test_writer_leaves_nothing_until_committed_and_nothing_when_discarded(tmp_path: Path) -> None:
    target = tmp_path / "x.wav"
    with pytest.raises(RuntimeError), AudioFileWriter(target, 8000) as writer:
        writer.write(AudioChunk(np.zeros(160, dtype=np.int16), 8000, 0))
        assert not target.exists()
        raise RuntimeError("input broke")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d, "is a directory"),
        (lambda d: d / "missing.wav", "does not exist"),
        (lambda d: _write(d / "empty.wav", b""), "is empty"),
        (lambda d: _write(d / "notes.txt", b"call me maybe\n" * 100), "no audio stream"),
        (lambda d: _write(d / "noise.wav", bytes(range(256)) * 64), "not an audio file"),
    ],
)
def test_unreadable_inputs_give_one_line_errors_naming_the_file(
    tmp_path: Path,
    make: Callable[[Path], Path],
    problem: str,
) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioFileError) as caught:
        list(read_audio_chunks(path))
    message = str(caught.value)
    assert str(path) in message
    assert problem in message, message
    assert "\n" not in message


def test_video_without_audio_is_refused(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=1)
        stream.width, stream.height = 16, 16
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioFileError, match="holds no audio stream"):
        list(read_audio_chunks(path))


def test_cut_short_flac_is_reported_as_damaged_with_the_position(tmp_path: Path) -> None:
    path = encode_file(tmp_path / "a.flac", noise(16000, seed=1), 16000, "flac")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match=r"a\.flac: is damaged: decoding failed at \d\.\d\d s"):
        list(read_audio_chunks(path))


def test_cut_short_wav_gives_the_samples_that_are_there(tmp_path: Path) -> None:
    samples = noise(16000, seed=1)
    path = encode_file(tmp_path / "a.wav", samples, 16000, "pcm_s16le")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    audio = _join(list(read_audio_chunks(path)))
    assert 0 < len(audio) < 16000
    assert np.array_equal(audio, samples[: len(audio)])


def test_unsupported_output_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="unsupported output type"):
        AudioFileWriter(tmp_path / "out.mp3", 8000)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
