"""`bleepline redact`: files through the same streaming path as a live call, as fast as the CPU allows.

For each input it writes ``<stem>.bleep`` (the encrypted redacted recording), ``<stem>.transcript.json``
and ``<stem>.vtt``, and prints a summary without content. A failed input leaves none of its outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bleepline.audio.files import probe_audio, read_audio_chunks
from bleepline.call import CallReport, CallSession
from bleepline.errors import BleeplineError
from bleepline.listener import CallListener
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.redact.policy import MaskMode, RedactionPolicy
from bleepline.speech.asr import StreamingRecognizer
from bleepline.speech.batch import WindowBatcher, batch_by_default
from bleepline.speech.models import ModelSpec, load_whisper, resolve_model
from bleepline.store.keys import RecipientKey, load_recipient
from bleepline.store.recording import RecordingWriter
from bleepline.store.transcript import TranscriptBuilder, write_transcript

PII_MODEL = "presidio + spaCy en_core_web_sm 3.8.0 + bleepline spoken-form rules"


@dataclass(frozen=True)
class RedactOutputs:
    recording: Path
    transcript: Path
    subtitles: Path

    @classmethod
    def for_input(cls, source: Path, out_dir: Path) -> RedactOutputs:
        stem = source.stem
        return cls(out_dir / f"{stem}.bleep", out_dir / f"{stem}.transcript.json", out_dir / f"{stem}.vtt")

    def all(self) -> tuple[Path, Path, Path]:
        return self.recording, self.transcript, self.subtitles


class Redactor:
    """Loads the models once and redacts any number of files with them.

    With ``batch``, every listener's recognizer decodes through one shared ``WindowBatcher``: the windows
    of calls due together go through the model as one batch. None: on a GPU only (``batch_by_default``).
    """

    def __init__(
        self,
        recipients: list[RecipientKey],
        policy: RedactionPolicy,
        model: ModelSpec,
        *,
        batch: bool | None = None,
    ) -> None:
        self.recipients = recipients
        self.policy = policy
        self.model = model
        self._whisper = load_whisper(model)
        if batch is None:
            batch = batch_by_default(model.device)
        self.batcher = WindowBatcher(self._whisper) if batch else None
        self._detector = SpokenPiiDetector()

    @property
    def models(self) -> dict[str, str]:
        return {"asr": f"{self.model.name} {self.model.compute_type}", "pii": PII_MODEL}

    def listener(self, sample_rate: int) -> CallListener:
        return CallListener(
            sample_rate,
            StreamingRecognizer(whisper=self._whisper, batcher=self.batcher),
            SpanTracker(self._detector),
        )

    def redact(self, source: Path, outputs: RedactOutputs, progress: TextIO | None = None) -> CallReport:
        info = probe_audio(source)  # a bad input fails here, before anything is created
        for path in outputs.all():
            if path.exists():
                raise BleeplineError(f"{path}: already exists; remove it or choose another --out")
        call_id = f"{source.stem}"
        writer = RecordingWriter(
            outputs.recording,
            self.recipients,
            sample_rate=info.sample_rate,
            call_id=call_id,
            redacted=True,
            metadata={"models": self.models, "policy": self.policy.describe(), "source": "redact"},
        )
        shown = 0.0
        try:
            session = CallSession(
                call_id,
                info.sample_rate,
                listener=self.listener(info.sample_rate),
                policy=self.policy,
                sinks=[writer],
                transcript=TranscriptBuilder(call_id, models=self.models, policy=self.policy.describe()),
            )
            for chunk in read_audio_chunks(source):
                session.push(chunk)
                position = chunk.end / chunk.sample_rate
                if progress is not None and position - shown >= 5.0:
                    shown = position
                    _show_progress(progress, source, position, info.duration)
            report = session.end()
            writer.close()
            assert report.transcript is not None
            write_transcript(report.transcript, outputs.transcript, outputs.subtitles)
        except BaseException:
            writer.abort()
            for path in (outputs.transcript, outputs.subtitles):
                path.unlink(missing_ok=True)
            raise
        finally:
            if progress is not None and shown:
                progress.write("\r\x1b[K")
        return report


def _show_progress(stream: TextIO, source: Path, position: float, total: float | None) -> None:
    if total:
        share = min(position / total, 1.0)
        bar = "#" * int(share * 30)
        stream.write(f"\r  {source.name} [{bar:<30s}] {position:7.1f}/{total:.1f} s")
    else:
        stream.write(f"\r  {source.name} {position:7.1f} s")
    stream.flush()


def run(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    recipients = [load_recipient(p) for p in args.recipient]
    out_dir = output_directory(args.out)
    redactor = Redactor(recipients, policy, resolve_model(args.model))
    progress = sys.stderr if sys.stderr.isatty() else None
    failures = 0
    for source in args.inputs:
        outputs = RedactOutputs.for_input(source, out_dir)
        began = time.perf_counter()
        try:
            report = redactor.redact(source, outputs, progress)
        except BleeplineError as exc:
            failures += 1
            print(f"bleepline: error: {exc}", file=sys.stderr)
            continue
        print_summary(source, outputs, report, time.perf_counter() - began)
    return 1 if failures else 0


def policy_from_args(args: argparse.Namespace) -> RedactionPolicy:
    """The redaction policy from ``--delay`` and ``--mask`` (where the command has it)."""
    options: dict[str, Any] = {}
    if args.delay is not None and not 0.5 <= args.delay <= 30.0:
        raise BleeplineError(f"--delay must be between 0.5 and 30 seconds, got {args.delay}")
    if args.delay is not None:
        options["delay_s"] = args.delay
    if getattr(args, "mask", None) is not None:
        options["mode"] = MaskMode(args.mask)
    return RedactionPolicy(**options)


def output_directory(path: Path) -> Path:
    """``path`` as a directory to write into, made if missing; a one-line error if it is a file."""
    if path.exists() and not path.is_dir():
        raise BleeplineError(f"{path}: exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def print_summary(source: Path, outputs: RedactOutputs, report: CallReport, wall_s: float) -> None:
    spans = ", ".join(f"{entity} {count}" for entity, count in sorted(report.spans_by_entity.items()))
    masked = ", ".join(f"{reason} {seconds:.1f} s" for reason, seconds in report.masked_s.items() if seconds)
    rtf = wall_s / report.duration if report.duration else 0.0
    print(f"redacted {source} -> {outputs.recording}")
    print(f"  {report.duration:.1f} s of audio in {wall_s:.1f} s (real-time factor {rtf:.2f})")
    keypad = f"; keypad entries: {report.keypad_entries}" if report.keypad_entries else ""
    print(f"  spans: {spans or 'none'}{keypad}")
    print(f"  masked: {masked or 'nothing'}")
    lag = report.recognizer_lag_s
    if lag:
        print(f"  transcript final behind the audio: median {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s")
    if report.late_masks:
        print(
            f"  LATE: {report.late_masks} spans arrived after {report.late_mask_s:.2f} s of their audio "
            f"had been released (raise --delay)"
        )
    if report.listener_failures:
        print(f"  the recognizer failed {report.listener_failures} time(s); what it missed is masked")
    print(f"  transcript: {outputs.transcript} and {outputs.subtitles}")
