"""Tasks the demo enqueues."""

import hashlib


def fingerprint(text: str) -> str:
    """Return a short SHA-256 fingerprint of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
