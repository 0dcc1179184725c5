"""Spoken personal data: normalising what people say and finding PII spans in recognised words."""
