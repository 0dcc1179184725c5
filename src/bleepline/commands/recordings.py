"""`bleepline seal`, `decrypt` and `inspect`: recordings in and out of the `.bleep` format."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bleepline.audio.files import WRITABLE_FORMATS, AudioFileWriter, probe_audio, read_audio_chunks
from bleepline.commands.keys import open_identity
from bleepline.errors import BleeplineError
from bleepline.store.errors import (
    RecordingIntegrityError,
    StoreError,
    TruncatedRecordingError,
)
from bleepline.store.keys import load_recipient
from bleepline.store.recording import RecordingReader, RecordingSummary, RecordingWriter


def seal_file(
    source: Path,
    out: Path,
    recipient_paths: list[Path],
    *,
    sample_rate: int | None = None,
    call_id: str | None = None,
) -> RecordingSummary:
    """Encrypt an audio file as it is (marked not redacted). Nothing is left behind on failure."""
    recipients = [load_recipient(p) for p in recipient_paths]
    info = probe_audio(source)  # fails on a bad input before anything is created
    if out.exists():
        raise BleeplineError(f"{out}: already exists; refusing to overwrite a recording")
    writer = RecordingWriter(
        out,
        recipients,
        sample_rate=sample_rate or info.sample_rate,
        call_id=call_id,
        redacted=False,
        metadata={"source": "seal", "source_codec": info.codec},
    )
    try:
        for chunk in read_audio_chunks(source, sample_rate=writer.sample_rate):
            writer.write(chunk)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def run_seal(args: argparse.Namespace) -> int:
    if args.rate is not None and args.rate <= 0:
        raise BleeplineError(f"--rate must be a positive sample rate, got {args.rate}")
    summary = seal_file(args.input, args.out, args.recipient, sample_rate=args.rate, call_id=args.call_id)
    print(f"sealed {args.input} -> {summary.path}")
    print(
        f"  {summary.duration:.2f} s at {summary.sample_rate} Hz in {summary.chunks} chunks, "
        f"call id {summary.call_id}"
    )
    print("  marked NOT redacted: sealed as given, without bleepline's redaction")
    return 0


@dataclass(frozen=True)
class DecryptResult:
    out: Path | None
    samples: int
    sample_rate: int
    complete: bool
    problem: str | None = None

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def decrypt_file(
    recording: Path, identity_path: Path, out: Path, *, salvage: bool = False, force: bool = False
) -> DecryptResult:
    """Verify ``recording`` and write its audio to ``out``. Without ``salvage`` any failure writes
    nothing; with it, the verified prefix of a cut-short or damaged recording is kept."""
    if out.suffix.lower() not in WRITABLE_FORMATS:
        raise BleeplineError(f"{out}: output must be one of {', '.join(sorted(WRITABLE_FORMATS))}")
    if out.exists() and not force:
        raise BleeplineError(f"{out}: already exists; use --force to replace it")
    identity = open_identity(identity_path)
    with RecordingReader(recording) as reader:
        reader.unlock(identity)
        writer = AudioFileWriter(out, reader.header.sample_rate)
        try:
            for chunk in reader.chunks():
                writer.write(chunk)
        except RecordingIntegrityError as exc:
            if not salvage or exc.verified_samples == 0:
                writer.discard()
                if isinstance(exc, TruncatedRecordingError) and exc.verified_samples:
                    raise StoreError(
                        exc.path,
                        f"{exc.problem}; nothing written (--salvage keeps the verified part)",
                    ) from None
                raise
            writer.commit()
            return DecryptResult(out, exc.verified_samples, reader.header.sample_rate, False, exc.problem)
        except BaseException:
            writer.discard()
            raise
        writer.commit()
        return DecryptResult(out, writer.samples_written, reader.header.sample_rate, True)


def run_decrypt(args: argparse.Namespace) -> int:
    result = decrypt_file(args.recording, args.identity, args.out, salvage=args.salvage, force=args.force)
    if result.complete:
        print(f"decrypted {args.recording} -> {result.out}")
        print(f"  {result.duration:.2f} s at {result.sample_rate} Hz, every chunk verified")
    else:
        print(f"salvaged {args.recording} -> {result.out}")
        print(f"  recovered {result.duration:.2f} s at {result.sample_rate} Hz of verified audio")
        print(f"  the rest is lost: {args.recording} {result.problem}")
    return 0


def inspect_recording(recording: Path, identity_path: Path | None = None) -> dict[str, Any]:
    """A report on a recording: header, length, and how far its integrity could be established."""
    with RecordingReader(recording) as reader:
        header = reader.header
        layout = reader.scan()
        report: dict[str, Any] = {
            "file": str(recording),
            "format_version": header.version,
            "call_id": header.call_id,
            "created_at": header.created_at,
            "redacted": header.redacted,
            "sample_rate": header.sample_rate,
            "codec": header.codec,
            "chunk_seconds": header.chunk_samples / header.sample_rate,
            "recipients": reader.recipient_key_ids,
            "metadata": header.metadata,
            "chunks": layout.chunks,
            "duration": layout.samples / header.sample_rate,
        }
        if identity_path is None:
            report["integrity"] = "complete" if layout.looks_complete else "truncated"
            report["authenticated"] = False
            return report
        reader.unlock(open_identity(identity_path))
        try:
            samples = sum(len(chunk) for chunk in reader.chunks())
        except TruncatedRecordingError as exc:
            report.update(
                integrity="truncated",
                authenticated=True,
                problem=exc.problem,
                verified_duration=exc.verified_samples / header.sample_rate,
            )
            return report
        except RecordingIntegrityError as exc:
            report.update(
                integrity="damaged",
                authenticated=True,
                problem=exc.problem,
                verified_duration=exc.verified_samples / header.sample_rate,
            )
            return report
        report.update(integrity="complete", authenticated=True, duration=samples / header.sample_rate)
        return report


def run_inspect(args: argparse.Namespace) -> int:
    report = inspect_recording(args.recording, args.identity)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(_format_report(report))
    return 0 if report["integrity"] == "complete" else 1


def _format_report(report: dict[str, Any]) -> str:
    redacted = (
        "yes: redacted by bleepline"
        if report["redacted"]
        else "NO: sealed as given, not redacted by bleepline"
    )
    if report["integrity"] == "complete" and report["authenticated"]:
        integrity = "complete; header and every chunk authenticated"
    elif report["integrity"] == "complete":
        integrity = "complete by its framing; not authenticated (give --identity to verify)"
    elif report["authenticated"]:
        integrity = (
            f"{report['integrity'].upper()}: {report['problem']} "
            f"({report['verified_duration']:.2f} s verified)"
        )
    else:
        integrity = "TRUNCATED: no final chunk (the writer stopped early); not authenticated"
    lines = [
        f"file            {report['file']}",
        f"format          bleepline recording v{report['format_version']}",
        f"call id         {report['call_id']}",
        f"created at      {report['created_at']}",
        f"redacted        {redacted}",
        f"audio           {report['codec']}, {report['sample_rate']} Hz mono, "
        f"{report['duration']:.2f} s in {report['chunks']} chunks",
        f"recipients      {', '.join(report['recipients'])}",
        f"metadata        {json.dumps(report['metadata'], sort_keys=True)}",
        f"integrity       {integrity}",
    ]
    return "\n".join(lines)
