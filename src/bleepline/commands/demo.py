"""`bleepline demo`: the main job on embedded defaults, to see bleepline work end to end.

Makes a reviewer key pair, redacts the example calls shipped in `fixtures/audio/` through the same
streaming path as a live call, shows a redacted transcript, and decrypts one recording back to check it
keeps the call's length and timeline.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bleepline.audio.files import read_audio_chunks
from bleepline.commands.recordings import decrypt_file, inspect_recording
from bleepline.commands.redact import Redactor, RedactOutputs, print_summary
from bleepline.errors import BleeplineError
from bleepline.redact.policy import RedactionPolicy
from bleepline.speech.models import resolve_model
from bleepline.store.keys import Identity, write_key_pair

#: The example calls shipped in the repository (found when bleepline runs from a checkout).
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "audio"
EXAMPLES = ("card_kal_8k.wav", "phone_awb_8k.wav", "no_pii_awb_8k.wav")


def run(args: argparse.Namespace) -> int:
    sources = [args.input] if args.input else [FIXTURES / name for name in EXAMPLES]
    for source in sources:
        if not source.exists():
            raise BleeplineError(f"{source}: example call not found; pass --input AUDIO_FILE")
    run_dir = _fresh_directory(args.out / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))

    identity = Identity.generate()
    public_key, private_key = write_key_pair(run_dir / "keys", identity)
    print(f"1. key pair: {public_key} (the relay's) and {private_key} (the reviewer's)\n")

    print("2. redacting the example calls (the same streaming path as a live call)")
    redactor = Redactor([identity.recipient], RedactionPolicy(), resolve_model())
    outputs = []
    for source in sources:
        out = RedactOutputs.for_input(source, run_dir)
        began = time.perf_counter()
        report = redactor.redact(source, out)
        print_summary(source, out, report, time.perf_counter() - began)
        outputs.append((source, out))

    source, first = outputs[0]
    print(f"\n3. the redacted transcript of {source.name} ({first.subtitles.name}):\n")
    print(first.subtitles.read_text().strip())

    integrity = inspect_recording(first.recording, private_key)
    decrypted = run_dir / f"{source.stem}.redacted.wav"
    result = decrypt_file(first.recording, private_key, decrypted)
    same_length, untouched = _compare(source, decrypted)
    print(f"\n4. decrypted {first.recording.name} -> {decrypted}")
    print(
        f"   integrity {integrity['integrity']}, redacted: {integrity['redacted']}; {result.duration:.2f} s, "
        f"{'the same length and timeline as the input' if same_length else 'LENGTH DIFFERS'}; "
        f"{untouched:.0%} of the samples unchanged, the rest beeped or masked"
    )
    print(f"\nall files are in {run_dir}")
    return 0 if same_length else 1


def _compare(source: Path, decrypted: Path) -> tuple[bool, float]:
    original = np.concatenate([c.samples for c in read_audio_chunks(source)])
    redacted = np.concatenate([c.samples for c in read_audio_chunks(decrypted)])
    if len(original) != len(redacted):
        return False, 0.0
    return True, float(np.mean(original == redacted))


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
