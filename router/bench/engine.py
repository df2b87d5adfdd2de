"""`smallcode bench multiturn` and `smallcode bench speculation`: llama-server as the local
engine, with the settings `smallcode serve` gives it (``local``), logprobs on as the router
asks for them.

- multiturn: a 5-turn conversation whose first message is a ~3,000-token module of code;
  each turn adds the answer and a new question. Time to the first token of each turn, and the
  prompt tokens the server took from its cache (``timings.cache_n``).
- speculation: the same requests to a server with ``spec_type: none`` and to one with the
  configured n-gram speculation, both running, the requests alternating between them (a
  shared machine's load then weighs on both alike): decode tok/s (the server's
  own ``predicted_per_second``), whether the texts are byte-identical, and how many drafted
  tokens were accepted; on the edit task of `bench local` (rewrite a 60-line function with one
  change) and on generation from scratch, each round with other names and another module.
- confidence: the recorded HumanEval run's local requests sent again to llama-server with the
  shipped flags (speculation included), greedy, logprobs on: does the judge read the same
  confidence from the server as it read in-process? Per problem, whether the answer is the
  recorded one word for word and, where it is, how far the server's confidence is from the
  recorded in-process one (``router.graph.signals.confidence`` on both).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents import llama_server
from agents.base import Generation, GenerationRequest, Message
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from router.bench.local_speed import edit_prompt
from router.evals.humaneval import load_problems, task_prompt
from router.evals.run import ANSWER_CHARS
from router.graph.signals import confidence as judge_confidence

QUESTIONS = ("Which functions in this module wrap text?",
             "What does the function that removes common leading whitespace return?",
             "Name one function that takes a width argument.",
             "Does the module define a class? Name it.",
             "Which function adds a prefix to selected lines?")


def module_prefix(n_tokens: int, count: Callable[[str], int]) -> str:
    """About ``n_tokens`` of real Python (the standard library's textwrap, repeated as
    needed), cut at a line boundary."""
    source = Path(textwrap.__file__).read_text()
    lines = (source * 4).splitlines()
    low, high = 1, len(lines)
    while low < high:  # the most whole lines within n_tokens
        middle = (low + high + 1) // 2
        if count("\n".join(lines[:middle])) <= n_tokens:
            low = middle
        else:
            high = middle - 1
    return "\n".join(lines[:low])


def multiturn(config: LocalConfig, path: Path, *, prefix_tokens: int = 3000, turns: int = 5,
              max_tokens: int = 32, log: Callable[[str], None] = print) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    log(f"llama-server ({config.server_parallel} slots of {config.n_ctx} tokens): starting")
    with llama_server.start(config, path, alias=config.model) as server:
        backend = RemoteLocalBackend(config.model_copy(
            update={"mode": "server", "server_url": server.base_url}))
        try:
            code = module_prefix(prefix_tokens, lambda text: backend.count_tokens(text) or 0)
            history = [Message("system", "You answer questions about this Python module.\n\n"
                               f"```python\n{code}\n```")]
            for turn in range(turns):
                history.append(Message("user", QUESTIONS[turn % len(QUESTIONS)]))
                log(f"turn {turn + 1}")
                answer = backend.generate(GenerationRequest(
                    messages=tuple(history), max_tokens=max_tokens, logprobs=True))
                history.append(Message("assistant", answer.text))
                rows.append({"turn": turn + 1, "prompt_tokens": answer.usage.prompt_tokens,
                             "cached_prompt_tokens": answer.extra.get("cached_prompt_tokens"),
                             "first_token_ms": round(answer.timings.first_token_ms or 0, 1)})
        finally:
            backend.close()
    first = float(rows[0]["first_token_ms"])
    later = [float(row["first_token_ms"]) for row in rows[1:]]
    return {"model": path.name, "n_threads": config.n_threads, "turns": rows,
            "later_turns_first_token_ms_max": max(later) if later else None,
            "later_vs_first_max": round(max(later) / first, 3) if later and first else None}


def _decode(generations: list[Generation]) -> dict[str, Any]:
    rates = [g.timings.decode_tokens_per_s or 0.0 for g in generations]
    return {"decode_tps_median": round(statistics.median(rates), 1),
            "decode_tps": [round(rate, 1) for rate in rates],
            "completion_tokens": [g.usage.completion_tokens for g in generations],
            "draft_tokens": sum(g.extra.get("draft_tokens", 0) for g in generations),
            "draft_tokens_accepted": sum(g.extra.get("draft_tokens_accepted", 0)
                                         for g in generations),
            "logprobs": all(g.logprobs is not None for g in generations)}


# Each round asks what no server has seen: ngram-mod keeps the n-grams of every earlier answer
# (server-wide), so a request repeated word for word is drafted from its own last answer.
_NOUNS = (("orders", "customer"), ("purchases", "client"), ("invoices", "buyer"),
          ("tickets", "owner"))
_MODULES = ("a binary search tree class with insert, delete, search, minimum, maximum and "
            "in-order traversal methods",
            "a doubly linked list class with append, prepend, remove, find, reverse and iteration",
            "a min-heap priority queue class with push, pop, peek, heapify and merge",
            "an LRU cache class with get, put, resize, eviction callbacks and statistics")


def fresh_tasks(round_: int) -> dict[str, str]:
    """The round's edit (`bench local`'s, with other names) and generation from scratch."""
    items, owner = _NOUNS[round_ % len(_NOUNS)]
    module = _MODULES[round_ % len(_MODULES)]
    return {"edit": edit_prompt().replace("orders", items).replace("customer", owner),
            "scratch": f"Write a Python module implementing {module}. Give every method a "
                       "docstring."}


def speculation(config: LocalConfig, path: Path, *, types: Sequence[str] = (),
                rounds: int = 2, max_tokens: int = 512,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Decode speed of each speculative type in ``types`` (default: the configured one) against
    none, logprobs on as the router asks; and none without logprobs (what logprobs cost). One
    server per type, all up at once, the requests of a round alternating between them."""
    kinds = list(types) or [config.spec_type if config.spec_type != "none" else "ngram-mod"]
    ways = [("none", True), ("none", False), *((kind, True) for kind in kinds)]
    names = [mode if logprobs else f"{mode} without logprobs" for mode, logprobs in ways]
    runs: dict[str, dict[str, list[Generation]]] = {name: {"edit": [], "scratch": []}
                                                    for name in names}
    identical = {name: {"edit": True, "scratch": True} for name in names}
    with contextlib.ExitStack() as stack:
        backends = {}
        for mode in ("none", *kinds):
            engine = config.model_copy(update={
                "spec_type": mode, "server_parallel": 1,
                "spec_draft_n_max": None if mode in ("none", "ngram-cache")
                else config.spec_draft_n_max})
            log(f"llama-server --spec-type {mode}: starting")
            server = stack.enter_context(llama_server.start(engine, path, alias=config.model))
            backend = RemoteLocalBackend(engine.model_copy(
                update={"mode": "server", "server_url": server.base_url}))
            stack.callback(backend.close)
            backend.generate(GenerationRequest(messages=(Message("user", "hi"),),
                                               max_tokens=4))  # page the weights in
            backends[mode] = backend
        for round_ in range(rounds):
            for task, prompt in fresh_tasks(round_).items():
                reference = None
                for name, (mode, logprobs) in zip(names, ways, strict=True):
                    log(f"{name}: {task}, round {round_ + 1}")
                    answer = backends[mode].generate(GenerationRequest(
                        messages=(Message("user", prompt),), max_tokens=max_tokens,
                        logprobs=logprobs))
                    runs[name][task].append(answer)
                    reference = answer.text if reference is None else reference
                    identical[name][task] = identical[name][task] and answer.text == reference
    result: dict[str, Any] = {"model": path.name, "n_threads": config.n_threads,
                              "types": kinds, "rounds": rounds, "max_tokens": max_tokens,
                              "spec_draft_n_max": config.spec_draft_n_max, "tasks": {}}
    for task in ("edit", "scratch"):
        base = _decode(runs["none"][task])
        rows = {}
        for name in names:
            row = _decode(runs[name][task])
            row["vs_none"] = round(row["decode_tps_median"] / base["decode_tps_median"], 2)
            row["vs_none_per_round"] = [
                round(b / a, 2) if a else None
                for a, b in zip(base["decode_tps"], row["decode_tps"], strict=True)]
            row["identical_to_none"] = identical[name][task]
            rows[name] = row
        result["tasks"][task] = rows
    return result


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def confidence(config: LocalConfig, path: Path, recorded: Path, *, limit: int | None = None,
               concurrency: int = 4, max_tokens: int = 512,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """The recorded run's local requests (``eval humaneval``'s: the task prompt, greedy,
    ``max_tokens``) through llama-server with ``config``'s flags, ``concurrency`` at a time."""
    records = [json.loads(line) for line in recorded.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    problems = {p.task_id: p for p in load_problems()}
    records = [r for r in records if r["task_id"] in problems][:limit]
    engine = config.model_copy(update={"server_parallel": max(config.server_parallel,
                                                               concurrency)})
    log(f"llama-server ({engine.server_parallel} slots, spec {engine.spec_type}): starting")
    rows: list[dict[str, Any]] = []
    with llama_server.start(engine, path, alias=config.model) as server:
        backend = RemoteLocalBackend(engine.model_copy(
            update={"mode": "server", "server_url": server.base_url}))
        try:
            def one(record: dict[str, Any]) -> dict[str, Any]:
                prompt = task_prompt(problems[record["task_id"]])
                answer = backend.generate(GenerationRequest(
                    messages=(Message("user", prompt),), max_tokens=max_tokens))
                found = judge_confidence([t.logprob for t in answer.logprobs or ()])
                was = record["signals"]["logprob_confidence"]
                return {"task_id": record["task_id"],
                        "same_answer": answer.text[:ANSWER_CHARS] == record["local"]["answer"],
                        "recorded": was, "server": found,
                        "delta": None if found is None or was is None else abs(found - was)}

            with ThreadPoolExecutor(concurrency) as pool:
                for index, row in enumerate(pool.map(one, records), start=1):
                    rows.append(row)
                    log(f"[{index}/{len(records)}] {row['task_id']} same answer: "
                        f"{row['same_answer']}, confidence {row['recorded']} -> {row['server']}")
        finally:
            backend.close()
    same = [r for r in rows if r["same_answer"]]
    deltas = [r["delta"] for r in same if r["delta"] is not None]
    every = [r["delta"] for r in rows if r["delta"] is not None]
    return {"model": path.name, "problems": len(rows), "concurrency": concurrency,
            "spec_type": engine.spec_type, "same_answer": len(same),
            "without_logprobs": sum(1 for r in rows if r["server"] is None),
            "same_answer_delta": {"median": _percentile(deltas, 0.5),
                                  "p90": _percentile(deltas, 0.9),
                                  "max": max(deltas, default=None),
                                  "within_0.01": sum(1 for d in deltas if d <= 0.01)},
            "all_delta": {"median": _percentile(every, 0.5), "p90": _percentile(every, 0.9),
                          "max": max(every, default=None)},
            "rows": rows}
