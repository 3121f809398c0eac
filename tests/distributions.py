"""Real distributions written to a directory on ``sys.path``: metadata, entry points, modules."""

from __future__ import annotations

from pathlib import Path


def write_distribution(
    root: Path, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Write an installed distribution ``name`` with backend entry points and modules."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[django_prodserver.backends]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


BACKEND_SOURCE = """\
from pathlib import Path

Path(__file__).with_suffix(".imported").touch()


class Backend:
    def __init__(self, **config):
        pass
"""


def write_plugins(root: Path) -> None:
    """Write the plugins the discovery tests use: a working, a broken, two competing ones."""
    write_distribution(
        root,
        "good-plugin",
        "1.0",
        {"good": "good_backend:Backend"},
        {"good_backend": BACKEND_SOURCE},
    )
    write_distribution(
        root,
        "broken-plugin",
        "1.0",
        {"broken": "broken_backend:Backend"},
        {"broken_backend": "import module_that_does_not_exist\n"},
    )
    write_distribution(
        root,
        "first-plugin",
        "1.0",
        {"twin": "first_backend:Backend"},
        {"first_backend": BACKEND_SOURCE},
    )
    write_distribution(
        root,
        "second-plugin",
        "2.0",
        {"twin": "second_backend:Backend"},
        {"second_backend": BACKEND_SOURCE},
    )
