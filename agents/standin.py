"""The offline cloud stand-in: llama-cpp-python's OpenAI-compatible server on loopback.

It serves the 1.5B coder so that the cloud tier is exercised through litellm over real HTTP.
The server's own defaults (one thread, logits for every token) cost speed; both are set here.
Its ``interrupt_requests`` default cuts a running stream short (an unfinished HTTP body)
whenever another request waits for the model: no provider does that, and callers saw it as
the provider failing (``BackendUnavailable``, then an open breaker) as soon as two cloud calls
overlapped. The stand-in turns it off: overlapping calls wait their turn, each answered whole.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from agents.config import StandinConfig
from agents.errors import BackendUnavailable


class Standin:
    """A running stand-in server; ``stop()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Standin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def base_url(config: StandinConfig) -> str:
    return f"http://{config.host}:{config.port}/v1"


def port_problem(host: str, port: int) -> str | None:
    """Why a server cannot listen on host:port (the OS's words), or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or type(exc).__name__
    return None


def command(config: StandinConfig, model_path: Path, *, alias: str) -> list[str]:
    """The server's command line, run so that it stops when this process dies."""
    return [
        sys.executable, "-m", "agents.dies_with_parent", str(os.getpid()),
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", config.host,
        "--port", str(config.port),
        "--n_ctx", str(config.n_ctx),
        "--n_threads", str(config.n_threads),
        "--n_threads_batch", str(config.n_threads),
        "--logits_all", "False",
        "--interrupt_requests", "False",  # queue overlapping calls, never cut one short
    ]


def wait_ready(base_url: str, process: subprocess.Popen[bytes] | None, timeout_s: float,
               what: str = "the stand-in") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BackendUnavailable(
                f"{what} exited with code {process.returncode} before answering at "
                f"{base_url}; is its port free and the model pulled (`smallcode models pull`)?"
            )
        try:
            answered = httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            answered = False
        # Whatever answered, it was not ours if ours has gone.
        if answered and (process is None or process.poll() is None):
            return
        time.sleep(0.25)
    raise BackendUnavailable(f"{what} at {base_url} did not answer within {timeout_s:.0f}s")


def start(config: StandinConfig, model_path: Path, *, alias: str, quiet: bool = True) -> Standin:
    """Start the server and wait until it answers; refuse a port something else holds."""
    problem = port_problem(config.host, config.port)
    if problem:
        raise BackendUnavailable(
            f"the stand-in cannot listen on {config.host}:{config.port} ({problem}): stop what "
            "holds the port, or choose another with standin.port (SMALLCODE_STANDIN__PORT) "
            "and point cloud.api_base at it"
        )
    out = subprocess.DEVNULL if quiet else None
    # Its own process group: a terminal's Ctrl-C reaches serve, which stops it after the
    # requests it serves are done.
    process = subprocess.Popen(command(config, model_path, alias=alias), stdout=out, stderr=out,
                               start_new_session=True)
    standin = Standin(process, base_url(config))
    try:
        wait_ready(standin.base_url, process, config.start_timeout_s)
    except BaseException:
        standin.stop()
        raise
    return standin
