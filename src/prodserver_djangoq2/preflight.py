"""Checks run when a worker starts (placeholder until the full set lands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def run(process_name: str, process_config: Mapping[str, Any]) -> None:
    """Refuse to start the worker on a configuration error."""
