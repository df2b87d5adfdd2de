"""The cost dashboard in a real headless Chromium (Debian's, driven by Playwright), against the
real app on uvicorn, a real Valkey and the real ledger. The ledger is seeded through the API:
a scripted local tier (its confidence set per request, so routes and reasons are known) and
the real cloud path (litellm to the SmolLM2 stand-in on loopback, priced as the configured
cloud model). Every expected figure is computed here from the route records the API
answered with, then read off the page.

Screenshots go to ``test-artifacts/dashboard/`` (git-ignored). With ``DASHBOARD_SCREENSHOT=
docs/dashboard.png`` the 1280x800 view of the seeded run is also written there (the one the
README shows).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from router.store import ledger
from router.store.names import Names
from tests.helpers import Scripted, serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
ADMIN = "admin-" + "d" * 24
ANSWER = "```python\ndef reverse(s):\n    return s[::-1]\n```"
ASK = "Write a Python function that reverses a string."
LOCAL_USD_PER_HOUR = 3.0
TEAM_BUDGET_USD = 0.25
CHARTS = ("chart-spend", "chart-counts", "chart-reasons", "chart-latency", "chart-confidence")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing: run scripts/system-deps.sh "
                                "(Debian's chromium) for the dashboard's browser test")

# (team, per-token logprob of the scripted local answer, extra request fields). Confidence
# is exp(logprob): above the 0.55 threshold the answer is kept, below it escalates.
SEED: list[tuple[str, float, dict[str, Any]]] = [
    ("payments", -0.02, {}),
    ("payments", -0.10, {}),
    ("payments", -0.35, {}),
    ("payments", -1.20, {}),
    ("payments", -2.00, {}),
    ("payments", -0.05, {"route": "cloud"}),
    ("payments", -0.05, {"files": [{"path": f"pkg/m{i}.py", "content": f"X = {i}\n"}
                                   for i in range(3)]}),
    ("search", -0.05, {}),
    ("search", -0.20, {}),
    ("search", -1.50, {}),
]

# Agents' sessions: (team, session id, how the client names it, the turns' logprobs). Seeded
# first, so the newest recent task is still the last chat above.
CLAUDE = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
SESSIONS: list[tuple[str, str, str, tuple[float, ...]]] = [
    ("payments", CLAUDE, "metadata", (-0.02, -0.05, -2.00)),
    ("payments", "codex-7f3a", "header", (-0.05,)),
    ("search", "opencode-session-0042", "header", (-1.50, -0.02)),
]


def settings(url: str, prefix: str) -> Settings:
    return Settings(redis={"url": url, "prefix": prefix}, admin_key=ADMIN,  # type: ignore[arg-type]
                    local={"n_ctx": 2048}, tasks={"embedded_worker": False},  # type: ignore[arg-type]
                    usage={"local_usd_per_hour": LOCAL_USD_PER_HOUR,  # type: ignore[arg-type]
                           "dashboard_refresh_s": 2},
                    policies={"teams": {"payments": {"budget_usd": TEAM_BUDGET_USD,  # type: ignore[arg-type]
                                                     "budget_period": "day"}}})


def create_key(url: str, team: str) -> str:
    response = httpx.post(f"{url}/v1/keys", json={"team": team},
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def chat(url: str, key: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "auto", "messages": [{"role": "user", "content": ASK}], "max_tokens": 16,
            **extra}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return dict(response.json()["smallcode"]["route"])


def agent_turn(url: str, key: str, session: str, named_by: str) -> dict[str, Any]:
    """An agent's turn on the Messages API, its session named as Claude Code does (JSON in
    ``metadata.user_id``) or by the ``x-session-id`` header."""
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 16,
                            "messages": [{"role": "user", "content": f"{ASK} ({session})"}]}
    headers = {"x-api-key": key}
    if named_by == "metadata":
        body["metadata"] = {"user_id": json.dumps({"session_id": session})}
    else:
        headers["x-session-id"] = session
    response = httpx.post(f"{url}/v1/messages", json=body, timeout=120, headers=headers)
    assert response.status_code == 200, response.text
    route = dict(response.json()["smallcode"]["route"])
    assert route["agent"]["session"] == session
    return route


@dataclass
class Seeded:
    url: str
    keys: dict[str, str]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def all(self, team: str | None = None) -> list[dict[str, Any]]:
        return [r for t, rs in self.records.items() if team in (None, t) for r in rs]


@pytest.fixture(scope="module")
def seeded(valkey_server: Any, smol_standin_url: str) -> Iterator[Seeded]:
    local = Scripted(ANSWER)
    cloud = CloudBackend(CloudConfig(api_base=smol_standin_url, num_retries=0))
    app = create_app(settings(valkey_server.url, "dash-seeded"), local=local, cloud=cloud,
                     with_retrieval=False)
    with serving(app) as url:
        run = Seeded(url, {team: create_key(url, team) for team in ("payments", "search")})
        for team, session, named_by, logprobs in SESSIONS:
            for logprob in logprobs:
                local.logprob = logprob
                record = agent_turn(url, run.keys[team], session, named_by)
                run.records.setdefault(team, []).append(record)
                run.sessions.setdefault((team, session), []).append(record)
        for team, logprob, extra in SEED:
            local.logprob = logprob  # requests go one at a time
            run.records.setdefault(team, []).append(chat(url, run.keys[team], **extra))
        yield run


@pytest.fixture(scope="module")
def empty(valkey_server: Any) -> Iterator[str]:
    """An app whose ledger has nothing in it (a prefix of its own)."""
    app = create_app(settings(valkey_server.url, f"dash-empty-{time.time_ns()}"),
                     local=Scripted(ANSWER), cloud=Scripted(ANSWER), with_retrieval=False)
    with serving(app) as url:
        yield url


MANY = 53  # agent sessions, more than the page lists (50)


async def write_sessions(url: str, prefix: str) -> None:
    """One cloud turn in each of MANY sessions of team ``ops``, session ``s-NN`` costing NN
    cents, written straight into the ledger (as a routed turn's entry is)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        for n in range(1, MANY + 1):
            entry = {"id": f"msg-many-{n}", "time": time.time(), "team": "ops",
                     "key_id": None, "source": "messages", "status": "done",
                     "task_type": "edit", "route": "cloud", "reason": "tools",
                     "escalated": False, "confidence": None,
                     "tokens": {"prompt": 100, "completion": 10, "local": 0, "cloud": 110,
                                "local_completion": 0},
                     "cost_usd": n / 100, "counterfactual_usd": n / 100,
                     "escalated_local_ms": 0.0, "latency_ms": 900.0, "session": f"s-{n:02d}"}
            assert await ledger.write_entry(redis, Names(prefix), entry, retention_days=30)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def many(valkey_server: Any) -> Iterator[str]:
    """An app whose ledger holds MANY agent sessions."""
    prefix = f"dash-many-{time.time_ns()}"
    with ThreadPoolExecutor(1) as thread:  # Playwright runs an event loop in this thread
        thread.submit(asyncio.run, write_sessions(valkey_server.url, prefix)).result()
    app = create_app(settings(valkey_server.url, prefix), local=Scripted(ANSWER),
                     cloud=Scripted(ANSWER), with_retrieval=False)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: Any
    problems: list[str]

    def open(self, url: str, hash_: str = "") -> None:
        self.page.goto(f"{url}/dashboard{hash_}")

    def sign_in(self, key: str, expect: str = "loaded") -> None:
        self.page.fill("#api-key", key)
        self.page.click("#signin-form button[type=submit]")
        if expect:
            self.wait_state(expect)

    def wait_state(self, state: str) -> None:
        self.page.wait_for_selector(f"body[data-state={state}]", timeout=30_000)

    def refreshed(self) -> None:
        """Wait for a refresh that started after now to land."""
        now = self.page.evaluate("Date.now()")
        self.page.wait_for_function("now => Number(document.body.dataset.refreshed || 0) > now",
                                    arg=now, timeout=30_000)

    def tile(self, name: str, attribute: str = "value") -> float:
        return float(self.page.get_attribute(f"#tile-{name}", f"data-{attribute}"))

    def tile_text(self, name: str) -> str:
        return str(self.page.inner_text(f"#tile-{name} .v"))

    def chart(self, name: str) -> list[dict[str, Any]]:
        """The traces plotly drew in a chart (its ``data``), x and y values."""
        return list(self.page.evaluate(
            "id => (document.getElementById(id).data || []).map(t => ({name: t.name, x: t.x, y: t.y}))",
            name))

    def drawn_points(self, name: str) -> int:
        """Markers and bars in the chart's SVG (what a reader sees)."""
        return int(self.page.evaluate(
            "id => document.querySelectorAll(`#${id} .scatterlayer .point, #${id} .barlayer .point`).length",
            name))

    def sessions(self) -> list[dict[str, str]]:
        """The agent sessions table as a reader sees it: each row's text by column heading,
        and ``Full id``, the session cell's title (what hovering shows)."""
        return list(self.page.evaluate("""() => {
            const heads = [...document.querySelectorAll('#sessions thead th')].map(th => th.innerText);
            return [...document.querySelectorAll('#sessions tbody tr')].map(tr => ({
                ...Object.fromEntries([...tr.cells].map((td, i) => [heads[i], td.innerText])),
                'Full id': tr.cells[1].querySelector('code').title}));
        }"""))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning", "assert") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)
    yield Tab(page, problems)
    context.close()


def expected(records: list[dict[str, Any]]) -> dict[str, float]:
    tasks = len(records)
    local = sum(r["final"] == "local" for r in records)
    escalated = [r for r in records if r["escalated"]]
    spend = sum(r["cost_usd"] for r in records)
    counterfactual = sum(r["counterfactual_cost_usd"] for r in records)
    wasted_ms = sum(r["timings_ms"].get("local_generate", 0.0) for r in escalated)
    return {"tasks": tasks, "local": local, "local_share": local / tasks, "spend": spend,
            "counterfactual": counterfactual, "savings": counterfactual - spend,
            "savings_pct": 100 * (counterfactual - spend) / counterfactual,
            "escalation": len(escalated) / tasks,
            "wasted_tokens": sum(r["tokens"]["prompt"] + r["tokens"]["local_completion"]
                                 for r in escalated),
            "wasted_usd": wasted_ms / 3.6e6 * LOCAL_USD_PER_HOUR}


def fixed(value: float, digits: int) -> str:
    """``value`` as JavaScript's ``toFixed`` writes it: a tie rounds away from zero (56.25 to
    1 digit is 56.3), where Python's format rounds to even (56.2)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def session_row(team: str, session: str, records: list[dict[str, Any]]) -> dict[str, str]:
    """The sessions table's row for ``records`` (one session's turns), as it should read."""
    local = sum(r["final"] == "local" for r in records)
    spend = sum(r["cost_usd"] for r in records)
    counterfactual = sum(r["counterfactual_cost_usd"] for r in records)
    saving = counterfactual - spend
    tokens = sum(r["tokens"]["prompt"] + r["tokens"]["completion"] for r in records)
    return {"Team": team, "Full id": session, "Last active": time.strftime("%Y-%m-%d", time.gmtime()),
            "Turns": str(len(records)), "Local · cloud": f"{local} · {len(records) - local}",
            "Local share": fixed(100 * round(local / len(records), 4), 1) + "%",
            "Tokens": f"{tokens:,}", "Cost": "$" + fixed(spend, 4),
            "All-cloud": "$" + fixed(counterfactual, 4),
            "Saving": f"${fixed(saving, 4)} ({fixed(round(100 * saving / counterfactual, 2), 1)}%)"}


def assert_sessions(tab: Tab, sessions: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """The table lists exactly ``sessions``, each with its figures, the costliest first."""
    shown = tab.sessions()
    assert {(row["Team"], row["Full id"]): {k: v for k, v in row.items() if k != "Session"}
            for row in shown} == {name: session_row(*name, records)
                                  for name, records in sessions.items()}
    costs = [float(row["Cost"].lstrip("$")) for row in shown]
    assert costs == sorted(costs, reverse=True)
    assert tab.page.is_hidden("#sessions-empty") and tab.page.is_hidden("#sessions-more")
    turns = sum(len(records) for records in sessions.values())
    assert tab.page.inner_text("#sessions-summary").startswith(
        f"{len(sessions)} session{'s' if len(sessions) > 1 else ''} · {turns} turns · ")


def assert_tiles(tab: Tab, want: dict[str, float]) -> None:
    assert tab.tile("tasks") == want["tasks"]
    assert tab.tile_text("tasks") == str(int(want["tasks"]))
    assert tab.tile("local-share") == pytest.approx(want["local_share"], abs=1e-4)
    assert tab.tile_text("local-share") == fixed(100 * want["local_share"], 1) + "%"
    assert tab.tile("spend") == pytest.approx(want["spend"], rel=1e-4, abs=1e-6)
    assert tab.tile_text("spend") == "$" + fixed(want["spend"], 4)
    assert tab.tile("counterfactual") == pytest.approx(want["counterfactual"], rel=1e-4, abs=1e-6)
    assert tab.tile("savings") == pytest.approx(want["savings"], rel=1e-4, abs=1e-6)
    assert tab.tile("savings", "pct") == pytest.approx(want["savings_pct"], abs=0.01)
    assert tab.tile("escalation") == pytest.approx(want["escalation"], abs=1e-4)
    assert tab.tile("wasted", "tokens") == want["wasted_tokens"]
    assert tab.tile("wasted") == pytest.approx(want["wasted_usd"], rel=1e-3, abs=1e-6)


def test_the_seeded_totals_and_every_chart_show_for_the_admin_key(seeded: Seeded,
                                                                   tab: Tab) -> None:
    records = seeded.all()
    assert {r["reason"] for r in records} >= {"confident", "low_confidence", "forced",
                                               "multi_file"}  # the seed did what it meant
    tab.open(seeded.url, "#period=7")
    tab.sign_in(ADMIN)
    want = expected(records)
    assert want["spend"] > 0 and want["local"] >= 5  # both tiers ran, the cloud really priced
    assert_tiles(tab, want)
    team_budget = tab.page.get_attribute("#tile-budget", "data-budget")
    assert float(team_budget) == pytest.approx(TEAM_BUDGET_USD)
    payments_cloud = sum(r["cost_usd"] for r in seeded.all("payments"))
    assert tab.tile("budget") == pytest.approx(payments_cloud, rel=1e-4, abs=1e-6)

    spend, counterfactual = tab.chart("chart-spend")
    assert len(spend["x"]) == 7 and tab.drawn_points("chart-spend") == 14  # 7 days, 2 lines
    assert sum(spend["y"]) == pytest.approx(want["spend"], rel=1e-4, abs=1e-6)
    assert sum(counterfactual["y"]) == pytest.approx(want["counterfactual"], rel=1e-4, abs=1e-6)

    local, cloud, escalated = tab.chart("chart-counts")
    assert sum(local["y"]) == want["local"]
    assert sum(escalated["y"]) == sum(r["escalated"] for r in records)
    assert sum(cloud["y"]) == sum(r["final"] == "cloud" and not r["escalated"] for r in records)

    (reasons,) = tab.chart("chart-reasons")
    by_reason = Counter(r["reason"] for r in records)
    assert sorted(reasons["x"]) == sorted(by_reason.values())
    assert tab.drawn_points("chart-reasons") == len(by_reason)

    latency = tab.chart("chart-latency")
    assert {t["name"] for t in latency} == {r["final"] for r in records}
    for trace in latency:
        assert sum(trace["y"]) == sum(r["final"] == trace["name"] for r in records)

    kept, escalated_conf = tab.chart("chart-confidence")
    scored = [r for r in records if r["confidence"] is not None]
    assert sum(kept["y"]) == sum(r["final"] == "local" for r in scored)
    assert sum(escalated_conf["y"]) == sum(bool(r["escalated"]) for r in scored)
    threshold = records[0]["threshold"]
    kept_bins = [x for x, n in zip(kept["x"], kept["y"], strict=True) if n]
    escalated_bins = [x for x, n in zip(escalated_conf["x"], escalated_conf["y"], strict=True) if n]
    assert min(kept_bins) > threshold > max(escalated_bins)  # the picture that shows the cut
    for chart in CHARTS:
        assert tab.drawn_points(chart) > 0, chart

    rows = tab.page.locator("#tasks tbody tr")
    assert rows.count() == min(10, len(records))
    assert ADMIN not in tab.page.url
    assert tab.page.evaluate("localStorage.length") == 0  # the key stays in this tab only
    tab.shot("admin")
    out = os.environ.get("DASHBOARD_SCREENSHOT")
    if out:
        tab.page.screenshot(path=str(REPO / out))
    tab.assert_clean()


def test_agent_sessions_show_their_turns_local_and_cloud_and_costs(seeded: Seeded,
                                                                    tab: Tab) -> None:
    sessions = seeded.sessions
    routes = {r["final"] for records in sessions.values() for r in records}
    assert routes == {"local", "cloud"}  # the seed served turns on both tiers
    assert sum(r["cost_usd"] for records in sessions.values() for r in records) > 0
    tab.open(seeded.url, "#period=7")
    tab.sign_in(ADMIN)
    assert_sessions(tab, sessions)
    shown = {row["Full id"]: row["Session"] for row in tab.sessions()}
    assert shown[CLAUDE] == "1b9d6bcd-bbfd…bd4bed"  # a long id shortened; its title is whole
    assert shown["opencode-session-0042"] == "opencode-session-0042"
    # The team filter narrows the sessions too; the route filter cannot (not kept per route).
    tab.page.select_option("#f-team", "search")
    tab.refreshed()
    assert_sessions(tab, {k: v for k, v in sessions.items() if k[0] == "search"})
    tab.page.select_option("#f-route", "local")
    tab.refreshed()
    assert_sessions(tab, {k: v for k, v in sessions.items() if k[0] == "search"})
    assert "every route" in tab.page.inner_text("#sessions-summary")
    # Two changes in a row (the second while the first's refresh runs) end on the second's.
    tab.page.select_option("#f-route", "")
    tab.page.select_option("#f-team", "")
    tab.refreshed()
    assert_sessions(tab, sessions)
    tab.page.locator("#agents").scroll_into_view_if_needed()
    tab.shot("sessions")
    tab.assert_clean()


def test_the_sessions_table_lists_the_costliest_50_and_counts_the_rest(many: str,
                                                                         tab: Tab) -> None:
    tab.open(many)
    tab.sign_in(ADMIN)
    shown = tab.sessions()
    assert [row["Session"] for row in shown] == [f"s-{n:02d}" for n in range(MANY, MANY - 50, -1)]
    assert shown[0]["Cost"] == f"${MANY / 100:.4f}" and shown[0]["Local · cloud"] == "0 · 1"
    assert tab.page.inner_text("#sessions-more") == (
        f"the 50 costliest shown; {MANY - 50} more sessions not shown")
    spent = sum(range(1, MANY + 1)) / 100
    assert tab.page.inner_text("#sessions-summary") == (
        f"{MANY} sessions · {MANY} turns · 0.0% served locally · ${fixed(spent, 4)} spent · "
        f"all-cloud ${fixed(spent, 4)} · saved $0.0000")
    tab.assert_clean()


def test_the_team_filter_changes_the_numbers_and_lives_in_the_url(seeded: Seeded,
                                                                    tab: Tab) -> None:
    tab.open(seeded.url)
    tab.sign_in(ADMIN)
    everyone = tab.tile("tasks")
    tab.page.select_option("#f-team", "search")
    tab.refreshed()
    assert tab.tile("tasks") == len(seeded.all("search")) < everyone
    assert_tiles(tab, expected(seeded.all("search")))
    assert "team=search" in tab.page.url
    assert tab.page.get_attribute("#tile-budget", "data-budget") == "0"  # search has none
    assert {tab.page.inner_text(f"#tasks tbody tr:nth-child({i + 1}) td:nth-child(2)")
            for i in range(tab.page.locator("#tasks tbody tr").count())} == {"search"}
    tab.page.select_option("#f-route", "local")
    tab.refreshed()
    assert tab.tile("tasks") == sum(r["final"] == "local" for r in seeded.all("search"))
    # A shared link opens the same view; the key survives a reload in this tab.
    shared = tab.page.url
    tab.page.goto(shared)
    tab.page.reload()
    tab.wait_state("loaded")
    assert tab.page.input_value("#f-team") == "search"
    assert tab.tile("tasks") == sum(r["final"] == "local" for r in seeded.all("search"))
    tab.shot("team-search-local")
    tab.assert_clean()


def test_a_team_key_sees_only_its_team(seeded: Seeded, tab: Tab) -> None:
    tab.open(seeded.url)
    tab.sign_in(seeded.keys["payments"])
    assert tab.page.is_disabled("#f-team")
    assert tab.page.inner_text("#who") == "team payments"
    assert_tiles(tab, expected(seeded.all("payments")))
    assert_sessions(tab, {k: v for k, v in seeded.sessions.items() if k[0] == "payments"})
    assert seeded.keys["payments"] not in tab.page.url
    tab.assert_clean()


def test_a_row_opens_its_route_record(seeded: Seeded, tab: Tab) -> None:
    tab.open(seeded.url)
    tab.sign_in(ADMIN)
    newest = seeded.all("search")[-1]  # the last request seeded: the newest row
    row = tab.page.locator("#tasks tbody tr").first
    assert row.locator("td").nth(1).inner_text() == "search"
    row.click()
    tab.page.wait_for_selector("#record[open]")
    text = tab.page.inner_text("#record-json")
    assert f'"reason": "{newest["reason"]}"' in text and '"signals"' in text
    assert f'"confidence": {newest["confidence"]}' in text
    assert "threshold" in tab.page.inner_text("#record-summary")
    tab.shot("route-record")
    tab.page.click("#record-close")
    assert not tab.page.is_visible("#record")
    tab.assert_clean()


def test_no_key_or_a_wrong_key_shows_the_sign_in_and_no_data(seeded: Seeded, tab: Tab) -> None:
    asked: list[str] = []
    tab.page.on("request", lambda r: asked.append(r.url) if "/v1/" in r.url else None)
    tab.open(seeded.url)
    tab.wait_state("signed-out")
    assert tab.page.is_visible("#signin") and not tab.page.is_visible("#dashboard")
    tab.sign_in("sk-sc-not-a-real-key-000000", expect="")
    tab.page.wait_for_selector("#signin-error:not([hidden])")
    assert "invalid" in tab.page.inner_text("#signin-error")
    assert not tab.page.is_visible("#dashboard")
    assert tab.page.get_attribute("#tile-tasks", "data-value") is None  # nothing was shown
    assert asked == []  # and no data was asked for
    assert tab.page.evaluate("sessionStorage.length") == 0
    tab.shot("wrong-key")
    tab.assert_clean()


def test_an_empty_ledger_shows_zeros_and_no_data_yet(empty: str, tab: Tab) -> None:
    tab.open(empty)
    tab.sign_in(ADMIN, expect="empty")
    for name in ("tasks", "spend", "counterfactual", "savings", "local-share", "escalation"):
        assert tab.tile(name) == 0, name
    assert tab.tile_text("tasks") == "0"
    for chart in CHARTS:
        assert tab.page.inner_text(f"#{chart}") == "no data yet"
    assert tab.page.is_visible("#tasks-empty")
    assert tab.page.inner_text("#sessions-empty") == "no agent sessions in this period"
    assert tab.sessions() == [] and tab.page.inner_text("#sessions-summary") == ""
    tab.shot("empty")
    tab.assert_clean()


def test_it_refreshes_on_its_own_without_reloading(empty: str, tab: Tab) -> None:
    tab.open(empty)
    tab.sign_in(ADMIN, expect="")
    tab.page.wait_for_selector("body[data-state]:not([data-state=signed-out])")
    before = tab.tile("tasks")
    tab.page.evaluate("window.sameDocument = true")
    key = create_key(empty, "late")
    chat(empty, key)
    tab.page.wait_for_function("n => Number(document.querySelector('#tile-tasks').dataset.value)"
                               " === n", arg=before + 1, timeout=30_000)
    assert tab.page.evaluate("window.sameDocument") is True  # no reload happened
    tab.assert_clean()


def test_it_fits_a_phone(seeded: Seeded, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        tab = Tab(page, problems)
        tab.open(seeded.url)
        tab.sign_in(ADMIN)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        width = page.evaluate("document.getElementById('chart-spend').getBoundingClientRect().width")
        assert 300 <= width <= 390
        tab.shot("phone")
        tab.assert_clean()
    finally:
        context.close()
