"""``/v1/keys``: the admin key creates, lists and revokes team keys over the API."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from router.service.deps import AdminDep, NamesDep, RedisDep
from router.service.errors import APIError
from router.store import apikeys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(description=apikeys.TEAM_RULE)
    budget_usd: float | None = Field(None, ge=0)
    period: Literal["day", "month"] = "month"
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    local_only: bool = False


@router.post("", status_code=201)
async def create(body: KeyRequest, _: AdminDep, redis: RedisDep, names: NamesDep) -> dict[str, Any]:
    try:
        key, secret = await apikeys.create_key(redis, names, **body.model_dump())
    except apikeys.InvalidKeyRequest as exc:
        raise APIError(400, str(exc), param=exc.field) from None
    return {**key.public(), "key": secret}


@router.get("")
async def list_keys(_: AdminDep, redis: RedisDep, names: NamesDep,
                    team: str | None = None) -> dict[str, Any]:
    keys = await apikeys.list_keys(redis, names, team=team)
    return {"object": "list", "data": await apikeys.with_spend(redis, names, keys)}


@router.delete("/{key_id}")
async def revoke(key_id: str, request: Request, _: AdminDep, redis: RedisDep,
                 names: NamesDep) -> dict[str, Any]:
    if not await apikeys.revoke(redis, names, key_id):
        raise APIError(404, f"no key with id {key_id!r}", param="key_id", code="not_found")
    request.app.state.key_cache.forget(key_id)  # here at once; elsewhere within auth.key_cache_s
    return {"id": key_id, "revoked": True}
