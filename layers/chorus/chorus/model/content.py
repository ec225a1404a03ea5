"""Content types and payload limits: the rules every layer shares, written once."""

from __future__ import annotations

JSON = "application/json"
# SageMaker InvokeEndpoint's request limit; real-time endpoints never see a larger input.
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
MAX_INLINE_INPUT_BYTES = 256 * 1024
MAX_METADATA_BYTES = 4 * 1024


def normalize(content_type: str) -> str:
    """`Image/PNG; charset=x` → `image/png`: parameters and case never decide a match."""
    return content_type.split(";")[0].strip().lower()
