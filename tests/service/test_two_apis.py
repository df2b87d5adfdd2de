"""Two API processes (`smallcode serve`, real subprocesses) on one Redis: a key's rate limit
and budget hold across both, and the usage either one reports counts the requests of both."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agents.cloud import price
from tests.conftest import free_port
from tests.helpers import wait_until_ok

REPO = Path(__file__).resolve().parents[2]
ADMIN = "two-apis-admin-key-0123456789"
ASK = [{"role": "user", "content": "Reply with the word hi and nothing else."}]


@pytest.fixture(scope="module")
def apis(model_cache, valkey_server, standin_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    urls, processes = [], []
    for i in range(2):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
        env.update({
            "SMALLCODE_SERVER__PORT": str(port), "SMALLCODE_REDIS__URL": valkey_server.url,
            "SMALLCODE_REDIS__PREFIX": "two-apis", "SMALLCODE_ADMIN_KEY": ADMIN,
            "SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "2048",
            "SMALLCODE_CLOUD__API_BASE": standin_url, "SMALLCODE_CLOUD__NUM_RETRIES": "0",
            "SMALLCODE_DATA_DIR": str(tmp_path_factory.mktemp(f"api{i}")),
        })
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "router.cli.main", "serve", "--no-standin"], cwd=REPO,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_until_ok(f"{url}/readyz", process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def key(url: str, **fields: object) -> str:
    response = httpx.post(f"{url}/v1/keys", json=fields, timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def chat(url: str, secret: str, model: str = "local", max_tokens: int = 2) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=180,
                      headers={"Authorization": f"Bearer {secret}"},
                      json={"model": model, "messages": ASK, "max_tokens": max_tokens})


def test_a_rate_limit_holds_across_two_api_processes(apis: list[str]) -> None:
    secret = key(apis[0], team="shared", rpm=3)
    codes = [chat(apis[i % 2], secret).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    usage = httpx.get(f"{apis[1]}/v1/usage", headers={"Authorization": f"Bearer {secret}"},
                      timeout=30).json()
    assert usage["totals"]["tasks"] == 3  # served by both, counted by either


def test_a_budget_holds_across_two_api_processes(apis: list[str]) -> None:
    max_tokens = 2000
    worst = price("claude-sonnet-4-5", 0, max_tokens)
    secret = key(apis[1], team="shared-budget", budget_usd=worst * 1.5, period="day")
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: chat(apis[i % 2], secret, "cloud", max_tokens).status_code,
                              range(6)))
    assert sorted(codes) == [200] + [429] * 5
