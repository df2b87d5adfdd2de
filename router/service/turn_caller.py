"""The run layer's caller of a request that names a route (a model name mapped by
:mod:`router.service.model_names`): the key's team, and the cloud refused for a local-only
key or team (:meth:`router.run.caller.Caller.cloud_refusal`), naming the field."""

from __future__ import annotations

from fastapi import Request

from router.run.caller import Caller
from router.service.deps import Caller as Identity
from router.service.errors import APIError


def turn_caller(request: Request, identity: Identity, route: str,
                team: str | None = None) -> Caller:
    served = identity.serving_team(team)
    caller = identity.run_as(request, served)
    refusal = caller.cloud_refusal() if route == "cloud" else None
    if refusal == "key":
        raise APIError(403, "model: this key is local-only; use a model served auto or local",
                       type_="permission_error", param="model", code="local_only")
    if refusal == "team":
        raise APIError(403, f"model: team {served!r} is local-only (privacy policy); use a "
                       "model served auto or local", type_="permission_error", param="model",
                       code="local_only")
    return caller
