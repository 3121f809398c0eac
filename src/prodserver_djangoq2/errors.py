"""The errors that stop a worker before its cluster starts, as data: id, message, hint."""

from __future__ import annotations

from django.core.checks import CheckMessage, Error, Warning
from django.core.management import CommandError

# The worker's exit statuses, for process managers (docs/stopping.md lists them all).
EXIT_CONFIGURATION = 2
EXIT_BROKER_UNREACHABLE = 3
EXIT_MIGRATIONS_MISSING = 4


class ConfigurationError(Exception):
    """A setting that the worker cannot run with, worded as a system check message."""

    def __init__(self, check_id: str, message: str, hint: str) -> None:
        super().__init__(check_id, message, hint)
        self.check_id = check_id
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.check_id}: {self.message} HINT: {self.hint}"

    def as_check(self, level: type[Error | Warning]) -> CheckMessage:
        """Return this error as a system check message of class ``level``."""
        return level(self.message, hint=self.hint, id=self.check_id)


def refusal(text: str, status: int = EXIT_CONFIGURATION) -> CommandError:
    """Return the error that stops the worker: django-prodserver prints it, exits ``status``."""
    return CommandError(text, returncode=status)
