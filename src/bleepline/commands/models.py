"""`bleepline models`: the model manifest (`models/manifest.toml`), and checking a model directory with it.

``list`` shows the known models. ``verify DIR`` measures every file of a model directory (SHA-256 and
size); where the manifest holds sums for that model it compares them and fails on any difference, and
where it holds none it prints the measured sums as a manifest table, for whoever vouches for the copy.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from bleepline.errors import BleeplineError
from bleepline.manifest import manifest_path, sha256_of
from bleepline.speech.models import REQUIRED_FILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="the models the manifest knows: source, languages, size, sums")
    p.set_defaults(run=run_list)
    p = sub.add_parser("verify", help="measure a model directory and compare it with the manifest")
    p.add_argument("directory", type=Path, metavar="DIR", help="a CTranslate2 Whisper model directory")
    p.add_argument("--name", help="its manifest entry (default: the directory's name)")
    p.set_defaults(run=run_verify)


def read_manifest(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's entries by name (each a table); a one-line error if it cannot be read."""
    path = path or manifest_path()
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise BleeplineError(f"{path}: cannot read the model manifest: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BleeplineError(f"{path}: the model manifest is not valid TOML: {exc}") from None
    return {name: entry for name, entry in document.items() if isinstance(entry, dict)}


def measure(directory: Path) -> dict[str, tuple[int, str]]:
    """(size, SHA-256) of every file under ``directory``, by path relative to it, sorted."""
    return {
        file.relative_to(directory).as_posix(): (file.stat().st_size, sha256_of(file))
        for file in sorted(p for p in directory.rglob("*") if p.is_file())
    }


def run_list(args: argparse.Namespace) -> int:
    for name, entry in read_manifest().items():
        sums = entry.get("sha256")
        checked = f"{len(sums)} file sums" if isinstance(sums, dict) else "no sums"
        languages = ",".join(entry.get("languages", [])) or "?"
        print(
            f"{name:26s} {entry.get('kind', '?'):20s} {languages:4s} {_size(entry.get('bytes')):>10s}  "
            f"{checked:13s} {entry.get('source', '?')}"
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        raise BleeplineError(f"{directory}: not a directory")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise BleeplineError(f"{directory}: not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    name = args.name or directory.resolve().name
    entry = read_manifest().get(name)
    files = measure(directory)
    total = sum(size for size, _ in files.values())
    print(f"{directory}: {len(files)} files, {total} bytes")
    expected = entry.get("sha256") if entry is not None else None
    if not isinstance(expected, dict):
        why = "no entry" if entry is None else "no sums"
        print(f"the manifest ({manifest_path()}) has {why} for {name!r}: measured, not compared.")
        print(f"If you vouch for this copy, its sums for the manifest:\n\n[{name}.sha256]")
        for relative, (_, digest) in files.items():
            print(f'"{relative}" = "{digest}"')
        return 0
    failures = 0
    for relative, digest in expected.items():
        got = files.get(relative)
        status = "ok" if got is not None and got[1] == digest else "MISSING" if got is None else "DIFFERS"
        failures += status != "ok"
        print(f"  {status:8s} {relative}")
    if isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and entry["bytes"] != total:
        print(f"  note: the manifest says {entry['bytes']} bytes in all")
    if failures:
        raise BleeplineError(f"{directory}: {failures} file(s) do not match the manifest's {name!r}")
    print(f"{directory}: matches the manifest's {name!r}")
    return 0


def _size(value: object) -> str:
    if isinstance(value, int):
        return f"{value / 1e6:.1f} MB"
    return str(value) if value is not None else "?"
