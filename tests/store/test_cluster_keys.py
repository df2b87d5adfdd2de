"""Keys by team on a Redis Cluster: the keys one script or step touches share a slot (the
ledger's of one team, the API keys'), two teams' ledgers may sit on different nodes, and the
reads across teams still see them all. On the real three-primary Valkey cluster."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
import redis
from redis.cluster import key_slot
from redis.exceptions import RedisClusterException

from router.run.outcome import RouteRecord, ledger_entry
from router.store import apikeys, ledger
from router.store.config import RedisSettings
from router.store.connect import client
from router.store.names import Names

NAMES = Names("smallcode")


def ledger_keys(team: str, request_id: str = "req-1", day: str = "2026-12-07") -> list[str]:
    """Every ledger key of a team that the write script touches."""
    return [NAMES.entry(team, request_id), NAMES.team_entries(team), NAMES.rollup(team, day),
            NAMES.rollup_days(team), NAMES.key_spend(team, day[:7]),
            NAMES.entry_record(team, request_id), NAMES.histograms(team, day),
            NAMES.sessions(team, day)]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_one_teams_ledger_keys_share_a_slot_and_two_teams_can_differ() -> None:
    for team in ("alpha", "beta", "payments"):
        assert len({slot(k) for k in ledger_keys(team)}) == 1, team
    assert slot(NAMES.entry("alpha", "x")) != slot(NAMES.entry("beta", "x"))
    api = [NAMES.api_key("abc"), NAMES.api_key("def"), NAMES.api_key_ids(),
           NAMES.api_key_by_hash()]
    assert len({slot(k) for k in api}) == 1
    # A budget script touches one key; a session's tier is one key too.
    assert slot(NAMES.budget("team:alpha", "2026-12")) != slot(NAMES.budget("key:k1", "2026-12"))


def test_the_server_agrees_on_the_slots(cluster_url: str) -> None:
    with redis.Redis.from_url(cluster_url) as node:
        for key in [*ledger_keys("alpha"), NAMES.api_key_ids(), NAMES.ledger_teams()]:
            assert node.execute_command("CLUSTER KEYSLOT", key) == slot(key)


def entry_of(team: str, request_id: str, cost: float, **fields: Any) -> dict[str, Any]:
    record = {"final": "cloud", "reason": "low_confidence", "escalated": True,
              "tokens": {"prompt": 10, "completion": 5, "local_completion": 3},
              "cost_usd": cost, "counterfactual_cost_usd": cost, "timings_ms": {}}
    entry = ledger_entry(request_id=request_id, team=team, key_id=f"key-{team}", source="chat",
                         record=RouteRecord.routed(record), latency_ms=120)
    return {**entry, **fields}


def two_teams_on_two_nodes(cluster: Any) -> tuple[str, str]:
    """Two team names whose ledgers live on different primaries."""
    owners: dict[int, str] = {}
    for n in range(200):
        team = f"team-{n}"
        owner = cluster.get_node_from_key(NAMES.entry(team, "x")).port
        owners.setdefault(owner, team)
        if len(owners) >= 2:
            first, second = list(owners.values())[:2]
            return first, second
    raise AssertionError("every team hashed to one node")


async def _ledger_on_two_nodes(url: str, teams: tuple[str, str]) -> dict[str, Any]:
    store = client(RedisSettings(url=url, cluster=True))
    a, b = teams
    now = time.time()
    try:
        written = [await ledger.write_entry(store, NAMES, entry_of(team, rid, cost, time=t),
                                            retention_days=30, record={"final": "cloud"})
                   for team, rid, cost, t in ((a, "r1", 0.01, now - 3), (b, "r2", 0.02, now - 2),
                                              (a, "r3", 0.04, now - 1))]
        again = await ledger.write_entry(store, NAMES, entry_of(a, "r1", 9.0, time=now - 3),
                                         retention_days=30)
        day = dt.date.fromisoformat(ledger.day_of(now))
        return {
            "written": written, "again": again,
            "teams": await ledger.teams(store, NAMES),
            "page": [e["id"] for e in await ledger.page_entries(
                store, NAMES, team=None, start=0, end=now + 1, limit=2)],
            "rest": [e["id"] for e in await ledger.page_entries(
                store, NAMES, team=None, start=0, end=now + 1, limit=2, before=now - 2)],
            "mine": [e["id"] for e in await ledger.page_entries(
                store, NAMES, team=a, start=0, end=now + 1, limit=10)],
            "by_id": (await ledger.get_entry(store, NAMES, "r2") or {}).get("team"),
            "record": await ledger.get_record(store, NAMES, "r2"),
            "by_team": {r["team"]: r["tasks"] for r in ledger.summarize(
                await ledger.rollup_rows(store, NAMES, first=day, last=day, team=None), "team")},
            "spend": await ledger.key_spend(store, NAMES, day.isoformat()[:7]),
            "latency": sum(sum(c) for c in (await ledger.histograms(
                store, NAMES, first=day, last=day, team=None))["latency_ms"]["routes"].values()),
        }
    finally:
        await store.aclose()


def test_the_ledger_of_two_teams_on_two_nodes_reads_as_one(cluster_url: str) -> None:
    with redis.RedisCluster.from_url(cluster_url) as cluster:
        teams = two_teams_on_two_nodes(cluster)
    a, b = teams
    found = asyncio.run(_ledger_on_two_nodes(cluster_url, teams))
    assert found["written"] == [True, True, True] and found["again"] is False
    assert found["teams"] == sorted(teams)
    assert found["page"] == ["r3", "r2"] and found["rest"] == ["r1"]  # newest first, paged
    assert found["mine"] == ["r3", "r1"]
    assert found["by_id"] == b and found["record"] == {"final": "cloud"}
    assert found["by_team"] == {a: 2, b: 1}
    assert found["spend"] == pytest.approx({f"key-{a}": 0.05, f"key-{b}": 0.02})
    assert found["latency"] == 3


async def _keys_on_the_cluster(url: str) -> tuple[str, str, list[str], bool]:
    store = client(RedisSettings(url=url, cluster=True))
    try:
        key, secret = await apikeys.create_key(store, NAMES, team="alpha", rpm=5)
        other, _ = await apikeys.create_key(store, NAMES, team="beta")
        found = await apikeys.lookup(store, NAMES, secret)
        listed = [k.id for k in await apikeys.list_keys(store, NAMES)]
        revoked = await apikeys.revoke(store, NAMES, other.id)
        return key.id, found.id if found else "", listed, revoked
    finally:
        await store.aclose()


def test_api_keys_are_created_in_one_step_on_the_cluster(cluster_url: str) -> None:
    made, found, listed, revoked = asyncio.run(_keys_on_the_cluster(cluster_url))
    assert found == made and made in listed and len(listed) == 2 and revoked


async def _cross_slot(url: str) -> None:
    store = client(RedisSettings(url=url, cluster=True))
    try:
        await store.eval("return 1", 2, NAMES.entry("alpha", "x"),  # type: ignore[misc]
                         NAMES.entry("beta", "x"))
    finally:
        await store.aclose()


def test_a_script_over_two_teams_is_refused_which_is_why_keys_are_by_team(
        cluster_url: str) -> None:
    with pytest.raises(RedisClusterException, match="slot"):
        asyncio.run(_cross_slot(cluster_url))
