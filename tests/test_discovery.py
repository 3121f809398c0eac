"""Resolving ``BACKEND`` names through the installed ``django_prodserver.backends`` entry points."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, PathDistribution, entry_points
from pathlib import Path

import pytest
from django.core.management import CommandError

from prodserver_djangoq2.backend import DjangoQ2Worker
from prodserver_djangoq2.discovery import (
    ENTRY_POINT_GROUP,
    group_entry_points,
    registered_backends,
    resolve_backend,
)
from tests.distributions import write_distribution, write_plugins


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Extra installed distributions on ``sys.path``, seen by a fresh entry-point scan."""
    write_plugins(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registered_backends.cache_clear()
    yield tmp_path
    registered_backends.cache_clear()


def test_entry_point_is_declared_in_installed_metadata() -> None:
    (point,) = entry_points(group=ENTRY_POINT_GROUP, name="djangoq2")
    assert point.value == "prodserver_djangoq2.backend:DjangoQ2Worker"
    assert point.dist is not None and point.dist.name == "prodserver-djangoq2"
    assert point.load() is DjangoQ2Worker


def test_short_name_resolves_to_the_backend() -> None:
    assert resolve_backend("djangoq2") is DjangoQ2Worker


def test_dotted_path_is_imported_as_before() -> None:
    assert resolve_backend("prodserver_djangoq2.backend.DjangoQ2Worker") is DjangoQ2Worker
    with pytest.raises(ImportError):
        resolve_backend("prodserver_djangoq2.backend.NoSuchBackend")


def test_names_of_every_distribution_are_found(plugins: Path) -> None:
    backend = resolve_backend("good")
    assert backend.__module__ == "good_backend"
    assert {"djangoq2", "good", "broken", "twin"} <= set(registered_backends())


def test_unknown_name_lists_names_and_suggests_the_closest(plugins: Path) -> None:
    with pytest.raises(CommandError) as caught:
        resolve_backend("djangoq")
    message = str(caught.value)
    assert "No backend named 'djangoq'" in message
    assert "djangoq2" in message and "good" in message
    assert message.endswith("did you mean 'djangoq2'?")
    assert "\n" not in message


def test_unknown_name_without_a_close_match_has_no_suggestion() -> None:
    with pytest.raises(CommandError, match=r"registered names: .*djangoq2") as caught:
        resolve_backend("zzzz")
    assert "did you mean" not in str(caught.value)


def test_broken_plugin_is_named_with_its_distribution_and_cause(plugins: Path) -> None:
    with pytest.raises(CommandError) as caught:
        resolve_backend("broken")
    message = str(caught.value)
    assert "'broken'" in message and "broken-plugin" in message
    assert "No module named 'module_that_does_not_exist'" in message
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_name_claimed_twice_lists_both_and_loads_neither(plugins: Path) -> None:
    with pytest.raises(CommandError) as caught:
        resolve_backend("twin")
    message = str(caught.value)
    assert "first-plugin (first_backend:Backend)" in message
    assert "second-plugin (second_backend:Backend)" in message
    assert not list(plugins.glob("*.imported"))


def test_entry_points_are_read_once_per_process(plugins: Path) -> None:
    first = registered_backends()
    (plugins / "late_plugin-1.0.dist-info").mkdir()
    assert registered_backends() is first


# The entry points of every installed distribution, read as importlib.metadata reads them


def described(points: Iterable[EntryPoint]) -> list[tuple[str, str, str]]:
    return [(point.name, point.value, point.dist.name if point.dist else "") for point in points]


def test_entry_points_are_those_importlib_metadata_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_plugins(first)
    # The same distributions further down sys.path are hidden, whatever their spelling.
    write_distribution(second, "good-plugin", "2.0", {"good": "shadowed:Backend"}, {})
    write_distribution(second, "Good.Plugin", "3.0", {"spelled": "shadowed:Backend"}, {})
    write_distribution(second, "third_plugin", "1.0", {"third": "third:Backend"}, {})
    # Distributions that declare no backend: no entry points, other groups, a one-file egg-info.
    (second / "plain-1.0.dist-info").mkdir()
    (second / "plain-1.0.dist-info" / "METADATA").write_text("Name: plain\nVersion: 1.0\n")
    tools = second / "tools-1.0.dist-info"
    tools.mkdir()
    (tools / "METADATA").write_text("Name: tools\nVersion: 1.0\n")
    (tools / "entry_points.txt").write_text("[console_scripts]\ntool = tools:main\n")
    (second / "legacy-1.0.egg-info").write_text("Metadata-Version: 1.0\nName: legacy\n")
    for directory in (tmp_path / "missing", second, first):
        monkeypatch.syspath_prepend(str(directory))

    found = described(group_entry_points(ENTRY_POINT_GROUP))
    assert found == described(entry_points(group=ENTRY_POINT_GROUP))
    assert ("good", "good_backend:Backend", "good-plugin") in found
    assert ("third", "third:Backend", "third_plugin") in found
    assert not any(value == "shadowed:Backend" for _, value, _ in found)
    assert len(found) == 6  # these four plugins, third_plugin and this package


def test_names_in_a_zip_on_sys_path_are_found(
    plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped_plugin-1.0.dist-info/METADATA", "Name: zipped-plugin\n")
        entry_point = f"[{ENTRY_POINT_GROUP}]\nzipped = zipped_backend:Backend\n"
        zipped.writestr("zipped_plugin-1.0.dist-info/entry_points.txt", entry_point)
        zipped.writestr("zipped_backend.py", "class Backend:\n    pass\n")
    monkeypatch.syspath_prepend(str(archive))
    assert resolve_backend("zipped").__module__ == "zipped_backend"
    assert {"djangoq2", "good", "zipped"} <= set(registered_backends())


def test_names_in_an_egg_on_sys_path_are_found(
    plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    egg = tmp_path / "egged_plugin-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: egged-plugin\n")
    entry_point = f"[{ENTRY_POINT_GROUP}]\negged = egged_backend:Backend\n"
    (egg / "EGG-INFO" / "entry_points.txt").write_text(entry_point)
    (egg / "egged_backend.py").write_text("class Backend:\n    pass\n")
    monkeypatch.syspath_prepend(str(egg))
    assert resolve_backend("egged").__module__ == "egged_backend"
    assert {"djangoq2", "good", "egged"} <= set(registered_backends())


class DistributionFinder:
    """An import hook that provides distributions of its own, outside ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, *args: object) -> None:
        return None

    def find_distributions(self, context: object) -> Iterator[PathDistribution]:
        yield PathDistribution(self.root / "hooked_plugin-1.0.dist-info")


def test_names_from_other_distribution_finders_are_found(
    plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooked = tmp_path / "hooked"
    write_distribution(hooked, "hooked-plugin", "1.0", {"hooked": "good_backend:Backend"}, {})
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, DistributionFinder(hooked)])
    assert resolve_backend("hooked").__module__ == "good_backend"
    assert {"djangoq2", "good", "hooked"} <= set(registered_backends())
