"""A routed stream the client leaves in the middle of a cloud call, on a team with a budget:
what the cloud streamed is charged to the budget (settled, as the ledger records it), not
given back, and no reservation is left open."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from router.store import budgets
from router.store.names import Names
from tests.reliability.conftest import LogScan, auth, figure, running

PREFIX = "rel-stream-budget"
POLICIES = {"teams": {"metered": {"budget_usd": 10.0, "budget_period": "month"}}}
ASK = [{"role": "user", "content": "Write a Python function that reverses a string."}]
FILES = [{"path": f"lib/m{i}.py", "content": f"X{i} = {i}\n"} for i in range(3)]


def budget_state(url: str) -> budgets.BudgetState:
    async def go() -> budgets.BudgetState:
        client = Redis.from_url(url)
        try:
            return await budgets.state(client, Names(PREFIX), scope="team:metered",
                                       period="month", limit_usd=10.0)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_a_stream_left_mid_cloud_call_charges_its_budget_what_ran(
        smol: Any, smol_standin_url: str, valkey_server: Any, service_logs: LogScan) -> None:
    with running(smol, smol_standin_url, valkey_server.url, prefix=PREFIX,
                 policies=POLICIES) as service:
        key = service.key("metered")
        with httpx.stream("POST", f"{service.url}/v1/chat/completions", headers=auth(key),
                          timeout=120, json={"model": "auto", "stream": True, "messages": ASK,
                                             "files": FILES, "max_tokens": 400}) as response:
            assert response.status_code == 200
            seen = 0
            for line in response.iter_lines():
                if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                    seen += 1
                    if seen == 3:
                        break  # hang up mid-answer (multi-file: it is the cloud's answer)
        deadline, entry = time.monotonic() + 30, None
        while time.monotonic() < deadline and entry is None:
            page = httpx.get(f"{service.url}/v1/usage/entries", params={"limit": 50},
                             headers=auth(key), timeout=30).json()["data"]
            entry = next((e for e in page if e["reason"] == "client_disconnected"), None)
            time.sleep(0.2)
        assert entry is not None, "the stream the client left was not recorded"
        assert entry["route"] == "cloud" and entry["cost_usd"] > 0
        deadline = time.monotonic() + 15  # the graph's thread settles as it stops
        while (state := budget_state(valkey_server.url)).open_reservations and (
                time.monotonic() < deadline):
            time.sleep(0.2)
    figure("stream left mid cloud call (budget)", ledger_usd=entry["cost_usd"],
           budget_spent_usd=state.spent_usd, reserved_usd=state.reserved_usd,
           open_reservations=state.open_reservations)
    assert state.open_reservations == 0 and state.reserved_usd == pytest.approx(0, abs=1e-12)
    assert state.spent_usd == pytest.approx(entry["cost_usd"], rel=1e-6)
