"""The command line as a user meets it: outputs, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.cli import main
from bleepline.commands.recordings import seal_file
from bleepline.store import format as fmt
from bleepline.store.keys import Identity, write_key_pair
from bleepline.store.recording import RecordingWriter
from bleepline.timeline import AudioChunk
from tests.conftest import KeyPairMaker, encode_file, noise


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def audio_of(path: Path) -> np.ndarray:
    return np.concatenate([c.samples for c in read_audio_chunks(path)])


def assert_one_line_error(err: str, *fragments: str | Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bleepline: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert str(fragment) in lines[0]


@pytest.fixture
def sealed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_pair: tuple[Path, Path],
    wav_8k: tuple[Path, np.ndarray],
) -> Path:
    out = tmp_path / "call.bleep"
    code, _, err = run(capsys, "seal", wav_8k[0], "--recipient", key_pair[0], "--out", out)
    assert code == 0, err
    return out


def test_keygen_writes_a_private_identity_and_a_public_recipient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keygen", "--out", tmp_path / "k")
    assert code == 0
    assert stat.S_IMODE((tmp_path / "k" / "identity.key").stat().st_mode) == 0o600
    assert (tmp_path / "k" / "recipient.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    assert "identity.key" in out
    assert "recipient.pub" in out


def test_seal_then_decrypt_is_sample_exact(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_pair: tuple[Path, Path],
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    out = tmp_path / "back.wav"
    code, stdout, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out)
    assert code == 0, err
    assert "every chunk verified" in stdout
    assert np.array_equal(audio_of(out), wav_8k[1])


def test_decrypt_to_flac(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_pair: tuple[Path, Path],
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    out = tmp_path / "back.flac"
    assert run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out)[0] == 0
    assert np.array_equal(audio_of(out), wav_8k[1])


def test_seal_takes_compressed_stereo_input_at_its_own_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key_pair: tuple[Path, Path]
) -> None:
    source = encode_file(tmp_path / "in.flac", noise(44100), 44100, "flac", channels=2)
    out = tmp_path / "x.bleep"
    assert run(capsys, "seal", source, "--recipient", key_pair[0], "--out", out)[0] == 0
    code, stdout, _ = run(capsys, "inspect", out, "--json")
    report = json.loads(stdout)
    assert code == 0
    assert report["sample_rate"] == 44100
    assert report["duration"] == pytest.approx(1.0)


def test_inspect_shows_plainly_that_a_sealed_file_is_not_redacted(
    capsys: pytest.CaptureFixture[str], sealed: Path, key_pair: tuple[Path, Path]
) -> None:
    code, out, _ = run(capsys, "inspect", sealed)
    assert code == 0
    assert "NO: sealed as given, not redacted by bleepline" in out
    assert "not authenticated" in out
    code, out, _ = run(capsys, "inspect", sealed, "--identity", key_pair[1])
    assert code == 0
    assert "header and every chunk authenticated" in out
    assert "3.30 s in 4 chunks" in out


def test_inspect_prints_no_audio(capsys: pytest.CaptureFixture[str], sealed: Path) -> None:
    code, out, _ = run(capsys, "inspect", sealed, "--json")
    assert code == 0
    assert set(json.loads(out)) >= {"call_id", "duration", "chunks", "integrity", "redacted"}
    assert len(out) < 2000


def test_two_recipients_each_decrypt(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_key_pair: KeyPairMaker,
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    _, pub_a, key_a = make_key_pair("a")
    _, pub_b, key_b = make_key_pair("b")
    out = tmp_path / "two.bleep"
    assert run(capsys, "seal", wav_8k[0], "--recipient", pub_a, "--recipient", pub_b, "--out", out)[0] == 0
    for key, name in ((key_a, "a.wav"), (key_b, "b.wav")):
        assert run(capsys, "decrypt", out, "--identity", key, "--out", tmp_path / name)[0] == 0
        assert np.array_equal(audio_of(tmp_path / name), wav_8k[1])


def test_wrong_identity_says_so_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    make_key_pair: KeyPairMaker,
) -> None:
    stranger, _, key = make_key_pair("stranger")
    out = tmp_path / "x.wav"
    code, _, err = run(capsys, "decrypt", sealed, "--identity", key, "--out", out)
    assert code == 1
    assert_one_line_error(err, sealed, "not encrypted to this identity", stranger.key_id)
    assert not out.exists()


@pytest.mark.parametrize("where", ["preamble", "header", "wrapped key", "mac", "chunk", "last byte"])
def test_modified_byte_fails_decrypt_loudly_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_pair: tuple[Path, Path],
    where: str,
) -> None:
    data = bytearray(sealed.read_bytes())
    _, _, header_length = fmt.PREAMBLE.unpack_from(data)
    header_end = fmt.PREAMBLE.size + header_length
    position = {
        "preamble": 11,
        "header": data.index(b'"call_id"') + 12,
        "wrapped key": data.index(b'"sealed":"') + 20,
        "mac": header_end + 5,
        "chunk": header_end + fmt.MAC_SIZE + 200,
        "last byte": len(data) - 1,
    }[where]
    data[position] ^= 0x20
    sealed.write_bytes(bytes(data))
    out = tmp_path / "x.wav"
    code, stdout, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out)
    assert code == 1
    assert_one_line_error(err, sealed)
    assert stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.bleep", "call.wav", "keys"]


def test_truncated_recording_fails_naming_the_truncation_and_salvage_keeps_the_verified_part(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_pair: tuple[Path, Path],
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    data = sealed.read_bytes()
    sealed.write_bytes(data[: len(data) - 20_000])  # a process killed part-way through
    out = tmp_path / "x.wav"
    code, _, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out)
    assert code == 1
    assert_one_line_error(err, sealed, "truncated", "--salvage")
    assert not out.exists()

    code, stdout, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out, "--salvage")
    assert code == 0, err
    assert "recovered 2.00 s" in stdout
    assert np.array_equal(audio_of(out), wav_8k[1][:16000])

    code, stdout, _ = run(capsys, "inspect", sealed)
    assert code == 1
    assert "TRUNCATED" in stdout


def test_passphrase_identity_works_from_the_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    monkeypatch.setenv("BLEEPLINE_PASSPHRASE", "a long secret")
    assert run(capsys, "keygen", "--out", tmp_path / "k", "--passphrase")[0] == 0
    assert b"ENCRYPTED" in (tmp_path / "k" / "identity.key").read_bytes()
    rec = tmp_path / "x.bleep"
    assert (
        run(capsys, "seal", wav_8k[0], "--recipient", tmp_path / "k" / "recipient.pub", "--out", rec)[0] == 0
    )
    assert (
        run(
            capsys,
            "decrypt",
            rec,
            "--identity",
            tmp_path / "k" / "identity.key",
            "--out",
            tmp_path / "ok.wav",
        )[0]
        == 0
    )

    monkeypatch.setenv("BLEEPLINE_PASSPHRASE", "not it")
    code, _, err = run(
        capsys,
        "decrypt",
        rec,
        "--identity",
        tmp_path / "k" / "identity.key",
        "--out",
        tmp_path / "no.wav",
    )
    assert code == 1
    assert_one_line_error(err, "identity.key", "wrong passphrase")
    assert not (tmp_path / "no.wav").exists()

    monkeypatch.delenv("BLEEPLINE_PASSPHRASE")
    code, _, err = run(
        capsys,
        "decrypt",
        rec,
        "--identity",
        tmp_path / "k" / "identity.key",
        "--out",
        tmp_path / "no.wav",
    )
    assert code == 1
    assert_one_line_error(err, "passphrase-protected", "BLEEPLINE_PASSPHRASE")


@pytest.mark.parametrize(
    ("make_input", "fragment"),
    [
        (lambda d: d / "nothing.wav", "does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.wav", b""), "is empty"),
        (lambda d: _write(d / "text.wav", b"not audio at all " * 200), "not an audio file"),
    ],
)
def test_seal_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_pair: tuple[Path, Path],
    make_input: Callable[[Path], Path],
    fragment: str,
) -> None:
    source = make_input(tmp_path)
    out = tmp_path / "out.bleep"
    code, _, err = run(capsys, "seal", source, "--recipient", key_pair[0], "--out", out)
    assert code == 1
    assert_one_line_error(err, source, fragment)
    assert not out.exists()


def test_seal_with_a_missing_key_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wav_8k: tuple[Path, np.ndarray]
) -> None:
    code, _, err = run(
        capsys,
        "seal",
        wav_8k[0],
        "--recipient",
        tmp_path / "nope.pub",
        "--out",
        tmp_path / "o.bleep",
    )
    assert code == 1
    assert_one_line_error(err, "nope.pub", "does not exist")
    assert not (tmp_path / "o.bleep").exists()


def test_seal_refuses_to_overwrite_a_recording(
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_pair: tuple[Path, Path],
    wav_8k: tuple[Path, np.ndarray],
) -> None:
    before = sealed.read_bytes()
    code, _, err = run(capsys, "seal", wav_8k[0], "--recipient", key_pair[0], "--out", sealed)
    assert code == 1
    assert_one_line_error(err, "already exists")
    assert sealed.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), (b"", "is empty"), (b"hello", "not a bleepline recording")],
)
def test_decrypt_bad_recording_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_pair: tuple[Path, Path],
    content: bytes | None,
    fragment: str,
) -> None:
    path = tmp_path / "x.bleep"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run(capsys, "decrypt", path, "--identity", key_pair[1], "--out", tmp_path / "o.wav")
    assert code == 1
    assert_one_line_error(err, path, fragment)
    assert not (tmp_path / "o.wav").exists()


def test_decrypt_future_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sealed: Path, key_pair: tuple[Path, Path]
) -> None:
    data = bytearray(sealed.read_bytes())
    data[len(fmt.MAGIC)] = 9
    sealed.write_bytes(bytes(data))
    code, _, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", tmp_path / "o.wav")
    assert code == 1
    assert_one_line_error(err, sealed, "version 9", "upgrade bleepline")


def test_decrypt_with_a_missing_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sealed: Path
) -> None:
    code, _, err = run(
        capsys, "decrypt", sealed, "--identity", tmp_path / "gone.key", "--out", tmp_path / "o.wav"
    )
    assert code == 1
    assert_one_line_error(err, "gone.key", "does not exist")


def test_decrypt_does_not_clobber_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sealed: Path, key_pair: tuple[Path, Path]
) -> None:
    out = tmp_path / "o.wav"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out)
    assert code == 1
    assert_one_line_error(err, "already exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert run(capsys, "decrypt", sealed, "--identity", key_pair[1], "--out", out, "--force")[0] == 0


def test_console_script_never_shows_a_traceback(tmp_path: Path) -> None:
    """Through the real entry point, as a user runs it."""
    command = _console_command()
    (tmp_path / "junk.bleep").write_bytes(os.urandom(300))
    for argv in (
        ["inspect", str(tmp_path / "junk.bleep")],
        ["decrypt", str(tmp_path), "--identity", str(tmp_path), "--out", str(tmp_path / "o.wav")],
        ["seal", str(tmp_path), "--recipient", str(tmp_path), "--out", str(tmp_path / "o.bleep")],
    ):
        result = subprocess.run(command + argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_demo_runs_the_main_job_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The live relay in-process, one fixture call sent into it in real time (about 20 s in all)."""
    code, out, err = run(capsys, "demo", "--out", tmp_path)
    assert code == 0, err
    assert "ended (bye)" in out  # the relay's own log line: the BYE ended the call
    assert "the same length and timeline as the call" in out
    assert "[PHONE_NUMBER]" in out
    assert "bleepline serve --rtp-listen 127.0.0.1:40000 --codec pcmu" in out
    assert "--to 127.0.0.1:40000" in out
    (run_dir,) = tmp_path.iterdir()
    (recording,) = (run_dir / "calls").glob("*.bleep")
    call_id = recording.stem
    names = {p.name for p in (run_dir / "calls").iterdir()}
    assert names == {f"{call_id}.bleep", f"{call_id}.transcript.json", f"{call_id}.vtt"}
    assert (run_dir / f"{call_id}.wav").exists()
    assert (run_dir / "keys" / "identity.key").exists()
    transcript = json.loads((run_dir / "calls" / f"{call_id}.transcript.json").read_text())
    assert any(r["entity"] == "PHONE_NUMBER" for r in transcript["redactions"])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _console_command() -> list[str]:
    script = Path(sys.executable).with_name("bleepline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bleepline"]


def test_passphrase_is_asked_for_at_the_terminal(
    tmp_path: Path, sealed: Path, make_key_pair: KeyPairMaker, wav_8k: tuple[Path, np.ndarray]
) -> None:
    """Without the environment variable, decrypt asks on the controlling terminal."""
    identity = Identity.generate()
    public, private = write_key_pair(tmp_path / "locked", identity, passphrase=b"open sesame")
    recording = tmp_path / "locked.bleep"
    seal_file(wav_8k[0], recording, [public])
    out = tmp_path / "locked.wav"
    env = {k: v for k, v in os.environ.items() if k != "BLEEPLINE_PASSPHRASE"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: bleepline on a terminal of its own
        os.execve(
            _console_command()[0],
            [*_console_command(), "decrypt", str(recording), "--identity", str(private), "--out", str(out)],
            env,
        )
    transcript = b""
    answered = False
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"bleepline hung; it said: {transcript!r}"
        try:
            data = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        transcript += data
        if not answered and b"passphrase for" in transcript:
            os.write(fd, b"open sesame\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    assert answered
    assert os.waitstatus_to_exitcode(status) == 0, transcript
    assert np.array_equal(audio_of(out), wav_8k[1])


def test_decrypting_an_hour_keeps_memory_flat(
    tmp_path: Path, identity: Identity, key_pair: tuple[Path, Path]
) -> None:
    """Peak memory of the real command for an hour-long recording against a one-minute one."""
    block = noise(8000, seed=9)
    peaks = {}
    for minutes in (1, 60):
        path = tmp_path / f"{minutes}.bleep"
        with RecordingWriter(path, [identity.recipient], sample_rate=8000) as writer:
            for second in range(minutes * 60):
                writer.write(AudioChunk(block, 8000, second * 8000))
        probe = (
            "import resource, sys; from bleepline.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
        )
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                "decrypt",
                str(path),
                "--identity",
                str(key_pair[1]),
                "--out",
                str(tmp_path / f"{minutes}.flac"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        peaks[minutes] = int(result.stdout.strip().splitlines()[-1])  # KiB
    # An hour is 57.6 MB of samples; streaming keeps the peak within a few MB of the one-minute run.
    assert peaks[60] - peaks[1] < 16 * 1024, peaks
