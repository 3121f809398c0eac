"""Resolve a ``PRODUCTION_PROCESSES`` ``BACKEND`` value: a dotted path or a registered name.

Self-contained so that django-prodserver could adopt it as is: a value containing a dot is
imported exactly as before; a bare name is looked up among the ``django_prodserver.backends``
entry points of every installed distribution.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from django.core.management import CommandError
from django.utils.module_loading import import_string

ENTRY_POINT_GROUP = "django_prodserver.backends"


@cache
def registered_backends() -> dict[str, tuple[EntryPoint, ...]]:
    """Map each registered backend name to the entry points claiming it (read once)."""
    claims: dict[str, list[EntryPoint]] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        claims.setdefault(entry_point.name, []).append(entry_point)
    return {name: tuple(points) for name, points in claims.items()}


def resolve_backend(path: str) -> Any:
    """Return the backend class that ``path`` names."""
    if "." in path:
        return import_string(path)
    claims = registered_backends().get(path, ())
    if not claims:
        raise CommandError(_unknown_name_message(path))
    if len(claims) > 1:
        competing = ", ".join(f"{_distribution(point)} ({point.value})" for point in claims)
        raise CommandError(
            f"Backend name '{path}' is registered by several distributions: {competing}; "
            "write the dotted path of the one you want in BACKEND."
        )
    (entry_point,) = claims
    try:
        return entry_point.load()
    except Exception as error:
        raise CommandError(
            f"Backend '{path}' from distribution '{_distribution(entry_point)}' "
            f"({entry_point.value}) failed to import: {error.__class__.__name__}: {error}"
        ) from error


# django-prodserver calls its resolver ``import_string``; this marks a replacement so that
# several plugins carrying this module attach it only once.
resolve_backend.resolves_backend_names = True  # type: ignore[attr-defined]


def _unknown_name_message(name: str) -> str:
    known = sorted(registered_backends())
    message = (
        f"No backend named '{name}' in the '{ENTRY_POINT_GROUP}' entry points; "
        f"registered names: {', '.join(known) or 'none'}"
    )
    closest = difflib.get_close_matches(name, known, n=1)
    if closest:
        message += f"; did you mean '{closest[0]}'?"
    return message


def _distribution(entry_point: EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist else "unknown distribution"
