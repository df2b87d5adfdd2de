"""A team's ``model_routes``: the model names its clients send, routed per team before
``models.aliases`` (Claude Code's small, fast model kept local, its main model sent straight
to the cloud), listed by ``/v1/models`` for that team's keys, and checked at start-up.

The local tier is the in-process SmolLM2; the cloud is the scripted server on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from policies.config import PoliciesConfig
from router.bench.scripted_cloud import Recorded
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

ADMIN = "sk-admin-model-routes"
AGENTS = {"model_routes": {"claude-haiku-*": "local", "claude-sonnet-*": "cloud",
                           "title-model": "local"}}


@pytest.fixture(scope="module")
def service(smol: Any, valkey_server: Any,
            agent_cloud: tuple[str, Recorded]) -> Iterator[tuple[str, dict[str, str]]]:
    settings = Settings(redis={"url": valkey_server.url, "prefix": "model-routes"},
                        admin_key=ADMIN, tasks={"embedded_worker": False},
                        policies={"teams": {"agents": AGENTS}})
    cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=agent_cloud[0],
                                     num_retries=0))
    with serving(create_app(settings, local=smol, cloud=cloud, with_retrieval=False)) as url:
        keys = {}
        for team in ("agents", "others"):
            made = httpx.post(f"{url}/v1/keys", json={"team": team},
                              headers={"Authorization": f"Bearer {ADMIN}"})
            assert made.status_code == 201, made.text
            keys[team] = made.json()["key"]
        yield url, keys


def _ask(url: str, key: str, model: str) -> dict[str, Any]:
    """A Claude Code background request (a title for the session: no tools)."""
    response = httpx.post(f"{url}/v1/messages", timeout=120, headers={
        "x-api-key": key, "anthropic-version": "2023-06-01"}, json={
        "model": model, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Write a 3-word title: fix add in calc.py"}]})
    assert response.status_code == 200, response.text
    return dict(response.json()["smallcode"]["route"])


def test_the_team_s_small_model_stays_local_and_its_main_model_goes_straight_to_the_cloud(
        service: tuple[str, dict[str, str]], agent_cloud: tuple[str, Recorded]) -> None:
    url, keys = service
    sent = len(agent_cloud[1].bodies)
    small = _ask(url, keys["agents"], "claude-haiku-4-5")
    assert small["final"] == "local" and small["reason"] == "forced"
    assert len(agent_cloud[1].bodies) == sent  # nothing left the machine
    main = _ask(url, keys["agents"], "claude-sonnet-5-5")
    assert main["final"] == "cloud" and main["reason"] == "forced"
    assert main["tokens"]["local_completion"] == 0 and not main["local_attempts"]
    assert len(agent_cloud[1].bodies) == sent + 1


def test_another_team_gets_the_aliases_routing(service: tuple[str, dict[str, str]]) -> None:
    url, keys = service
    route = _ask(url, keys["others"], "claude-haiku-4-5")  # claude-* -> auto, routed
    assert route["reason"] != "forced"
    assert route["tokens"]["local_completion"] > 0  # the local model answered first


def test_models_lists_the_team_s_own_names(service: tuple[str, dict[str, str]]) -> None:
    url, keys = service

    def names(team: str) -> list[str]:
        response = httpx.get(f"{url}/v1/models",
                             headers={"Authorization": f"Bearer {keys[team]}"})
        return [m["id"] for m in response.json()["data"]]

    assert "title-model" in names("agents") and "title-model" not in names("others")
    assert names("others")[:3] == ["auto", "local", "cloud"]


def test_a_tier_in_model_routes_needs_forced_routes_allowed() -> None:
    with pytest.raises(ValidationError) as found:
        PoliciesConfig(teams={"locked": {"allow_forced_routes": False,
                                         "model_routes": {"claude-haiku-*": "local"}}})
    assert "policies.teams.locked" in str(found.value)
    assert "model_routes" in str(found.value) and "allow_forced_routes" in str(found.value)
    # auto is no forced route: allowed
    PoliciesConfig(teams={"locked": {"allow_forced_routes": False,
                                     "model_routes": {"claude-haiku-*": "auto"}}})


def test_an_unknown_route_names_the_model_route() -> None:
    with pytest.raises(ValidationError) as found:
        PoliciesConfig(teams={"t": {"model_routes": {"claude-haiku-*": "gpu"}}})
    assert "policies.teams.t.model_routes.claude-haiku-*" in str(found.value)


def test_the_team_s_globs_match_before_the_default_s() -> None:
    policies = PoliciesConfig(default={"model_routes": {"claude-*": "cloud"}},
                              teams={"t": {"model_routes": {"claude-haiku-*": "local"}}})
    assert list(policies.for_team("t").model_routes.items()) == [
        ("claude-haiku-*", "local"), ("claude-*", "cloud")]
