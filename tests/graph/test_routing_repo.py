"""The graph with a real repository index: files found through the symbol map, and snippets
that reach the local prompt (real Chroma, real MiniLM, SmolLM2 as the local tier)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from policies.config import PoliciesConfig
from retrieval.config import RetrievalConfig
from retrieval.embed import load_embedder
from retrieval.retriever import Retriever
from router.graph.context import RouterContext, token_counter
from router.graph.graph import build_graph, run_task
from tests.conftest import free_port
from tests.retrieval.conftest import BASE_REPO, write_repo

POLICIES = PoliciesConfig(teams={"vault": {"local_only": True},
                                 "shadow": {"shadow_route": "local"}})


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    root = tmp_path_factory.mktemp("indexed")
    config = RetrievalConfig(chroma_path=root / "chroma")
    with Retriever(config, root / "data", embedder=load_embedder("all-MiniLM-L6-v2")) as made:
        made.index(write_repo(root / "demo", BASE_REPO), "demo")
        yield made


@pytest.fixture
def context(smol, retriever: Retriever) -> RouterContext:
    # No cloud is reachable: every task here must stay local (privacy or shadow mode).
    dead = CloudBackend(CloudConfig(api_base=f"http://127.0.0.1:{free_port()}/v1", num_retries=0))
    return RouterContext(local=smol, cloud=dead, policies=POLICIES, local_window=smol.n_ctx,
                         price_as="claude-sonnet-4-5", count_tokens=token_counter(smol),
                         retrieval=retriever)


def test_callers_of_a_changed_symbol_are_listed_but_not_counted(context: RouterContext) -> None:
    answer = run_task(build_graph(), {"prompt": "Change `parse_config` to accept a Path.",
                                      "repo": "demo", "team": "shadow", "max_tokens": 16},
                      context)
    record = answer.record
    found = {f["path"]: f["source"] for f in record["files"]}
    assert found == {"pkg/utils.py": "references", "pkg/app.py": "references",
                     "pkg/cli.py": "references"}
    # references are context the task reads, not files it changes: not multi_file
    assert record["signals"]["reference_files"] == 3 and record["signals"]["files"] == 0
    assert record["shadow"]["auto_reason"] != "multi_file"


def test_snippets_reach_the_local_prompt(context: RouterContext) -> None:
    answer = run_task(build_graph(), {"prompt": "Make `slugify` also strip punctuation.",
                                      "repo": "demo", "team": "vault", "max_tokens": 16},
                      context)
    record = answer.record
    assert record["final"] == "local"
    assert record["tokens"]["snippets"] > 0
    assert answer.generation is not None
    # the model was given the task plus the snippets (a few tokens of joining aside)
    sent = answer.generation.usage.prompt_tokens
    assert sent >= record["tokens"]["prompt"] + record["tokens"]["snippets"] - 8


def test_snippets_do_not_bring_back_files_trimmed_for_privacy(context: RouterContext,
                                                               tmp_path: Path) -> None:
    big = "\n".join(f"VALUE_{i} = {i}  # padding line" for i in range(110))
    files = [{"path": "old.py", "content": big}, {"path": "new.py", "content": big}]
    answer = run_task(build_graph(), {"prompt": "Explain `slugify`.", "repo": "demo",
                                      "team": "vault", "files": files, "max_tokens": 200},
                      context)
    record = answer.record
    assert any("dropped attached file old.py" in note for note in record["notes"])
    assert answer.generation is not None
    sent = answer.generation.usage.prompt_tokens
    assert sent <= record["tokens"]["prompt"] + record["tokens"]["snippets"] + 8
    assert sent + record["tokens"]["completion"] <= context.local_window
