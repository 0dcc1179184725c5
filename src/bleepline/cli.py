"""The `bleepline` command: argument parsing and the boundary where errors become one line.

Each subcommand lives in `bleepline.commands`; this module only wires them to the parser and makes sure
a user sees a one-line error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from bleepline import __version__
from bleepline.commands import (
    demo,
    keys,
    models,
    recordings,
    redact,
    review,
    review_admin,
    send,
    serve,
    verify,
)
from bleepline.errors import BleeplineError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bleepline",
        description="Real-time speech redaction relay: personal data is beeped out before anything "
        "is written, and what is kept is encrypted to reviewers' keys.",
    )
    parser.add_argument("--version", action="version", version=f"bleepline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the main job on embedded defaults: try bleepline end to end")
    p.add_argument("--input", type=Path, help="audio file to use (default: the bundled example)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bleepline-demo"),
        help="directory for the run's files (default: ./bleepline-demo)",
    )
    p.set_defaults(run=demo.run)

    p = sub.add_parser("redact", help="beep personal data out of audio files; write .bleep + transcript")
    p.add_argument("inputs", type=Path, nargs="+", metavar="IN", help="audio files (anything FFmpeg reads)")
    _add_recipients(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the outputs")
    p.add_argument(
        "--delay", type=float, metavar="S", help="seconds audio is held for the recognizer (default 3.5)"
    )
    p.add_argument("--mask", choices=("beep", "silence"), help="how personal data is masked (default beep)")
    p.add_argument("--model", help="speech model: whisper-tiny-en (default) or a CTranslate2 directory")
    p.set_defaults(run=redact.run)

    p = sub.add_parser("serve", help="live relay: redact RTP calls (static UDP port and/or HTTP control API)")
    serve.add_arguments(p)  # its own module: the flags mirror the config file's keys (bleepline.config)
    p.set_defaults(run=serve.run)

    p = sub.add_parser(
        "send",
        help="test sender: play an audio file into a relay as one RTP call in real time, then RTCP BYE",
        description="A test and convenience sender for trying `bleepline serve` without a PBX: streams "
        "the file as 20 ms G.711 RTP packets in real time from one UDP socket, then sends an RTCP BYE "
        "so the relay ends the call. Plain RTP only, no SDP: for a static-mode relay (--rtp-listen).",
    )
    send.add_arguments(p)
    p.set_defaults(run=send.run)

    p = sub.add_parser("keygen", help="make a reviewer key pair: recipient.pub and identity.key")
    p.add_argument("--out", type=Path, required=True, help="directory to write the key pair into")
    p.add_argument(
        "--passphrase",
        action="store_true",
        help=f"protect identity.key with a passphrase (from ${keys.PASSPHRASE_ENV} or asked for)",
    )
    p.set_defaults(run=keys.run_keygen)

    p = sub.add_parser("seal", help="encrypt audio that needs no redaction into a .bleep file")
    p.add_argument("input", type=Path, metavar="IN", help="audio file (anything FFmpeg reads)")
    _add_recipients(p)
    p.add_argument("--out", type=Path, required=True, help="the .bleep file to create")
    p.add_argument("--rate", type=int, help="resample to this rate (default: the input's rate)")
    p.add_argument("--call-id", help="call id to record in the header (default: a new UUID)")
    p.set_defaults(run=recordings.run_seal)

    p = sub.add_parser("decrypt", help="verify a .bleep file and write its audio to WAV or FLAC")
    p.add_argument("recording", type=Path, metavar="FILE.bleep")
    p.add_argument("--identity", type=Path, required=True, metavar="KEY", help="the reviewer's identity.key")
    p.add_argument("--out", type=Path, required=True, help="output .wav or .flac")
    p.add_argument(
        "--salvage",
        action="store_true",
        help="if the recording is cut short or damaged, keep the verified part",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=recordings.run_decrypt)

    p = sub.add_parser(
        "verify",
        help="proof of redaction: hear recordings again, report digits, PII and key presses still audible",
        description="Decrypts each recording in memory (nothing decrypted touches disk), hears it again "
        "with the recognizer, the spoken PII detector and the keypad-tone detector, and lists every "
        "digit, entity and key press still audible, with times, never the words. Exit 0: all clean; "
        "1: something audible; 2: a recording could not be verified.",
    )
    verify.add_arguments(p)
    p.set_defaults(run=verify.run)

    p = sub.add_parser(
        "review",
        help="the QA web app: sign in, list calls, play redacted recordings with their transcripts",
        description="Serves the review web app over a recordings store. It decrypts recordings with the "
        "reviewer identity named in the config, so run it apart from the relay. See docs/review.md.",
    )
    review.add_arguments(p)
    p.set_defaults(run=review.run)

    p = sub.add_parser("inspect", help="show a .bleep file's header, length and integrity")
    p.add_argument("recording", type=Path, metavar="FILE.bleep")
    p.add_argument(
        "--identity",
        type=Path,
        metavar="KEY",
        help="also authenticate every chunk with this identity",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=recordings.run_inspect)

    p = sub.add_parser("models", help="the model manifest: list known models, verify a model directory")
    models.add_arguments(p)

    review_admin.add_commands(sub)  # audit, retention, crm, users: the review side's admin commands
    return parser


def _add_recipients(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipient",
        type=Path,
        action="append",
        required=True,
        metavar="PUB",
        help="recipient public key; repeat for several recipients",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except BleeplineError as exc:
        print(f"bleepline: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("bleepline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last guard: a user never sees a traceback
        print(
            f"bleepline: internal error ({type(exc).__name__}); "
            "set BLEEPLINE_DEBUG=1 for a traceback and report it",
            file=sys.stderr,
        )
        if os.environ.get("BLEEPLINE_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
