"""The model names clients send, as routes: ``auto``, ``local`` and ``cloud`` are what they
say; any other name is looked up in ``models.aliases`` (globs, the first match in order), so
that an agent's own names (``claude-sonnet-4-5``, ``gpt-5-codex``) are served."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from router.service.errors import APIError

ROUTES = ("auto", "local", "cloud")


def route_for(model: object, aliases: Mapping[str, str]) -> str:
    """The route a request naming ``model`` takes; a 404 naming the setting otherwise."""
    if not isinstance(model, str) or not model:
        raise APIError(400, "model: is required (auto, local, cloud, or a name in "
                       "models.aliases)", param="model")
    if model in ROUTES:
        return model
    for pattern, route in aliases.items():
        if fnmatchcase(model, pattern):
            return route
    raise APIError(404, f"model {model!r} does not exist here: use auto, local or cloud, or "
                   "add it to models.aliases", param="model", code="model_not_found",
                   type_="not_found_error")


def listed(aliases: Mapping[str, str]) -> list[str]:
    """The names a client may send: the routes, then the aliases that are not globs."""
    return [*ROUTES, *(name for name in aliases if not any(c in name for c in "*?["))]
