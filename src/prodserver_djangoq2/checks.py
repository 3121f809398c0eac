"""System checks for Django-Q2 workers (placeholder until the full set lands)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that every Django-Q2 worker needs."""
    return []


def check_deployment(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that matter in production."""
    return []
