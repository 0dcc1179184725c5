"""`bleepline verify`: proof of redaction. Decrypt recordings in memory, hear them again, and report every
digit, PII entity and key press still audible, with times (``bleepline.verify``).

Exit status: 0 when every recording is clean, 1 when anything is audible in any of them, 2 when a
recording (or the identity, or the model) could not be verified; each failure is one line on stderr. The
decrypted audio lives only in numpy arrays: nothing of it is written anywhere. ``--write-verdict`` puts
``<call id>.verify.json`` beside each recording (times, kinds, entity types, counts, models; no words),
which the review app shows per call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bleepline.audio.tones import BeepStyle
from bleepline.commands.keys import open_identity
from bleepline.commands.redact import PII_MODEL
from bleepline.errors import BleeplineError
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.speech.models import ModelError, ModelSpec, load_whisper, resolve_model
from bleepline.store.errors import RecordingIntegrityError, StoreError
from bleepline.store.keys import Identity
from bleepline.store.recording import RecordingReader
from bleepline.store.verdict import VerdictRecord, verdict_path, write_verdict
from bleepline.verify import Verdict, VerifyOptions, verification_detector, verify_audio

EXIT_CLEAN = 0
EXIT_AUDIBLE = 1
EXIT_ERROR = 2
DECODING = "offline (beam 1, temperature 0, no VAD) + streaming; 16 kHz"
DTMF_MODEL = "bleepline Q.24 keypad-tone detector"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", type=Path, nargs="+", metavar="RECORDING", help=".bleep files")
    parser.add_argument(
        "--identity", type=Path, required=True, metavar="KEY", help="the reviewer's identity.key"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--write-verdict",
        action="store_true",
        help="write <call id>.verify.json beside each recording (no words: times, kinds, counts)",
    )
    parser.add_argument("--model", help="speech model: whisper-tiny-en (default) or a CTranslate2 directory")


@dataclass(frozen=True, repr=False)  # holds decrypted audio: no repr
class RecordingAudio:
    """A recording decrypted into memory: its samples (channels x samples) and what its header says."""

    samples: np.ndarray
    sample_rate: int
    call_id: str
    redacted: bool
    beep_hz: float


def read_recording(path: Path, identity: Identity) -> RecordingAudio:
    """Decrypt every chunk of ``path`` into one array. A recording cut short or damaged is an error: what
    is not there cannot be vouched for."""
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        header = reader.header
        parts: list[np.ndarray] = []
        try:
            parts.extend(chunk.samples for chunk in reader.chunks())
        except RecordingIntegrityError as exc:
            raise StoreError(exc.path, f"{exc.problem}; not verified") from None
    # Chunks are mono today; a chunk of two-party audio would hold a column per channel.
    joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    samples = joined.reshape(1, -1) if joined.ndim == 1 else np.ascontiguousarray(joined.T)
    return RecordingAudio(
        samples, header.sample_rate, header.call_id, header.redacted, _beep_hz(header.metadata)
    )


def _beep_hz(metadata: dict[str, Any]) -> float:
    """The beep frequency the recording's policy names (its header is authenticated by now)."""
    policy = metadata.get("policy")
    value = policy.get("beep_hz") if isinstance(policy, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return BeepStyle().frequency


class _Listener:
    """The models, loaded on first use: a run whose recordings all fail to open never loads them."""

    def __init__(self, model: str | None) -> None:
        self._model = model
        self.spec: ModelSpec | None = None
        self._whisper: Any = None
        self._detector: SpokenPiiDetector | None = None

    def verify(self, audio: RecordingAudio) -> Verdict:
        if self._detector is None:
            self.spec = resolve_model(self._model)
            self._whisper = load_whisper(self.spec)
            self._detector = verification_detector()
        options = VerifyOptions(beep_hz=audio.beep_hz)
        return verify_audio(audio.samples, audio.sample_rate, self._whisper, self._detector, options)

    @property
    def models(self) -> dict[str, str]:
        asr = f"{self.spec.name} {self.spec.compute_type}" if self.spec else str(self._model or "")
        return {"asr": asr, "decoding": DECODING, "pii": PII_MODEL, "dtmf": DTMF_MODEL}


def run(args: argparse.Namespace) -> int:
    try:
        identity = open_identity(args.identity)
    except BleeplineError as exc:
        _error(exc)
        return EXIT_ERROR
    listener = _Listener(args.model)
    reports: list[dict[str, Any]] = []
    status = EXIT_CLEAN
    for path in args.recordings:
        try:
            report = verify_recording(path, identity, listener, write=args.write_verdict)
        except ModelError as exc:  # the same for every recording: said once
            _error(exc)
            return EXIT_ERROR
        except BleeplineError as exc:
            _error(exc)
            reports.append({"file": str(path), "error": str(exc)})
            status = EXIT_ERROR
            continue
        reports.append(report)
        if report["audible"] and status == EXIT_CLEAN:
            status = EXIT_AUDIBLE
        if not args.json:
            print(_format(report))
    if args.json:
        print(json.dumps({"models": listener.models, "recordings": reports}, indent=2, sort_keys=True))
    return status


def verify_recording(path: Path, identity: Identity, listener: _Listener, *, write: bool) -> dict[str, Any]:
    """Verify one recording; with ``write``, leave its verdict file beside it. Returns the report."""
    audio = read_recording(path, identity)
    sealed = _sealed_digest(path)
    call_id, redacted = audio.call_id, audio.redacted
    verdict = listener.verify(audio)
    del audio  # the decrypted samples go as soon as they are heard
    record = VerdictRecord(
        call_id=call_id,
        recording=path.name,
        recording_bytes=sealed[0],
        recording_sha256=sealed[1],
        verified_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        models=listener.models,
        duration=verdict.duration,
        channels=verdict.channels,
        findings=verdict.findings,
        redacted=redacted,
        masked_seconds=verdict.masked_seconds,
    )
    report: dict[str, Any] = {"file": str(path), **record.to_dict()}
    for key in ("format", "version", "models"):
        report.pop(key)
    if write:
        target = verdict_path(path)
        write_verdict(record, target)
        report["verdict"] = str(target)
    return report


def _sealed_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the sealed file (ciphertext): which bytes the verdict is about."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
    except FileNotFoundError:
        raise StoreError(path, "does not exist") from None
    except IsADirectoryError:
        raise StoreError(path, "is a directory, not a recording") from None
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {(exc.strerror or type(exc).__name__).lower()}") from None
    return size, digest.hexdigest()


def _format(report: dict[str, Any]) -> str:
    counts = report["counts"]
    about = f"call {report['call_id']}, {report['duration']:.2f} s"
    if not report["redacted"]:
        about += ", sealed as given (NOT redacted)"
    if report["clean"]:
        head = f"{report['file']}: clean: no digit, entity or keypad tone audible ({about})"
    else:
        parts = [f"{counts['digit']} digit", f"{counts['entity']} entity", f"{counts['dtmf']} dtmf"]
        head = f"{report['file']}: {report['audible']} audible ({', '.join(parts)}; {about})"
    lines = [head]
    several = report["channels"] > 1
    for finding in report["findings"]:
        what = finding["kind"] + (f" {finding['entity']}" if finding["entity"] else "")
        where = f"channel {finding['channel']}  " if several else ""
        lines.append(f"  {where}{finding['start']:8.2f} - {finding['end']:8.2f} s  {what}")
    if "verdict" in report:
        lines.append(f"  verdict written to {report['verdict']}")
    return "\n".join(lines)


def _error(exc: BleeplineError) -> None:
    print(f"bleepline: error: {exc}", file=sys.stderr)
