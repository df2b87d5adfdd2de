"""``POST /v1/responses``: the OpenAI Responses API, as Codex calls it (``store: false``, the
whole conversation in ``input``). An adapter: the request becomes an agent's turn
(:mod:`router.service.responses_wire`), the turn runs through the run layer
(:mod:`router.service.turns`), the routed answer goes back as a response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import StreamingResponse

from router.service import responses_wire as wire
from router.service import turns
from router.service.accounting import admit
from router.service.deps import CallerDep
from router.service.model_names import team_route
from router.service.turn_caller import turn_caller

router = APIRouter(prefix="/v1")


@router.post("/responses", response_model=None)
async def responses(body: Annotated[dict[str, Any], Body()], request: Request,
                    identity: CallerDep) -> Any:
    route = team_route(request, body.get("model"), identity.serving_team(None))
    task = {**wire.task(body, request.headers), "route": route}
    caller = turn_caller(request, identity, route)
    await admit(request, caller)
    id_, created = wire.response_id(), wire.now()
    turn = turns.Turn(request, caller, task, request_id=id_, source="responses")
    if body.get("stream"):
        numbered = wire.Events()
        events = turns.stream(
            turn, await turns.begin(turn), opening=list(numbered.created(body, id_=id_, created=created)),
            # an event, not an SSE comment: Codex drops a stream after 300 s without one
            # (its stream_idle_timeout_ms), and a local turn on a CPU can take that long
            keepalive=lambda: numbered.in_progress(body, id_=id_, created=created),
            events=lambda routed, record: numbered.answer(body, routed, record, id_=id_,
                                                          created=created),
            error=lambda found: numbered.failed(body, id_=id_, created=created,
                                                status=found.status, message=found.message,
                                                code=found.code))
        return StreamingResponse(events, media_type="text/event-stream")
    routed, record = await turns.answer(turn)
    return wire.response(body, id_=id_, created=created, status="completed", answer=routed,
                         record=record)
