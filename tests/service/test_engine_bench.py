"""`smallcode bench concurrency --through serve` drives a real `smallcode serve` (its own
llama-server, SmolLM2-135M) over HTTP: every request answered with logprobs, the figures
counted per level, and nothing it started left running."""

from __future__ import annotations

import os
from pathlib import Path

from agents import model_store
from agents.config import LocalConfig
from router.bench import concurrency
from tests.helpers import descendants

SMOL = "smollm2-135m"


def test_bench_concurrency_through_serve_counts_each_level_and_stops_serve(
        model_cache: Path) -> None:
    config = LocalConfig(model=SMOL, n_ctx=1024)
    before = descendants(os.getpid())  # the session's own servers (Valkey, stand-ins)
    result = concurrency.run(config, model_cache / model_store.MODELS[SMOL].filename,
                             levels=(1, 2), tokens=8, rounds=1, through=("serve",),
                             log=lambda _: None)
    assert result["kinds"] == ["inprocess", "serve_http"]
    rows = result["serve_http"]
    assert [row["concurrency"] for row in rows] == [1, 2]
    assert [row["requests"] for row in rows] == [1, 2]
    assert all(0 < row["completion_tokens"] <= 8 * row["requests"] for row in rows)
    assert set(result["ratios_vs_inprocess_single"]) == {
        "inprocess@1", "inprocess@2", "serve_http@1", "serve_http@2"}
    assert not descendants(os.getpid()) - before, "serve or its llama-server outlived the bench"
