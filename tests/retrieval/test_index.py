"""Incremental indexing, search and references against a real embedded Chroma."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import store as chroma
from retrieval.embed import SentenceEmbedder
from retrieval.errors import (
    BadRepoName,
    BadRepositoryPath,
    EmbeddingModelMissing,
    NothingToIndex,
    UnknownRepo,
)
from retrieval.retriever import Retriever
from tests.retrieval.conftest import BASE_REPO, RepoFactory


def chunk_count(retriever: Retriever, repo: str) -> int:
    return chroma.RepoStore.open(retriever.client, repo).chunks.count()


def test_reindex_embeds_only_what_changed(retriever: Retriever, make_repo: RepoFactory) -> None:
    root = make_repo(BASE_REPO)
    first = retriever.index(root, "demo")
    assert first.files == len(BASE_REPO)
    assert first.embedded == first.chunks > len(BASE_REPO)
    assert chunk_count(retriever, "demo") == first.chunks

    again = retriever.index(root, "demo")
    assert (again.embedded, again.removed, again.changed_files) == (0, 0, 0)
    assert again.chunks == first.chunks

    # one function body edited: only chunks of that file are embedded again
    utils = root / "pkg/utils.py"
    utils.write_text(utils.read_text().replace('"-".join', '"_".join'))
    edited = retriever.index(root, "demo")
    utils_chunks = [h for h in retriever.search("demo", "slugify text", k=20)
                    if h.path == "pkg/utils.py"]
    assert edited.changed_files == 1
    assert 1 <= edited.embedded <= len(utils_chunks)
    assert edited.removed == edited.embedded  # the old slugify chunk is gone
    assert chunk_count(retriever, "demo") == first.chunks
    slug = next(h for h in utils_chunks if h.symbol == "slugify")
    assert '"_".join' in slug.text

    # an edit that shifts lines keeps the unchanged chunks and moves their line numbers
    utils.write_text("# a new first line\n" + utils.read_text())
    shifted = retriever.index(root, "demo")
    assert shifted.embedded == 1  # only the module-level window changed text
    parse = next(h for h in retriever.search("demo", "parse_config", k=20)
                 if h.symbol == "parse_config")
    assert (parse.start_line, parse.end_line) == (6, 9)

    # a deleted file's chunks are removed
    (root / "go/main.go").unlink()
    removed = retriever.index(root, "demo")
    assert removed.removed_files == 1 and removed.removed >= 2
    assert removed.embedded == 0
    assert all(h.path != "go/main.go" for h in retriever.search("demo", "fibonacci", k=20))


def test_search_finds_the_function_and_reports_locations(
    retriever: Retriever, make_repo: RepoFactory
) -> None:
    retriever.index(make_repo(BASE_REPO), "demo")
    hits = retriever.search("demo", "recursive fibonacci number", k=3)
    assert hits[0].path == "go/main.go"
    assert hits[0].symbol == "fibonacci"
    assert (hits[0].start_line, hits[0].end_line) == (5, 10)
    assert hits[0].text.startswith("func fibonacci(n int) int {")
    assert hits[0].score > hits[-1].score
    assert len(hits) == 3


def test_references_across_files_and_languages(
    retriever: Retriever, make_repo: RepoFactory
) -> None:
    retriever.index(make_repo(BASE_REPO), "demo")
    refs = retriever.references("demo", "parse_config")
    assert refs.defined_in == ["pkg/utils.py"]
    assert refs.used_in == ["pkg/app.py", "pkg/cli.py"]
    js = retriever.references("demo", "parseConfig")
    assert (js.defined_in, js.used_in) == (["web/config.js"], ["web/server.js"])
    assert retriever.references("demo", "parse").used_in == ["web/config.js"]  # JSON.parse
    nothing = retriever.references("demo", "parse_conf")  # no substring matches
    assert (nothing.defined_in, nothing.used_in) == ([], [])


def test_unreadable_file_keeps_its_previous_chunks(
    retriever: Retriever, make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(BASE_REPO)
    first = retriever.index(root, "demo")
    (root / "pkg/utils.py").write_text("def replaced():\n    pass\n")
    # Root reads whatever the mode bits say, so the refusal is the one thing made up here.
    from retrieval import walk

    real_read = walk._read_regular

    def read_regular(path: Path) -> bytes | None:
        if path.name == "utils.py":
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(walk, "_read_regular", read_regular)
    second = retriever.index(root, "demo")
    assert second.errors == [
        {"path": "pkg/utils.py", "reason": "unreadable", "detail": "Permission denied"}
    ]
    assert second.removed == 0 and second.files == first.files
    assert retriever.references("demo", "parse_config").defined_in == ["pkg/utils.py"]


def test_failed_first_run_leaves_no_collection(
    config: object, tmp_path: Path, make_repo: RepoFactory
) -> None:
    from retrieval.config import RetrievalConfig

    assert isinstance(config, RetrievalConfig)
    broken = config.model_copy(update={"embedding_model": str(tmp_path / "no-model")})
    with Retriever(broken, tmp_path) as retriever:
        with pytest.raises(EmbeddingModelMissing, match="not found"):
            retriever.index(make_repo(BASE_REPO), "demo")
        assert retriever.list_repos() == []


def test_failed_embedding_leaves_previous_chunks(
    retriever: Retriever, make_repo: RepoFactory, embedder: SentenceEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_repo(BASE_REPO)
    first = retriever.index(root, "demo")
    (root / "pkg/utils.py").write_text(UTILS_EDIT)

    def boom(texts: object) -> list[list[float]]:
        raise RuntimeError("embedding failed")

    monkeypatch.setattr(embedder, "embed", boom)
    with pytest.raises(RuntimeError):
        retriever.index(root, "demo")
    monkeypatch.undo()
    assert retriever.references("demo", "parse_config").defined_in == ["pkg/utils.py"]
    assert chunk_count(retriever, "demo") == first.chunks
    assert retriever.index(root, "demo").changed_files == 1


UTILS_EDIT = "def load_settings(path):\n    return open(path).read()\n"


def test_bad_input(retriever: Retriever, make_repo: RepoFactory, tmp_path: Path) -> None:
    with pytest.raises(BadRepositoryPath, match="does not exist"):
        retriever.index(tmp_path / "missing", "demo")
    afile = tmp_path / "file.py"
    afile.write_text("x = 1\n")
    with pytest.raises(BadRepositoryPath, match="not a directory"):
        retriever.index(afile, "demo")
    for name in ("../escape", "a/b", "has space", ".hidden", "", "x" * 101):
        with pytest.raises(BadRepoName):
            retriever.index(make_repo(BASE_REPO), name)
    empty = make_repo({".env": "TOKEN=1\n"})
    with pytest.raises(NothingToIndex, match="1 skipped"):
        retriever.index(empty, "empty")
    with pytest.raises(UnknownRepo, match="smallcode index"):
        retriever.search("nope", "anything")
    with pytest.raises(UnknownRepo):
        retriever.references("nope", "anything")
    with pytest.raises(UnknownRepo):
        retriever.drop("nope")
    assert retriever.list_repos() == []


def test_list_and_drop(retriever: Retriever, make_repo: RepoFactory) -> None:
    root = make_repo(BASE_REPO)
    retriever.index(root, "one")
    retriever.index(root, "two")
    assert [r["repo"] for r in retriever.list_repos()] == ["one", "two"]
    retriever.drop("one")
    assert [r["repo"] for r in retriever.list_repos()] == ["two"]
    with pytest.raises(UnknownRepo):
        retriever.search("one", "x")


def test_server_mode(
    chroma_server: str, tmp_path: Path, make_repo: RepoFactory, embedder: SentenceEmbedder
) -> None:
    from retrieval.config import RetrievalConfig

    root = make_repo(BASE_REPO)
    config = RetrievalConfig(chroma_url=chroma_server)
    with Retriever(config, tmp_path, embedder=embedder) as retriever:
        first = retriever.index(root, "served")
        assert first.embedded > 0
        assert retriever.index(root, "served").embedded == 0
        hit = retriever.search("served", "recursive fibonacci", k=1)[0]
        assert hit.symbol == "fibonacci"
        refs = retriever.references("served", "parse_config")
        assert refs.used_in == ["pkg/app.py", "pkg/cli.py"]
    assert not (tmp_path / "chroma").exists()  # nothing written locally
    with Retriever(config, tmp_path, embedder=embedder) as again:  # a second process's view
        assert [r["repo"] for r in again.list_repos()] == ["served"]
        assert again.index(root, "served").embedded == 0
        again.drop("served")
        assert again.list_repos() == []


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from retrieval.config import RetrievalConfig
    from retrieval.errors import StoreUnavailable
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match="did not answer"):
        _ = Retriever(RetrievalConfig(chroma_url=url), tmp_path).client
