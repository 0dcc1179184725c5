"""bleepline: a real-time speech redaction relay for phone and WebRTC calls."""

import os

# Each call's audio is processed on one thread. OpenBLAS's worker threads do nothing useful for the small
# matrix products on that path (the recognizer's log-mel projection) but spin after each one: measured
# here, they doubled the recognizer's CPU per audio second (0.140 -> 0.073). This must happen before
# numpy loads, so it lives here; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
