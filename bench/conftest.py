"""Benchmarks run with `.venv/bin/python -m pytest bench` (not part of the test suite).

They time CPU seconds (process time), not wall time: this machine is shared and wall time is noisy.
"""
