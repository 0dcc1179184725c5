"""The pieces of ``python -m bench``: run each section, keep its figures as JSON, plot them, write RESULTS.md.

Each section returns a JSON-ready dict (or one saying why it was not measured); ``render`` turns the
collected dicts into markdown and ``plots`` into PNGs, so the report can be rebuilt from saved figures.
"""
