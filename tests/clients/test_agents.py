"""The coding agents teams deploy, the real clients at pinned versions from npm, each fixing a
one-line bug in a scratch repository through the service with a team key, configured as the
README shows (:mod:`router.bench.agent_clients`):

- Claude Code (``claude -p``), through ``POST /v1/messages``, its key as ``x-api-key``;
- Codex CLI (``codex exec``), through ``POST /v1/responses``, its key as a Bearer token;
- opencode (``opencode run``), through ``POST /v1/chat/completions`` with tools;
- Continue's CLI (``cn -p``, its agent mode headless, a local config file: no hub login), through
  ``POST /v1/chat/completions`` with tools, its key as a Bearer token.

The cloud is a scripted OpenAI-compatible server on loopback (router/bench/scripted_cloud.py)
that answers with tool calls, as a capable model would; the local tier is the in-process
SmolLM2, which cannot call tools, so every turn is routed to the cloud (reason ``tools``, or
``context`` where the client's prompt overflows the local window). Each turn is a routed task
with its own ledger entry under the key's team, grouped by the client's session.

The tests skip only when the clients cannot be installed because npm's registry is
unreachable.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.bench import agent_clients
from router.bench.scripted_cloud import Recorded, fix_one_line, scripted_cloud
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

pytestmark = pytest.mark.slow

ADMIN = "agents-admin-key-0123456789abcdef"
TASK = "Fix the bug in calc.py: add must return a + b."
OLD, NEW = "    return a - b", "    return a + b"


def _registry_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://registry.npmjs.org/opencode-ai", timeout=15):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def clients() -> Path:
    try:
        return agent_clients.install()
    except agent_clients.InstallFailed as failed:
        if not _registry_reachable():
            pytest.skip("the agent clients could not be installed: npm's registry is "
                        "unreachable")
        pytest.fail(f"scripts/agent-clients.sh failed:\n{failed}")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return agent_clients.scratch_repo(tmp_path / "repo", {"calc.py": f"def add(a, b):\n{OLD}\n"})


@pytest.fixture
def service(smol: Any, redis_url: str, scratch: Path) -> Iterator[tuple[str, str, Recorded]]:
    """The service with auth on, a team key, and a scripted cloud that fixes ``scratch``."""
    settings = Settings(redis={"url": redis_url}, admin_key=ADMIN,
                        tasks={"embedded_worker": False})
    with scripted_cloud(fix_one_line(str(scratch / "calc.py"), OLD, NEW)) as (cloud_url, seen):
        cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=cloud_url,
                                         num_retries=0, n_ctx=200_000))
        app = create_app(settings, local=smol, cloud=cloud, with_retrieval=False)
        with serving(app) as url:
            made = httpx.post(f"{url}/v1/keys", json={"team": "platform"}, timeout=30,
                              headers={"Authorization": f"Bearer {ADMIN}"})
            assert made.status_code == 201, made.text
            yield url, made.json()["key"], seen


def _turns(url: str, key: str, source: str) -> list[dict[str, Any]]:
    """The ledger entries of the key's team that came by ``source`` (the API)."""
    found = httpx.get(f"{url}/v1/usage/entries", params={"limit": 500}, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})
    assert found.status_code == 200, found.text
    return [e for e in found.json()["data"] if e["source"] == source]


def _fixed(scratch: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (scratch / "calc.py").read_text() == f"def add(a, b):\n{NEW}\n", done.stdout[-2000:]


def _run(client: str, clients: Path, service: tuple[str, str, Recorded], scratch: Path,
         tmp_path: Path) -> subprocess.CompletedProcess[str]:
    url, key, _ = service
    return agent_clients.run(client, bin_dir=clients, url=url, key=key, repo=scratch,
                             home=tmp_path / "home", task=TASK)


def test_claude_code_fixes_the_bug_through_the_messages_api(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    _fixed(scratch, _run("claude", clients, service, scratch, tmp_path))
    url, key, seen = service
    # Read, Edit, then the answer: three turns at least, each routed and recorded.
    assert len(seen.bodies) >= 3
    assert {t["function"]["name"] for t in seen.bodies[0]["tools"]} >= {"Read", "Edit", "Bash"}
    turns = _turns(url, key, "messages")
    assert len(turns) >= 3 and {t["team"] for t in turns} == {"platform"}
    assert len({t["session"] for t in turns}) == 1  # one session: the client's own id


def test_codex_fixes_the_bug_through_the_responses_api(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    _fixed(scratch, _run("codex", clients, service, scratch, tmp_path))
    url, key, seen = service
    # The hosted web_search tool stayed here: only function tools reached the cloud.
    assert all(t["type"] == "function" for t in seen.bodies[0]["tools"])
    assert len(_turns(url, key, "responses")) >= 2


def test_opencode_fixes_the_bug_through_the_chat_api_with_tools(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    _fixed(scratch, _run("opencode", clients, service, scratch, tmp_path))
    url, key, _ = service
    assert len(_turns(url, key, "chat")) >= 2


def test_continue_fixes_the_bug_through_the_chat_api_with_tools(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    _fixed(scratch, _run("continue", clients, service, scratch, tmp_path))
    url, key, seen = service
    # Its own read and edit tools (Edit offered by --allow Edit), then the answer.
    assert {t["function"]["name"] for t in seen.bodies[0]["tools"]} >= {"Read", "Edit", "Bash"}
    called = [c["function"]["name"] for m in seen.bodies[-1]["messages"]
              for c in m.get("tool_calls") or []]
    assert called == ["Read", "Edit"]
    turns = _turns(url, key, "chat")
    assert len(turns) >= 3 and {t["team"] for t in turns} == {"platform"}
    assert len({t["session"] for t in turns}) == 1
