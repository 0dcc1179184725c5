"""What the figures were measured on: hardware, software versions, model, commit, date, GPU."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("numpy", "ctranslate2", "faster-whisper", "aiortc", "av", "presidio-analyzer", "bleepline")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


#: Paths whose changes would make the figures belong to the working tree rather than the commit.
_MEASURED = ("src", "bench", "fixtures", "models", "pyproject.toml", ":!bench/results", ":!bench/RESULTS*.md")


def _git_commit() -> str:
    """The commit, and whether the tree had changes (the figures then belong to the tree, not the commit).

    Only what can change a figure counts: the code, the benchmarks, the fixtures and the dependencies, not
    prose nor this runner's own earlier output (RESULTS files and plots, rewritten by every run).
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *_MEASURED],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (uncommitted changes)" if dirty else commit


def cuda_devices() -> int:
    """CUDA devices CTranslate2 can use (0 when it was built without CUDA or none is there)."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # an odd CUDA install must not stop the report: no GPU, then
        return 0


def gpu_names() -> list[str]:
    """The GPUs' names from nvidia-smi, where there is one (empty otherwise)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def machine_info(model: str, compute_type: str, device: str) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in PACKAGES},
        "model": model,
        "compute_type": compute_type,
        "device": device,
        "gpus": cuda_devices(),
        "gpu_names": gpu_names(),
        "commit": _git_commit(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
    }
