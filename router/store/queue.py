"""Where the task queue lives, and the one-server arq client that reaches it, on one Redis
server or on a Redis Cluster.

Why arq keeps its own one-server client on a cluster, and not a cluster client: arq's
``ArqRedis`` is a plain ``redis.asyncio.Redis`` and its steps (enqueue: WATCH the job key, then
MULTI/EXEC; a worker's claim: WATCH the in-progress key; finish: MULTI/EXEC over the job's keys,
the queue and ``arq:abort``) are transactions, which redis-py's asyncio ``RedisCluster``
refuses (its pipeline has none). Rather than a cluster-aware copy of arq's queue, every key
those steps touch is put on one slot (:data:`router.store.names.QUEUE_TAG`: the queue, the job
ids that name arq's keys of a job, ``arq:abort`` itself), and arq's client is opened on the
primary that owns that slot (:func:`queue_url`, read from the cluster's slot map). A plain
client does not follow a MOVED: after a failover (or a slot moved by hand) its commands fail,
with ``MOVED`` or a lost connection; the API's enqueue then finds the owner again and retries
once (:class:`router.service.tasks.TaskQueue`), and a worker ends and is started again, which
finds it again (``router.worker._restarting``). The cost of one slot: the whole queue is on
one node, but its load is a few commands per task; a task's events and record, the heavy
part, are on the task's own slot.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from arq.connections import ArqRedis, create_pool
from arq.connections import RedisSettings as ArqSettings
from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError

from router.store import connect
from router.store.config import RedisSettings
from router.store.names import Names


class QueueUnreachable(RedisError):
    """No node of the cluster says which primary serves the queue's slot."""


async def queue_url(settings: RedisSettings, names: Names, *, cluster: Redis | None = None) -> str:
    """The URL of the server that holds the queue: ``redis.url`` on one server; on a cluster,
    the primary that owns the queue's slot now (same scheme and credentials). The cluster
    client reads the queue's length first: it follows a MOVED or a lost node itself (it reads
    the slot map again from the nodes it knows), so the node it then names for the slot is
    the owner of now. ``cluster``: a cluster client already open (the store's, which knows
    every node, so a failover is seen even when the node ``redis.url`` names is the one that
    died); without it, a client is opened from ``redis.url`` for the question."""
    if not settings.url:
        raise ValueError("redis.url is empty: no Redis to connect to")
    if not settings.cluster:
        return settings.url
    client: Any = cluster or connect.client(settings, socket_connect_timeout=2,
                                            socket_timeout=5)
    try:
        await client.zcard(names.queue())
        node = client.get_node_from_key(names.queue())
    except RedisClusterException as exc:  # no node answered: as a lost connection would
        raise QueueUnreachable(f"no node of the cluster at {_public(settings.url)} says who "
                               f"serves the task queue ({type(exc).__name__})") from None
    finally:
        if cluster is None:
            await client.aclose()
    return _at(settings.url, node.host, int(node.port))


def _at(url: str, host: str, port: int) -> str:
    """``url`` with its host and port replaced (user, password, scheme and query kept)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    where = f"[{host}]" if ":" in host else host
    netloc = f"{auth}@{where}:{port}" if auth else f"{where}:{port}"
    return urlunsplit((parts.scheme, netloc, "", parts.query, ""))


def _public(url: str) -> str:
    """``url`` without its credentials (for a message)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


def arq_settings(url: str) -> ArqSettings:
    return ArqSettings.from_dsn(url)


async def open_pool(settings: RedisSettings, names: Names, *,
                    cluster: Redis | None = None) -> ArqRedis:
    """arq's client on the server that holds the queue (close it with ``aclose()``)."""
    url = await queue_url(settings, names, cluster=cluster)
    return await create_pool(arq_settings(url), default_queue_name=names.queue())
