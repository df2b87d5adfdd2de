"""llama.cpp's own ``llama-server`` as the local tier for many users at once: parallel slots
with continuous batching, where the in-process model serves one request at a time behind its
lock. ``make llama-server`` (scripts/build-llama-server.sh) builds it from the llama.cpp source
in the pinned llama-cpp-python sdist; ``smallcode serve`` starts it when ``local.mode`` is
``server`` and no ``local.server_url`` is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from agents.config import LocalConfig
from agents.errors import BackendMisconfigured
from agents.standin import Standin, port_problem, wait_ready

HOST = "127.0.0.1"


def cache_dir() -> Path:
    root = os.environ.get("SMALLCODE_LLAMA_SERVER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smallcode",
        "llama-server")
    return Path(root)


def find_binary(explicit: str | None) -> Path:
    """The llama-server to run: the configured one, one on PATH, or the newest built one."""
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BackendMisconfigured(f"local.llama_server {explicit} is not an executable file")
        return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(cache_dir().glob("*/bin/llama-server"), key=lambda p: p.stat().st_mtime)
    if built:
        return built[-1]
    raise BackendMisconfigured("llama-server is not built: run `make llama-server` (a few "
                               "minutes, once), or set local.server_url to a running server")


def command(binary: Path, config: LocalConfig, model_path: Path, *, alias: str,
            port: int) -> list[str]:
    """Its command line: each of ``server_parallel`` slots gets the full ``n_ctx`` window."""
    return [
        sys.executable, "-m", "agents.dies_with_parent", str(os.getpid()), str(binary),
        "--model", str(model_path), "--alias", alias, "--host", HOST, "--port", str(port),
        "--parallel", str(config.server_parallel),
        "--ctx-size", str(config.n_ctx * config.server_parallel),
        "--threads", str(config.n_threads), "--threads-batch", str(config.n_threads),
        "--batch-size", str(config.n_batch), "--no-webui", "--log-disable",
    ]


def start(config: LocalConfig, model_path: Path, *, alias: str, timeout_s: float = 120.0,
          quiet: bool = True) -> Standin:
    """Start llama-server on ``local.server_port`` and wait until it answers."""
    binary = find_binary(config.llama_server)
    port = config.server_port
    problem = port_problem(HOST, port)
    if problem:
        raise BackendMisconfigured(f"llama-server cannot listen on {HOST}:{port} ({problem}): "
                                   "choose another local.server_port")
    out = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(command(binary, config, model_path, alias=alias, port=port),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server = Standin(process, f"http://{HOST}:{port}/v1")
    try:
        wait_ready(server.base_url, process, timeout_s, what="llama-server")
    except BaseException:
        server.stop()
        raise
    return server
