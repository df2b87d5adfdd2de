"""The README's commands, exactly as a new user types them: a fresh clone of this work tree,
`make run` from its root with the shipped config.yaml, then the README's own lines (`keys
create`, the OpenAI SDK example, `keys list`, `usage`, `review --staged`), then Ctrl-C.

The clone shares the dependency, model and llama-server caches under ~/.cache/smallcode (as a
second clone on one machine does), so `make run`'s set-up takes seconds here. The only
SMALLCODE_* variables set are ports, so that the test never collides with a server already on
the shipped ones (8000, 8090, 8091); everything else is the shipped configuration, including
`data_dir: data`, relative to the clone's root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import alive, descendants

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
# A log line at INFO from a logger that is not the project's own (httpx, openai, litellm, ...).
THIRD_PARTY_INFO = re.compile(r" INFO (?!smallcode|agents|router|retrieval|policies)[\w.]+: ")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def fresh_clone(dest: Path) -> Path:
    """``git clone`` of this repository, with the work tree's uncommitted changes laid over it
    (what the next commit would hold: tracked and untracked files git does not ignore)."""
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(dest), cwd=REPO)
    wanted = set(git("ls-files", "-z", "--cached", "--others", "--exclude-standard",
                     cwd=REPO).split("\0")) - {""}
    for name in wanted:
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in set(git("ls-files", "-z", cwd=dest).split("\0")) - {""} - wanted:
        (dest / name).unlink(missing_ok=True)  # deleted in the work tree
    return dest


def readme_block(starting: str) -> str:
    """The README's fenced code block that begins with ``starting``."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S):
        if block.startswith(starting):
            return str(block)
    raise AssertionError(f"the README has no code block starting {starting!r}")


def readme_line(starting: str) -> list[str]:
    """The README's command line that begins with ``starting``, split as a shell would (the
    trailing comment dropped)."""
    for line in README.splitlines():
        if line.startswith(starting):
            return line.split("#", 1)[0].split()
    raise AssertionError(f"the README has no line starting {starting!r}")


class Served:
    """`make run` in a clone, in its own process group as a terminal runs a command."""

    def __init__(self, root: Path, env: dict[str, str], port: int, log: Path) -> None:
        self.root, self.env, self.port, self.log = root, env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.children: set[int] = set()
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(["make", "run"], cwd=root, env=env,
                                            stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 900) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make run exited:\n{self.output()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    self.children = descendants(self.process.pid)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"/readyz never answered 200:\n{self.output()[-3000:]}")

    def smallcode(self, *args: str, cwd: Path | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.root / ".venv/bin/smallcode"), *args],
                              cwd=cwd or self.root, env=env or self.env, capture_output=True,
                              text=True, timeout=600)

    def ctrl_c(self) -> int:
        """What Ctrl-C does in a terminal: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=120)


@pytest.fixture(scope="module")
def served(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = fresh_clone(tmp_path_factory.mktemp("new-user") / "smallcode-router")
    ports = {name: free_port() for name in ("api", "standin", "local")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_SERVER__PORT": str(ports["api"]),
                "SMALLCODE_STANDIN__PORT": str(ports["standin"]),
                "SMALLCODE_CLOUD__API_BASE": f"http://127.0.0.1:{ports['standin']}/v1",
                "SMALLCODE_LOCAL__SERVER_PORT": str(ports["local"])})
    server = Served(root, env, ports["api"], root.parent / "make-run.log")
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)  # a failed test still cleans up
            server.process.wait()


@pytest.fixture(scope="module")
def key(served: Served) -> str:
    """The README's `keys create` line, as written."""
    line = readme_line(".venv/bin/smallcode keys create")
    created = subprocess.run(line, cwd=served.root, env=served.env, capture_output=True,
                             text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    found = re.search(r"sk-sc-[A-Za-z0-9_\-]+", created.stdout)
    assert found, f"no key in the output of {' '.join(line)}: {created.stdout!r}"
    return found.group(0)


def test_make_run_serves_the_shipped_config_from_a_fresh_clone(served: Served) -> None:
    assert (served.root / "data" / "redis" / "valkey.log").is_file()  # data_dir: data, relative
    ready = httpx.get(f"{served.url}/readyz", timeout=10).json()
    assert ready["status"] == "ready", ready


@pytest.fixture(scope="module")
def sdk_output(served: Served, key: str) -> str:
    """The README's OpenAI SDK example, as written but for the port and the key."""
    example = readme_block("from openai import OpenAI")
    example = example.replace("http://127.0.0.1:8000/v1", f"{served.url}/v1")
    example = example.replace("sk-sc-...", key)
    ran = subprocess.run([str(served.root / ".venv/bin/python"), "-c", example],
                         cwd=served.root, env=served.env, capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_the_readme_sdk_example_answers_with_its_route_record(sdk_output: str) -> None:
    assert "def add" in sdk_output
    record = sdk_output.strip().splitlines()[-1]  # print(...["route"]): the route record
    assert "'final'" in record and "'reason'" in record, sdk_output


def test_keys_list_and_usage_show_the_key_and_its_request(
        served: Served, key: str, sdk_output: str) -> None:
    listed = served.smallcode(*readme_line(".venv/bin/smallcode keys list")[1:])
    assert listed.returncode == 0, listed.stderr
    assert "payments" in listed.stdout
    assert key not in listed.stdout  # never a secret
    usage = served.smallcode("usage", "--json")
    assert usage.returncode == 0, usage.stderr
    rows = json.loads(usage.stdout)["rows"]
    assert [r["tasks"] for r in rows if r["team"] == "payments"] == [1], rows


def test_review_of_a_staged_change_in_a_scratch_repository(
        served: Served, key: str, tmp_path: Path) -> None:
    repo = tmp_path / "scratch"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git("add", "calc.py", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "add",
        cwd=repo)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git("add", "calc.py", cwd=repo)
    env = {**served.env, "SMALLCODE_API_KEY": key}
    # The pre-commit hook's form: the running service answers.
    reviewed = served.smallcode("review", "--staged", "--url", f"{served.url}/v1", cwd=repo,
                                env=env)
    assert reviewed.returncode == 0, reviewed.stderr
    assert "[calc.py: route " in reviewed.stderr, reviewed.stderr
    # The README's plain line, in the scratch repository: the models load in this process.
    plain = served.smallcode(*readme_line("smallcode review --staged  ")[1:], cwd=repo, env=env)
    assert plain.returncode == 0, plain.stderr
    assert "[calc.py: route " in plain.stderr, plain.stderr
    assert not THIRD_PARTY_INFO.search(plain.stderr), plain.stderr


def test_ctrl_c_stops_make_run_and_every_child(served: Served) -> None:
    children = served.children
    assert children, "make run started no processes"
    served.ctrl_c()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    left = [pid for pid in children if alive(pid)]
    assert not left, f"still running after Ctrl-C: {left}"
    output = served.output()
    assert "Traceback" not in output, output[-3000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/healthz", timeout=2)
