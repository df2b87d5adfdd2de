"""Running one task through the graph with its progress reported as it happens: each node's
end, and every token either tier streams. The worker reports them as a task's events; a
routed chat stream forwards the cloud's tokens live. Cancelling stops the run at its next
token or node.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agents.base import Backend, Generation, GenerationRequest, TokenEvent, Wrapped
from router.graph.answer import RoutedAnswer
from router.graph.context import RouterContext
from router.graph.errors import TaskCancelled

Emit = Callable[[str, dict[str, Any]], None]
ANSWER_CHANNELS = ("local", "cloud", "record")  # what RoutedAnswer.of reads of the final state


class TokenTap(Wrapped):
    """A backend as it is, whose streamed tokens are also reported (``emit``) and which stops
    at the next token once ``cancel`` is set."""

    def __init__(self, inner: Backend, tier: str, cancel: threading.Event, emit: Emit) -> None:
        super().__init__(inner)
        self.tier, self.cancel, self.emit = tier, cancel, emit

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        events = self.inner.stream(request)
        streamed = 0  # as the routed stream counts them: tokens with text
        try:
            for item in events:
                if self.cancel.is_set():
                    raise TaskCancelled(streamed)
                if isinstance(item, TokenEvent) and item.text:
                    streamed += 1
                    self.emit("token", {"tier": self.tier, "text": item.text})
                yield item
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # releases the model at once when the caller stops early

    def close(self) -> None:
        """The tapped backend belongs to whoever built it."""


def node_event(node: str, update: Any) -> dict[str, Any]:
    """What a node's end tells a client: its name, its time, and its decision if it made one."""
    event: dict[str, Any] = {"node": node}
    if not isinstance(update, dict):
        return event
    timing = (update.get("timings_ms") or {}).get(node)
    if timing is not None:
        event["ms"] = timing
    decision = update.get("decision")
    if isinstance(decision, dict):
        event["decision"] = {"route": decision.get("route"), "reason": decision.get("reason")}
    if node == "judge" and "confidence" in update:
        event["confidence"] = update["confidence"]
    if node == "intake":
        event.update({k: update[k] for k in ("task_type", "prompt_tokens") if k in update})
    if node == "record" and isinstance(update.get("record"), dict):
        record = update["record"]
        event.update({"route": record.get("final"), "reason": record.get("reason")})
    return event


def run_graph(graph: Any, task: dict[str, Any], context: RouterContext, *,
              cancel: threading.Event, emit: Emit) -> RoutedAnswer:
    """Run one task through the graph (blocking: call it in a thread), reporting each node's
    end and every token; raises :class:`TaskCancelled` at the next token or node after
    ``cancel`` is set."""
    tapped = dataclasses.replace(context, local=TokenTap(context.local, "local", cancel, emit),
                                 cloud=TokenTap(context.cloud, "cloud", cancel, emit))
    # The answer's channels as the nodes last wrote them: they keep the last value written
    # (no reducer), so this is the final state's, without LangGraph reading every channel of
    # the state after each step (its "values" mode) for it.
    answer: dict[str, Any] = {}
    for chunk in graph.stream(task, context=tapped, stream_mode="updates"):
        if cancel.is_set():
            raise TaskCancelled
        for node, update in chunk.items():
            emit("node", node_event(node, update))
            if isinstance(update, dict):
                answer.update((key, update[key]) for key in ANSWER_CHANNELS if key in update)
    return RoutedAnswer.of(answer)
