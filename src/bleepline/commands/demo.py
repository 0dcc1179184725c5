"""`bleepline demo`: the main job on embedded defaults, to see bleepline work end to end.

For now: make a reviewer key pair, seal the example call into a `.bleep` recording, inspect it, and
decrypt it back, checking the audio came back sample for sample.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bleepline.audio.files import read_audio_chunks
from bleepline.commands.recordings import decrypt_file, inspect_recording, seal_file
from bleepline.errors import BleeplineError
from bleepline.store.keys import Identity, write_key_pair

#: The example call shipped in the repository (found when bleepline runs from a checkout).
EXAMPLE = Path(__file__).resolve().parents[3] / "fixtures" / "audio" / "welcome_8k.wav"


def run(args: argparse.Namespace) -> int:
    source: Path = args.input or EXAMPLE
    if not source.exists():
        raise BleeplineError(f"{source}: example call not found; pass --input AUDIO_FILE")
    run_dir = _fresh_directory(args.out / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))

    identity = Identity.generate()
    public_key, private_key = write_key_pair(run_dir / "keys", identity)
    print(f"1. key pair        {public_key} (relay side) and {private_key} (reviewer side)")

    recording = run_dir / f"{source.stem}.bleep"
    summary = seal_file(source, recording, [public_key])
    print(f"2. sealed          {source} -> {recording}")
    print(
        f"                   {summary.duration:.2f} s at {summary.sample_rate} Hz, "
        f"{summary.chunks} chunks, encrypted to key id {identity.key_id}"
    )

    report = inspect_recording(recording, private_key)
    print(
        f"3. inspected       integrity: {report['integrity']}, "
        f"authenticated: {report['authenticated']}, redacted: {report['redacted']}"
    )

    decrypted = run_dir / f"{source.stem}.decrypted.wav"
    result = decrypt_file(recording, private_key, decrypted)
    same = _same_audio(source, decrypted, summary.sample_rate)
    print(f"4. decrypted       {recording} -> {decrypted}")
    print(
        f"                   {result.duration:.2f} s; "
        f"{'identical to the input, sample for sample' if same else 'DIFFERS from the input'}"
    )
    print(f"\nall files are in {run_dir}")
    return 0 if same else 1


def _fresh_directory(base: Path) -> Path:
    candidate, number = base, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            number += 1
            candidate = base.with_name(f"{base.name}-{number}")
        except OSError as exc:
            raise BleeplineError(f"{candidate}: cannot create: {exc.strerror}") from None


def _same_audio(a: Path, b: Path, sample_rate: int) -> bool:
    first = np.concatenate([c.samples for c in read_audio_chunks(a, sample_rate)])
    second = np.concatenate([c.samples for c in read_audio_chunks(b, sample_rate)])
    return bool(np.array_equal(first, second))
