"""The shared service on a real Valkey and a real uvicorn: team keys, the ledger and usage,
budgets under a race, rate limits, metrics, readiness. The OpenAI SDK is the client. Every
test runs twice: on one Valkey server and on a three-primary Valkey cluster
(``redis.cluster: true``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.cloud import CloudBackend, price
from agents.config import CloudConfig
from router.run.outcome import RouteRecord, ledger_entry
from router.service.app import create_app
from router.settings import ConfigError, Settings
from router.store import budgets, ledger
from router.store.names import Names
from tests.conftest import Store, open_store
from tests.helpers import serving

ADMIN = "admin-" + "x" * 24
ASK = [{"role": "user", "content": "Write a Python function that reverses a string."}]
REPO = Path(__file__).resolve().parents[2]


BIG_ANSWER = 2000  # max_tokens whose worst case dominates a short prompt's
ROOM_FOR_ONE = price("claude-sonnet-4-5", 0, BIG_ANSWER) * 1.5


def settings(store: Store, **extra: object) -> Settings:
    # Team "pooled" has a budget of its own, shared by all its keys.
    policies = {"teams": {"pooled": {"budget_usd": ROOM_FOR_ONE, "budget_period": "day"}}}
    return Settings(redis=store.redis(prefix="svc-test"), admin_key=ADMIN,  # type: ignore[arg-type]
                    tasks=store.tasks(), local={"n_ctx": 2048},  # type: ignore[arg-type]
                    policies=policies, **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["server", "cluster"])
def service_store(request: pytest.FixtureRequest) -> Store:
    """The Redis the module's service runs on: one server, then the cluster."""
    return open_store(request, request.param)


@pytest.fixture(scope="module")
def base_url(smol, standin_url: str, service_store: Store) -> Iterator[str]:
    cloud = CloudBackend(CloudConfig(api_base=standin_url, num_retries=0))
    app = create_app(settings(service_store), local=smol, cloud=cloud, with_retrieval=False)
    with serving(app) as url:
        yield url


def create_key(base_url: str, **fields: object) -> dict:
    response = httpx.post(f"{base_url}/v1/keys", json=fields,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return response.json()


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """The SDK clients a test made are closed after it (their pooled sockets otherwise wait
    for the interpreter's exit and print ResourceWarnings after the suite)."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk(base_url: str, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    _CLIENTS.append(client)
    return client


def usage(base_url: str, key: str, **params: str) -> dict:
    response = httpx.get(f"{base_url}/v1/usage", params=params,
                         headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_no_key_or_a_wrong_key_is_a_401_in_the_openai_shape(base_url: str) -> None:
    missing = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "local",
                                                                   "messages": ASK})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert httpx.get(f"{base_url}/v1/models").status_code == 401  # every /v1 route
    with pytest.raises(openai.AuthenticationError):
        sdk(base_url, "sk-sc-nothere-123").chat.completions.create(model="local", messages=ASK,
                                                                   max_tokens=4)


def test_a_team_key_gets_answers_and_its_usage_adds_up(base_url: str) -> None:
    key = create_key(base_url, team="payments")
    other = create_key(base_url, team="search")
    client = sdk(base_url, key["key"])
    replies = [client.chat.completions.create(model=model, messages=ASK, max_tokens=12)
               for model in ("local", "local", "auto")]
    assert all(r.choices[0].message.content for r in replies)
    stream = client.chat.completions.create(model="local", messages=ASK, max_tokens=8, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    mine = usage(base_url, key["key"])
    assert mine["team"] == "payments"
    assert mine["totals"]["tasks"] == 4
    made = sum(r.usage.prompt_tokens for r in replies)
    assert mine["totals"]["tokens"]["prompt"] >= made  # the stream's prompt on top
    assert usage(base_url, other["key"])["totals"]["tasks"] == 0  # a team sees its own
    everyone = usage(base_url, ADMIN, group_by="team")
    assert {row["team"]: row["tasks"] for row in everyone["data"]}.get("payments") == 4
    entries = httpx.get(f"{base_url}/v1/usage/entries",
                        headers={"Authorization": f"Bearer {key['key']}"}).json()["data"]
    assert len(entries) == 4 and {e["team"] for e in entries} == {"payments"}
    assert all(e["key_id"] == key["id"] for e in entries)


def test_a_body_naming_another_team_is_refused(base_url: str) -> None:
    key = create_key(base_url, team="mobile")
    with pytest.raises(openai.PermissionDeniedError, match="serves team 'mobile'"):
        sdk(base_url, key["key"]).chat.completions.create(
            model="local", messages=ASK, max_tokens=4, extra_body={"team": "payments"})


def test_only_the_admin_key_manages_keys_and_revoked_keys_stop_working(base_url: str) -> None:
    key = create_key(base_url, team="infra")
    as_team = httpx.get(f"{base_url}/v1/keys", headers={"Authorization": f"Bearer {key['key']}"})
    assert as_team.status_code == 403
    listed = httpx.get(f"{base_url}/v1/keys", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert key["id"] in {k["id"] for k in listed["data"]}
    assert key["key"] not in json.dumps(listed)  # never the secret
    revoked = httpx.delete(f"{base_url}/v1/keys/{key['id']}",
                           headers={"Authorization": f"Bearer {ADMIN}"})
    assert revoked.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(base_url, key["key"]).chat.completions.create(model="local", messages=ASK,
                                                         max_tokens=4)


def test_requests_per_minute_hold_with_retry_after(base_url: str) -> None:
    key = create_key(base_url, team="ratelimited", rpm=2)
    body = {"model": "local", "messages": ASK, "max_tokens": 2}
    headers = {"Authorization": f"Bearer {key['key']}"}
    codes = [httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=60)
             for _ in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 60
    assert codes[2].json()["error"]["type"] == "rate_limit_error"


def test_tokens_per_minute_hold_once_a_key_has_used_them(base_url: str) -> None:
    """A key's tokens per minute count what its requests used (prompt and answer): the
    request that fills the window runs, the next one is refused until the window moves."""
    key = create_key(base_url, team="tokenlimited", tpm=30)
    body = {"model": "local", "messages": ASK, "max_tokens": 8}
    headers = {"Authorization": f"Bearer {key['key']}"}
    first = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert first.status_code == 200
    assert first.json()["usage"]["total_tokens"] >= 30  # this one request fills the window
    second = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers,
                        timeout=60)
    assert second.status_code == 429
    assert "tokens per minute" in second.json()["error"]["message"]
    assert 1 <= int(second.headers["Retry-After"]) <= 60


def test_fifty_concurrent_cloud_calls_against_a_budget_for_one(base_url: str,
                                                             service_store: Store) -> None:
    # The worst case is dominated by max_tokens: the budget has room for one, not two. The
    # answer takes seconds, so the call admitted first still holds its reservation when the
    # last of the fifty arrive (a one-word answer settled before they all had, on a loaded
    # machine with the cluster, and then a second call fitted, as it should).
    max_tokens = 2000
    prompt = [{"role": "user", "content": "Write the integers from 1 to 60, one per line, "
                                          "and nothing else."}]
    worst = price("claude-sonnet-4-5", 0, max_tokens)
    key = create_key(base_url, team="tight", budget_usd=worst * 1.5, period="day")
    body = {"model": "cloud", "messages": prompt, "max_tokens": max_tokens}
    headers = {"Authorization": f"Bearer {key['key']}"}

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers,
                          timeout=180)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(call, range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(429) == 49, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused.headers["Retry-After"]) > 0
    spent = usage(base_url, key["key"])["totals"]["cloud_spend_usd"]
    assert 0 < spent <= worst * 1.5
    held = asyncio.run(_budget_state(service_store, key["id"], worst * 1.5))
    assert held.open_reservations == 0 and held.reserved_usd == pytest.approx(0, abs=1e-12)
    assert held.spent_usd == pytest.approx(spent)
    listed = httpx.get(f"{base_url}/v1/keys", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    mine = next(k for k in listed["data"] if k["id"] == key["id"])
    assert mine["spend_usd_this_month"] == pytest.approx(spent)


async def _budget_state(store: Store, key_id: str, limit: float) -> budgets.BudgetState:
    redis = store.client()
    try:
        return await budgets.state(redis, Names("svc-test"), scope=f"key:{key_id}",
                                   period="day", limit_usd=limit)
    finally:
        await redis.aclose()


def test_metrics_parse_and_readyz_says_how_checks_run(base_url: str,
                                                     service_store: Store) -> None:
    key = create_key(base_url, team="observed")
    sdk(base_url, key["key"]).chat.completions.create(model="local", messages=ASK, max_tokens=2)
    text = httpx.get(f"{base_url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [s for s in families["smallcode_requests"].samples
               if s.labels.get("team") == "observed"]
    assert samples and samples[0].value == 1
    workers = families["smallcode_workers_alive"].samples[0].value
    assert workers >= 1  # the embedded worker, on one server and on the cluster
    assert families["smallcode_queue_depth"].samples[0].value == 0
    first = [s for s in families["smallcode_time_to_first_token_seconds"].samples
             if s.name.endswith("_count") and s.labels["route"] == "local"]
    assert first and first[0].value >= 1
    ready = httpx.get(f"{base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["redis"] == "ok" and ready.json()["checks"]["isolation"] == "bwrap"


# --- the store, directly ------------------------------------------------------------------

async def _reserve_race(store: Store) -> tuple[int, budgets.BudgetState]:
    redis = store.client()
    names = Names("race")
    try:
        results = await asyncio.gather(*[
            budgets.reserve(redis, names, scope="team:x", period="month", limit_usd=1.0,
                            amount_usd=0.6, hold_s=60) for _ in range(50)])
        granted = [r for r in results if r is not None]
        for reservation in granted:
            await budgets.settle(redis, reservation, 0.25)
            assert not await budgets.settle(redis, reservation, 0.25)  # once only
        state = await budgets.state(redis, names, scope="team:x", period="month", limit_usd=1.0)
        return len(granted), state
    finally:
        await redis.aclose()


def test_fifty_concurrent_reservations_for_room_for_one(store: Store) -> None:
    granted, state = asyncio.run(_reserve_race(store))
    assert granted == 1
    assert state.spent_usd == pytest.approx(0.25) and state.open_reservations == 0


async def _reaped(store: Store) -> dict[str, object]:
    """A reservation whose caller died (never settled), one whose caller was only slow."""
    redis = store.client()
    names = Names("reap")
    args = {"scope": "team:x", "period": "month", "limit_usd": 1.0}
    try:
        dead = await budgets.reserve(redis, names, **args, amount_usd=0.6, hold_s=0.3)
        slow = await budgets.reserve(redis, names, **args, amount_usd=0.3, hold_s=0.3)
        assert dead is not None and slow is not None
        refused = await budgets.reserve(redis, names, **args, amount_usd=0.5, hold_s=60)
        held = await budgets.state(redis, names, **args)
        await asyncio.sleep(0.5)  # both past their deadline
        after = await budgets.state(redis, names, **args)  # a read reaps them
        late = await budgets.settle(redis, slow, 0.1)  # the slow call ends after all
        again = await budgets.settle(redis, slow, 0.1)
        room = await budgets.reserve(redis, names, **args, amount_usd=0.5, hold_s=60)
        return {"refused": refused, "held": held, "after": after, "late": late,
                "again": again, "room": room,
                "final": await budgets.state(redis, names, **args)}
    finally:
        await redis.aclose()


def test_a_reservation_left_by_a_dead_caller_is_reaped_past_its_hold(store: Store) -> None:
    found = asyncio.run(_reaped(store))
    held, after, final = found["held"], found["after"], found["final"]
    assert found["refused"] is None  # the two open reservations fill the budget
    assert isinstance(held, budgets.BudgetState) and held.open_reservations == 2
    assert isinstance(after, budgets.BudgetState)
    assert after.open_reservations == 0 and after.reserved_usd == pytest.approx(0, abs=1e-9)
    assert after.reaped == 2 and after.spent_usd == 0
    assert found["late"] is True and found["again"] is False  # charged once, though reaped
    assert found["room"] is not None  # the budget no longer refuses for the dead call
    assert isinstance(final, budgets.BudgetState)
    assert final.spent_usd == pytest.approx(0.1) and final.reserved_usd == pytest.approx(0.5)


async def _write_twice(store: Store) -> tuple[bool, bool, list[dict]]:
    redis = store.client()
    names = Names("ledger")
    record = {"final": "cloud", "reason": "low_confidence", "escalated": True,
              "tokens": {"prompt": 100, "completion": 20, "local_completion": 30},
              "cost_usd": 0.002, "counterfactual_cost_usd": 0.002,
              "timings_ms": {"local_generate": 400.0}}
    entry = ledger_entry(request_id="req-1", team="t", key_id="k", source="task",
                         record=RouteRecord.routed(record), latency_ms=900)
    try:
        first = await ledger.write_entry(redis, names, entry, retention_days=30)
        second = await ledger.write_entry(redis, names, {**entry, "cost_usd": 9.9},
                                          retention_days=30)
        day = ledger.day_of(entry["time"])
        import datetime as dt

        rows = await ledger.rollup_rows(redis, names, first=dt.date.fromisoformat(day),
                                        last=dt.date.fromisoformat(day), team=None)
        return first, second, ledger.summarize(rows, None)
    finally:
        await redis.aclose()


def test_a_ledger_entry_is_written_once(store: Store) -> None:
    first, second, totals = asyncio.run(_write_twice(store))
    assert (first, second) == (True, False)
    assert totals[0]["tasks"] == 1 and totals[0]["cloud_spend_usd"] == pytest.approx(0.002)
    assert totals[0]["escalated_local_attempts"]["tokens"] == 130


def test_keys_cli_creates_lists_and_revokes(store: Store, tmp_path: Path) -> None:
    env = {**store.env(), "SMALLCODE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def smallcode(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "router.cli.main", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = json.loads(smallcode("keys", "create", "--team", "payments", "--budget-usd", "5",
                                   "--rpm", "60", "--json"))
    assert set(created) == {"team", "key", "id"} and created["team"] == "payments"
    listing = smallcode("keys", "list")
    assert created["id"] in listing and "budget $5/month" in listing
    assert created["key"] not in listing
    smallcode("keys", "revoke", created["id"])
    assert "(revoked)" in smallcode("keys", "list")
    assert "team" in smallcode("usage", "--csv").splitlines()[0]


def test_keys_cli_refuses_a_bad_team_name(store: Store, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "keys", "create", "--team",
                           "Bad Team"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**store.env(), "PATH": "/usr/bin:/bin",
                               "SMALLCODE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and "team: 'Bad Team' is not a valid team name" in done.stdout


def test_auth_off_is_refused_off_loopback() -> None:
    with pytest.raises(ConfigError, match=r"auth\.enabled: false is allowed only"):
        from router.settings import load_settings

        load_settings(None, auth={"enabled": False}, server={"host": "0.0.0.0"})


def test_a_client_that_leaves_mid_stream_is_charged_for_what_ran(base_url: str) -> None:
    key = create_key(base_url, team="leaver")
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": "local", "stream": True, "max_tokens": 400,
            "messages": [{"role": "user", "content": "Write a long Python module with ten "
                          "classes, each with docstrings."}]}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, headers=headers,
                      timeout=120) as response:
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data:")
            if seen >= 6:
                break  # hang up after a few tokens
    deadline = time.monotonic() + 30
    entries: list = []
    while not entries:
        assert time.monotonic() < deadline, "the abandoned stream was never recorded"
        time.sleep(0.3)
        entries = httpx.get(f"{base_url}/v1/usage/entries", headers=headers).json()["data"]
    tokens = entries[0]["tokens"]
    assert tokens["prompt"] > 0
    assert 0 < tokens["completion"] < 400  # what ran, and the generation was stopped


def test_a_team_budget_holds_across_the_teams_keys(base_url: str) -> None:
    keys = [create_key(base_url, team="pooled")["key"] for _ in range(2)]  # no key budgets
    body = {"model": "cloud", "max_tokens": BIG_ANSWER,
            "messages": [{"role": "user", "content": "Reply with the word hi and nothing else."}]}

    def call(i: int) -> int:
        return httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=180,
                          headers={"Authorization": f"Bearer {keys[i % 2]}"}).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(call, range(10)))
    assert codes == [200] + [429] * 9
