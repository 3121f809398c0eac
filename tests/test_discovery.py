"""Resolving ``BACKEND`` names through the installed ``django_prodserver.backends`` entry points."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from django.core.management import CommandError

from prodserver_djangoq2.backend import DjangoQ2Worker
from prodserver_djangoq2.discovery import ENTRY_POINT_GROUP, registered_backends, resolve_backend
from tests.distributions import write_plugins


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
