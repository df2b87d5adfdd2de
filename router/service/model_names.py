"""The model names clients send, as routes: ``auto``, ``local`` and ``cloud`` are what they
say; any other name is looked up in the team's ``model_routes`` policy, then in
``models.aliases`` (globs, the first match in order), so that an agent's own names
(``claude-sonnet-4-5``, ``gpt-5-codex``) are served, and a team can send its client's small
model (Claude Code's Haiku, opencode's ``small_model``) one way and its main model another."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from fastapi import Request

from router.service.errors import APIError

ROUTES = ("auto", "local", "cloud")


def route_for(model: object, aliases: Mapping[str, str],
              team_routes: Mapping[str, str] | None = None) -> str:
    """The route a request naming ``model`` takes (the team's ``model_routes`` first); a 404
    naming the setting otherwise."""
    if not isinstance(model, str) or not model:
        raise APIError(400, "model: is required (auto, local, cloud, or a name in "
                       "models.aliases)", param="model")
    if model in ROUTES:
        return model
    for pattern, route in [*(team_routes or {}).items(), *aliases.items()]:
        if fnmatchcase(model, pattern):
            return route
    raise APIError(404, f"model {model!r} does not exist here: use auto, local or cloud, or "
                   "add it to models.aliases", param="model", code="model_not_found",
                   type_="not_found_error")


def team_route(request: Request, model: object, team: str) -> str:
    """The route of ``model`` for a request served as ``team``."""
    settings = request.app.state.settings
    return route_for(model, settings.models.aliases,
                     settings.policies.for_team(team).model_routes)


def listed(aliases: Mapping[str, str]) -> list[str]:
    """The names a client may send: the routes, then the names (not globs) of ``aliases``."""
    names = dict.fromkeys(name for name in aliases if not any(c in name for c in "*?["))
    return [*ROUTES, *(name for name in names if name not in ROUTES)]
