"""Helpers shared by tests: an ASGI app on a real uvicorn server in a thread, a stand-in
for a paid provider's refusals (the one thing out of reach here), speaking OpenAI's protocol,
and the scripted model tier (:class:`agents.scripted.Scripted`) for fast tests of the graph's
branches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.scripted import Scripted
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]

# Claude Code's read and edit tools as the Messages API carries them (input_schema).
CLAUDE_READ = {"name": "Read", "description": "Read a file",
               "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                                "required": ["file_path"]}}
CLAUDE_EDIT = {"name": "Edit", "description": "Replace text in a file",
               "input_schema": {"type": "object",
                                "required": ["file_path", "old_string", "new_string"],
                                "properties": {"file_path": {"type": "string"},
                                               "old_string": {"type": "string"},
                                               "new_string": {"type": "string"}}}}

__all__ = ["REPO", "Scripted", "alive", "children", "descendants", "refusing_provider", "serving",
           "silent_provider", "smallcode", "wait_until_ok"]


def smallcode(*args: str | bytes,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``smallcode`` command line from the repository root, without the caller's
    SMALLCODE_ settings (``env`` adds some)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "router.cli.main", *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=300, check=False)


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port (h11 unless ``http`` says otherwise); yield its
    base URL; stop it after."""
    port = free_port()
    options = {"log_level": "warning", "loop": "asyncio", "http": "h11", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)  # an abandoned server thread would leak its event loop


@contextmanager
def refusing_provider(status: int, kind: str) -> Iterator[str]:
    """An OpenAI-compatible endpoint that refuses every completion with ``status``, as a
    provider does (401 bad key, 429 rate limit, 400 bad request); yields its ``/v1`` URL."""

    async def refuse(_: Request) -> JSONResponse:
        return JSONResponse({"error": {"message": f"refused ({kind})", "type": kind,
                                       "param": None, "code": kind}}, status_code=status)

    app = Starlette(routes=[Route("/v1/chat/completions", refuse, methods=["POST"])])
    with serving(app) as url:
        yield f"{url}/v1"


@contextmanager
def silent_provider() -> Iterator[str]:
    """A loopback port that accepts connections and never answers; yields its ``/v1`` URL."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def wait_until_ok(url: str, process: Any, timeout_s: float = 180) -> None:
    """Poll ``url`` until it answers 200, failing early if ``process`` (a Popen) exits."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the process serving {url} exited early"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent has not collected it


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: process id → command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def worker_process(tmp_path: Path, config: dict[str, Any], name: str) -> subprocess.Popen[bytes]:
    """``smallcode worker --no-retrieval`` in its own process with ``config`` (the settings
    tree as a dict), its output in ``tmp_path/<name>.log``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli.main", "--config", str(path), "worker",
             "--no-retrieval"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
