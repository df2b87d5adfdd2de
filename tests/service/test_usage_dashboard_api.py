"""The JSON endpoints the dashboard (and Grafana, and scripts) read, over real HTTP on a real
Valkey (each test twice: on one server and on a three-primary cluster, where the ledger is
sharded by team): one entry with its route record, histograms of latency and confidence, budgets used
vs budget, the route filter; and the dashboard's own files and sign-in check. Scripted tiers
(fast); the browser test runs the real cloud path."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.service.app import create_app
from router.settings import Settings
from tests.conftest import Store
from tests.helpers import Scripted, serving

ADMIN = "admin-" + "u" * 24
GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
ANSWER = "```python\ndef double(x):\n    return 2 * x\n```"


class Tiers:
    def __init__(self) -> None:
        self.local = Scripted(ANSWER)
        self.cloud = Scripted("```python\ndef double(x):\n    return x * 2\n```")


@pytest.fixture
def served(store: Store) -> Iterator[tuple[str, Tiers]]:
    tiers = Tiers()
    config = Settings(redis=store.redis(prefix="usage-api"),  # type: ignore[arg-type]
                      admin_key=ADMIN, tasks={"embedded_worker": False},  # type: ignore[arg-type]
                      policies={"teams": {"alpha": {"budget_usd": 2.0,  # type: ignore[arg-type]
                                                    "budget_period": "month"}}})
    app = create_app(config, local=tiers.local, cloud=tiers.cloud, with_retrieval=False)
    with serving(app) as url:
        yield url, tiers


def key_for(url: str, team: str, **fields: Any) -> str:
    response = httpx.post(f"{url}/v1/keys", json={"team": team, **fields},
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def get(url: str, path: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {key}"})


def ask(url: str, key: str, tiers: Tiers, logprob: float) -> tuple[str, dict[str, Any]]:
    tiers.local.logprob = logprob
    response = httpx.post(f"{url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "auto", "max_tokens": 16,
                                "messages": [{"role": "user", "content": "Double a number."}]})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["id"], body["smallcode"]["route"]


def test_an_entry_opens_with_its_route_record_and_only_for_its_team(served) -> None:
    url, tiers = served
    alpha, beta = key_for(url, "alpha"), key_for(url, "beta")
    entry_id, record = ask(url, alpha, tiers, -0.01)
    mine = get(url, f"/v1/usage/entries/{entry_id}", alpha)
    assert mine.status_code == 200
    body = mine.json()
    assert body["record"] == record and body["team"] == "alpha" and body["route"] == "local"
    assert get(url, f"/v1/usage/entries/{entry_id}", ADMIN).json()["record"] == record
    theirs = get(url, f"/v1/usage/entries/{entry_id}", beta)
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert get(url, "/v1/usage/entries/chatcmpl-nothere", ADMIN).status_code == 404


def test_the_admin_key_pages_every_teams_entries_newest_first(served) -> None:
    """Each team's ledger lives on its own slot: the admin key's reads merge them, with
    the same paging as one team's, and open any team's entry by its id alone."""
    url, tiers = served
    keys = {team: key_for(url, team) for team in ("alpha", "beta", "gamma")}
    made = [ask(url, keys[team], tiers, -0.01)[0]
            for team in ("alpha", "beta", "gamma", "beta", "alpha", "gamma", "alpha")]
    seen: list[str] = []
    before = None
    while True:
        page = get(url, "/v1/usage/entries", ADMIN, limit=3,
                   **({"before": before} if before is not None else {})).json()
        seen += [e["id"] for e in page["data"]]
        times = [e["time"] for e in page["data"]]
        assert times == sorted(times, reverse=True)
        if not page["has_more"]:
            break
        before = page["next_before"]
    assert seen == made[::-1]
    for entry_id in made:
        assert get(url, f"/v1/usage/entries/{entry_id}", ADMIN).json()["record"]["final"]
    by_team = get(url, "/v1/usage", ADMIN, group_by="team").json()
    assert {row["team"]: row["tasks"] for row in by_team["data"]} == {
        "alpha": 3, "beta": 2, "gamma": 2}
    assert get(url, "/v1/usage", keys["beta"]).json()["totals"]["tasks"] == 2
    assert len(get(url, "/v1/usage/entries", keys["gamma"]).json()["data"]) == 2


def test_histograms_count_latency_per_route_and_confidence_kept_vs_escalated(served) -> None:
    url, tiers = served
    key = key_for(url, "alpha")
    made = [ask(url, key, tiers, logprob)[1] for logprob in (-0.01, -0.2, -0.3, -1.5, -2.5)]
    body = get(url, "/v1/usage/histograms", key).json()
    routes = body["latency_ms"]["routes"]
    assert sum(routes["local"]) == sum(r["final"] == "local" for r in made) == 3
    assert sum(routes["cloud"]) == 2
    assert len(body["latency_ms"]["le"]) == len(routes["local"])
    conf = body["confidence"]
    for series, wanted in (("kept", [r for r in made if r["final"] == "local"]),
                           ("escalated", [r for r in made if r["escalated"]])):
        bins = [i for i, n in enumerate(conf[series]) for _ in range(n)]
        assert bins == sorted(min(19, math.floor(r["confidence"] * 20)) for r in wanted), series
    only_local = get(url, "/v1/usage/histograms", key, route="local").json()
    assert list(only_local["latency_ms"]["routes"]) == ["local"]
    assert sum(only_local["confidence"]["escalated"]) == 0
    assert sum(get(url, "/v1/usage/histograms", key_for(url, "beta")).json()[
        "confidence"]["kept"]) == 0  # another team's answers are not in it


def test_the_route_filter_narrows_totals_and_entries(served) -> None:
    url, tiers = served
    key = key_for(url, "alpha")
    made = [ask(url, key, tiers, logprob)[1] for logprob in (-0.01, -2.0, -0.02, -3.0, -0.03)]
    for route in ("local", "cloud"):
        want = sum(r["final"] == route for r in made)
        assert get(url, "/v1/usage", key, route=route).json()["totals"]["tasks"] == want
        page = get(url, "/v1/usage/entries", key, route=route, limit=2).json()
        assert {e["route"] for e in page["data"]} == {route}
        rest = get(url, "/v1/usage/entries", key, route=route, limit=10,
                   before=page["next_before"]).json()["data"] if page["has_more"] else []
        assert len(page["data"]) + len(rest) == want
    bad = get(url, "/v1/usage", key, route="moon")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "query.route"


def test_budgets_show_used_vs_budget_for_the_team_and_the_key(served) -> None:
    url, tiers = served
    key = key_for(url, "alpha", budget_usd=1.5, period="day")
    ask(url, key, tiers, -3.0)  # escalated: the scripted cloud costs nothing
    body = get(url, "/v1/usage/budgets", key).json()
    scopes = {row["scope"]: row for row in body["data"]}
    assert scopes["team"]["team"] == "alpha" and scopes["team"]["budget_usd"] == 2.0
    assert scopes["team"]["period"] == "month" and scopes["key"]["budget_usd"] == 1.5
    assert scopes["team"]["spent_usd"] == 0 and scopes["team"]["left_usd"] == 2.0
    assert get(url, "/v1/usage/budgets", key_for(url, "beta")).json()["data"] == []
    admin = get(url, "/v1/usage/budgets", ADMIN).json()["data"]
    assert [row["team"] for row in admin] == ["alpha"]


def test_escalated_local_attempts_are_priced_at_local_usd_per_hour(store: Store) -> None:
    config = Settings(redis=store.redis(prefix="usage-price"),  # type: ignore[arg-type]
                      admin_key=ADMIN, tasks={"embedded_worker": False},  # type: ignore[arg-type]
                      usage={"local_usd_per_hour": 36.0})  # type: ignore[arg-type]
    tiers = Tiers()
    app = create_app(config, local=tiers.local, cloud=tiers.cloud, with_retrieval=False)
    with serving(app) as url:
        _, record = ask(url, ADMIN, tiers, -3.0)
        totals = get(url, "/v1/usage", ADMIN).json()["totals"]
    attempts = totals["escalated_local_attempts"]
    assert record["escalated"] and attempts["ms"] > 0
    assert attempts["usd"] == pytest.approx(attempts["ms"] / 3.6e6 * 36.0, rel=1e-3)


def test_the_dashboard_files_and_its_sign_in_check(served) -> None:
    url, _ = served
    page = httpx.get(f"{url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/dashboard/static/plotly.min.js" in page.text and "https://" not in page.text
    plotly = httpx.get(f"{url}/dashboard/static/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000 and b"plotly" in plotly.content[:2000].lower()
    for name in ("app.js", "style.css"):
        assert httpx.get(f"{url}/dashboard/static/{name}").status_code == 200
    missing = httpx.get(f"{url}/dashboard/static/..%2Fdashboard.py")
    assert missing.status_code == 404
    wrong = httpx.post(f"{url}/dashboard/session", headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 200 and wrong.json()["signed_in"] is False
    assert httpx.post(f"{url}/dashboard/session").json()["signed_in"] is False
    team = httpx.post(f"{url}/dashboard/session",
                      headers={"Authorization": f"Bearer {key_for(url, 'alpha')}"}).json()
    assert team["signed_in"] and team["team"] == "alpha" and team["admin"] is False
    admin = httpx.post(f"{url}/dashboard/session",
                       headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert admin["signed_in"] and admin["admin"] and admin["refresh_s"] == 5


def test_every_series_the_grafana_dashboard_queries_is_in_metrics(served) -> None:
    url, tiers = served
    ask(url, ADMIN, tiers, -0.01)
    ask(url, ADMIN, tiers, -3.0)  # an escalation, so its counter has a sample
    text = httpx.get(f"{url}/metrics").text
    served_names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    dashboard = json.loads(GRAFANA.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"smallcode_[a-z_]+", target["expr"])}
    queried |= set(re.findall(r"smallcode_[a-z_]+", json.dumps(dashboard["templating"])))
    assert len(queried) >= 8
    assert queried <= served_names, queried - served_names


def agent_turn(url: str, key: str, tiers: Tiers, logprob: float,
               session: str) -> dict[str, Any]:
    """One turn of an agent's session on the Messages API (Claude Code's session header)."""
    tiers.local.logprob = logprob
    response = httpx.post(f"{url}/v1/messages", timeout=60,
                          headers={"x-api-key": key, "x-session-id": session},
                          json={"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [
                              {"role": "user", "content": f"Double a number ({session})."}]})
    assert response.status_code == 200, response.text
    return dict(response.json()["smallcode"]["route"])


def test_sessions_come_with_their_team_costliest_first_and_bounded(store: Store) -> None:
    tiers = Tiers()
    config = Settings(redis=store.redis(prefix="usage-sessions"),  # type: ignore[arg-type]
                      admin_key=ADMIN, tasks={"embedded_worker": False})  # type: ignore[arg-type]
    app = create_app(config, local=tiers.local, cloud=tiers.cloud, with_retrieval=False)
    with serving(app) as url:
        alpha, beta = key_for(url, "alpha"), key_for(url, "beta")
        made = {("alpha", "s|1"): [agent_turn(url, alpha, tiers, lp, "s|1")
                                   for lp in (-0.01, -0.02, -3.0)],
                ("alpha", "s-2"): [agent_turn(url, alpha, tiers, -0.01, "s-2")],
                ("beta", "s|1"): [agent_turn(url, beta, tiers, lp, "s|1") for lp in (-3.0, -3.0)]}
        ask(url, alpha, tiers, -0.01)  # a chat request without a session: in no session
        every = get(url, "/v1/usage", ADMIN, group_by="session").json()
        top = get(url, "/v1/usage", ADMIN, group_by="session", limit=2).json()
        mine = get(url, "/v1/usage", beta, group_by="session").json()
        filtered = get(url, "/v1/usage", ADMIN, group_by="session", team="alpha").json()
        no_limit = get(url, "/v1/usage", ADMIN, group_by="day", limit=2)
    found = {(s["team"], s["session"]): s for s in every["data"]}
    assert set(found) == set(made)  # one id in two teams is two sessions; '|' survives
    for name, records in made.items():
        assert found[name]["tasks"] == len(records)
        assert found[name]["local"] == sum(r["final"] == "local" for r in records)
        assert found[name]["cloud"] == sum(r["final"] == "cloud" for r in records)
        assert found[name]["counterfactual_usd"] == pytest.approx(
            sum(r["counterfactual_cost_usd"] for r in records), abs=1e-6)
        assert found[name]["first_day"] == found[name]["last_day"] == every["to"]
    assert found[("beta", "s|1")]["cloud"] == 2 and found[("alpha", "s-2")]["local"] == 1
    # Costliest first: the scripted cloud costs nothing, so then the busiest.
    assert [s["tasks"] for s in every["data"]] == [3, 2, 1]
    assert every["sessions"]["count"] == 3 and every["sessions"]["tasks"] == 6
    assert every["totals"]["tasks"] == 7 and every["has_more"] is False
    assert [s["session"] for s in top["data"]] == ["s|1", "s|1"] and top["has_more"] is True
    assert top["sessions"]["count"] == 3
    assert [(s["team"], s["session"]) for s in mine["data"]] == [("beta", "s|1")]
    assert {s["team"] for s in filtered["data"]} == {"alpha"} and len(filtered["data"]) == 2
    assert no_limit.status_code == 400 and no_limit.json()["error"]["param"] == "limit"

