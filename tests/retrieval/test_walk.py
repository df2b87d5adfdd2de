"""Which files get indexed: .gitignore, secrets, binaries, size cap, symlink containment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retrieval.config import RetrievalConfig
from retrieval.retriever import Retriever
from retrieval.walk import Skipped, SourceFile, is_inside, read_text, walk
from tests.retrieval.conftest import RepoFactory, write_repo


def scan(root: Path, config: RetrievalConfig | None = None) -> tuple[list[str], dict[str, str]]:
    files, skipped = [], {}
    for entry in walk(root, config or RetrievalConfig()):
        if isinstance(entry, SourceFile):
            files.append(entry.path)
        else:
            skipped[entry.path] = entry.reason
    return files, skipped


def test_gitignore_rules(make_repo: RepoFactory) -> None:
    root = make_repo({
        ".gitignore": "*.log\n/build-out/\ncache/\n!keep.log\nsrc/**/gen_*.py\n",
        "a.py": "x = 1\n",
        "debug.log": "log\n",
        "keep.log": "kept\n",
        "build-out/x.py": "x = 1\n",
        "lib/build-out/y.py": "y = 1\n",  # anchored pattern: not ignored here
        "lib/cache/z.py": "z = 1\n",
        "src/deep/er/gen_api.py": "g = 1\n",
        "src/deep/api.py": "a = 1\n",
        "sub/.gitignore": "local.py\n",
        "sub/local.py": "l = 1\n",
        "local.py": "not ignored at the root\n",
    })
    files, _ = scan(root)
    assert files == [
        ".gitignore", "a.py", "keep.log", "lib/build-out/y.py", "local.py", "src/deep/api.py",
        "sub/.gitignore",
    ]


def test_secrets_generated_binaries_and_large_files_are_skipped(make_repo: RepoFactory) -> None:
    root = make_repo({
        "app.py": "x = 1\n",
        ".env": "TOKEN=1\n",
        ".env.production": "TOKEN=2\n",
        "certs/server.pem": "-----BEGIN PRIVATE KEY-----\n",
        "keys/id_ed25519": "key\n",
        "id_utils.py": "def make_id(): pass\n",  # only SSH key names are secrets
        "vendor/lib.py": "v = 1\n",
        "node_modules/m/index.js": "m\n",
        "static/app.min.js": "var a=1;\n",
        "big.py": "x = 1\n" * 400,
    })
    (root / "image.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / "latin1.py").write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    config = RetrievalConfig(max_file_bytes=1024)
    files, skipped = scan(root, config)
    assert files == ["app.py", "id_utils.py", "image.py", "latin1.py"]  # contents checked later
    assert skipped == {
        ".env": "secret", ".env.production": "secret", "certs/server.pem": "secret",
        "keys/id_ed25519": "secret", "static/app.min.js": "generated", "big.py": "too_large",
    }
    for name in ("image.py", "latin1.py"):
        result = read_text(root.resolve(), SourceFile(name, root / name))
        assert isinstance(result, Skipped) and result.reason == "binary"


def test_symlinks_do_not_escape_the_repository(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"inside.py": "x = 1\n", "pkg/mod.py": "m = 1\n"})
    # a sibling whose name merely starts with the repo's name is outside it
    sibling = write_repo(tmp_path / "repo-secrets", {"stolen.py": "SECRET = 1\n"})
    outside = write_repo(tmp_path / "elsewhere", {"data.py": "d = 1\n"})
    os.symlink(sibling / "stolen.py", root / "stolen.py")
    os.symlink(outside, root / "linked_dir")
    os.symlink(root / "inside.py", root / "alias.py")
    os.symlink(root / "pkg", root / "pkg_alias")
    os.symlink("../../../../../../etc/passwd", root / "passwd.py")
    files, skipped = scan(root)
    assert files == ["alias.py", "inside.py", "pkg/mod.py"]
    assert skipped == {
        "stolen.py": "outside_repo", "passwd.py": "outside_repo", "linked_dir": "outside_repo"
    }
    assert not is_inside(root.resolve(), sibling / "stolen.py")
    assert is_inside(root.resolve(), root / "pkg" / "mod.py")


def test_a_file_swapped_for_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"a.py": "a = 1\n"})
    secret = write_repo(tmp_path / "other", {"s.py": "S = 1\n"}) / "s.py"
    [source] = [e for e in walk(root, RetrievalConfig()) if isinstance(e, SourceFile)]
    (root / "a.py").unlink()
    os.symlink(secret, root / "a.py")
    result = read_text(root.resolve(), source)
    assert isinstance(result, Skipped) and result.reason == "outside_repo"


@pytest.mark.timeout(30)
def test_a_fifo_or_a_link_to_one_is_never_opened(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"a.py": "a = 1\n"})
    os.mkfifo(root / "pipe")
    os.symlink(root / "pipe", root / "pipe_link.py")  # a link inside the repo, to a FIFO in it
    files, skipped = scan(root)
    assert files == ["a.py"] and skipped == {}
    # and a file swapped for a FIFO after the walk is refused, not read for ever
    [source] = [e for e in walk(root, RetrievalConfig()) if isinstance(e, SourceFile)]
    (root / "a.py").unlink()
    os.mkfifo(root / "a.py")
    result = read_text(root.resolve(), source)
    assert isinstance(result, Skipped) and result.reason == "unreadable"


@pytest.mark.timeout(60)
def test_indexing_a_repo_with_a_link_to_a_fifo_finishes(retriever: Retriever,
                                                         make_repo: RepoFactory) -> None:
    root = make_repo({"pkg/utils.py": "def slugify(text):\n    return text.lower()\n"})
    os.mkfifo(root / "pkg" / "fifo")
    os.symlink(root / "pkg" / "fifo", root / "pkg" / "hang.py")
    summary = retriever.index(root, "fifo")
    assert summary.files == 1 and summary.chunks >= 1
