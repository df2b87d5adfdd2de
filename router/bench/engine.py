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
  change) and on generation from scratch.
"""

from __future__ import annotations

import contextlib
import statistics
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents import llama_server
from agents.base import Generation, GenerationRequest, Message
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from router.bench.local_speed import LONG_ANSWER, edit_prompt

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
    last = generations[-1]
    rates = [g.timings.decode_tokens_per_s or 0.0 for g in generations]
    return {"decode_tps_median": round(statistics.median(rates), 1),
            "completion_tokens": last.usage.completion_tokens,
            "draft_tokens": last.extra.get("draft_tokens", 0),
            "draft_tokens_accepted": last.extra.get("draft_tokens_accepted", 0),
            "logprobs": last.logprobs is not None}


def speculation(config: LocalConfig, path: Path, *, rounds: int = 2, max_tokens: int = 512,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    spec_type = config.spec_type if config.spec_type != "none" else "ngram-simple"
    tasks = {"edit": edit_prompt(), "scratch": LONG_ANSWER}
    requests = {name: GenerationRequest(messages=(Message("user", prompt),),
                                        max_tokens=max_tokens, logprobs=True)
                for name, prompt in tasks.items()}
    modes = ("none", spec_type)
    runs: dict[str, dict[str, list[Generation]]] = {mode: {name: [] for name in tasks}
                                                    for mode in modes}
    with contextlib.ExitStack() as stack:
        backends = {}
        for mode in modes:  # both servers up at once, requests alternating between them
            engine = config.model_copy(update={"spec_type": mode, "server_parallel": 1})
            log(f"llama-server --spec-type {mode}: starting")
            server = stack.enter_context(llama_server.start(engine, path, alias=config.model))
            backend = RemoteLocalBackend(engine.model_copy(
                update={"mode": "server", "server_url": server.base_url}))
            stack.callback(backend.close)
            backend.generate(GenerationRequest(messages=(Message("user", "hi"),),
                                               max_tokens=4))  # page the weights in
            backends[mode] = backend
        for round_ in range(rounds):
            for name, request in requests.items():
                for mode in modes:
                    log(f"{mode}: {name}, round {round_ + 1}")
                    runs[mode][name].append(backends[mode].generate(request))
    result: dict[str, Any] = {"model": path.name, "n_threads": config.n_threads,
                              "spec_type": spec_type,
                              "spec_draft_n_max": config.spec_draft_n_max, "tasks": {}}
    for name in tasks:
        off, on = _decode(runs["none"][name]), _decode(runs[spec_type][name])
        result["tasks"][name] = {
            "off": off, "on": on,
            "speedup": round(on["decode_tps_median"] / off["decode_tps_median"], 2),
            "identical_text": runs["none"][name][-1].text == runs[spec_type][name][-1].text}
    return result
