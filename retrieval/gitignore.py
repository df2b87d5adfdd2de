"""A ``.gitignore`` matcher: the pattern rules of gitignore(5), one file per directory.

Patterns without a slash match a name at any depth below the file's directory; a leading or
inner slash anchors the pattern to that directory; a trailing slash matches directories only;
``**`` spans directories; ``!`` re-includes; the last matching pattern wins. A directory that is
ignored is not descended into, so a negation cannot re-include a file inside it (as in git).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(glob: str) -> str:
    """A gitignore glob (without anchoring) to a regex over a '/'-separated relative path."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if glob.startswith("**", i) and i + 2 == n:
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        prefix = "" if anchored else "(?:.*/)?"
        rules.append(Rule(re.compile(f"^{prefix}{body}(?:/.*)?$"), negate, dir_only))
    return rules


class IgnoreStack:
    """The rules of every .gitignore from the root down to one directory."""

    def __init__(self, layers: tuple[tuple[PurePosixPath, tuple[Rule, ...]], ...] = ()) -> None:
        self._layers = layers

    def push(self, base: PurePosixPath, rules: list[Rule]) -> IgnoreStack:
        return IgnoreStack((*self._layers, (base, tuple(rules)))) if rules else self

    def ignored(self, rel: PurePosixPath, is_dir: bool) -> bool:
        verdict = False
        for base, rules in self._layers:
            sub = rel.relative_to(base).as_posix() if base.parts else rel.as_posix()
            for rule in rules:
                # "dir/" matches a file only below such a directory
                if rule.dir_only and not is_dir and not _below_matching_dir(rule, sub):
                    continue
                if rule.regex.match(sub):
                    verdict = not rule.negate
        return verdict


def _below_matching_dir(rule: Rule, sub: str) -> bool:
    parts = sub.split("/")
    return any(rule.regex.match("/".join(parts[:k])) for k in range(1, len(parts)))
