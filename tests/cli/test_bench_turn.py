"""`smallcode bench turn`: a Claude-Code-like session's two turns through the real service
(SmolLM2's tokenizer, the scripted cloud, an embedded Valkey), read back from the ledger."""

from __future__ import annotations

from typing import Any

from router.bench import turn_overhead
from router.settings import Settings


def test_the_bench_reads_both_turns_of_each_session_from_the_ledger(smol: Any) -> None:
    result = turn_overhead.run(Settings(), smol, sessions=1, log=lambda _: None)
    first, later = result["first"], result["next"]
    assert (first["route"], first["reason"]) == ("cloud", "tools")
    assert (later["route"], later["reason"]) == ("cloud", "pinned")  # the exchange it opened
    assert first["turns"] == later["turns"] == 1
    assert later["prompt_tokens"] > first["prompt_tokens"] > 15_000
    assert 0 <= first["router_ms_min"] <= first["router_ms_p50"] <= first["latency_ms_p50"]
    client = result["cloud_client"]  # the same request through litellm and as plain HTTP
    assert client["calls"] == 30 and client["request_kb"] > 50
    assert client["plain_http_ms_p50"] > 0 and client["litellm_ms_p50"] > 0
