"""The one-machine topology: every part a deployment has, each a real process on loopback.

    Valkey Cluster   3 primaries, a replica each (node timeout 1 s: a killed primary's
                     replica takes its slots over in about 2-3 s)
    local tier       2 llama-servers (SmolLM2-135M), one pool (``local.server_urls``)
    cloud            the scripted OpenAI-compatible server, its own process (answers at once)
    API              2 `smallcode serve` processes (no embedded worker), one config file
    workers          2 `smallcode worker` processes

Every process is started behind :mod:`agents.dies_with_parent` (it dies with this process,
however this one ends) and stopped when the block ends. ``kill_*`` SIGKILL one part; the
matching ``restart_*`` starts it again, as a supervisor (systemd, Kubernetes) would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis

from agents import llama_server, model_store
from agents.config import LocalConfig
from router.store.cluster import EmbeddedCluster
from router.store.names import Names
from router.store.server import RedisStartError

REPO = Path(__file__).resolve().parents[2]
ADMIN = "topology-admin-key-" + "t" * 16
PREFIX = "topology"
TEAM = "load"
BUDGET_USD = 1000.0  # never reached: the budget is there to be compared with the ledger
SMOL = "smollm2-135m"
START_TIMEOUT_S = 240.0  # a Python process importing the service on 2 busy cores


def guarded(*command: str) -> list[str]:
    """``command`` run so that it dies with this process (the thread that starts it must live
    as long: start children from the main thread)."""
    return [sys.executable, "-m", "agents.dies_with_parent", str(os.getpid()), *command]


class Child:
    """One process (behind :func:`guarded`), its output in ``log``."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.command, self.log, self.env = name, command, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, stdout: int | None = None) -> Child:
        """Start it (not waiting for it to answer); ``stdout`` PIPE: read its output here."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out if stdout is None else stdout, stderr=out, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (a graceful stop), then SIGKILL past ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


def env(**extra: str) -> dict[str, str]:
    """This process's environment without its SMALLCODE_ settings, plus ``extra``."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    found.update(PYTHONPATH=str(REPO), SMALLCODE_ADMIN_KEY=ADMIN, **extra)
    return found


def answers(url: str) -> bool:
    """``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ok(url: str, child: Child, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not answers(url):
        assert child.alive(), f"{child.name} exited at start-up; see {child.log}"
        assert time.monotonic() < deadline, f"{child.name}: no answer at {url} in {timeout_s:g} s"
        time.sleep(0.2)


class Topology:
    """``with Topology(folder, model_cache) as parts:`` every part started and answering."""

    def __init__(self, folder: Path, model_cache: Path) -> None:
        self.folder = Path(folder).absolute()
        self.model_cache = model_cache
        self.cluster = EmbeddedCluster(self.folder / "cluster", replicas=1, node_timeout_ms=1000)
        self.local_ports = [llama_server.free_port(), llama_server.free_port()]
        self.locals: list[Child] = []
        self.cloud: Child | None = None
        self.cloud_url = ""
        self.api_urls = [f"http://127.0.0.1:{llama_server.free_port()}" for _ in range(2)]
        self.apis: list[Child] = []
        self.workers: list[Child] = []
        self.config = self.folder / "config.yaml"
        self.names = Names(PREFIX)
        self.victim = 0  # the Valkey primary the run kills: the one holding the team's ledger
        self.redis_url = ""  # a node that lives on
        self.queue_on_victim = False
        self._spawned = 0

    def __enter__(self) -> Topology:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cluster.start()
        self.victim = self.owner(self.names.team_entries(TEAM), self.cluster.url)
        self.queue_on_victim = self.owner(self.names.queue(), self.cluster.url) == self.victim
        self.redis_url = next(url for url in self.cluster.urls
                              if not url.endswith(f":{self.victim}"))
        self.locals = [self._local(i).start() for i in range(2)]
        self._start_cloud()
        self.config.write_text(json.dumps(self._settings()))  # YAML is a superset of JSON
        self.workers = [self._worker(i).start() for i in range(2)]
        self.apis = [self._api(i).start() for i in range(2)]
        for i, local in enumerate(self.locals):
            wait_ok(self.local_health(i), local)
        for url, api in zip(self.api_urls, self.apis, strict=True):
            wait_ok(f"{url}/readyz", api)  # ready: Redis, the local pool and a live worker

    def _settings(self) -> dict[str, Any]:
        return {
            "models": {"cache_dir": str(self.model_cache)},
            "local": {"mode": "server", "model": SMOL, "n_ctx": 1024,
                      "server_urls": [self.local_url(i) for i in range(2)]},
            "cloud": {"api_base": self.cloud_url, "n_ctx": 8192, "num_retries": 0,
                      "timeout_s": 10},
            "standin": {"enabled": False},
            "redis": {"url": self.redis_url, "cluster": True, "prefix": PREFIX},
            "tasks": {"embedded_worker": False, "lease_s": 2, "poll_s": 0.05,
                      "heartbeat_s": 1, "max_tries": 10},
            "policies": {"teams": {TEAM: {"budget_usd": BUDGET_USD, "budget_period": "month"}}},
            "server": {"shutdown_grace_s": 5},
        }

    def local_url(self, i: int) -> str:
        return f"http://{llama_server.HOST}:{self.local_ports[i]}/v1"

    def local_health(self, i: int) -> str:
        return f"http://{llama_server.HOST}:{self.local_ports[i]}/health"

    def _next_log(self, name: str) -> Path:
        self._spawned += 1
        return self.folder / f"{name}-{self._spawned}.log"

    def _local(self, i: int) -> Child:
        config = LocalConfig(model=SMOL, n_ctx=1024, server_parallel=2, n_threads=1)
        command = llama_server.command(llama_server.find_binary(None), config,
                                       self.model_cache / model_store.MODELS[SMOL].filename,
                                       alias=SMOL, port=self.local_ports[i])
        return Child(f"local{i}", command, self._next_log(f"local{i}"), env())

    def _start_cloud(self) -> None:
        self.cloud = Child("cloud", guarded(sys.executable, "-m", "tests.topology.cloud"),
                           self.folder / "cloud.log", env())
        self.cloud.start(stdout=subprocess.PIPE)
        assert self.cloud.process is not None and self.cloud.process.stdout is not None
        with self.cloud.process.stdout as out:  # its first line: its URL
            self.cloud_url = out.readline().decode().strip()
        assert self.cloud_url.startswith("http://127.0.0.1:"), f"see {self.cloud.log}"

    def _api(self, i: int) -> Child:
        port = self.api_urls[i].rsplit(":", 1)[1]
        return Child(f"api{i}", guarded(sys.executable, "-m", "router.cli.main", "--config",
                                        str(self.config), "serve", "--no-standin"),
                     self._next_log(f"api{i}"),
                     env(SMALLCODE_SERVER__PORT=port,
                          SMALLCODE_DATA_DIR=str(self.folder / f"api{i}")))

    def _worker(self, i: int) -> Child:
        return Child(f"worker{i}", guarded(sys.executable, "-m", "router.cli.main", "--config",
                                           str(self.config), "worker", "--no-retrieval"),
                     self._next_log(f"worker{i}"),
                     env(SMALLCODE_DATA_DIR=str(self.folder / f"worker{i}")))

    def close(self) -> None:
        """Stop everything: APIs and workers first (gracefully), the tiers, the cluster last."""
        for child in [*self.apis, *self.workers, *self.locals]:
            child.stop()
        if self.cloud is not None:
            self.cloud.stop()
        self.cluster.stop()

    def pids(self) -> list[int]:
        """Every process this topology started that is still running."""
        children: list[Child | None] = [*self.apis, *self.workers, *self.locals, self.cloud]
        found = [c.process.pid for c in children
                 if c is not None and c.alive() and c.process is not None]
        return found + [n.process.pid for n in self.cluster.nodes
                        if n.process is not None and n.process.poll() is None]

    # -- faults: kill one part, start it again (not waiting), ask whether it is back ----------

    def restart_api(self, i: int) -> None:
        self.apis[i] = self._api(i).start()

    def api_back(self, i: int) -> bool:
        return self.apis[i].alive() and answers(f"{self.api_urls[i]}/readyz")

    def restart_worker(self, i: int) -> None:
        self.workers[i] = self._worker(i).start()

    def live_workers(self) -> set[str] | None:
        """The ids of the workers whose heartbeat is fresh; None while the store is away."""
        try:
            with redis.RedisCluster.from_url(self.redis_url) as client:
                return {w.decode() for w in client.zrangebyscore(self.names.workers(),
                                                                 time.time(), "+inf")}
        except redis.RedisError:
            return None

    def restart_local(self, i: int) -> None:
        self.locals[i] = self._local(i).start()

    def local_back(self, i: int) -> bool:
        """The server answers again and both APIs' pools have taken it back."""
        if not (self.locals[i].alive() and answers(self.local_health(i))):
            return False
        for url in self.api_urls:
            try:
                members = httpx.get(f"{url}/readyz", timeout=2).json()["local_members"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            if not all(m["up"] for m in members):
                return False
        return True

    def kill_primary(self) -> None:
        self.cluster.node_at(self.victim).kill()

    def owner(self, key: str, url: str | None = None) -> int:
        """The port of the primary that serves ``key`` now."""
        with redis.RedisCluster.from_url(url or self.redis_url) as probe:
            return int(probe.get_node_from_key(key).port)

    def primary_back(self) -> bool:
        """The victim's replica serves the team's slot, and every live node says ok."""
        try:
            if self.owner(self.names.team_entries(TEAM)) == self.victim:
                return False
            self.cluster.wait_ok(timeout_s=0.01)
        except (redis.RedisError, RedisStartError):
            return False
        return True
