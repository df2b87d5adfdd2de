"""Which Redis to use: ``redis.url`` when set; otherwise the embedded Valkey under
``<data_dir>/redis`` — the one a running ``smallcode serve`` started (it leaves its address in
``<data_dir>/redis/url``), or, for a command run while no server is up, one started for the
command's duration on the same data. And the one place a client is made from the settings
(:func:`client`): one server's, or a Redis Cluster's (``redis.cluster``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from redis.asyncio import Redis, RedisCluster

from router.store.config import RedisSettings
from router.store.server import EmbeddedRedis

log = logging.getLogger("smallcode.redis")
T = TypeVar("T")
OUTLAST_FIRST_S = 0.25  # waits between tries: 0.25 s, doubling, at most OUTLAST_MAX_S
OUTLAST_MAX_S = 5.0
OUTLAST_HEAR_S = 0.1  # how soon a wait hears that the process was asked to stop

_REDIS_DIR = Path(redis.__file__).resolve().parent
_ASYNCIO_DIR = Path(asyncio.__file__).resolve().parent


def _in_transport(filename: str) -> bool:
    """Whether a frame is the transport's under redis-py: asyncio's streams or uvloop's."""
    return filename.startswith("uvloop/") or Path(filename).resolve().is_relative_to(_ASYNCIO_DIR)


def failed_inside_redis(exc: BaseException) -> bool:
    """Whether ``exc``, an error that is no ``RedisError``, was raised inside the redis package
    (or in the transport it wrote to): during a primary's failover, redis-py's asyncio cluster
    client writes on a connection closed under it (redis/redis-py#4287), which raises
    ``AttributeError`` (its writer gone) or, under uvloop, ``RuntimeError`` (its transport
    closed), where a ``ConnectionError`` is meant. The store failed, as for a
    ``RedisError``; one of ours stays a bug."""
    if not isinstance(exc, AttributeError | RuntimeError):
        return False
    files = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    while files and _in_transport(files[-1]):
        files.pop()
    return bool(files) and Path(files[-1]).resolve().is_relative_to(_REDIS_DIR)


def redis_failed(exc: BaseException) -> bool:
    """Whether redis-py says the store failed: a ``RedisError``, or one of its failover errors
    (:func:`failed_inside_redis`)."""
    return isinstance(exc, redis.RedisError) or failed_inside_redis(exc)


def store_failed(exc: BaseException) -> bool:
    """Whether ``exc`` says the store failed (rather than our code): :func:`redis_failed`, or
    an ``OSError`` (a timeout is one)."""
    return isinstance(exc, OSError) or redis_failed(exc)


async def outlasting(step: Callable[[], Awaitable[T]], *, within_s: float, what: str,
                     stopped: Callable[[], bool] = lambda: False) -> T:
    """``step()``, tried again while the store fails under it, for up to ``within_s`` or until
    ``stopped()`` (the process was asked to stop); then the store's error; any other error at
    once. For what a process does as it starts: one started while a cluster's primary is down
    (until its replica takes the slots over, within two cluster node timeouts) waits that out
    rather than exiting."""
    waited, wait_s = 0.0, OUTLAST_FIRST_S
    while True:
        try:
            return await step()
        except Exception as exc:
            if not store_failed(exc) or waited >= within_s or stopped():
                raise
            log.warning("the store failed %s (%s); trying again in %.2f s", what,
                        type(exc).__name__, wait_s)
        until = waited + wait_s
        while waited < until and not stopped():  # a stop is heard within OUTLAST_HEAR_S
            slice_s = min(OUTLAST_HEAR_S, until - waited)
            await asyncio.sleep(slice_s)
            waited += slice_s
        wait_s = min(wait_s * 2, OUTLAST_MAX_S)


def client(settings: RedisSettings, *, url: str | None = None, **options: Any) -> Redis:
    """The asyncio client of ``settings`` (at ``url`` when given: a one-off command's
    :func:`command_redis`): a :class:`~redis.asyncio.RedisCluster` when ``redis.cluster`` is
    on, which follows the slots to the node that owns each key. Close it with ``aclose()``.

    Typed as :class:`~redis.asyncio.Redis`: the store calls only what both speak with one
    meaning (single keys, scripts and MULTI/EXEC-free pipelines whose keys share a slot; see
    :mod:`router.store.names`)."""
    address = url or settings.url
    if not address:
        raise ValueError("redis.url is empty: no Redis to connect to")
    if settings.cluster:
        return cast(Redis, RedisCluster.from_url(address, **options))
    return Redis.from_url(address, **options)


def sync_client(settings: RedisSettings, **options: Any) -> redis.Redis:
    """A synchronous client of ``settings`` (for code that runs in threads: the cloud tier's
    shared circuit breaker); a cluster's when ``redis.cluster`` is on. Close it with
    ``close()``."""
    if not settings.url:
        raise ValueError("redis.url is empty: no Redis to connect to")
    if settings.cluster:
        return cast(redis.Redis, redis.RedisCluster.from_url(settings.url, **options))
    return redis.Redis.from_url(settings.url, **options)


def embedded_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "redis"


@contextlib.contextmanager
def serving_redis(url: str | None, data_dir: Path, *, port: int = 0) -> Iterator[str]:
    """For ``smallcode serve``: the configured URL, or an embedded Valkey it owns."""
    if url:
        yield url
        return
    directory = embedded_dir(data_dir)
    with EmbeddedRedis(directory, port=port) as server:
        address = directory / "url"
        address.write_text(server.url + "\n", encoding="utf-8")
        try:
            yield server.url
        finally:
            address.unlink(missing_ok=True)


@contextlib.contextmanager
def command_redis(url: str | None, data_dir: Path) -> Iterator[str]:
    """For a one-off command (``keys``, ``usage``): the configured URL, the running server's
    embedded Valkey, or one started just for this command."""
    if url:
        yield url
        return
    address = embedded_dir(data_dir) / "url"
    if address.exists():
        running = address.read_text(encoding="utf-8").strip()
        if _answers(running):
            yield running
            return
    with serving_redis(None, data_dir) as started:
        yield started


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False
