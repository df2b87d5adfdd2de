"""The server-mode backend against a server that sends some tokens without their probability,
as an unpatched llama-server does for tokens it accepted from a speculative draft (probability
1, no alternatives): that answer carries no logprobs, so the judge escalates it rather than
reading the drafted tokens as certain. The server here speaks llama-server's streaming protocol
on loopback (an unpatched build is not at hand)."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from agents.base import GenerationRequest, Message
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from tests.helpers import serving


def _token(text: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {"token": text, "logprob": logprob,
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}


def _chunks(drafted: bool) -> list[dict[str, Any]]:
    tokens = [_token("x", -0.4, [("x", -0.4), ("y", -1.2)]),
              _token(" =", 0.0, []) if drafted else _token(" =", -0.1, [(" =", -0.1), ("=", -3)]),
              _token(" 1", -0.2, [(" 1", -0.2), (" 2", -2.0)])]
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": t["token"]},
                      "logprobs": {"content": [t]}, "finish_reason": None}]} for t in tokens]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3},
                   "timings": {"cache_n": 9, "prompt_n": 3, "predicted_per_second": 50.0,
                               "draft_n": 2 if drafted else 0, "draft_n_accepted": 1}})
    return chunks


def test_tokens_sent_without_their_probability_leave_the_answer_without_logprobs() -> None:
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        drafted = body["messages"][0]["content"] == "drafted"

        async def lines() -> Any:
            for chunk in _chunks(drafted):
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with serving(app) as url:
        backend = RemoteLocalBackend(LocalConfig(mode="server", server_url=f"{url}/v1"))
        try:
            scored = backend.generate(GenerationRequest(messages=(Message("user", "scored"),)))
            drafted = backend.generate(GenerationRequest(messages=(Message("user", "drafted"),)))
            assert backend.unavailable() is None  # no /health route (404): a live server
            assert backend.members() == [{"url": f"{url}/v1", "up": True, "problem": None}]
        finally:
            backend.close()
    gone = RemoteLocalBackend(LocalConfig(mode="server", server_url=f"{url}/v1"))
    try:
        why = gone.unavailable()
        assert why is not None and "does not answer" in why
        assert gone.members() == [{"url": f"{url}/v1", "up": False, "problem": why}]
    finally:
        gone.close()
    assert scored.text == drafted.text == "x = 1"
    assert scored.logprobs is not None and len(scored.logprobs) == 3
    assert scored.extra["cached_prompt_tokens"] == 9
    assert scored.timings.decode_tokens_per_s == 50.0
    assert drafted.logprobs is None  # no evidence is not confidence
    assert drafted.extra["unscored_tokens"] == 1
    assert drafted.extra["draft_tokens"] == 2
