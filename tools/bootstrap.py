"""Set up `.venv` at the repository root and run bleepline's main job on its embedded defaults.

Usage: python3 tools/bootstrap.py [demo options...]
Needs only Python 3.11+ and this repository. Safe to run again: an existing `.venv` is reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 the machine has
        print(
            f"bleepline needs Python 3.11 or newer; this is {sys.version.split()[0]}",
            file=sys.stderr,
        )
        return 1
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing bleepline and its dependencies into .venv", flush=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--editable",
            f"{ROOT}[dev]",
        ],
        check=True,
    )
    print("running the main job: bleepline demo\n", flush=True)
    os.chdir(ROOT)
    return subprocess.run([str(VENV / "bin" / "bleepline"), "demo", *sys.argv[1:]]).returncode


if __name__ == "__main__":
    sys.exit(main())
