"""The live relay's parts; ``bleepline.server`` (``RelayServer``) puts them together and is the import point.

``calls``: a call's record, its media source and the server's counters; ``admission``: capacity rules;
``legs``: a negotiated call's outgoing legs; ``status``: read-only call views for the control API and metrics.
"""
