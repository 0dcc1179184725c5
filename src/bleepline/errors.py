"""The root of bleepline's own errors.

Every error a user can cause is a ``BleeplineError`` whose message is one line saying what was wrong and
what to do; the command line prints that line and nothing else.
"""

from __future__ import annotations


class BleeplineError(Exception):
    """A failure with a message fit to show a user: one line, no personal data."""
