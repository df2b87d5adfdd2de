"""Privacy rules: which tasks must never reach the cloud.

A task is local-only when its team is (``local_only``), its repository is listed in
``local_only_repos``, or any path it touches matches a glob of ``local_only_paths``. The rule
fails closed: one match is enough, and the caller keeps the task local.

Globs follow :mod:`fnmatch` on posix paths, with ``**`` matching across directories:

- ``*``, ``?`` and ``[...]`` match within one path segment (they never cross ``/``);
- ``**`` as a whole segment matches zero or more segments (``secrets/**`` matches
  ``secrets/db.py``, ``secrets/a/b/c.txt`` and ``secrets`` itself, not ``secretsX/a.py``;
  ``**/*.pem`` matches ``key.pem`` and ``a/b/key.pem``);
- a pattern without ``/`` matches the file name in any directory (``*.pem`` matches
  ``deploy/tls/server.pem``), as in ``.gitignore``;
- a pattern with ``/`` is anchored at the repository root (``internal/*`` matches
  ``internal/x.py`` but not ``internal/a/x.py``, nor ``src/internal/x.py``).

Paths are normalised first: backslashes become ``/``, ``./`` and duplicate slashes are
dropped, and ``..`` is resolved; a path that climbs out of the root (``../x``) is compared as
given, after normalisation. An absolute path (``/home/me/repo/secrets/x``) is matched at
every suffix, since the repository root is unknown: callers should pass repo-relative paths.
Matching is case-sensitive.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from functools import lru_cache

from policies.config import PolicyConfig


def privacy_rule(
    policy: PolicyConfig, *, team: str | None, repo: str | None, paths: Sequence[str]
) -> str | None:
    """A short reason why the task must stay local, or None when no privacy rule applies."""
    if policy.local_only:
        return f"team {team} is local-only" if team else "the policy is local-only"
    if repo is not None and repo in policy.local_only_repos:
        return f"repo {repo} is local-only"
    for path in paths:
        candidates = _candidates(path)
        for pattern in policy.local_only_paths:
            if any(glob_match(candidate, pattern) for candidate in candidates):
                return f"path {path} matches local-only glob {pattern}"
    return None


def normalise(path: str) -> str:
    """A posix, root-relative form of ``path`` for glob matching."""
    path = path.replace("\\", "/")
    normal = posixpath.normpath(path) if path else path
    return normal.lstrip("/") if normal not in ("", ".") else ""


def _candidates(path: str) -> list[str]:
    normal = normalise(path)
    if not path.replace("\\", "/").startswith("/"):
        return [normal]
    # An absolute path: the repository root is unknown, so try every suffix (fail closed).
    parts = normal.split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]


def glob_match(path: str, pattern: str) -> bool:
    """Whether a normalised posix ``path`` matches ``pattern`` (see the module docstring)."""
    return _compile(pattern).fullmatch(path) is not None


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.replace("\\", "/").strip()
    if pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.lstrip("/") if "/" in pattern.rstrip("/") else pattern
    if pattern.endswith("/"):
        pattern += "**"  # "secrets/" means everything under secrets
    segments = pattern.split("/")
    if len(segments) == 1:
        segments = ["**", *segments]  # no slash: the name, in any directory
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**" and last:
            # "secrets/**": everything under secrets, and secrets itself (fail closed)
            regex = regex[:-1] + "(?:/.*)?" if regex.endswith("/") else regex + ".*"
        elif segment == "**":
            regex += "(?:[^/]*/)*"
        else:
            regex += _segment(segment) + ("" if last else "/")
    return re.compile(regex)


def _segment(segment: str) -> str:
    """One path segment of a glob as a regex that never crosses ``/``."""
    out = ""
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out += re.escape(char)
            else:
                body = segment[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\").replace("[", "\\[") + "]"
                i = end
        else:
            out += re.escape(char)
        i += 1
    return out
