"""Resolve a ``PRODUCTION_PROCESSES`` ``BACKEND`` value: a dotted path or a registered name.

Self-contained so that django-prodserver could adopt it as is: a value containing a dot is
imported exactly as before; a bare name is looked up among the ``django_prodserver.backends``
entry points of every installed distribution.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from functools import cache
from importlib.machinery import PathFinder
from importlib.metadata import EntryPoint, PathDistribution, entry_points
from pathlib import Path
from typing import Any

from django.core.management import CommandError
from django.utils.module_loading import import_string

ENTRY_POINT_GROUP = "django_prodserver.backends"
METADATA_SUFFIXES = (".dist-info", ".egg-info")


@cache
def registered_backends() -> dict[str, tuple[EntryPoint, ...]]:
    """Map each registered backend name to the entry points claiming it (read once)."""
    claims: dict[str, list[EntryPoint]] = {}
    for entry_point in group_entry_points(ENTRY_POINT_GROUP):
        claims.setdefault(entry_point.name, []).append(entry_point)
    return {name: tuple(points) for name, points in claims.items()}


def group_entry_points(group: str) -> list[EntryPoint]:
    """Return what ``importlib.metadata.entry_points(group=group)`` returns, faster.

    ``entry_points()`` parses the entry points of every installed distribution: tens of
    milliseconds in an environment of a few hundred. Here only the ``entry_points.txt`` files
    that name the group are parsed, when every distribution lives in a plain directory on
    ``sys.path``; anything else (a zip or an egg on ``sys.path``, another finder of
    distributions) is left to ``importlib.metadata``.
    """
    declared = _scan_directories(group)
    return list(entry_points(group=group)) if declared is None else declared


def _scan_directories(group: str) -> list[EntryPoint] | None:
    """Return the group's entry points, or ``None`` where only importlib.metadata can tell."""
    if any(_finds_other_distributions(finder) for finder in sys.meta_path):
        return None
    header = f"[{group}]".encode()
    found: list[EntryPoint] = []
    # As importlib.metadata: the first distribution of a name on sys.path hides the others.
    seen: set[str] = set()
    for entry in sys.path:
        if entry.lower().endswith(".egg"):
            return None
        try:
            children = os.listdir(entry or ".")
        except NotADirectoryError:  # a zip archive
            return None
        except OSError:
            continue
        prefix = os.path.join(entry, "")
        for child in children:
            low = child.lower()
            if not low.endswith(METADATA_SUFFIXES):
                continue
            name = _normalize(low.rpartition(".")[0].partition("-")[0])
            if name in seen:
                continue
            seen.add(name)
            if header in _entry_points_text(f"{prefix}{child}/entry_points.txt"):
                found += PathDistribution(Path(prefix + child)).entry_points.select(group=group)
    return found


def _entry_points_text(path: str) -> bytes:
    """Return the file's bytes; none if it is missing (most distributions have none)."""
    # Hundreds of files are tried: os.open spares the file objects that open() builds.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # no entry points, or a single-file .egg-info
        return b""
    try:
        chunks = []
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _finds_other_distributions(finder: object) -> bool:
    return finder is not PathFinder and hasattr(finder, "find_distributions")


def _normalize(name: str) -> str:
    """Return a lowercase distribution name as importlib.metadata compares them."""
    if "." not in name and "__" not in name:  # most names: nothing to replace
        return name
    return re.sub(r"[-_.]+", "_", name)


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
        return _load(entry_point)
    except Exception as error:
        raise CommandError(
            f"Backend '{path}' from distribution '{_distribution(entry_point)}' "
            f"({entry_point.value}) failed to import: {error.__class__.__name__}: {error}"
        ) from error


@cache
def _load(entry_point: EntryPoint) -> Any:
    # Every command that runs a process resolves its BACKEND: after the first, from memory.
    return entry_point.load()


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
