"""The API's dependencies in one place (as the FastAPI template's ``api/deps.py``): the Redis
client, the key names, and the caller behind the ``Authorization: Bearer`` key (who is
calling; :meth:`Caller.run_as` resolves it into the run layer's caller for one request).

Routes take them as ``Annotated`` aliases: ``caller: CallerDep``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from router.run import caller as run_caller
from router.service.errors import APIError
from router.settings import Settings
from router.store.apikeys import ApiKey
from router.store.names import Names

DEFAULT_TEAM = "default"  # the team of every request when auth is off (one user, loopback)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a team's key, or the admin key (``team`` None: every team)."""

    team: str | None
    key: ApiKey | None
    admin: bool = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key else ("admin" if self.admin else None)

    def serving_team(self, requested: str | None) -> str:
        """The team a request is served and charged as: the key's. A body that names another
        team is refused; the admin key may act for any team."""
        if self.team is None:
            return requested or DEFAULT_TEAM
        if requested is not None and requested != self.team:
            raise APIError(403, f"team: this key serves team {self.team!r}, not {requested!r}; "
                           "leave `team` out or use that team's key", type_="permission_error",
                           param="team", code="team_mismatch")
        return self.team

    def sees(self, team: str) -> bool:
        return self.team is None or self.team == team

    def run_as(self, request: Request, team: str) -> run_caller.Caller:
        """The run layer's caller for a request served as ``team`` (see
        :meth:`serving_team`): the key, the team's policy, budget gate and the key's rate
        limits, resolved once."""
        state = request.app.state
        return run_caller.Caller.resolve(state.redis, state.names, key=self.key,
                                         key_id=self.key_id, team=team,
                                         policies=state.settings.policies,
                                         cloud=state.settings.cloud, limits=state.rate_limits)


# The dependencies are coroutines even where they only read app.state: FastAPI runs a plain
# function dependency in its thread pool, a thread hand-off per dependency per request (three
# for a usage read: measurable under load on a small machine).
async def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


async def redis(request: Request) -> Redis:
    client: Redis = request.app.state.redis
    return client


async def names(request: Request) -> Names:
    value: Names = request.app.state.names
    return value


async def caller(request: Request) -> Caller:
    config: Settings = request.app.state.settings
    if not config.auth.enabled:
        return Caller(team=None, key=None, admin=True)
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    # Anthropic's clients send the key as x-api-key (ANTHROPIC_API_KEY).
    secret = secret or request.headers.get("x-api-key", "").strip()
    if not secret:
        raise APIError(401, "missing API key: send `Authorization: Bearer <key>` or "
                       "`x-api-key: <key>` (create one with `smallcode keys create --team "
                       "NAME`)", type_="authentication_error", code="missing_api_key")
    admin = config.admin_key.get_secret_value() if config.admin_key else None
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Caller(team=None, key=None, admin=True)
    state = request.app.state
    key = await state.key_cache.lookup(state.redis, state.names, secret)
    if key is None:
        raise APIError(401, "invalid or revoked API key", type_="authentication_error",
                       code="invalid_api_key")
    request.state.key_id = key.id  # for the access log: the key's id, never its secret
    return Caller(team=key.team, key=key)


async def admin(caller: Annotated[Caller, Depends(caller)]) -> Caller:
    if not caller.admin:
        raise APIError(403, "this needs the admin key (SMALLCODE_ADMIN_KEY)",
                       type_="permission_error", code="admin_only")
    return caller


SettingsDep = Annotated[Settings, Depends(settings)]
RedisDep = Annotated[Redis, Depends(redis)]
NamesDep = Annotated[Names, Depends(names)]
CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]
