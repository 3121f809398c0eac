"""Turn a process's ``ARGS`` into ``qcluster`` options, refusing what ``qcluster`` lacks."""

from __future__ import annotations

import argparse
import difflib
import functools
import shlex
from collections.abc import Mapping
from typing import Any

from django.core.management import CommandError

from .errors import ConfigurationError

# The original django-prodserver documents call ``--name`` this.
SYNONYMS = {"cluster-name": "name"}


# Built once per process: parsing leaves a parser as it was, and every process entry that the
# checks and the worker read is parsed with it (building one costs more than a start can spare).
@functools.cache
def qcluster_parser() -> argparse.ArgumentParser:
    """Return the argument parser of Django-Q2's ``qcluster`` command."""
    from django_q.management.commands.qcluster import Command

    parser: argparse.ArgumentParser = Command().create_parser("manage.py", "qcluster")
    return parser


def option_names(parser: argparse.ArgumentParser) -> list[str]:
    """Return the long option names (without dashes) that ``parser`` accepts."""
    return sorted(
        option[2:]
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version")
    )


def to_argv(args: Any, where: str, parser: argparse.ArgumentParser) -> list[str]:
    """Format ``ARGS`` (a mapping or a string) as a command line for ``qcluster``."""
    if isinstance(args, str):
        return shlex.split(args)
    if not isinstance(args, Mapping):
        raise ConfigurationError(
            "prodserver_djangoq2.E014",
            f"{where} must be a dict or a string, not {type(args).__name__}.",
            "Write qcluster's options as a dict, e.g. {'name': 'high'}, or as one "
            "command-line string.",
        )
    known = option_names(parser)
    argv = []
    for key, value in args.items():
        option = SYNONYMS.get(key, key)
        if not isinstance(key, str) or option not in known:
            raise _unknown_option(key, where, known)
        if value is False:
            continue
        argv.append(f"--{option}" if value is None or value is True else f"--{option}={value}")
    return argv


def parse(argv: list[str], where: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Parse ``argv`` as ``qcluster`` would; errors name ``where``."""
    try:
        return vars(parser.parse_args(argv))
    except CommandError as error:
        detail = str(error).removeprefix("Error: ")
        raise ConfigurationError(
            "prodserver_djangoq2.E016",
            f"{where} is rejected by qcluster: {detail}.",
            "Give only the options that 'python manage.py qcluster --help' lists.",
        ) from error


def written_name(args: Any, parsed: str | None) -> Any:
    """Return the cluster name as written in a dict ``ARGS`` (it may not be a string)."""
    if isinstance(args, Mapping):
        for key in ("name", "cluster-name"):
            if args.get(key) not in (None, False):
                return args[key]
    return parsed


def _unknown_option(key: object, where: str, known: list[str]) -> ConfigurationError:
    hint = ""
    closest = difflib.get_close_matches(str(key), [*known, *SYNONYMS], n=1)
    if closest:
        hint += f"Did you mean '{closest[0]}'? "
    return ConfigurationError(
        "prodserver_djangoq2.E015",
        f"{where} has an unknown qcluster option {key!r}.",
        hint + f"Valid options: {', '.join(known)}.",
    )
