"""`smallcode serve` as a real process: a taken stand-in port stops start-up with a message
naming it; SIGTERM stops every child; a killed server takes its stand-in with it. The stand-in
serves SmolLM2-135M here, to start in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from router.store import ledger
from router.store.config import RedisSettings
from router.store.connect import command_redis
from router.store.names import Names
from tests.conftest import free_port
from tests.helpers import alive, children, serving

REPO = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, api_port: int, standin_port: int, *, own_group: bool = False,
          **extra: str) -> subprocess.Popen[bytes]:
    """``smallcode serve`` as a user runs it; ``own_group``: in its own process group, as a
    terminal runs a foreground command (Ctrl-C signals the whole group)."""
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
        **extra,
    })
    return subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            process_group=0 if own_group else None)


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


def _stream(port: int, model: str, got: list[str], done: list[str]) -> None:
    """A streamed chat that counts its content chunks in ``got``; how it ended in ``done``."""
    body = {"model": model, "max_tokens": 800, "stream": True,
            "messages": [{"role": "user", "content": "Count from 1 to 900, one per line."}]}
    try:
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                          timeout=120) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    data = json.loads(line[6:])
                    if "error" in data:
                        done.append(data["error"]["code"])  # the server said why it ended
                        return
                    choices = data.get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        got.append(line)
        done.append("whole")
    except httpx.HTTPError as exc:
        done.append(f"cut: {type(exc).__name__}")


def test_ctrl_c_with_streams_in_flight_records_every_run_then_stops_the_children(
        model_cache, tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals serve's whole process group. Its children live in their
    own, so they keep serving while serve stops taking requests and gives the streams in
    flight ``server.shutdown_grace_s`` to finish; a stream still running then is stopped and
    recorded with what it ran. Then serve stops its children (Valkey last) and exits. The
    ledger, read back from the data directory after serve is gone, holds every run."""
    api_port, standin_port = free_port(), free_port()
    grace_s = 3
    process = serve(tmp_path, api_port, standin_port, own_group=True,
                    SMALLCODE_SERVER__SHUTDOWN_GRACE_S=str(grace_s))
    streams = {model: ([], []) for model in ("local", "cloud")}
    threads = [threading.Thread(target=_stream, args=(api_port, model, *lists), daemon=True)
               for model, lists in streams.items()]
    try:
        wait_healthy(api_port, process)
        kids = children(process.pid)
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while not all(len(got) >= 3 for got, _ in streams.values()):
            assert time.monotonic() < deadline, f"the streams did not start: {streams}"
            time.sleep(0.05)
    finally:
        asked = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
        output = process.communicate(timeout=120)[0].decode()
        took_s = time.monotonic() - asked
    for thread in threads:
        thread.join(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "ConnectionError" not in output, output
    assert took_s < grace_s + 30, f"serve took {took_s:.1f} s to stop"
    assert not [cmd for pid, cmd in kids.items() if alive(pid)], "children outlived serve"

    async def entries() -> list[dict[str, object]]:
        with command_redis(None, tmp_path) as url:  # the data serve left, read back
            client = Redis.from_url(url)
            try:
                names = Names(RedisSettings().prefix)
                found = await ledger.page_entries(client, names, team="default", start=0,
                                                  end=time.time() + 60, limit=10)
                return [{**e, "record": await ledger.get_record(client, names, e["id"])}
                        for e in found]
            finally:
                await client.aclose()

    recorded = {e["route"]: e for e in asyncio.run(entries())}
    assert sorted(recorded) == ["cloud", "local"], recorded
    for model, (_, ended) in streams.items():  # each whole, or cut and told so, and recorded
        entry = recorded[model]
        assert ended in (["whole"], ["server_stopping"]), ended
        cut = ended == ["server_stopping"]
        # A request that named its tier keeps reason "requested"; how it ended is its finish.
        assert entry["record"]["finish_reason"] == ("server_stopping" if cut else "length"), entry
        assert entry["tokens"]["completion"] >= 3, entry  # type: ignore[index]
    assert recorded["cloud"]["cost_usd"] > 0  # what the cloud streamed was charged
