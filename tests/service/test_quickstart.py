"""The README's quick start, as a new user runs it: `smallcode serve` (embedded Valkey), then
`smallcode keys create` finds that Valkey by itself, and the OpenAI SDK works with the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import openai

from tests.conftest import free_port
from tests.helpers import wait_until_ok

REPO = Path(__file__).resolve().parents[2]


def test_serve_then_a_key_from_the_cli_then_the_sdk(model_cache: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_SERVER__PORT": str(port), "SMALLCODE_DATA_DIR": str(tmp_path),
                "SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "2048"})
    serve = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve", "--no-standin"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/readyz", serve)
        created = subprocess.run([sys.executable, "-m", "router.cli.main", "keys", "create",
                                  "--team", "payments", "--json"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["key"]
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key,
                           max_retries=0) as client:
            reply = client.chat.completions.create(
                model="local", max_tokens=8,
                messages=[{"role": "user", "content": "Write a Python function add(a, b)."}])
        assert reply.choices[0].message.content
        usage = subprocess.run([sys.executable, "-m", "router.cli.main", "usage", "--json"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        rows = json.loads(usage.stdout)["rows"]
        assert [(r["team"], r["tasks"]) for r in rows] == [("payments", 1)]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    assert not (tmp_path / "redis" / "url").exists()  # serve's Valkey is gone, and says so
