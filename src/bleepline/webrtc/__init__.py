"""WebRTC in and out, with aiortc: WHIP ingest (a browser or any WHIP client publishes a call) and WHEP
live listening of a call's redacted audio. The HTTP side is ``routes``; sessions and tokens ``gateway``.
"""
