"""Build the model tiers from the settings tree (the only place that knows both)."""

from __future__ import annotations

from agents.base import Backend
from agents.model_store import MODELS, resolve
from router.settings import Settings


def build_local(settings: Settings) -> Backend:
    config = settings.local
    if config.mode == "server":
        from agents.remote import RemoteLocalBackend

        return RemoteLocalBackend(config)
    from agents.local import LocalBackend

    path = resolve(config.model, settings.models.cache_dir)
    return LocalBackend(config, path, name=config.model if config.model in MODELS else None)


def build_cloud(settings: Settings) -> Backend:
    from agents.cloud import CloudBackend

    return CloudBackend(settings.cloud)


def standin_alias(settings: Settings) -> str:
    """The model name the stand-in answers to: the part of cloud.model after the provider."""
    return settings.cloud.model.split("/", 1)[-1]
