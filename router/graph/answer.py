"""The answer a run through the graph serves, built from the graph's final state in one place
(a run whole, :func:`router.graph.graph.run_task`, or with its progress reported,
:func:`router.graph.progress.run_graph`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import FinishReason, Generation, ToolCall


@dataclass(frozen=True)
class RoutedAnswer:
    text: str
    record: dict[str, Any]
    generation: Generation | None  # the answer served (None only if nothing was generated)

    @property
    def finish_reason(self) -> FinishReason:
        """Why the served generation stopped: ``length`` when max_tokens cut it."""
        return self.generation.finish_reason if self.generation else "stop"

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tools the served answer calls (an agent's turn), in order."""
        return self.generation.tool_calls if self.generation else ()

    @classmethod
    def of(cls, state: dict[str, Any]) -> RoutedAnswer:
        """The answer in the graph's final state: the cloud's, else the local one."""
        answer = state.get("cloud") or state.get("local")
        return cls(text=answer.text if answer else "", record=state["record"],
                   generation=answer)
