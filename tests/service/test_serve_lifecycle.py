"""`smallcode serve` as a real process: a taken stand-in port stops start-up with a message
naming it; SIGTERM stops every child; a killed server takes its stand-in with it. The stand-in
serves SmolLM2-135M here, to start in seconds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port
from tests.helpers import alive, children, serving

REPO = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, api_port: int, standin_port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({
        "SMALLCODE_SERVER__PORT": str(api_port),
        "SMALLCODE_STANDIN__PORT": str(standin_port),
        "SMALLCODE_STANDIN__MODEL": "smollm2-135m",
        "SMALLCODE_STANDIN__N_CTX": "1024",
        "SMALLCODE_CLOUD__API_BASE": f"http://127.0.0.1:{standin_port}/v1",
        "SMALLCODE_LOCAL__MODEL": "smollm2-135m",
        "SMALLCODE_LOCAL__N_CTX": "1024",
        "SMALLCODE_AUTH__ENABLED": "false",
        "SMALLCODE_DATA_DIR": str(tmp_path),
    })
    return subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("serve did not answer")


def test_a_taken_stand_in_port_stops_start_up_naming_it(tmp_path: Path) -> None:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "someone-else"}]})

    squatter = Starlette(routes=[Route("/v1/models", models)])  # another server on the port
    api_port = free_port()
    with serving(squatter) as url:
        taken = int(url.rsplit(":", 1)[1])
        process = serve(tmp_path, api_port, taken)
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    healthy = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2)
                    assert healthy.status_code != 200, "serve reported healthy"
                time.sleep(0.3)
        finally:
            if process.poll() is None:
                process.terminate()
            output = process.communicate(timeout=60)[0].decode()
    assert process.returncode not in (0, None), output
    assert f"127.0.0.1:{taken}" in output and "standin.port" in output, output
    assert "Traceback" not in output


def test_sigterm_stops_serve_and_every_child(model_cache, tmp_path: Path) -> None:
    api_port, standin_port = free_port(), free_port()
    process = serve(tmp_path, api_port, standin_port)
    try:
        wait_healthy(api_port, process)
        kids = children(process.pid)
        assert any("llama_cpp.server" in cmd for cmd in kids.values()), kids
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert not [cmd for pid, cmd in kids.items() if alive(pid)], "children outlived serve"


def test_a_killed_serve_takes_its_stand_in_with_it(model_cache, tmp_path: Path) -> None:
    api_port, standin_port = free_port(), free_port()
    process = serve(tmp_path, api_port, standin_port)
    try:
        wait_healthy(api_port, process)
        [standin] = [pid for pid, cmd in children(process.pid).items()
                     if "llama_cpp.server" in cmd]
    finally:
        process.kill()  # SIGKILL: no handler runs, no `with` block unwinds
        process.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while alive(standin) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(standin), "the stand-in outlived a killed serve"
