"""Run Django-Q2 clusters through django-prodserver."""

from __future__ import annotations

# Not typing.TYPE_CHECKING: the health probe imports this package and must start fast.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .backend import DjangoQ2Worker

__all__ = ["DjangoQ2Worker"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Importing the package must not import django_q: load the backend on first use.
    if name == "DjangoQ2Worker":
        from .backend import DjangoQ2Worker

        return DjangoQ2Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
