"""`smallcode bench local`: speed of the local tier, every comparison measured side by side.

The machine is shared and noisy, so each figure is a median over alternating rounds and each
comparison is reported as a ratio of two figures taken in the same run.
"""

from __future__ import annotations

import statistics
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.base import GenerationRequest, Message
from agents.config import LocalConfig
from agents.local import LocalBackend

LONG_ANSWER = (
    "Write a Python module implementing a binary search tree class with insert, delete, "
    "search, minimum, maximum and in-order traversal methods. Give every method a docstring."
)


def edit_prompt() -> str:
    """An edit task: rewrite a given 60-line function with one change."""
    lines = ["def summarize_orders(orders, tax_rate=0.2):",
             '    """Summarize a list of order dicts into totals per customer."""',
             "    totals = {}"]
    for i in range(19):
        lines += [f"    if len(orders) > {i} and orders[{i}].get('status') == 'paid':",
                  f"        customer = orders[{i}]['customer']",
                  f"        totals[customer] = totals.get(customer, 0) + orders[{i}]['amount']"]
    lines.append("    return {name: round(value * (1 + tax_rate), 2) for name, value in totals.items()}")
    code = "\n".join(lines)
    return ("Rewrite this function exactly as it is, changing only the default tax_rate from "
            f"0.2 to 0.25. Reply with the full function and nothing else.\n\n```python\n{code}\n```")


def prompt_of_tokens(backend: LocalBackend, n_tokens: int, salt: int) -> str:
    """About ``n_tokens`` of real code; ``salt`` changes the start so no KV prefix is reused."""
    source = Path(textwrap.__file__).read_text()
    tokens = backend.tokenize(source)[:n_tokens]
    return f"# run {salt}\n" + backend._llama.detokenize(tokens).decode(errors="replace")


def request(prompt: str, max_tokens: int, *, logprobs: bool = True) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", prompt),), max_tokens=max_tokens,
                             logprobs=logprobs)


@dataclass
class Speed:
    prompt_tps: float
    decode_tps: float
    completion_tokens: int
    total_s: float


def measure(backend: LocalBackend, req: GenerationRequest) -> Speed:
    result = backend.generate(req)
    first_s = (result.timings.first_token_ms or 0) / 1000
    return Speed(
        prompt_tps=result.usage.prompt_tokens / max(first_s, 1e-9),
        decode_tps=result.timings.decode_tokens_per_s or 0.0,
        completion_tokens=result.usage.completion_tokens,
        total_s=result.timings.total_ms / 1000,
    )


def raw_decode_tps(backend: LocalBackend, prompt: str, max_tokens: int) -> float:
    """llama-cpp-python's own streaming call on the same loaded model, without logprobs."""
    llama = backend._llama
    started = first = None
    count = 0
    started = time.perf_counter()
    for _ in llama.create_completion(backend.render(request(prompt, 1)), max_tokens=max_tokens,
                                     temperature=0.0, stream=True):
        count += 1
        first = first or time.perf_counter()
    end = time.perf_counter()
    return (count - 1) / max(end - (first or started), 1e-9)


def median(fn: Callable[[], float], rounds: int) -> float:
    return statistics.median(fn() for _ in range(rounds))


def run(config: LocalConfig, model_path: Path, *, rounds: int = 3,
        log: Callable[[str], None] = print) -> dict[str, object]:
    out: dict[str, object] = {"model": model_path.name, "n_threads": config.n_threads,
                              "rounds": rounds}
    started = time.perf_counter()
    base = LocalBackend(config, model_path)
    out["load_s"] = time.perf_counter() - started

    log("prompt processing (~500 tokens) and decode (128 tokens), logprobs on/off ...")
    on, off, raw, prompt_tps = [], [], [], []
    for i in range(rounds):
        prompt_tps.append(measure(base, request(prompt_of_tokens(base, 500, i), 1)).prompt_tps)
        off.append(measure(base, request(LONG_ANSWER, 128, logprobs=False)).decode_tps)
        on.append(measure(base, request(LONG_ANSWER, 128, logprobs=True)).decode_tps)
        raw.append(raw_decode_tps(base, LONG_ANSWER, 128))
    out["prompt_tokens_per_s"] = statistics.median(prompt_tps)
    out["decode_tokens_per_s_logprobs_off"] = statistics.median(off)
    out["decode_tokens_per_s_logprobs_on"] = statistics.median(on)
    out["decode_tokens_per_s_raw_llama_cpp"] = statistics.median(raw)
    out["ratio_logprobs_on_vs_off"] = statistics.median(on) / statistics.median(off)
    out["ratio_logprobs_on_vs_raw_llama_cpp"] = statistics.median(on) / statistics.median(raw)
    base.close()

    variants = {
        "flash_attn": config.model_copy(update={"flash_attn": True}),
        "kv_q8_0": config.model_copy(update={"kv_cache_type": "q8_0"}),
        "flash_attn+kv_q8_0": config.model_copy(update={"flash_attn": True, "kv_cache_type": "q8_0"}),
    }
    backends = {"baseline": LocalBackend(config, model_path)}
    backends.update({name: LocalBackend(cfg, model_path) for name, cfg in variants.items()})
    log("flash attention and KV-cache type ...")
    figures: dict[str, dict[str, list[float]]] = {n: {"prompt": [], "decode": []} for n in backends}
    for i in range(rounds):
        for name, backend in backends.items():  # interleaved, so drift hits all alike
            figures[name]["prompt"].append(
                measure(backend, request(prompt_of_tokens(backend, 500, 100 + i), 1)).prompt_tps)
            figures[name]["decode"].append(measure(backend, request(LONG_ANSWER, 128)).decode_tps)
    base_prompt = statistics.median(figures["baseline"]["prompt"])
    base_decode = statistics.median(figures["baseline"]["decode"])
    out["variants"] = {
        name: {
            "prompt_tokens_per_s": statistics.median(f["prompt"]),
            "decode_tokens_per_s": statistics.median(f["decode"]),
            "prompt_ratio": statistics.median(f["prompt"]) / base_prompt,
            "decode_ratio": statistics.median(f["decode"]) / base_decode,
        }
        for name, f in figures.items()
    }
    for backend in backends.values():
        backend.close()

    log("prompt-lookup decoding on an edit task ...")
    plain = LocalBackend(config, model_path)
    lookup = LocalBackend(config.model_copy(update={"prompt_lookup_tokens": 10}), model_path)
    edit = request(edit_prompt(), 1024)
    plain_runs, lookup_runs = [], []
    for _ in range(max(1, rounds - 1)):
        plain_runs.append(measure(plain, edit))
        lookup_runs.append(measure(lookup, edit))
    out["prompt_lookup"] = {
        "completion_tokens": plain_runs[0].completion_tokens,
        "decode_tokens_per_s_off": statistics.median(r.decode_tps for r in plain_runs),
        "decode_tokens_per_s_on": statistics.median(r.decode_tps for r in lookup_runs),
        "total_s_off": statistics.median(r.total_s for r in plain_runs),
        "total_s_on": statistics.median(r.total_s for r in lookup_runs),
        "speedup": statistics.median(r.total_s for r in plain_runs)
        / statistics.median(r.total_s for r in lookup_runs),
        "same_text": plain.generate(edit).text == lookup.generate(edit).text,
    }
    plain.close()
    lookup.close()
    return out
