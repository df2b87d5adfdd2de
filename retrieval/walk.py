"""Walk a repository: the files worth indexing, and why the others were skipped.

Honours ``.gitignore`` files (every directory's), never descends into skipped directories or
symlinked directories, skips secrets-bearing files, generated files, binaries and files over
the size cap, and refuses file symlinks whose target resolves outside the repository. Only
regular files are read, checked after links are resolved and again on the open file (opened
non-blocking): a FIFO, socket or device, or a link to one, is never opened for reading.
Containment is checked on resolved paths, component by component, so ``/repo-other`` is not
inside ``/repo``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Literal

from retrieval import gitignore
from retrieval.config import RetrievalConfig
from retrieval.errors import BadRepositoryPath

SkipReason = Literal["secret", "generated", "too_large", "binary", "outside_repo", "unreadable"]
BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the root, '/'-separated
    absolute: Path


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: SkipReason
    detail: str = ""


def resolve_root(path: Path) -> Path:
    """The repository root, resolved, or BadRepositoryPath."""
    if not path.exists():
        raise BadRepositoryPath(f"{path} does not exist")
    if not path.is_dir():
        raise BadRepositoryPath(f"{path} is not a directory: index a repository's root folder")
    return path.resolve(strict=True)


def is_inside(root: Path, candidate: Path) -> bool:
    """True when the resolved candidate is the root or below it (by path components)."""
    try:
        return candidate.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def walk(root: Path, config: RetrievalConfig) -> Iterator[SourceFile | Skipped]:
    """Yield each candidate file (sorted, deterministic) or the reason it was skipped."""
    root = resolve_root(root)
    yield from _walk_dir(root, root, PurePosixPath(), gitignore.IgnoreStack(), config)


def _walk_dir(
    root: Path,
    directory: Path,
    rel_dir: PurePosixPath,
    ignores: gitignore.IgnoreStack,
    config: RetrievalConfig,
) -> Iterator[SourceFile | Skipped]:
    ignore_file = directory / ".gitignore"
    if ignore_file.is_file() and not ignore_file.is_symlink():
        try:
            text = ignore_file.read_text(encoding="utf-8", errors="replace")
            ignores = ignores.push(rel_dir, gitignore.parse(text))
        except OSError:
            pass
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(rel_dir.as_posix() or ".", "unreadable", exc.strerror or str(exc))
        return
    for entry in entries:
        rel = rel_dir / entry.name
        is_link = entry.is_symlink()
        if entry.is_dir(follow_symlinks=False):
            if entry.name in config.skip_dirs or ignores.ignored(rel, is_dir=True):
                continue
            yield from _walk_dir(root, Path(entry.path), rel, ignores, config)
            continue
        if is_link:
            target = Path(entry.path)
            if not is_inside(root, target):
                yield Skipped(rel.as_posix(), "outside_repo", "symlink leaves the repository")
                continue
            try:
                mode = os.stat(target).st_mode
            except OSError:
                mode = 0
            if not stat.S_ISREG(mode):
                continue  # symlinked directories are never followed; fifos, sockets, devices
        elif not entry.is_file(follow_symlinks=False):
            continue  # sockets, fifos, devices
        if ignores.ignored(rel, is_dir=False):
            continue
        yield _classify(entry, rel, config)


def _classify(entry: os.DirEntry[str], rel: PurePosixPath, config: RetrievalConfig) -> (
    SourceFile | Skipped
):
    name = entry.name
    path = rel.as_posix()
    if any(fnmatchcase(name, glob) for glob in config.secret_globs):
        return Skipped(path, "secret")
    if any(fnmatchcase(name, glob) for glob in config.skip_globs):
        return Skipped(path, "generated")
    try:
        size = entry.stat(follow_symlinks=True).st_size
    except OSError as exc:
        return Skipped(path, "unreadable", exc.strerror or str(exc))
    if size > config.max_file_bytes:
        return Skipped(path, "too_large", f"{size} bytes > {config.max_file_bytes}")
    return SourceFile(path, Path(entry.path))


def read_text(root: Path, source: SourceFile) -> str | Skipped:
    """The file's text, or why it cannot be indexed (unreadable, binary, escaped the root)."""
    if not is_inside(root, source.absolute):
        return Skipped(source.path, "outside_repo", "resolves outside the repository")
    try:
        data = _read_regular(source.absolute)
    except OSError as exc:
        return Skipped(source.path, "unreadable", exc.strerror or str(exc))
    if data is None:
        return Skipped(source.path, "unreadable", "not a regular file")
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return Skipped(source.path, "binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return Skipped(source.path, "binary", "not UTF-8 text")


def _read_regular(path: Path) -> bytes | None:
    """The bytes of a regular file, or None for anything else (a FIFO would block a plain
    open for ever; this one returns at once and checks the type of what it opened)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read()
