"""Tests of the reviewer side (library, CLI and web app)."""
