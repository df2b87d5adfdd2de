"""`smallcode bench rag`: does retrieval make the local model's answers right?

The installed `requests` package is copied to a temporary directory and indexed (real
Chroma, the configured embedding model). Each task of ``rag_tasks`` runs through the whole
graph on the local model, never the cloud, in up to three modes (``MODES``):

- ``without``: no repo, route forced local, a team with no repair rounds: one answer;
- ``with``: ``repo`` set (the retrieve step adds snippets), the same route and team: one answer;
- ``repair``: ``repo`` set, the task's team local-only (the privacy rule keeps it local), so
  the judge's repair rounds run as they do for any user's task before it would escalate: an
  answer that the names check flags (an undefined name, an import that does not resolve) or
  that does not parse goes back to the local model with what failed, up to the policy's
  ``repair_rounds`` (the settings', or ``repair_rounds`` here).

An answer passes when its code, then the task's checks, run in the project's sandbox
(:mod:`router.checks.sandbox`) with the copied package and its dependencies importable
(read-only, nothing else of site-packages) raise nothing within 10 s. Reported per mode:
passes, mean and median seconds per task, how often the answer imports the helper; for
``with`` and ``repair`` their lift over ``without`` and their latency ratios (mean and
median), how often the helper was among the snippets; for ``repair`` the local attempts it
added.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from agents.base import GenerationRequest, Message
from agents.cloud import CloudBackend
from agents.config import CloudConfig
from policies.config import PoliciesConfig
from retrieval.retriever import Retriever
from router.bench.rag_tasks import MODES, TASKS, RagTask
from router.checks.code import extract_code_blocks
from router.checks.sandbox import Sandbox, interpreter, open_sandbox
from router.graph.context import RouterContext, token_counter
from router.graph.graph import build_graph, run_task

if TYPE_CHECKING:
    from router.graph.state import TaskInput

CHECK_TIMEOUT_S = 10.0
LOCAL_ONLY_TEAM = "bench-local-only"  # the repair mode's team: privacy keeps it local
ONE_ANSWER_TEAM = "bench-one-answer"  # the other modes': repair_rounds 0


def answer_code(text: str) -> str:
    """The answer's Python code blocks, joined (the whole text when it has none)."""
    blocks = [b.code for b in extract_code_blocks(text) if b.language in ("python", "")]
    return "\n\n".join(blocks) if blocks else text


def passes(code: str, task: RagTask, sandbox: Sandbox) -> tuple[bool, str]:
    """Run the answer then the task's checks in the sandbox; (passed, what failed)."""
    result = sandbox.run_tests(code, task.tests, timeout_s=CHECK_TIMEOUT_S)
    return result.passed, "" if result.passed else result.detail[:200]


def imports_helper(code: str, task: RagTask) -> bool:
    module, function = task.helper.rsplit(".", 1)
    return f"from {module} import" in code and function in code


def copy_package(package: str, into: Path) -> Path:
    """The installed package's Python files, copied under ``into/<package>``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed here")
    source = Path(next(iter(spec.submodule_search_locations)))
    target = into / package
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def dependency_dirs(package: str) -> list[Path]:
    """The installed directories (or single modules) of the package's required dependencies
    (extras left out), so that the sandbox can import the package."""
    wanted = set()
    for requirement in importlib.metadata.requires(package) or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0]
        wanted.add(re.sub(r"[-_.]+", "-", name).lower())
    found = []
    for module, dists in sorted(importlib.metadata.packages_distributions().items()):
        if not {re.sub(r"[-_.]+", "-", d).lower() for d in dists} & wanted:
            continue
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            found.append(Path(next(iter(spec.submodule_search_locations))))
        elif spec.origin and spec.origin.endswith(".py"):
            found.append(Path(spec.origin))
    return found


def checker(settings: Any, package_dirs: Sequence[Path],
            log: Callable[[str], None]) -> tuple[Sandbox | None, Sandbox]:
    """The router's own sandbox for the judge (None where it has none), and the one that
    scores the answers, with the package importable (the same harness unisolated where
    bubblewrap cannot run here: the bench's tasks and prompts are fixed)."""
    judge = open_sandbox(settings.checks)
    scoring = judge or Sandbox("unisolated", interpreter(), settings.checks)
    if judge is None:
        log("bubblewrap cannot run here: the answers are checked unisolated")
    return judge, scoring.with_packages(*package_dirs)


def request_for(task: RagTask, mode: str, max_tokens: int, repo: str = "requests") -> TaskInput:
    """The task as the bench submits it in ``mode`` (see ``MODES``)."""
    request: TaskInput = {"prompt": task.prompt, "max_tokens": max_tokens}
    if mode == "repair":
        request["repo"], request["team"] = repo, LOCAL_ONLY_TEAM
    else:
        request["route"], request["team"] = "local", ONE_ANSWER_TEAM
        if mode == "with":
            request["repo"] = repo
    return request


def bench_policies(policies: Any, repair_rounds: int | None) -> Any:
    """The settings' policies, plus the repair mode's local-only team (its repair rounds the
    default policy's unless ``repair_rounds`` is given) and the other modes' team, which
    repairs nothing (a forced local route is repaired too)."""
    team: dict[str, Any] = {"local_only": True}
    if repair_rounds is not None:
        team["repair_rounds"] = repair_rounds
    return PoliciesConfig.model_validate({**policies.model_dump(),
                                          "teams": {**policies.teams, LOCAL_ONLY_TEAM: team,
                                                    ONE_ANSWER_TEAM: {"repair_rounds": 0}}})


def run(settings: Any, model_path: Path, *, tasks: Sequence[RagTask] = TASKS,
        max_tokens: int = 320, modes: Sequence[str] = MODES, repair_rounds: int | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    from agents.local import LocalBackend  # deferred: loads numpy, and llama_cpp once built

    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be some of {', '.join(MODES)}; got {list(modes)}")
    policies = bench_policies(settings.policies, repair_rounds)
    with tempfile.TemporaryDirectory(prefix="smallcode-bench-rag-") as tmp:
        work = Path(tmp)
        root = copy_package("requests", work / "src")
        judge_sandbox, scoring = checker(settings, [root, *dependency_dirs("requests")], log)
        config = settings.retrieval.model_copy(update={"chroma_path": work / "chroma",
                                                       "chroma_url": None})
        with Retriever(config, work / "data") as retriever:
            started = time.perf_counter()
            summary = retriever.index(root, "requests")
            log(f"indexed requests {requests.__version__}: {summary.files} files, "
                f"{summary.chunks} chunks in {time.perf_counter() - started:.1f} s; answers "
                f"checked in the sandbox ({scoring.mode})")
            local = LocalBackend(settings.local, model_path)
            # No cloud: every task is forced local, or local-only by privacy.
            cloud = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0))
            context = RouterContext(
                local=local, cloud=cloud, policies=policies,
                local_window=settings.local.n_ctx, price_as=settings.cloud.price_as,
                count_tokens=token_counter(local), retrieval=retriever,
                snippet_token_budget=settings.retrieval.snippet_token_budget,
                snippet_k=settings.retrieval.top_k,
                snippet_min_score=settings.retrieval.snippet_min_score,
                sandbox=judge_sandbox)
            graph = build_graph()
            run_task(graph, {"prompt": "Write `f()` returning 1.", "route": "local",
                             "max_tokens": 8}, context)  # warm-up
            unrelated = GenerationRequest(messages=(Message("user", "Say ok."),), max_tokens=1)
            rows = []
            for task in tasks:
                row: dict[str, Any] = {"task": task.name, "helper": task.helper}
                for mode in modes:
                    # Another prompt in between, untimed: the local model's prompt cache holds
                    # only what any task shares (the chat template's start), not the previous
                    # mode's prompt (``repair`` repeats ``with``'s) as it would unfairly.
                    local.generate(unrelated)
                    began = time.perf_counter()
                    answer = run_task(graph, request_for(task, mode, max_tokens), context)
                    seconds = time.perf_counter() - began
                    code = answer_code(answer.text)
                    ok, error = passes(code, task, scoring)
                    row[mode] = measured(answer.record, task, code, ok, error, seconds)
                log(f"{task.name:<16} " + " | ".join(
                    f"{mode} {'pass' if row[mode]['passed'] else 'fail'} "
                    f"{row[mode]['seconds']:5.1f} s"
                    + (f" ({row[mode]['local_attempts']} repair)"
                       if row[mode]["local_attempts"] else "") for mode in modes))
                rows.append(row)
            local.close()
    return summarise(rows, summary.files, summary.chunks, requests.__version__)


def measured(record: dict[str, Any], task: RagTask, code: str, ok: bool, error: str,
             seconds: float) -> dict[str, Any]:
    """One task in one mode, from its route record and its check."""
    used = record.get("snippets", [])
    attempts = record.get("local_attempts") or []
    return {
        "passed": ok, "error": error, "seconds": round(seconds, 2), "code": code,
        "final": record["final"], "reason": record["reason"],
        "imports_helper": imports_helper(code, task),
        "completion_tokens": record["tokens"]["completion"],
        "snippet_tokens": record["tokens"]["snippets"],
        "retrieve_ms": record["timings_ms"].get("retrieve", 0.0),
        "snippets": [s["symbol"] for s in used],
        "helper_shown": any(s["symbol"] == task.helper.rsplit(".", 1)[1] for s in used),
        "names_problems": len(record["signals"].get("checks", {}).get("names", [])),
        "local_attempts": len(attempts),
        "repair_triggers": [a["trigger"] for a in attempts],
        "repair_ms": round(sum(a["ms"] for a in attempts), 1),
    }


def summarise(rows: list[dict[str, Any]], files: int, chunks: int,
              version: str) -> dict[str, Any]:
    n = len(rows)
    modes = [m for m in MODES if rows and all(m in row for row in rows)]
    out: dict[str, Any] = {"codebase": f"requests {version}", "files": files, "chunks": chunks,
                           "tasks": n, "modes": modes}
    for mode in modes:
        def column(key: str, mode: str = mode) -> list[Any]:
            return [row[mode][key] for row in rows]

        seconds = column("seconds")
        out[mode] = {
            "passed": sum(column("passed")),
            "pass_rate": round(sum(column("passed")) / n, 3),
            "imports_helper": sum(column("imports_helper")),
            "seconds_mean": round(statistics.fmean(seconds), 2),
            "seconds_median": round(statistics.median(seconds), 2),
            "completion_tokens_mean": round(statistics.fmean(column("completion_tokens")), 1),
            "names_flagged": sum(1 for v in column("names_problems") if v),
        }
        if mode != "without":
            out[mode]["helper_shown"] = sum(column("helper_shown"))
            out[mode]["snippet_tokens_mean"] = round(statistics.fmean(column("snippet_tokens")), 1)
            out[mode]["retrieve_ms_mean"] = round(statistics.fmean(column("retrieve_ms")), 1)
        if mode == "repair":
            attempts = column("local_attempts")
            out[mode]["local_attempts_added"] = sum(attempts)
            out[mode]["tasks_repaired"] = sum(1 for a in attempts if a)
            out[mode]["local_attempts_mean"] = round(statistics.fmean(attempts), 2)
    if "without" in out:
        base = out["without"]
        for mode in ("with", "repair"):
            if mode not in out:
                continue
            row = out[mode]
            row["lift_points"] = round(100 * (row["pass_rate"] - base["pass_rate"]), 1)
            row["latency_ratio"] = (round(row["seconds_mean"] / base["seconds_mean"], 3)
                                    if base["seconds_mean"] else None)
            row["latency_ratio_median"] = (
                round(row["seconds_median"] / base["seconds_median"], 3)
                if base["seconds_median"] else None)
        if "with" in out:  # the names of the first run's summary
            out["lift_points"] = out["with"]["lift_points"]
            out["latency_ratio"] = out["with"]["latency_ratio"]
    out["rows"] = rows
    return out


def merge(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several runs over parts of the task set (``--offset``/``--limit``),
    each run's rows once (the same task twice is an error)."""
    if not results:
        raise ValueError("nothing to merge")
    first = results[0]
    if any(r["codebase"] != first["codebase"] for r in results):
        raise ValueError("the runs are over different codebases")
    rows = [row for result in results for row in result["rows"]]
    names = [row["task"] for row in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"a task is in two runs: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return summarise(rows, first["files"], first["chunks"], first["codebase"].split(" ", 1)[1])
