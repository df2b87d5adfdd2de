"""Build the model tiers from the settings tree (the only place that knows both)."""

from __future__ import annotations

from agents.base import Backend
from agents.breaker import SharedBreaker
from agents.cloud import CloudBackend
from agents.config import CloudConfig
from agents.errors import BackendMisconfigured
from agents.model_store import MODELS, resolve
from agents.pool import LocalPool
from agents.remote import RemoteLocalBackend
from agents.standin import base_url as standin_url
from router.settings import Settings
from router.store import connect
from router.store.names import Names


def build_local(settings: Settings) -> Backend:
    """The local tier: in-process llama.cpp (``local.mode`` inprocess, or auto: ``smallcode
    serve`` has replaced auto with server by the time it gets here when it started
    llama-server), one server, or a pool of several."""
    config = settings.local
    if config.mode == "server":
        urls = config.urls
        if not urls:
            raise BackendMisconfigured("local.mode is 'server' but local.server_url is empty: "
                                       "set it, or run `smallcode serve`, which starts "
                                       "llama-server itself")
        if len(urls) == 1:
            return RemoteLocalBackend(config.model_copy(update={"server_url": urls[0],
                                                                "server_urls": ()}))
        return LocalPool(config)
    # deferred: agents.local loads numpy, and llama_cpp once built; server mode needs neither
    from agents.local import LocalBackend

    path = resolve(config.model, settings.models.cache_dir)
    return LocalBackend(config, path, name=config.model if config.model in MODELS else None)


def build_cloud(settings: Settings) -> Backend:
    """The cloud tier; with a Redis (``redis.url``), its circuit breaker's state is there,
    shared by every API process and worker of the deployment."""
    config = cloud_config(settings)
    return CloudBackend(config, breaker=shared_breaker(settings, config))


def shared_breaker(settings: Settings, config: CloudConfig) -> SharedBreaker | None:
    """The cloud's breaker in Redis (None without a Redis, or with the breaker off). A probe
    holds its turn for the longest a call can take (every try timing out), plus a margin."""
    if not settings.redis.url or config.breaker_failures == 0:
        return None
    redis = connect.sync_client(settings.redis, socket_timeout=1, socket_connect_timeout=1)
    return SharedBreaker(redis, Names(settings.redis.prefix).breaker(config.model),
                         config.breaker_failures, config.breaker_reset_s,
                         probe_s=config.timeout_s * (config.num_retries + 1) + 5)


def cloud_config(settings: Settings) -> CloudConfig:
    """``cloud``, with the stand-in's window as ``n_ctx`` when it is the stand-in (its window
    is known here, and no model map lists it) and no window was set."""
    config = settings.cloud
    if config.n_ctx is None and config.api_base and (
            config.api_base.rstrip("/") == standin_url(settings.standin)):
        return config.model_copy(update={"n_ctx": settings.standin.n_ctx})
    return config


def standin_alias(settings: Settings) -> str:
    """The model name the stand-in answers to: the part of cloud.model after the provider."""
    return settings.cloud.model.split("/", 1)[-1]
