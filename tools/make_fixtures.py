"""Regenerate the example recordings in fixtures/audio/ with flite (Debian package `flite`).

The fixtures are committed, so nothing needs flite to run; this script says exactly how they were made.
Usage: .venv/bin/python tools/make_fixtures.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bleepline.audio.files import AudioFileWriter, read_audio_chunks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"

#: name -> (flite voice, sample rate, text). Telephone calls are 8 kHz.
EXAMPLES: dict[str, tuple[str, int, str]] = {
    "welcome_8k.wav": (
        "slt",
        8000,
        "Thank you for calling. This call may be recorded for quality and training. "
        "Only reviewers holding the private key can play this recording back.",
    ),
}


def synthesise(voice: str, sample_rate: int, text: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
        with AudioFileWriter(out, sample_rate) as writer:
            for chunk in read_audio_chunks(raw, sample_rate=sample_rate):
                writer.write(chunk)


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, (voice, rate, text) in EXAMPLES.items():
        synthesise(voice, rate, text, FIXTURES / name)
        print(f"wrote {FIXTURES / name}")


if __name__ == "__main__":
    main()
