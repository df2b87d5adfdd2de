"""The coding agents teams deploy, the real clients at pinned versions from npm, each fixing a
one-line bug in a scratch repository through the service with a team key, as a new user
would configure them (README, "Coding agents"):

- Claude Code (``claude -p``), through ``POST /v1/messages``, its key as ``x-api-key``;
- Codex CLI (``codex exec``), through ``POST /v1/responses``, its key as a Bearer token;
- opencode (``opencode run``), through ``POST /v1/chat/completions`` with tools.

The cloud is a scripted OpenAI-compatible server on loopback (tests/scripted_cloud.py) that
answers with tool calls, as a capable model would; the local tier is the in-process SmolLM2,
which cannot call tools, so every turn is routed to the cloud (reason ``tools``, or
``context`` where the client's prompt overflows the local window). Each turn is a routed task
with its own ledger entry under the key's team, grouped by the client's session.

The clients are installed by ``scripts/agent-clients.sh`` into a folder cached outside the
clone. The tests skip only when that install fails because npm's registry is unreachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving
from tests.scripted_cloud import Recorded, fix_one_line, scripted_cloud

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ADMIN = "agents-admin-key-0123456789abcdef"
TASK = "Fix the bug in calc.py: add must return a + b."
OLD, NEW = "    return a - b", "    return a + b"
CLIENT_TIMEOUT_S = 300


def _registry_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://registry.npmjs.org/opencode-ai", timeout=15):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def clients() -> Path:
    installed = subprocess.run(["bash", str(REPO / "scripts" / "agent-clients.sh")],
                               capture_output=True, text=True, timeout=1800)
    if installed.returncode != 0:
        if not _registry_reachable():
            pytest.skip("the agent clients could not be installed: npm's registry is "
                        "unreachable")
        pytest.fail(f"scripts/agent-clients.sh failed:\n{installed.stderr[-3000:]}")
    return Path(installed.stdout.strip().splitlines()[-1])


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(f"def add(a, b):\n{OLD}\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


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


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    # PWD too: opencode takes its project directory from it, not from the process's cwd.
    return subprocess.run(command, cwd=cwd, env={**base, "PWD": str(cwd), **env},
                          capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def _turns(url: str, key: str, source: str) -> list[dict[str, Any]]:
    """The ledger entries of the key's team that came by ``source`` (the API)."""
    found = httpx.get(f"{url}/v1/usage/entries", params={"limit": 500}, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})
    assert found.status_code == 200, found.text
    return [e for e in found.json()["data"] if e["source"] == source]


def _fixed(scratch: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (scratch / "calc.py").read_text() == f"def add(a, b):\n{NEW}\n", done.stdout[-2000:]


def test_claude_code_fixes_the_bug_through_the_messages_api(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    url, key, seen = service
    done = _run([str(clients / "claude"), "-p", TASK, "--model", "claude-sonnet-5-5",
                 "--permission-mode", "acceptEdits"], scratch,
                {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": key,
                 "HOME": str(tmp_path / "home"), "DISABLE_TELEMETRY": "1",
                 "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    _fixed(scratch, done)
    # Read, Edit, then the answer: three turns at least, each routed and recorded.
    assert len(seen.bodies) >= 3
    assert {t["function"]["name"] for t in seen.bodies[0]["tools"]} >= {"Read", "Edit", "Bash"}
    turns = _turns(url, key, "messages")
    assert len(turns) >= 3 and {t["team"] for t in turns} == {"platform"}


def test_codex_fixes_the_bug_through_the_responses_api(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    url, key, seen = service
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-5-codex"\nmodel_provider = "smallcode"\n\n'
        "[model_providers.smallcode]\n"
        'name = "SmallCode Router"\n'
        f'base_url = "{url}/v1"\n'
        'env_key = "SMALLCODE_API_KEY"\n'
        'wire_api = "responses"\n')
    done = _run([str(clients / "codex"), "exec", "--skip-git-repo-check",
                 "--dangerously-bypass-approvals-and-sandbox", TASK], scratch,
                {"CODEX_HOME": str(home), "SMALLCODE_API_KEY": key,
                 "HOME": str(tmp_path / "home")})
    _fixed(scratch, done)
    # The hosted web_search tool stayed here: only function tools reached the cloud.
    assert all(t["type"] == "function" for t in seen.bodies[0]["tools"])
    assert len(_turns(url, key, "responses")) >= 2


def test_opencode_fixes_the_bug_through_the_chat_api_with_tools(
        clients: Path, scratch: Path, service: tuple[str, str, Recorded],
        tmp_path: Path) -> None:
    url, key, _ = service
    (scratch / "opencode.json").write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "provider": {"sc": {"npm": "@ai-sdk/openai-compatible", "name": "SmallCode Router",
                            "options": {"baseURL": f"{url}/v1", "apiKey": key},
                            "models": {"auto": {"name": "auto"}}}},
        "model": "sc/auto", "small_model": "sc/auto"}))
    done = _run([str(clients / "opencode"), "run", "-m", "sc/auto", TASK], scratch,
                {"HOME": str(tmp_path / "home"), "OPENCODE_DISABLE_AUTOUPDATE": "1"})
    _fixed(scratch, done)
    assert len(_turns(url, key, "chat")) >= 2
