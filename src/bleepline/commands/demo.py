"""`bleepline demo`: the main job on embedded defaults, to see the live relay work end to end.

Makes a reviewer key pair, starts the relay (``bleepline serve``'s static mode) in this process on an
ephemeral port of 127.0.0.1, plays one example call into it in real time with the code ``bleepline send``
uses, and, once the relay has ended the call on its RTCP BYE, shows the call's summary and redacted
transcript and decrypts the recording to check it keeps the call's timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bleepline.audio.codecs import PCMU
from bleepline.call import CallReport
from bleepline.commands.recordings import decrypt_file, inspect_recording
from bleepline.commands.redact import Redactor
from bleepline.commands.send import Destination, SendResult, parse_destination, stream_file
from bleepline.errors import BleeplineError
from bleepline.logs import configure_logging, remove_logging
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.speech.models import resolve_model
from bleepline.store.keys import Identity, write_key_pair

#: The example calls shipped in the repository (found when bleepline runs from a checkout).
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "audio"
#: A short call with a phone number in it: long enough to show the delay line, short enough to wait for.
EXAMPLE = "phone_awb_8k.wav"

#: How long the relay may take to start (the models are loaded before it) and to finalise the call.
_START_TIMEOUT_S = 30.0
_BYE_TIMEOUT_S = 5.0
_FINALISE_TIMEOUT_S = 60.0


def run(args: argparse.Namespace) -> int:
    source: Path = args.input or FIXTURES / EXAMPLE
    if not source.exists():
        raise BleeplineError(f"{source}: example call not found; pass --input AUDIO_FILE")
    run_dir = _fresh_directory(args.out / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))

    identity = Identity.generate()
    public_key, private_key = write_key_pair(run_dir / "keys", identity)
    print(f"1. key pair: {public_key} (the relay's) and {private_key} (the reviewer's)\n")

    print("2. starting the relay: bleepline serve in static mode (plain RTP, PCMU) on 127.0.0.1", flush=True)
    policy = RedactionPolicy()
    # As `serve` does: the models load once, before the port opens.
    redactor = Redactor([identity.recipient], policy, resolve_model())
    store = run_dir / "calls"
    store.mkdir()
    server = RelayServer(
        codec=PCMU,
        recipients=[identity.recipient],
        store=store,
        policy=policy,
        listener_factory=redactor.listener,
        models=redactor.models,
    )
    # The relay's own log lines, as `serve` prints them; on stdout so they fall in order with the steps.
    handler = configure_logging("text", "info", stream=sys.stdout)
    try:
        with _running(server) as (host, port):
            destination = parse_destination(f"{host}:{port}")
            print(
                f"\n3. sending {_shown(source)} to it as RTP in real time, then an RTCP BYE (bleepline send)"
            )
            sent = _send(source, destination)
            # The relay ends the call on the BYE; stopping it then waits for the recording and the
            # transcript to be finalised. A BYE lost on the way would end the call at the stop instead.
            deadline = time.monotonic() + _BYE_TIMEOUT_S
            while server.active_calls and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        sys.stdout.flush()
        remove_logging(handler)

    if not server.stats.reports:
        raise BleeplineError("the relay did not finalise the call; see its log lines above")
    report = server.stats.reports[0]
    recording = store / f"{report.call_id}.bleep"
    transcript_json = store / f"{report.call_id}.transcript.json"
    subtitles = store / f"{report.call_id}.vtt"
    print(f"\n4. the call's summary (call {report.call_id})")
    _print_summary(report, server.stats.rtp)
    print(f"   recording:  {recording}")
    print(f"   transcript: {transcript_json} and {subtitles}")

    print("\n5. the redacted transcript (only redacted text is ever written):\n")
    assert report.transcript is not None
    for segment in report.transcript.segments:
        print(f"   [{segment.start:6.2f} - {segment.end:6.2f}] {segment.text}")
    if not report.transcript.segments:
        print("   (no words recognised)")

    integrity = inspect_recording(recording, private_key)
    decrypted = run_dir / f"{report.call_id}.wav"
    result = decrypt_file(recording, private_key, decrypted)
    # The relay records the call's timeline as it received it: every packet sent, 20 ms each.
    sent_samples = round(sent.audio_s * result.sample_rate)
    same_length = result.samples == sent_samples
    print(f"\n6. decrypted the recording with the reviewer's key -> {decrypted}")
    print(
        f"   integrity {integrity['integrity']}, redacted: {integrity['redacted']}; "
        f"{result.samples} samples ({result.duration:.2f} s) for {sent.packets} packets sent "
        f"({sent_samples} samples): "
        f"{'the same length and timeline as the call' if same_length else 'LENGTH DIFFERS'}"
    )

    print(
        f"\nall files are under {run_dir}: keys/, calls/ (the recording, the transcript as JSON and "
        "WebVTT) and the decrypted WAV"
    )
    print("\nthe same by hand, in two terminals (the relay runs until Ctrl-C):\n")
    print(
        f"  bleepline serve --rtp-listen 127.0.0.1:40000 --codec pcmu --recipient {public_key} "
        f"--store {store}"
    )
    print(f"  bleepline send {_shown(source)} --to 127.0.0.1:40000")
    print("\nthen, with the new call's id (the relay logs it):\n")
    print(f"  bleepline inspect {store}/CALL_ID.bleep --identity {private_key}")
    print(f"  bleepline decrypt {store}/CALL_ID.bleep --identity {private_key} --out call.wav")
    print(f"  cat {store}/CALL_ID.transcript.json")
    print("\nfor files rather than live calls: bleepline redact AUDIO --recipient PUB --out DIR")
    return 0 if same_length else 1


@contextmanager
def _running(server: RelayServer) -> Iterator[tuple[str, int]]:
    """The relay on its own event loop in a thread, as `serve` runs it; stopped on the way out, which
    ends every call and waits until its recording and transcript are written."""
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(server.run("127.0.0.1", 0, ready=lambda _: ready.set()))
        except BaseException as exc:  # re-raised in the caller's thread, as one line
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="relay", daemon=True)
    thread.start()
    try:
        if not ready.wait(_START_TIMEOUT_S) or failure or server.local_address is None:
            raise BleeplineError(f"the relay did not start on 127.0.0.1 ({_failure(failure)})")
        yield server.local_address
    finally:
        if thread.is_alive():  # a relay that failed to start has no loop left to stop
            server.stop()
        thread.join(_FINALISE_TIMEOUT_S)
    if thread.is_alive():
        raise BleeplineError("the relay did not finish its call in time; its files may be incomplete")
    if failure:
        raise BleeplineError(f"the relay failed ({_failure(failure)})")


def _send(source: Path, destination: Destination) -> SendResult:
    began = time.monotonic()

    def started(ssrc: int) -> None:
        print(f"   first packet out to {destination.text}, SSRC {ssrc:#010x}", flush=True)

    result = stream_file(source, destination, codec=PCMU, on_start=started)
    print(
        f"   sent {result.packets} packets ({result.audio_s:.2f} s of audio in {result.wall_s:.2f} s), "
        f"then an RTCP BYE; {time.monotonic() - began:.1f} s in all",
        flush=True,
    )
    return result


def _print_summary(report: CallReport, received: int) -> None:
    # Not redact's print_summary: a live call runs at the wall clock, so its real-time factor means nothing.
    spans = ", ".join(f"{entity} {count}" for entity, count in sorted(report.spans_by_entity.items()))
    masked = ", ".join(f"{reason} {seconds:.1f} s" for reason, seconds in report.masked_s.items() if seconds)
    print(f"   {report.duration:.2f} s on the call timeline ({received} RTP packets received)")
    keypad = f"; keypad entries: {report.keypad_entries}" if report.keypad_entries else ""
    print(f"   spans: {spans or 'none'}{keypad}")
    print(f"   masked: {masked or 'nothing'}")
    if report.late_masks:
        print(
            f"   LATE: {report.late_masks} spans arrived after {report.late_mask_s:.2f} s had been released"
        )
    if report.early_audio_s:
        print(f"   {report.early_audio_s:.2f} s of audio came ahead of the release clock and was dropped")
    if report.listener_failures:
        print(f"   the recognizer failed {report.listener_failures} time(s); what it missed is masked")


def _failure(failure: list[BaseException]) -> str:
    # The type only, as the relay's logs do: a message could quote what the relay was handed.
    return type(failure[0]).__name__ if failure else "timed out"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it: the command a user would type."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
