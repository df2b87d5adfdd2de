"""What ``smallcode review`` asks for and what it reads back: the task text per kind (review,
tests, docs), the changed files' enclosing functions as context, and findings parsed from the
answer as ``path:line: severity: message``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

from retrieval.chunking import analyse
from router.review.diff import FileDiff

Kind = Literal["review", "test", "document"]
SEVERITIES = ("info", "warning", "error")  # in rising order: --fail-on compares with it
_SEVERITY_WORDS = {"info": "info", "note": "info", "suggestion": "info", "warning": "warning",
                   "warn": "warning", "error": "error", "bug": "error", "critical": "error"}

_ASK = {
    "review": (
        "Review this change for bugs, security problems and risky code. Report each problem "
        "on its own line as `PATH:LINE: SEVERITY: MESSAGE`, where LINE is a line number shown "
        "in the change and SEVERITY is error (a bug), warning (risky) or info (style). Report "
        "only real problems; if there are none, answer exactly `no findings`."),
    "test": (
        "Write unit tests for the changed code below (pytest for Python), in one code block, "
        "covering the new behaviour and its edge cases. Answer with the code only."),
    "document": (
        "Write documentation for the changed code below: a docstring or comment for each "
        "changed function, in one code block that shows each documented signature. Answer "
        "with the code only."),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def task_text(kind: Kind, files: list[FileDiff]) -> str:
    changes = "\n\n".join(f.render() for f in files)
    return f"{_ASK[kind]}\n\nThe change:\n```diff\n{changes}\n```"


def enclosing(path: str, text: str, lines: list[int], *, max_chars: int = 6000) -> str:
    """The definitions of ``text`` (functions, classes; tree-sitter where the language is
    known, else windows of lines) that hold the given 1-based lines, in file order, within
    ``max_chars``."""
    chunks = analyse(path, text, max_chunk_lines=200, window_lines=40).chunks
    wanted = set(lines)
    picked = [c for c in chunks if any(c.start_line <= n <= c.end_line for n in wanted)]
    out, used = [], 0
    for chunk in sorted(picked, key=lambda c: c.start_line):
        if used + len(chunk.text) > max_chars:
            break
        out.append(chunk.text)
        used += len(chunk.text)
    return "\n\n".join(out)


_LINE = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*`?(?:(?P<path>[\w./@+-]+?):)?(?:line\s*)?(?P<line>\d+)(?::\d+)?`?"
    r"\s*[:\-–]\s*\**(?P<severity>[A-Za-z]+)\**\s*[:\-–]\s*(?P<message>.+?)\s*$",
    re.IGNORECASE)


def parse_findings(answer: str, files: list[FileDiff]) -> list[Finding]:
    """Findings in the answer, one per line in the asked form (a missing path is the file's
    when the request had one file). A path outside the change, a line the change does not
    show, or a word that is not a severity makes it no finding: a small model that invents
    line numbers reports nothing rather than noise. Duplicates are dropped."""
    shown = {f.name: f.shown_lines() for f in files}
    known = set(shown)
    only = files[0].name if len(files) == 1 else None
    found: dict[tuple[str, int, str], Finding] = {}
    for raw in answer.splitlines():
        match = _LINE.match(raw)
        if match is None:
            continue
        severity = _SEVERITY_WORDS.get(match["severity"].lower())
        path = (match["path"] or only or "").removeprefix("./")
        path = path[2:] if path[:2] in ("a/", "b/") and path[2:] in known else path
        if severity is None or path not in known or int(match["line"]) not in shown[path]:
            continue
        finding = Finding(path, int(match["line"]), severity, match["message"].strip())
        found.setdefault((finding.path, finding.line, finding.message), finding)
    return sorted(found.values(), key=lambda f: (f.path, f.line))


def at_or_above(findings: list[Finding], severity: str) -> list[Finding]:
    rank = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) >= rank]
