"""`smallcode serve` in a child process, driven over its HTTP API (for `smallcode bench
concurrency --through serve`): the local tier as a client sees it, through uvicorn, the run
layer, the ledger and llama-server (serve's own, ``local.mode: server``).

Requests name ``model: local`` (the local tier asked directly: no judge, no cloud), with
``logprobs`` on as the router asks for them, each answered whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from agents.base import GenerationRequest
from agents.config import LocalConfig
from agents.llama_server import HOST, free_port

READY_TIMEOUT_S = 300.0  # loading the model into llama-server on a loaded 2-core machine
LOG_TAIL_LINES = 20


class ServeApi:
    """``smallcode serve --no-standin`` on a free loopback port, its local engine llama-server
    with ``server_parallel`` slots, auth off, data in a temporary directory; stopped (SIGTERM,
    so it stops its llama-server and Valkey) on exit."""

    def __init__(self, config: LocalConfig, *, server_parallel: int,
                 config_file: Path | None = None) -> None:
        self._config = config
        self._parallel = server_parallel
        self._config_file = config_file
        self._data = tempfile.TemporaryDirectory(prefix="smallcode-bench-serve-")
        self._log_path = Path(self._data.name) / "serve.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.url = f"http://{HOST}:{free_port()}"
        self._client = httpx.Client(timeout=600, limits=httpx.Limits(
            max_connections=64, max_keepalive_connections=0))

    def __enter__(self) -> ServeApi:
        env = dict(os.environ)  # the bench's own settings (config file, SMALLCODE_...) hold
        env.update({
            "SMALLCODE_SERVER__HOST": HOST, "SMALLCODE_SERVER__PORT": self.url.rsplit(":", 1)[1],
            "SMALLCODE_AUTH__ENABLED": "false", "SMALLCODE_DATA_DIR": self._data.name,
            # server, not auto: a machine without llama-server fails here instead of timing
            # the in-process model under the wrong name
            "SMALLCODE_LOCAL__MODE": "server", "SMALLCODE_LOCAL__MODEL": self._config.model,
            "SMALLCODE_LOCAL__N_CTX": str(self._config.n_ctx),
            "SMALLCODE_LOCAL__N_THREADS": str(self._config.n_threads),
            "SMALLCODE_LOCAL__SERVER_PARALLEL": str(self._parallel)})
        command = [sys.executable, "-m", "router.cli.main",
                   *(["--config", str(self._config_file)] if self._config_file else []),
                   "serve", "--no-standin"]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"smallcode serve exited with code {self._process.returncode}"
                                   f" before it was ready:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self._client.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"smallcode serve was not ready after {READY_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self) -> str:
        lines = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def completion_tokens(self, request: GenerationRequest) -> int:
        """One chat completion of the local tier over HTTP: its completion tokens (the answer
        must carry its logprobs)."""
        response = self._client.post(f"{self.url}/v1/chat/completions", json={
            "model": "local", "max_tokens": request.max_tokens,
            "temperature": request.temperature, "logprobs": request.logprobs,
            "top_logprobs": request.top_logprobs,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages]})
        response.raise_for_status()
        body = response.json()
        assert (body["choices"][0].get("logprobs") or {}).get("content"), "logprobs must be on"
        return int(body["usage"]["completion_tokens"])

    def close(self) -> None:
        self._client.close()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._data.cleanup()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
