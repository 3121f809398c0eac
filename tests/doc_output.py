"""Read the fenced blocks of the documentation and compare quoted output with real output.

A quoted ``console`` block is ``$ command`` lines, each followed by the output the command
prints. Comparing it with what a command printed normalises, on both sides, only what changes
from run to run: times, process and cluster ids, task names, PIDs, ports, temporary paths and
traceback frames. A line ``...`` in a quoted block stands for any number of lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.harness import REPO

FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)
# The comment a block carries on the line before it when it is not run, with the reason.
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
ELLIPSIS = "..."
VOLATILE = [
    # Django-Q2's log time.
    (re.compile(r"^\d\d:\d\d:\d\d "), "HH:MM:SS "),
    # Django-Q2's process names and the four-word names of clusters and tasks.
    (re.compile(r"Process-[0-9a-f]{32}"), "Process-<id>"),
    (re.compile(r"\b[a-z]+-[a-z]+-[a-z]+-[a-z]+\b"), "<name>"),
    (re.compile(r"\b(at|PID|PIDs|Processes) \d+(, \d+)*"), r"\1 <pid>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    (re.compile(r"/tmp/[^\s'\"]+"), "<path>"),
    # How many migrations a database lacks depends on the django-q2 release.
    (re.compile(r"\blacks \d+ of\b"), "lacks <n> of"),
]


@dataclass(frozen=True)
class Block:
    """A fenced block of a documentation page."""

    path: Path
    line: int
    language: str
    code: str
    section: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Return the fenced blocks of ``path`` in order, with the heading they are under."""
    text = path.read_text()
    fences = list(FENCE.finditer(text))
    headings = [
        (match.start(), match.group(2).strip())
        for match in HEADING.finditer(text)
        if not any(fence.start() < match.start() < fence.end() for fence in fences)
    ]
    found = []
    for match in fences:
        indent = len(match.group(1))
        code = "\n".join(line[indent:] for line in match.group(3).splitlines()) + "\n"
        before = text[: match.start()].rstrip("\n ").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        section = next((title for start, title in reversed(headings) if start < match.start()), "")
        line = text[: match.start()].count("\n") + 1
        found.append(
            Block(path, line, match.group(2), code, section, marker.group(1) if marker else None)
        )
    return found


def commands(code: str) -> list[str]:
    """Return the commands of a shell block, without comments and blank lines."""
    found = []
    for raw in code.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            found.append(line)
    return found


def console(code: str) -> list[tuple[str, str]]:
    """Return the (command, quoted output) pairs of a ``console`` block."""
    pairs: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
        else:
            raise ValueError(f"a console block must start with '$ ': {line!r}")
    return [(command, "\n".join(output)) for command, output in pairs]


def normalise(text: str) -> list[str]:
    """Return the lines of ``text`` with the parts that change from run to run replaced."""
    lines: list[str] = []
    in_traceback = False
    for line in text.rstrip("\n").splitlines():
        line = line.rstrip()
        if in_traceback and (line.startswith(" ") or not line):
            continue  # frames, with their paths and line numbers
        in_traceback = line == "Traceback (most recent call last):"
        if in_traceback:
            lines += [line, "  " + ELLIPSIS]
            continue
        for pattern, replacement in VOLATILE:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def matches(quoted: str, printed: str) -> bool:
    """Whether ``printed`` is what ``quoted`` shows, ``...`` lines standing for any lines."""
    expected = [line for line in normalise(quoted) if line != "  " + ELLIPSIS]
    actual = [line for line in normalise(printed) if line != "  " + ELLIPSIS]
    segments: list[list[str]] = [[]]
    for line in expected:
        if line == ELLIPSIS:
            segments.append([])
        else:
            segments[-1].append(line)
    open_start, open_end = expected[:1] == [ELLIPSIS], expected[-1:] == [ELLIPSIS]
    position = 0
    for index, segment in enumerate(segments):
        if not segment:
            continue
        found = _find(actual, segment, position)
        anchored_start = index == 0 and not open_start
        if found is None or (anchored_start and found != 0):
            return False
        position = found + len(segment)
    return open_end or position == len(actual)


def _find(lines: list[str], segment: list[str], start: int) -> int | None:
    for index in range(start, len(lines) - len(segment) + 1):
        if lines[index : index + len(segment)] == segment:
            return index
    return None
