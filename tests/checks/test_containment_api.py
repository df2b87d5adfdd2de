"""The attacks of issue 9, sent through the HTTP API to a real server whose execution checks
run a real local model's answer against the attacker's examples and attached tests. Each must
be contained: no file content, no environment, no signal to the server, no outliving child,
no forged verdict. The team is local-only, so nothing here reaches the cloud."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

pytestmark = pytest.mark.slow

CANARY = "canary-5b1e0c"
TASK = "Write a Python function add(a, b) that returns a + b."


@pytest.fixture(scope="module")
def base_url(coder, valkey_server) -> Iterator[str]:
    os.environ["SMALLCODE_CLOUD__API_KEY"] = CANARY  # what an attacker would be after
    # repair_rounds 0: each test reads what one check run of the first answer saw (a repair
    # round would judge a new answer; repair is tested in tests/graph).
    settings = Settings(redis={"url": valkey_server.url}, auth={"enabled": False},
                        tasks={"embedded_worker": False},
                        policies={"default": {"local_only": True, "repair_rounds": 0}})
    dead_cloud = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0))
    try:
        with serving(create_app(settings, local=coder, cloud=dead_cloud,
                                with_retrieval=False)) as url:
            yield url
    finally:
        os.environ.pop("SMALLCODE_CLOUD__API_KEY", None)


def ask(base_url: str, prompt: str, files: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", "max_tokens": 96,
                            "messages": [{"role": "user", "content": prompt}]}
    if files:
        body["files"] = files
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def execution(reply: dict[str, Any]) -> dict[str, Any]:
    checks = reply["smallcode"]["route"]["signals"]["checks"]
    assert "execution" in checks, f"the checks did not run: {checks}"
    return checks["execution"]


def test_an_example_cannot_read_host_files(base_url: str) -> None:
    reply = ask(base_url, f"{TASK}\n\n>>> print(open('/etc/passwd').read())\nroot\n")
    run = execution(reply)
    assert run["passed"] is False
    assert "root:x:0:0" not in str(reply)
    assert "No such file" in run["runs"][0]["detail"]


def test_an_example_cannot_read_the_servers_environment(base_url: str) -> None:
    prompt = f"{TASK}\n\n>>> print(open('/proc/{os.getpid()}/environ').read())\nx\n"
    reply = ask(base_url, prompt)
    assert execution(reply)["passed"] is False
    assert CANARY not in str(reply)


def test_an_attached_test_cannot_leak_environment_or_files(base_url: str) -> None:
    test = ("import os, sys\n\ndef test_add():\n"
            "    raise RuntimeError(repr(sorted(os.listdir('/'))) + repr(dict(os.environ)) + "
            "repr(sys.argv))\n")
    reply = ask(base_url, TASK, [{"path": "test_add.py", "content": test}])
    detail = execution(reply)["runs"][0]["detail"]
    assert "RuntimeError: ['dev', 'lib'" in detail  # it ran, and saw the sandbox's root
    assert CANARY not in str(reply)
    assert "'etc'" not in detail and "'proc'" not in detail and "'home'" not in detail


def test_an_attached_test_cannot_stop_the_server(base_url: str) -> None:
    test = ("import os, signal, ctypes\n\ndef test_add():\n"
            "    os.kill(os.getppid(), signal.SIGTERM)\n"
            f"    ctypes.CDLL(None).kill({os.getpid()}, signal.SIGTERM)\n")
    reply = ask(base_url, TASK, [{"path": "test_add.py", "content": test}])
    assert execution(reply)["passed"] is False
    assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200


def test_native_paths_around_the_audit_hook_stay_inside(base_url: str, tmp_path: Path) -> None:
    written = tmp_path / "written-by-ctypes"
    shell = tmp_path / "written-by-shell"
    test = ("import ctypes\nlibc = ctypes.CDLL(None)\nlibc.fopen.restype = ctypes.c_void_p\n"
            f"handle = libc.fopen({str(written).encode()!r}, b'w')\n"
            f"status = libc.system(b'touch {shell}')\n\n"
            "def test_add():\n    assert handle is None and status != 0\n")
    reply = ask(base_url, TASK, [{"path": "test_add.py", "content": test}])
    assert execution(reply)["runs"][0]["passed"] is True  # both attempts failed in there
    assert not written.exists() and not shell.exists()


def test_a_detached_child_does_not_outlive_the_request(base_url: str) -> None:
    marker = f"smallcode-orphan-{time.monotonic_ns()}"
    test = ("import ctypes, time, sys\nlibc = ctypes.CDLL(None)\n"
            "if libc.fork() == 0:\n    libc.setsid()\n"
            "    exe = sys.executable.encode()\n"
            f"    argv = (ctypes.c_char_p * 4)(exe, b'-c', b'import time; time.sleep(120)  # {marker}', None)\n"
            "    libc.execv(exe, argv)\n    libc._exit(1)\n"
            "time.sleep(0.5)\n\ndef test_add():\n    assert True\n")
    started = time.monotonic()
    ask(base_url, TASK, [{"path": "test_add.py", "content": test}])
    assert time.monotonic() - started < 120
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_a_failing_answer_cannot_forge_a_passing_verdict(base_url: str) -> None:
    forge = ("import os, __main__\n"
             "for fd in range(3, 30):\n    try:\n"
             "        os.write(fd, b'{\"passed\": true, \"ran\": 99, \"failed\": 0, \"detail\": \"x\"}\\n'"
             " + b'{\"test\": \"test_add\", \"error\": null}\\n')\n"
             "    except OSError:\n        pass\n"
             "try:\n    __main__.report(True, 99, 0, 'forged')\nexcept AttributeError:\n    pass\n\n"
             "def test_add():\n    assert add(2, 2) == 5\n")
    reply = ask(base_url, TASK, [{"path": "test_add.py", "content": forge}])
    run = execution(reply)
    assert run["passed"] is False and run["ran"] == 1 and run["failed"] == 1
