"""The CLI end to end: `smallcode index`, `search`, `references` with --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import retriever as retriever_module
from retrieval.embed import SentenceEmbedder
from router.cli.main import main
from tests.retrieval.conftest import BASE_REPO, RepoFactory


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: SentenceEmbedder
) -> pytest.MonkeyPatch:
    monkeypatch.setenv("SMALLCODE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMALLCODE_CONFIG", str(Path(__file__).parents[2] / "config.yaml"))
    # the same real model, loaded once for the session rather than once per command
    monkeypatch.setattr(retriever_module, "load_embedder", lambda name, batch: embedder)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_references(
    cli: pytest.MonkeyPatch, make_repo: RepoFactory, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    root = make_repo(BASE_REPO)
    code, out, err = run(capsys, "index", str(root), "--repo", "demo", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["embedded"] > 0 and first["files"] == len(BASE_REPO)
    for key in ("files", "chunks", "embedded", "removed", "skipped", "seconds"):
        assert key in first
    assert "indexing" in err  # the progress bar, on stderr
    assert (tmp_path / "data" / "chroma").is_dir()

    code, out, _ = run(capsys, "index", str(root), "--repo", "demo", "--json")
    assert json.loads(out)["embedded"] == 0

    code, out, _ = run(capsys, "search", "parse the JSON configuration file", "--repo", "demo",
                       "-k", "3", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 3
    assert set(hits[0]) >= {"path", "start_line", "end_line", "symbol", "score"}
    assert hits[0]["symbol"] == "parse_config" and hits[0]["path"] == "pkg/utils.py"

    code, out, _ = run(capsys, "references", "parse_config", "--repo", "demo", "--json")
    assert json.loads(out) == {
        "symbol": "parse_config", "defined_in": ["pkg/utils.py"],
        "used_in": ["pkg/app.py", "pkg/cli.py"],
    }

    code, out, _ = run(capsys, "index", "--list", "--json")
    assert [row["repo"] for row in json.loads(out)] == ["demo"]
    code, out, _ = run(capsys, "index", str(root), "--repo", "demo")
    assert "0 chunks embedded" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "--repo", "missing"], "no index for repo 'missing'"),
        (["references", "x", "--repo", "missing"], "no index for repo 'missing'"),
        (["index", "/nonexistent/path", "--repo", "a"], "does not exist"),
        (["index", "{root}", "--repo", "a/b"], "repo name 'a/b' is not allowed"),
        (["index", "--drop", "missing"], "no index for repo 'missing'"),
    ],
)
def test_bad_input_is_one_line(
    cli: pytest.MonkeyPatch, make_repo: RepoFactory, capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:
    root = make_repo(BASE_REPO)
    code, out, err = run(capsys, *[a.format(root=root) for a in argv])
    assert code == 1 and out == ""
    assert err.startswith("smallcode: ") and message in err and err.count("\n") == 1
