"""Unified diffs (``git diff`` output) for ``smallcode review``: decode, parse, show to a model
with line numbers, split per file.

    DiffError (a RouterError: the CLI says it in one line and exits 2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from router.graph.errors import RouterError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class DiffError(RouterError):
    """The diff cannot be reviewed: binary, not UTF-8, not a diff. The message names why."""


@dataclass
class Hunk:
    old_start: int
    new_start: int
    lines: list[str] = field(default_factory=list)  # each starts with ' ', '+' or '-'

    def numbered(self) -> list[tuple[int | None, str]]:
        """Each line with its line number in the new file (None for a removed line)."""
        out: list[tuple[int | None, str]] = []
        number = self.new_start
        for line in self.lines:
            if line.startswith("-"):
                out.append((None, line))
            else:
                out.append((number, line))
                number += 1
        return out

    def changed_lines(self) -> list[int]:
        """New-file line numbers of added lines (or, for a pure removal, the line after it)."""
        added = [n for n, line in self.numbered() if n is not None and line.startswith("+")]
        return added or [max(self.new_start, 1)]


@dataclass
class FileDiff:
    path: str  # the new path ('' for a deleted file: then old_path)
    old_path: str
    hunks: list[Hunk] = field(default_factory=list)
    binary: bool = False
    deleted: bool = False

    @property
    def name(self) -> str:
        return self.path or self.old_path

    def changed_lines(self) -> list[int]:
        return [n for hunk in self.hunks for n in hunk.changed_lines()]

    def shown_lines(self) -> set[int]:
        """Every new-file line number the rendered change shows (context and added lines),
        and the line after a removal."""
        shown = {n for hunk in self.hunks for n, _ in hunk.numbered() if n is not None}
        return shown | set(self.changed_lines())

    def render(self) -> str:
        """The file's changes as the model sees them: one header naming the file once (a path
        written twice, a/x and b/x, would read as two files), then each hunk with new-file line
        numbers; removed lines are marked and carry no number."""
        parts = [f"File {self.name}" + (" (deleted)" if self.deleted else "")]
        for hunk in self.hunks:
            parts.append("@@")
            for number, line in hunk.numbered():
                mark, text = line[:1], line[1:]
                label = f"{number:>5}" if number is not None else "     "
                parts.append(f"{label} {mark} {text}")
        return "\n".join(parts)


def decode(data: bytes, source: str) -> str:
    """The diff as text, or DiffError naming why it is not text."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise DiffError(f"{source} is binary (a NUL byte at offset {nul}): give a text diff "
                        "(`git diff` without --binary)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiffError(f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start}): convert it, or leave that file out of the diff") from None


def _path(header: str) -> str:
    name = header.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return ""
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse(text: str, source: str = "the diff") -> list[FileDiff]:
    """The files of a unified diff, in order. Empty text is an empty list; text with no file
    header or hunk is DiffError. Hunk lines are counted from the ``@@`` header, so a removed
    line that reads ``-- x`` is not taken for a file header."""
    files: list[FileDiff] = []
    current: FileDiff | None = None
    hunk: Hunk | None = None
    old_left = new_left = 0
    for line in text.splitlines():
        if hunk is not None and (old_left > 0 or new_left > 0):
            mark = line[:1] if line else " "  # an empty context line whose space was stripped
            if mark in (" ", "-", "+"):
                hunk.lines.append(mark + line[1:])
                old_left -= mark != "+"
                new_left -= mark != "-"
                continue
            if mark == "\\":  # "\ No newline at end of file"
                continue
        hunk = None
        if line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" b/", 1)
            old = parts[0][2:] if parts[0].startswith("a/") else parts[0]
            current = FileDiff(path=parts[1] if len(parts) > 1 else old, old_path=old)
            files.append(current)
        elif line.startswith("--- "):
            if current is None or current.hunks:
                current = FileDiff(path="", old_path="")
                files.append(current)
            current.old_path = _path(line[4:]) or current.old_path
        elif line.startswith("+++ ") and current is not None:
            new = _path(line[4:])
            current.deleted = not new
            current.path = new
        elif (match := _HUNK.match(line)) and current is not None:
            hunk = Hunk(old_start=int(match.group(1)), new_start=int(match.group(3)))
            old_left = int(match.group(2)) if match.group(2) is not None else 1
            new_left = int(match.group(4)) if match.group(4) is not None else 1
            current.hunks.append(hunk)
        elif line.startswith("Binary files ") and current is not None:
            current.binary = True
    if not any(f.hunks or f.binary for f in files) and text.strip() and not any(
            line.startswith(("new file mode", "deleted file mode", "rename ", "old mode"))
            for line in text.splitlines()):
        raise DiffError(f"{source} is not a unified diff (no `diff --git`, `---`/`+++` and "
                        "`@@ -a,b +c,d @@` lines): give the output of `git diff`")
    return files


def split(files: list[FileDiff], max_chars: int) -> list[list[FileDiff]]:
    """The files in requests of at most ``max_chars`` of rendered diff each: one request when
    it all fits, else one per file (a file over the limit goes alone; the router sends what
    does not fit the local window to the cloud by its usual rule)."""
    reviewable = [f for f in files if f.hunks and not f.binary]
    if sum(len(f.render()) for f in reviewable) <= max_chars:
        return [reviewable] if reviewable else []
    return [[f] for f in reviewable]
