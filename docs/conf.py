"""Sphinx configuration: MyST Markdown pages, furo theme, API reference from docstrings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# The API reference imports the backend, which needs configured Django apps.
settings.configure(
    SECRET_KEY="docs-build-only",
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django_prodserver",
        "prodserver_djangoq2",
        "django_q",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    Q_CLUSTER={"name": "docs", "orm": "default", "timeout": 60, "retry": 90},
    PRODUCTION_PROCESSES={"worker": {"BACKEND": "djangoq2"}},
)
django.setup()

from prodserver_djangoq2 import __version__  # noqa: E402  (after Django is set up)

project = "prodserver-djangoq2"
author = "prodserver-djangoq2 contributors"
copyright = "2026, prodserver-djangoq2 contributors"
release = __version__
version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# Every cross-reference must resolve; these name classes documented outside this site.
nitpicky = True
nitpick_ignore = [
    ("py:class", "EntryPoint"),
    ("py:class", "importlib.metadata.EntryPoint"),
    ("py:class", "django_prodserver.backends.base.BaseWorkerBackend"),
    ("py:class", "django_prodserver.backends.base.BaseServerBackend"),
]
# Pages announced in the index before they are written come in through these glob entries,
# which may match nothing yet; any other empty glob stays an error.
PLANNED_PAGES = ("deployment/*", "health*")

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "furo"
html_title = f"prodserver-djangoq2 {release}"


class PlannedPagesFilter(logging.Filter):
    """Drop the "glob matched nothing" warning for pages that are announced, not yet written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "subtype", "") != "empty_glob" or not isinstance(record.args, tuple):
            return True
        return record.args[:1] not in [(page,) for page in PLANNED_PAGES]


def setup(app: Any) -> None:
    """Install the filter on the logger of Sphinx's toctree directive."""
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(PlannedPagesFilter())
