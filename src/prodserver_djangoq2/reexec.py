"""Run this process's command again in the same PID, with a changed environment.

Django-Q2 reads its configuration once, while Django loads its apps; a fresh interpreter is
the only way to give every Django-Q2 module (and the copies they make at import) other
settings. Keeping the PID keeps the process manager's view of the worker intact.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn


def reexec(environment: Mapping[str, str] | None = None, argv: list[str] | None = None) -> NoReturn:
    """Replace this process with a new run of ``argv`` (default: the same command line)."""
    sys.stdout.flush()
    sys.stderr.flush()
    command = sys.orig_argv if argv is None else argv
    os.execve(sys.executable, command, {**os.environ, **(environment or {})})
