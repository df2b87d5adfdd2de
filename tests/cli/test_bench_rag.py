"""`smallcode bench rag`: the task set's checks in the real sandbox, the three modes through
the graph (real Chroma and MiniLM, the local tier scripted), and the summary's figures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agents.scripted import Scripted
from policies.config import PoliciesConfig
from retrieval.config import RetrievalConfig
from retrieval.embed import load_embedder
from retrieval.retriever import Retriever
from router.bench import rag
from router.bench.rag_tasks import TASKS, RagTask
from router.checks.sandbox import Sandbox
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task
from tests.retrieval.conftest import BASE_REPO, write_repo

MISSING_IMPORT = ("```python\ndef load_settings(path):\n    with open(path) as handle:\n"
                  "        return json.load(handle)\n```")
IMPORTED = ("```python\nfrom pkg.utils import parse_config\n\n\ndef load_settings(path):\n"
            "    return parse_config(path)\n```")
DEMO = RagTask("demo", "pkg.utils.parse_config",
               "Write load_settings(path): read the JSON configuration file at path and "
               "return it as a dict.", "", "")


@pytest.fixture(scope="module")
def scoring(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = rag.copy_package("requests", tmp_path_factory.mktemp("src"))
    return sandbox.with_packages(root, *rag.dependency_dirs("requests"))


def test_every_reference_answer_passes_in_the_sandbox(scoring: Sandbox) -> None:
    failed = {t.name: why for t in TASKS for ok, why in [rag.passes(t.reference, t, scoring)]
              if not ok}
    assert failed == {}


def test_a_wrong_answer_fails_with_what_went_wrong(scoring: Sandbox) -> None:
    task = TASKS[0]
    ok, why = rag.passes("def credentials(url):\n    return None\n", task, scoring)
    assert not ok and "AssertionError" in why
    ok, why = rag.passes("def credentials(url):\n    return urlparse(url)\n", task, scoring)
    assert not ok and "NameError" in why


def test_the_dependencies_are_found_and_the_extras_left_out() -> None:
    names = {path.name for path in rag.dependency_dirs("requests")}
    assert {"urllib3", "idna", "certifi", "charset_normalizer"} <= names
    assert "socks" not in names  # PySocks is an extra


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    root = tmp_path_factory.mktemp("indexed")
    config = RetrievalConfig(chroma_path=root / "chroma")
    with Retriever(config, root / "data", embedder=load_embedder("all-MiniLM-L6-v2")) as made:
        made.index(write_repo(root / "demo", {**BASE_REPO, "pkg/__init__.py": ""}), "demo")
        yield made


def routed(retriever: Retriever, mode: str, repair_rounds: int | None = None,
           ) -> tuple[dict[str, Any], Scripted, Scripted]:
    local, cloud = Scripted(MISSING_IMPORT, IMPORTED), Scripted("```python\nx = 1\n```")
    context = RouterContext(local=local, cloud=cloud,
                            policies=rag.bench_policies(PoliciesConfig(), repair_rounds),
                            local_window=4096, price_as="claude-sonnet-4-5",
                            count_tokens=lambda t: len(t) // 4 + 1, retrieval=retriever)
    answer = run_task(build_graph(), rag.request_for(DEMO, mode, 128, repo="demo"), context)
    return answer.record, local, cloud


def test_only_the_repair_mode_repairs_and_none_reaches_the_cloud(retriever: Retriever) -> None:
    without, local, cloud = routed(retriever, "without")
    assert (without["final"], without["reason"], len(local.requests)) == ("local", "forced", 1)
    assert without["snippets"] == [] and cloud.requests == []
    with_repo, local, cloud = routed(retriever, "with")
    assert (with_repo["reason"], len(local.requests), with_repo["local_attempts"]) == (
        "forced", 1, [])
    assert with_repo["snippets"] and cloud.requests == []
    repaired, local, cloud = routed(retriever, "repair")
    # repaired, the answer passes its checks: served local (it would be, privacy or not)
    assert (repaired["final"], repaired["reason"]) == ("local", "confident")
    assert "repaired" in repaired["flags"]
    assert len(local.requests) == 2 and cloud.requests == []
    assert [a["trigger"] for a in repaired["local_attempts"]] == ["failed_examples"]
    assert "undefined name 'json'" in local.requests[1].messages[-1].content
    assert repaired["snippets"]  # the repair turn keeps the snippets
    assert "from pkg.utils import parse_config" in local.requests[1].messages[-1].content


def test_repair_rounds_can_be_set_for_the_bench(retriever: Retriever) -> None:
    record, local, _ = routed(retriever, "repair", repair_rounds=0)
    assert len(local.requests) == 1 and record["local_attempts"] == []


def row(passed: bool, seconds: float, attempts: int = 0) -> dict[str, Any]:
    return {"passed": passed, "seconds": seconds, "imports_helper": passed,
            "completion_tokens": 10, "snippet_tokens": 100, "retrieve_ms": 5.0,
            "helper_shown": True, "names_problems": 0 if passed else 1,
            "local_attempts": attempts}


def test_the_summary_reports_lift_latency_and_added_attempts() -> None:
    rows = [{"task": "a", "without": row(False, 10), "with": row(False, 10),
             "repair": row(True, 20, attempts=1)},
            {"task": "b", "without": row(True, 10), "with": row(True, 12),
             "repair": row(True, 12)}]
    out = rag.summarise(rows, 1, 2, "2.0")
    assert out["modes"] == ["without", "with", "repair"]
    assert (out["with"]["lift_points"], out["repair"]["lift_points"]) == (0.0, 50.0)
    assert out["with"]["latency_ratio"] == 1.1 and out["repair"]["latency_ratio"] == 1.6
    assert out["repair"]["latency_ratio_median"] == 1.6
    assert (out["repair"]["local_attempts_added"], out["repair"]["tasks_repaired"]) == (1, 1)
    # a run of some modes only reports those
    only = rag.summarise([{"task": "a", "with": row(True, 3)}], 1, 2, "2.0")
    assert only["modes"] == ["with"] and "lift_points" not in only["with"]


def test_runs_over_parts_of_the_set_merge_once_each() -> None:
    part = [rag.summarise([{"task": n, "without": row(n == "a", 10), "with": row(True, 11)}],
                          1, 2, "2.0") for n in ("a", "b")]
    merged = rag.merge(part)
    assert merged["tasks"] == 2 and merged["with"]["lift_points"] == 50.0
    with pytest.raises(ValueError, match="a task is in two runs"):
        rag.merge([part[0], part[0]])


def test_bad_modes_are_refused_in_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "bench", "rag", "--modes",
                           "with,maybe"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("smallcode: --modes must be some of without,with,repair, "
                                   "got 'with,maybe'")
