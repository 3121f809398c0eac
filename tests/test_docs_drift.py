"""The documentation's tables say what the code does: check ids, process keys, defaults, options."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import prodserver_djangoq2
from prodserver_djangoq2 import arguments
from tests.harness import REPO

SOURCE = REPO / "src" / "prodserver_djangoq2"
CHECK_ID = re.compile(r"prodserver_djangoq2\.[EW]\d{3}")
TABLE_ROW = re.compile(r"^\| *`([^`]+)` *\|(.*)\|\s*$", re.MULTILINE)
# Where each page keeps its table of process keys (first column) and defaults.
PROCESS_KEY_TABLES = [REPO / "README.md", REPO / "docs" / "configuration.md"]


def ids_in_code() -> set[str]:
    return {match for path in SOURCE.glob("*.py") for match in CHECK_ID.findall(path.read_text())}


def table_rows(path: Path) -> dict[str, list[str]]:
    return {
        match.group(1): [cell.strip() for cell in match.group(2).split("|")]
        for match in TABLE_ROW.finditer(path.read_text())
    }


def constant(name: str) -> float:
    """The value of a module-level constant of the package, wherever it lives."""
    for module in pkgutil.iter_modules(prodserver_djangoq2.__path__):
        value = getattr(importlib.import_module(f"prodserver_djangoq2.{module.name}"), name, None)
        if value is not None:
            return float(value)
    raise AssertionError(f"no constant {name} in prodserver_djangoq2")


def numbers(text: str) -> set[float]:
    return {float(number) for number in re.findall(r"\d+(?:\.\d+)?", text)}


def test_checks_table_lists_exactly_the_ids_the_code_emits() -> None:
    documented = {key for key in table_rows(REPO / "docs" / "checks.md") if CHECK_ID.fullmatch(key)}
    assert documented == ids_in_code()


def test_every_id_named_in_the_docs_exists() -> None:
    known = ids_in_code()
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]:
        named = set(CHECK_ID.findall(page.read_text()))
        short = {
            f"prodserver_djangoq2.{i}" for i in re.findall(r"\b([EW]\d{3})\b", page.read_text())
        }
        assert named | short <= known, f"{page.relative_to(REPO)} names ids the code lacks"


def test_process_key_tables_match_the_code() -> None:
    source = "".join(path.read_text() for path in SOURCE.glob("*.py"))
    tables = {
        page: {key: cells for key, cells in table_rows(page).items() if key.isupper()}
        for page in PROCESS_KEY_TABLES
    }
    reference = tables[REPO / "docs" / "configuration.md"]
    for page, rows in tables.items():
        assert set(rows) == set(reference), f"{page}: not the keys docs/configuration.md lists"
        for key in rows:
            assert f'"{key}"' in source, f"{page}: the code never reads {key}"
        ping_default = rows["PING_TIMEOUT"][-1]
        assert numbers(ping_default) == {constant("DEFAULT_PING_TIMEOUT")}, page
        stop_default = rows["STOP_TIMEOUT"][-1]
        assert numbers(stop_default) <= {constant("DEFAULT_STOP_TIMEOUT"), *margin()}, page


def margin() -> set[float]:
    try:
        return {constant("STOP_MARGIN")}
    except AssertionError:
        return set()


def test_documented_args_options_are_qcluster_options() -> None:
    parser = arguments.qcluster_parser()
    valid = {*arguments.option_names(parser), *arguments.SYNONYMS}
    rows = table_rows(REPO / "docs" / "configuration.md")
    documented = {
        option.strip("` ")
        for key in rows
        for option in key.split("` / `")
        if not key.isupper() and not key.startswith("prodserver")
    }
    documented |= {
        option
        for line in (REPO / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `") and "` / `" in line
        for option in re.findall(r"`([a-z-]+)`", line.split("|")[1])
    }
    assert documented <= valid, documented - valid
    assert documented, "no ARGS options found in docs/configuration.md"
