"""`smallcode bench fim`: inline completion, quality and latency.

Quality: single-line infilling from HumanEval's canonical solutions (the method of the
HumanEval-infilling benchmark, Bavarian et al. 2022): one line of each solution is masked, the
model fills it from the code before and after it, and the problem's own tests, run in the
sandbox, decide. pass@1, greedy.

Latency: a ~2,000-token Python file with the cursor at the start of a line in a function body,
32 tokens asked (block-end stops off, so every run decodes the same length). Cold: a file the
cache has never seen (it holds another file: the user switched files); warm: the same file
after a one-line edit, at the cursor (the user typed a line) and 20 lines above it. Time to
first token and total, at the caller of the backend, median over rounds. Both FIM layouts (psm,
spm) are measured: they trade quality for cache reuse.

With ``engine``, the same file and problems also go to llama.cpp's ``llama-server`` (started
with the ``local`` settings `smallcode serve` gives it) through ``/infill``, the way
`smallcode serve` completes with ``local.mode: server``: its own FIM layout (the order
``server``), its own prompt cache (``cache_prompt``, ``--cache-reuse``), in the same run.
"""

from __future__ import annotations

import statistics
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import llama_server
from agents.base import Backend, Generation, InfillRequest
from agents.config import LocalConfig
from agents.local import LocalBackend
from agents.remote import RemoteLocalBackend
from router.checks.config import ChecksConfig
from router.checks.sandbox import open_sandbox
from router.evals.humaneval import Problem, load_problems, score

Log = Callable[[str], None]


@dataclass(frozen=True)
class Infill:
    task_id: str
    prefix: str
    suffix: str
    middle: str


@dataclass(frozen=True)
class Reuse:
    """How the backend reuses its cache past the common prefix (:mod:`agents.kv_reuse`): the
    completions settings ``reuse_min_tokens`` and ``reuse_refresh_tokens``."""

    min_tokens: int = 0
    refresh_tokens: int = 0

    def request(self, **fields: Any) -> InfillRequest:
        return InfillRequest(**fields, reuse_min_tokens=self.min_tokens,
                             reuse_refresh_tokens=self.refresh_tokens)


def mask_line(problem: Problem) -> Infill | None:
    """The problem with the middle code line of its canonical solution masked: the prefix is
    the prompt and the lines before it, the suffix the lines after it (None: no code line)."""
    lines = problem.canonical_solution.splitlines(keepends=True)
    code = [i for i, line in enumerate(lines)
            if line.strip() and not line.strip().startswith("#")]
    if not code:
        return None
    index = code[len(code) // 2]
    return Infill(problem.task_id, problem.prompt + "".join(lines[:index]),
                  "".join(lines[index + 1:]), lines[index])


def run_once(backend: Backend, request: InfillRequest) -> tuple[Generation, float, float]:
    """The generation, its time to first token and total time (ms), measured by the caller."""
    started = time.perf_counter()
    first = None
    final: Generation | None = None
    for item in backend.infill(request):
        if first is None:
            first = time.perf_counter()
        if isinstance(item, Generation):
            final = item
    assert final is not None
    done = time.perf_counter()
    return final, ((first or done) - started) * 1000, (done - started) * 1000


def quality(backend: Backend, order: str, *, limit: int | None, log: Log,
            reuse: Reuse = Reuse(), warm: bool = False) -> dict[str, Any]:
    """pass@1 over the masked problems. ``warm``: each is asked right after the same file one
    line shorter (the line before the cursor not typed yet, 1 token generated), so a cache that
    moves runs (``reuse``) answers from keys and values computed before the line was
    typed, as it would while the user types. Then each is also asked cold, in the same run
    (``cold``): right after another file, with the prefix-only cache, as if the file had just
    been opened. ``flips`` counts the problems that only one of the two answers passes."""
    sandbox = open_sandbox(ChecksConfig())
    if sandbox is None:
        raise RuntimeError("no sandbox to run HumanEval's tests in: install bubblewrap "
                           "(scripts/system-deps.sh)")
    problems = load_problems()[:limit] if limit else load_problems()
    passed = total = empty = 0
    cold_passed = cold_empty = same_text = 0
    flips = {"warm_only": 0, "cold_only": 0}
    prefix_only = Reuse(min_tokens=0, refresh_tokens=reuse.refresh_tokens)
    for problem in problems:
        infill = mask_line(problem)
        if infill is None:
            continue
        if warm:
            before = infill.prefix.splitlines(keepends=True)[:-1]
            run_once(backend, reuse.request(
                prefix="".join(before), suffix=infill.suffix, max_tokens=1, order=order,
                stop_at_block_end=False))
        generation, _, _ = run_once(backend, reuse.request(
            prefix=infill.prefix, suffix=infill.suffix, max_tokens=64, order=order))
        ok = score(problem, infill.prefix + generation.text + infill.suffix, sandbox).passed
        total += 1
        passed += ok
        empty += not generation.text.strip()
        if warm:
            run_once(backend, prefix_only.request(  # the cache now holds another file
                prefix=OTHER_FILE, suffix="", max_tokens=1, order=order,
                stop_at_block_end=False))
            cold, _, _ = run_once(backend, prefix_only.request(
                prefix=infill.prefix, suffix=infill.suffix, max_tokens=64, order=order))
            cold_ok = score(problem, infill.prefix + cold.text + infill.suffix, sandbox).passed
            cold_passed += cold_ok
            cold_empty += not cold.text.strip()
            same_text += cold.text == generation.text
            if ok != cold_ok:
                flips["warm_only" if ok else "cold_only"] += 1
        if total % 20 == 0:
            log(f"  {order}: {passed}/{total} pass" + (f", cold {cold_passed}" if warm else ""))
    result: dict[str, Any] = {"problems": total, "passed": passed,
                              "pass_at_1": round(passed / max(total, 1), 3),
                              "empty_completions": empty, "warm": warm}
    if warm:
        result["cold"] = {"passed": cold_passed,
                          "pass_at_1": round(cold_passed / max(total, 1), 3),
                          "empty_completions": cold_empty}
        result.update(flips=flips, same_text=same_text)
    return result


OTHER_FILE = "import os\n\n\ndef data_dir():\n    return os.path.join(os.getcwd(), 'data')\n"


def sample_file(backend: LocalBackend, n_tokens: int = 2000) -> tuple[str, str, str]:
    """About ``n_tokens`` of real Python (the standard library's ``textwrap``, repeated if
    short), split at the start of a line in a function body about 60% in: (prefix, suffix,
    a line to type at the cursor)."""
    source = Path(textwrap.__file__).read_text()
    while len(backend.code_tokens(source)) < n_tokens:
        source += "\n\n" + source
    lines = source.splitlines(keepends=True)
    kept, used = [], 0
    for line in lines:
        used += len(backend.code_tokens(line))
        if used > n_tokens:
            break
        kept.append(line)
    cursor = int(len(kept) * 0.6)
    while cursor < len(kept) - 1 and not kept[cursor].startswith("        "):
        cursor += 1
    indent = kept[cursor][: len(kept[cursor]) - len(kept[cursor].lstrip())]
    return "".join(kept[:cursor]), "".join(kept[cursor:]), f"{indent}width = self.width\n"


def latency(backend: Backend, order: str, *, rounds: int, prefix_tokens: int,
            suffix_tokens: int, log: Log, reuse: Reuse = Reuse(),
            sample: tuple[str, str, str], label: str | None = None) -> dict[str, Any]:
    """``sample``: the file (:func:`sample_file`), the same for every backend of a run;
    ``label``: what the log calls this backend (the order's name)."""
    prefix, suffix, typed = sample
    rows: dict[str, list[tuple[float, float, int, int]]] = {
        "cold": [], "warm_edit_at_cursor": [], "warm_edit_20_lines_above": []}

    def ask(before: str, after: str) -> tuple[float, float, int, int]:
        generation, ttft, total = run_once(backend, reuse.request(
            prefix=before, suffix=after, max_tokens=32, stop_at_block_end=False,
            prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens, order=order))
        return (ttft, total, generation.usage.prompt_tokens,
                int(generation.extra.get("cached_prompt_tokens", 0)))  # type: ignore[call-overload]

    for round_ in range(rounds):
        # Cold: the user was in another file, so the cache holds that file and shares nothing
        # with this one but the first FIM token. (Marking the file by changing its first line
        # did not do it: the window cuts that line off, and psm still found 811 of 1,216 prompt
        # tokens cached.)
        run_once(backend, InfillRequest(prefix=OTHER_FILE, suffix="\n", max_tokens=1,
                                        stop_at_block_end=False, order=order))  # type: ignore[arg-type]
        base, after = prefix, suffix
        rows["cold"].append(ask(base, after))
        rows["warm_edit_at_cursor"].append(ask(base + typed, after))
        lines = base.splitlines(keepends=True)
        at = len(lines) - 20
        lines[at] = lines[at].rstrip("\n") + "  # edited\n"
        rows["warm_edit_20_lines_above"].append(ask("".join(lines), after))
        log(f"  {label or order} round {round_ + 1}/{rounds}: cold {rows['cold'][-1][0]:.0f} ms, warm "
            f"{rows['warm_edit_at_cursor'][-1][0]:.0f} ms to the first token")
    out: dict[str, Any] = {}
    for name, values in rows.items():
        out[name] = {
            "ttft_ms_p50": round(statistics.median(v[0] for v in values), 1),
            "total_ms_p50": round(statistics.median(v[1] for v in values), 1),
            "prompt_tokens": values[0][2],
            "cached_prompt_tokens_p50": statistics.median(v[3] for v in values),
        }
    return out


def run(config: LocalConfig, model_path: Path, *, orders: list[str], limit: int | None,
        rounds: int, prefix_tokens: int, suffix_tokens: int, skip_quality: bool,
        log: Log, reuse: Reuse = Reuse(), warm_quality: bool = False,
        engine: bool = False) -> dict[str, Any]:
    backend = LocalBackend(config, model_path)
    try:
        sample = sample_file(backend)
        result: dict[str, Any] = {"model": backend.model_name, "n_threads": config.n_threads,
                                  "prefix_tokens": prefix_tokens, "suffix_tokens": suffix_tokens,
                                  "reuse_min_tokens": reuse.min_tokens,
                                  "reuse_refresh_tokens": reuse.refresh_tokens, "orders": {}}
        for order in orders:
            log(f"{order}: latency")
            row: dict[str, Any] = {"latency": latency(
                backend, order, rounds=rounds, prefix_tokens=prefix_tokens,
                suffix_tokens=suffix_tokens, log=log, reuse=reuse, sample=sample)}
            if not skip_quality:
                log(f"{order}: HumanEval single-line infilling")
                row["quality"] = quality(backend, order, limit=limit, log=log,
                                         reuse=reuse, warm=warm_quality)
            result["orders"][order] = row
        if engine:
            result["orders"]["server"] = _on_llama_server(
                config, model_path, rounds=rounds, prefix_tokens=prefix_tokens,
                suffix_tokens=suffix_tokens, skip_quality=skip_quality, limit=limit, log=log,
                warm_quality=warm_quality, sample=sample)
        return result
    finally:
        backend.close()


def _on_llama_server(config: LocalConfig, model_path: Path, *, rounds: int, prefix_tokens: int,
                     suffix_tokens: int, skip_quality: bool, limit: int | None, log: Log,
                     warm_quality: bool, sample: tuple[str, str, str]) -> dict[str, Any]:
    log(f"llama-server ({config.server_parallel} slots): starting")
    with llama_server.start(config, model_path, alias=config.model) as server:
        remote = RemoteLocalBackend(config.model_copy(
            update={"mode": "server", "server_url": server.base_url}))
        try:
            run_once(remote, InfillRequest(prefix=OTHER_FILE, suffix="\n", max_tokens=1,
                                           stop_at_block_end=False))  # page the weights in
            log("server: latency")
            row: dict[str, Any] = {"latency": latency(
                remote, "psm", label="server", rounds=rounds, prefix_tokens=prefix_tokens,
                suffix_tokens=suffix_tokens, log=log, sample=sample)}
            if not skip_quality:
                log("server: HumanEval single-line infilling")
                row["quality"] = quality(remote, "psm", limit=limit, log=log, warm=warm_quality)
            return row
        finally:
            remote.close()
