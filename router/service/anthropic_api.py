"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API, as
Claude Code calls it (``x-api-key`` or ``Authorization: Bearer``; ``anthropic-version`` and
``anthropic-beta`` headers accepted). An adapter: the request becomes an agent's turn
(:mod:`router.service.anthropic_wire`), the turn runs through the run layer
(:mod:`router.service.turns`), the routed answer goes back in this API's shape. Errors take
this API's shape too (:mod:`router.service.errors`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import StreamingResponse

from router.service import anthropic_wire as wire
from router.service import turns
from router.service.accounting import admit
from router.service.deps import CallerDep
from router.service.model_names import team_route
from router.service.turn_caller import turn_caller

router = APIRouter(prefix="/v1")

JsonObject = Annotated[dict[str, Any], Body()]


@router.post("/messages", response_model=None)
async def messages(body: JsonObject, request: Request, identity: CallerDep) -> Any:
    route = team_route(request, body.get("model"), identity.serving_team(None))
    task = {**wire.task(body, request.headers), "route": route}
    caller = turn_caller(request, identity, route)
    await admit(request, caller)
    id_ = wire.message_id()
    turn = turns.Turn(request, caller, task, request_id=id_, source="messages")
    model = str(body["model"])
    if body.get("stream"):
        events = turns.stream(
            turn, await turns.begin(turn), opening=[wire.message_start(model=model, id_=id_), wire.PING],
            keepalive=wire.PING, events=wire.answer_events,
            error=lambda found: wire.error_event(found.status, found.message))
        return StreamingResponse(events, media_type="text/event-stream")
    routed, record = await turns.answer(turn)
    return wire.message(routed, record, model=model, id_=id_)


@router.post("/messages/count_tokens")
async def count_tokens(body: JsonObject, request: Request, _: CallerDep) -> dict[str, int]:
    """The request's input tokens in the local model's tokenizer (what routing counts)."""
    task = wire.task({**body, "max_tokens": body.get("max_tokens") or 1}, request.headers)
    count = request.app.state.router_context.count_tokens
    text = "\n".join([task.get("system", ""), json.dumps(task["conversation"]),
                      json.dumps(task.get("tools") or [])])
    return {"input_tokens": int(count(text))}
