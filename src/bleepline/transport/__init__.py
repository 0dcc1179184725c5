"""Getting call audio in and out: RTP/RTCP, RFC 4733 events, SDP and UDP endpoints.

Knows nothing of speech or PII.
"""
