"""llama.cpp's llama-server as the local tier (built by `make llama-server`): concurrent
requests keep their logprobs, and `smallcode serve` starts and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from agents import llama_server, model_store
from agents.base import GenerationRequest, Message
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from tests.conftest import free_port
from tests.helpers import wait_until_ok

REPO = Path(__file__).resolve().parents[2]


def test_concurrent_requests_all_keep_their_logprobs(model_cache: Path) -> None:
    config = LocalConfig(model="smollm2-135m", n_ctx=1024, server_parallel=4,
                         server_port=free_port())
    path = model_cache / model_store.MODELS["smollm2-135m"].filename
    with llama_server.start(config, path, alias="smollm2-135m") as server:
        backend = RemoteLocalBackend(config.model_copy(
            update={"mode": "server", "server_url": server.base_url}))
        try:
            def one(i: int) -> bool:
                request = GenerationRequest(
                    messages=(Message("user", f"Task {i}: write a Python function."),),
                    max_tokens=32)
                return bool(backend.generate(request).logprobs)

            # More requests than slots, back to back. A connection llama-server dropped used
            # to read as "this server refuses logprobs" and switched them off for good.
            with ThreadPoolExecutor(4) as pool:
                assert all(pool.map(one, range(12)))
            assert backend.supports_logprobs is True
        finally:
            backend.close()


def test_serve_starts_llama_server_when_local_mode_is_server(model_cache: Path,
                                                              tmp_path: Path) -> None:
    api_port, local_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_SERVER__PORT": str(api_port), "SMALLCODE_LOCAL__MODE": "server",
                "SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "1024",
                "SMALLCODE_LOCAL__SERVER_PARALLEL": "2",
                "SMALLCODE_LOCAL__SERVER_PORT": str(local_port),
                "SMALLCODE_AUTH__ENABLED": "false", "SMALLCODE_DATA_DIR": str(tmp_path)})
    process = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve", "--no-standin"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_until_ok(f"http://127.0.0.1:{api_port}/readyz", process)
        reply = httpx.post(f"http://127.0.0.1:{api_port}/v1/chat/completions", timeout=120,
                           json={"model": "local", "max_tokens": 8, "logprobs": True,
                                 "messages": [{"role": "user", "content": "Say hi."}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["logprobs"]["content"]
        assert httpx.get(f"http://127.0.0.1:{local_port}/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    time.sleep(0.5)
    try:
        httpx.get(f"http://127.0.0.1:{local_port}/health", timeout=2)
        raise AssertionError("llama-server outlived serve")
    except httpx.ConnectError:
        pass
