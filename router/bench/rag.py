"""`smallcode bench rag`: does retrieval make the local model's answers right?

The installed `requests` package is copied to a temporary directory and indexed (real
Chroma, the configured embedding model). Each task of ``rag_tasks`` runs through the whole
graph on the local model, route forced local (one answer, no repair, no cloud), twice:
without a repo, then with ``repo`` set (the retrieve step adds snippets). An answer passes
when its code, run with the tasks' checks by this interpreter (the real package importable),
raises nothing, within 10 s. Reported: passes each way, mean and median seconds per task,
the latency ratio, how often the helper was among the snippets, and how often the answer
imports it.

The checks run the local model's answers to these fixed tasks in a plain subprocess in a
temporary directory (the sandbox has no site-packages, so `requests` is not importable there).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router.bench.rag_tasks import TASKS, RagTask

CHECK_TIMEOUT_S = 10.0


def answer_code(text: str) -> str:
    """The answer's Python code blocks, joined (the whole text when it has none)."""
    from router.checks.code import extract_code_blocks

    blocks = [b.code for b in extract_code_blocks(text) if b.language in ("python", "")]
    return "\n\n".join(blocks) if blocks else text


def passes(code: str, task: RagTask, scratch: Path) -> tuple[bool, str]:
    """Run the answer then the task's checks; (passed, last line of the error)."""
    script = scratch / f"check_{task.name}.py"
    script.write_text(f"{code}\n\n{task.tests}", encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-I", str(script)], cwd=scratch,
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    if done.returncode == 0:
        return True, ""
    lines = done.stderr.strip().splitlines()
    return False, lines[-1][:200] if lines else f"exit {done.returncode}"


def imports_helper(code: str, task: RagTask) -> bool:
    module, function = task.helper.rsplit(".", 1)
    return f"from {module} import" in code and function in code


def copy_package(package: str, into: Path) -> Path:
    """The installed package's Python files, copied under ``into/<package>``."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed here")
    source = Path(next(iter(spec.submodule_search_locations)))
    target = into / package
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def run(settings: Any, model_path: Path, *, tasks: Sequence[RagTask] = TASKS,
        max_tokens: int = 320, log: Callable[[str], None] = print) -> dict[str, Any]:
    import requests

    from agents.cloud import CloudBackend
    from agents.config import CloudConfig
    from agents.local import LocalBackend
    from retrieval.retriever import Retriever
    from router.graph.context import RouterContext, token_counter
    from router.graph.graph import build_graph, run_task
    from router.graph.state import TaskInput

    with tempfile.TemporaryDirectory(prefix="smallcode-bench-rag-") as tmp:
        work = Path(tmp)
        root = copy_package("requests", work / "src")
        config = settings.retrieval.model_copy(update={"chroma_path": work / "chroma",
                                                       "chroma_url": None})
        with Retriever(config, work / "data") as retriever:
            started = time.perf_counter()
            summary = retriever.index(root, "requests")
            log(f"indexed requests {requests.__version__}: {summary.files} files, "
                f"{summary.chunks} chunks in {time.perf_counter() - started:.1f} s")
            local = LocalBackend(settings.local, model_path)
            # No cloud: every task is forced local.
            cloud = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0))
            context = RouterContext(
                local=local, cloud=cloud, policies=settings.policies,
                local_window=settings.local.n_ctx, price_as=settings.cloud.price_as,
                count_tokens=token_counter(local), retrieval=retriever,
                snippet_token_budget=settings.retrieval.snippet_token_budget,
                snippet_k=settings.retrieval.top_k,
                snippet_min_score=settings.retrieval.snippet_min_score)
            graph = build_graph()
            run_task(graph, {"prompt": "Write `f()` returning 1.", "route": "local",
                             "max_tokens": 8}, context)  # warm-up
            rows = []
            for task in tasks:
                row: dict[str, Any] = {"task": task.name, "helper": task.helper}
                for mode in ("without", "with"):
                    request: TaskInput = {"prompt": task.prompt, "route": "local",
                                          "max_tokens": max_tokens}
                    if mode == "with":
                        request["repo"] = "requests"
                    began = time.perf_counter()
                    answer = run_task(graph, request, context)
                    seconds = time.perf_counter() - began
                    code = answer_code(answer.text)
                    ok, error = passes(code, task, work)
                    record = answer.record
                    used = record.get("snippets", [])
                    row[mode] = {
                        "passed": ok, "error": error, "seconds": round(seconds, 2),
                        "imports_helper": imports_helper(code, task),
                        "completion_tokens": record["tokens"]["completion"],
                        "snippet_tokens": record["tokens"]["snippets"],
                        "retrieve_ms": record["timings_ms"].get("retrieve", 0.0),
                        "snippets": [s["symbol"] for s in used],
                        "helper_shown": any(
                            s["symbol"] == task.helper.rsplit(".", 1)[1] for s in used),
                        "names_problems": len(record["signals"].get("checks", {})
                                              .get("names", [])),
                    }
                log(f"{task.name:<16} without {'pass' if row['without']['passed'] else 'fail'} "
                    f"{row['without']['seconds']:5.1f} s | with "
                    f"{'pass' if row['with']['passed'] else 'fail'} "
                    f"{row['with']['seconds']:5.1f} s, helper shown "
                    f"{row['with']['helper_shown']}, imported {row['with']['imports_helper']}")
                rows.append(row)
            local.close()
    return summarise(rows, summary.files, summary.chunks, requests.__version__)


def summarise(rows: list[dict[str, Any]], files: int, chunks: int,
              version: str) -> dict[str, Any]:
    def column(mode: str, key: str) -> list[Any]:
        return [row[mode][key] for row in rows]

    n = len(rows)
    out: dict[str, Any] = {"codebase": f"requests {version}", "files": files, "chunks": chunks,
                           "tasks": n}
    for mode in ("without", "with"):
        seconds = column(mode, "seconds")
        out[mode] = {
            "passed": sum(column(mode, "passed")),
            "pass_rate": round(sum(column(mode, "passed")) / n, 3) if n else 0.0,
            "imports_helper": sum(column(mode, "imports_helper")),
            "seconds_mean": round(statistics.fmean(seconds), 2) if n else 0.0,
            "seconds_median": round(statistics.median(seconds), 2) if n else 0.0,
            "completion_tokens_mean": round(statistics.fmean(column(mode, "completion_tokens")),
                                            1) if n else 0.0,
            "names_flagged": sum(1 for v in column(mode, "names_problems") if v),
        }
    out["with"]["helper_shown"] = sum(column("with", "helper_shown"))
    out["with"]["snippet_tokens_mean"] = round(
        statistics.fmean(column("with", "snippet_tokens")), 1) if n else 0.0
    out["with"]["retrieve_ms_mean"] = round(
        statistics.fmean(column("with", "retrieve_ms")), 1) if n else 0.0
    out["lift_points"] = round(100 * (out["with"]["pass_rate"] - out["without"]["pass_rate"]), 1)
    without = out["without"]["seconds_mean"]
    out["latency_ratio"] = round(out["with"]["seconds_mean"] / without, 3) if without else None
    out["rows"] = rows
    return out
