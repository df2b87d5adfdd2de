"""`smallcode serve`: starts the stand-in and the API; Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def test_serve_answers_both_tiers_and_ctrl_c_stops_all(model_cache, tmp_path: Path) -> None:
    api_port, standin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({
        "SMALLCODE_SERVER__PORT": str(api_port),
        "SMALLCODE_STANDIN__PORT": str(standin_port),
        "SMALLCODE_STANDIN__N_CTX": "2048",
        "SMALLCODE_CLOUD__API_BASE": f"http://127.0.0.1:{standin_port}/v1",
        "SMALLCODE_LOCAL__MODEL": "smollm2-135m",
        "SMALLCODE_AUTH__ENABLED": "false",
        "SMALLCODE_DATA_DIR": str(tmp_path),
    })
    process = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve"], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{api_port}/healthz", process)
        for model in ("local", "cloud"):
            response = httpx.post(
                f"http://127.0.0.1:{api_port}/v1/chat/completions", timeout=120,
                json={"model": model, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "Say hello."}]})
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"]
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    # the stand-in it started is gone too
    try:
        httpx.get(f"http://127.0.0.1:{standin_port}/v1/models", timeout=2)
        raise AssertionError("the stand-in still answers after Ctrl-C")
    except httpx.ConnectError:
        pass
