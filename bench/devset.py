"""The development set of composed calls (being written: not composed yet).

Run: PYTHONPATH=. .venv/bin/python -m bench.devset
"""

from __future__ import annotations

from pathlib import Path


def ensure() -> list[Path]:
    """The dev set's truth files, composing them first if missing."""
    raise SystemExit("bench/devset.py does not compose the development set yet")
