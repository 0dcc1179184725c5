"""bleepline: a real-time speech redaction relay for phone and WebRTC calls."""

__version__ = "0.1.0"
