"""`bleepline redact` end to end on the generated calls: the compliance officer's questions as tests."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.cli import main
from bleepline.commands.recordings import decrypt_file, inspect_recording
from bleepline.store.keys import Identity, write_key_pair
from tests.conftest import encode_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
CALLS = ("phone_awb_8k", "no_pii_awb_8k")


def audio_of(path: Path) -> np.ndarray:
    return np.concatenate([c.samples for c in read_audio_chunks(path)])


@pytest.fixture(scope="module")
def redacted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Redact the calls once through the real command (DEBUG logging on), with TMPDIR watched."""
    root = tmp_path_factory.mktemp("redact")
    identity = Identity.generate()
    public, private = write_key_pair(root / "keys", identity)
    temp = root / "tmp"
    temp.mkdir()
    logger = logging.getLogger()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    previous, logger.level = logger.level, logging.DEBUG
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(temp)
    try:
        code = main(
            [
                "redact",
                *(str(FIXTURES / f"{c}.wav") for c in CALLS),
                "--recipient",
                str(public),
                "--out",
                str(root / "out"),
            ]
        )
    finally:
        logger.removeHandler(handler)
        logger.level = previous
        if old_tmp is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = old_tmp
    return {
        "code": code,
        "root": root,
        "out": root / "out",
        "private": private,
        "logs": records,
        "temp": temp,
    }


def truth(call: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / f"{call}.json").read_text())
    return result


def test_each_input_gets_a_recording_and_a_transcript(redacted: dict[str, Any]) -> None:
    assert redacted["code"] == 0
    names = sorted(p.name for p in redacted["out"].iterdir())
    assert names == sorted(f"{c}{ext}" for c in CALLS for ext in (".bleep", ".transcript.json", ".vtt"))


def test_recording_keeps_the_input_timeline_and_is_unchanged_outside_masks(redacted: dict[str, Any]) -> None:
    decrypted = redacted["root"] / "phone.wav"
    decrypt_file(redacted["out"] / "phone_awb_8k.bleep", redacted["private"], decrypted)
    original = audio_of(FIXTURES / "phone_awb_8k.wav")
    released = audio_of(decrypted)
    assert len(released) == len(original)
    document = json.loads((redacted["out"] / "phone_awb_8k.transcript.json").read_text())
    changed = np.nonzero(released != original)[0] / 8000
    stretches = [(r["start"] - 0.3, r["end"] + 0.3) for r in document["redactions"]]
    assert all(any(a <= t <= b for a, b in stretches) for t in changed)


def test_no_spoken_digit_survives_in_the_recording(redacted: dict[str, Any]) -> None:
    decrypted = redacted["root"] / "phone-digits.wav"
    decrypt_file(redacted["out"] / "phone_awb_8k.bleep", redacted["private"], decrypted)
    original = audio_of(FIXTURES / "phone_awb_8k.wav")
    released = audio_of(decrypted)
    (phone,) = truth("phone_awb_8k")["pii"]
    for digit in phone["digits"]:
        span = slice(int(digit["start"] * 8000), int(digit["end"] * 8000))
        assert np.mean(released[span] == original[span]) < 0.01, digit


def test_the_recording_says_it_was_redacted(redacted: dict[str, Any]) -> None:
    report = inspect_recording(redacted["out"] / "phone_awb_8k.bleep", redacted["private"])
    assert report["redacted"] is True
    assert report["integrity"] == "complete"
    assert report["metadata"]["policy"]["delay_s"] > 0


def test_the_no_pii_call_comes_out_untouched_but_for_a_recognizer_hiccup(redacted: dict[str, Any]) -> None:
    """No span, no beep. The recognizer may leave a few ms unfinalised past the delay: those are
    silenced as unverified (fail closed) and the transcript says so; they must stay a blip."""
    decrypted = redacted["root"] / "clean.wav"
    decrypt_file(redacted["out"] / "no_pii_awb_8k.bleep", redacted["private"], decrypted)
    released, original = audio_of(decrypted), audio_of(FIXTURES / "no_pii_awb_8k.wav")
    document = json.loads((redacted["out"] / "no_pii_awb_8k.transcript.json").read_text())
    assert {r["source"] for r in document["redactions"]} <= {"unverified"}
    unverified = sum(r["end"] - r["start"] for r in document["redactions"])
    assert unverified < 0.1
    assert np.mean(released == original) > 0.99


def test_nothing_unredacted_is_on_disk(redacted: dict[str, Any]) -> None:
    """Every file written (outputs and temp dir) is scanned for any 20 ms run of the PII audio."""
    original = audio_of(FIXTURES / "phone_awb_8k.wav")
    (phone,) = truth("phone_awb_8k")["pii"]
    pii = original[int(phone["start"] * 8000) : int(phone["end"] * 8000)]
    needles = [pii[i : i + 160].tobytes() for i in range(0, len(pii) - 160, 160) if np.any(pii[i : i + 160])]
    files = [p for p in redacted["root"].rglob("*") if p.is_file() and p.suffix != ".wav"]
    assert any(p.suffix == ".bleep" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path
    assert list(redacted["temp"].iterdir()) == []


def test_no_raw_values_in_transcripts_or_logs(redacted: dict[str, Any]) -> None:
    (phone,) = truth("phone_awb_8k")["pii"]
    value = phone["text"].replace("-", "")
    forms = [value, value[-4:], " ".join(value[-4:]), "zero one four seven", "0 1 4 7"]
    texts = [p.read_text() for p in redacted["out"].iterdir() if p.suffix in (".json", ".vtt")]
    texts.append("\n".join(redacted["logs"]))
    for text in texts:
        for form in forms:
            assert form not in text


def test_bad_inputs_are_one_line_errors_and_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public, _ = write_key_pair(tmp_path / "keys", Identity.generate())
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + os.urandom(3000))
    stereo = encode_file(tmp_path / "odd.flac", np.zeros(22050, dtype=np.int16), 22050, "flac", channels=2)
    code = main(
        [
            "redact",
            str(empty),
            str(junk),
            str(stereo),
            "--recipient",
            str(public),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "empty.wav: is empty" in lines[0]
    assert "junk.wav" in lines[1]
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "odd.bleep",
        "odd.transcript.json",
        "odd.vtt",
    ]


KILLED_MID_CALL = """
import os, signal, sys
from pathlib import Path
from bleepline.commands import redact
from bleepline.redact.policy import RedactionPolicy
from bleepline.speech.models import resolve_model
from bleepline.store.keys import load_recipient
from bleepline.store.recording import RecordingWriter

real_write = RecordingWriter.write

def write_then_die(self, chunk):
    real_write(self, chunk)
    if chunk.end >= 8000 * 9:  # nine seconds of the call are out: the process is killed
        os.kill(os.getpid(), signal.SIGKILL)

RecordingWriter.write = write_then_die
redactor = redact.Redactor([load_recipient(sys.argv[2])], RedactionPolicy(), resolve_model())
redactor.redact(Path(sys.argv[1]), redact.RedactOutputs.for_input(Path(sys.argv[1]), Path(sys.argv[3])))
"""


def test_a_redactor_killed_mid_call_leaves_a_recording_that_decrypts_to_its_prefix(tmp_path: Path) -> None:
    public, private = write_key_pair(tmp_path / "keys", Identity.generate())
    (tmp_path / "out").mkdir()
    source = FIXTURES / "card_kal_8k.wav"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_MID_CALL, str(source), str(public), str(tmp_path / "out")],
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == -9
    recording = tmp_path / "out" / "card_kal_8k.bleep"
    assert not (tmp_path / "out" / "card_kal_8k.transcript.json").exists()
    with pytest.raises(Exception, match="truncated"):
        decrypt_file(recording, private, tmp_path / "no.wav")
    salvaged = decrypt_file(recording, private, tmp_path / "prefix.wav", salvage=True)
    assert not salvaged.complete
    assert salvaged.duration >= 8.0  # whole one-second chunks up to the kill
    prefix = audio_of(tmp_path / "prefix.wav")
    original = audio_of(source)
    # The prefix is the redacted call from sample 0: the card number (from 4.4 s) is masked in it.
    (card,) = [p for p in truth("card_kal_8k")["pii"] if p["entity"] == "CREDIT_CARD"]
    inside = slice(int(card["start"] * 8000), len(prefix))
    assert np.mean(prefix[inside] == original[inside]) < 0.01


FULL_DISK = """
import resource, signal, sys
from bleepline.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
sys.exit(main(["redact", sys.argv[1], "--recipient", sys.argv[2], "--out", sys.argv[3]]))
"""


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    public, _ = write_key_pair(tmp_path / "keys", Identity.generate())
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FULL_DISK,
            str(FIXTURES / "card_kal_8k.wav"),
            str(public),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "card_kal_8k.bleep: cannot be written: file too large" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []
