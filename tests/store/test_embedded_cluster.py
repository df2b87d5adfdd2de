"""The embedded Valkey cluster the cluster tests run on: three primaries that share every
slot, each on its own port and data directory, all gone when the block ends."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from router.store.cluster import EmbeddedCluster


def test_three_primaries_serve_every_slot_and_stop_together(tmp_path: Path) -> None:
    with EmbeddedCluster(tmp_path / "cluster") as cluster:
        ports = [node.port for node in cluster.nodes]
        assert len(set(ports)) == 3
        with redis.RedisCluster.from_url(cluster.url) as client:
            primaries = {n.port for n in client.get_primaries()}
            assert primaries == set(ports)
            # Keys on three different slots, each served by the node that owns it.
            owners = set()
            for key in ("a", "b", "c", "d", "e", "f"):
                assert client.set(key, key)
                assert client.get(key) == key.encode()
                owners.add(client.get_node_from_key(key).port)
            assert len(owners) > 1
        for node in cluster.nodes:
            assert (node.data_dir / "nodes.conf").is_file()  # the absolute path, in its own dir
        pids = [node.process.pid for node in cluster.nodes if node.process is not None]
    assert len(pids) == 3
    for pid in pids:  # each server is gone (dies_with_parent's child too)
        assert subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).returncode == 1
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
