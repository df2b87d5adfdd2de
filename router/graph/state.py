"""What flows through the graph: a narrow input and the fuller internal state."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from agents.base import Generation, Message
from policies.config import PolicyConfig, TaskType
from router.graph.signals import ContextFit

RequestedRoute = Literal["auto", "local", "cloud"]
Reason = Literal[
    "confident", "low_confidence", "failed_checks", "early_abort", "context", "multi_file",
    "privacy", "budget", "forced", "task_type", "cloud_unavailable", "disagreement",
    "local_unavailable", "tools", "pinned",
]


class AttachedFile(TypedDict):
    path: str
    content: str


class Turn(TypedDict):
    role: Literal["user", "assistant"]
    content: str


class TaskInput(TypedDict, total=False):
    """A task as a client submits it. Only ``prompt`` is required: the task itself (a chat's
    last user turn). ``history``: the chat's earlier turns, as they were; they travel to the
    model as messages but are not the task (their paths and examples do not route it)."""

    prompt: str
    history: list[Turn]
    system: str
    system_cache: bool  # the client marked the system prompt for a provider's prompt cache
    files: list[AttachedFile]
    repo: str
    team: str
    route: str
    type: str
    max_tokens: int
    # an agent's turn (router.graph.agent_turn): its conversation, structured, and its tools
    conversation: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool | None
    session: str
    pinned: Literal["local", "cloud"]  # the tier serving the session's open tool exchange
    hosted_tools: list[str]  # tools the client offered that no tier runs (left out)


class FileRef(TypedDict):
    path: str
    source: Literal["attached", "prompt", "history", "references", "tool"]


class Decision(TypedDict):
    route: Literal["local", "cloud"]
    reason: Reason
    detail: str


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class RouterState(TaskInput, total=False):
    # intake
    task_type: TaskType
    task_type_source: Literal["request", "classifier"]
    messages: list[Message]
    prompt_tokens: int
    file_refs: list[FileRef]
    # policy
    policy: PolicyConfig
    fit: ContextFit  # the prompt (with snippets, once retrieved) against the local window
    privacy: str | None
    decision: Decision | None
    auto_decision: Decision | None
    context_notes: Annotated[list[str], operator.add]
    # retrieve
    snippets: str
    snippet_tokens: int
    snippets_used: list[dict[str, Any]]  # each snippet in the prompt (retrieval.api.Snippet)
    # local_generate / judge
    local: Generation | None
    aborted: dict[str, Any] | None
    confidence: float | None
    checks: dict[str, Any]
    repair: bool  # the judge asks the local model to fix its answer first
    local_attempts: Annotated[list[dict[str, Any]], operator.add]  # each repair round
    judged: Annotated[list[dict[str, Any]], operator.add]  # each judge pass's check verdict
    judge: dict[str, Any]  # which judge scored the answer, its probability and threshold
    sample: bool  # the judge asks for sampling agreement first
    agreement: dict[str, Any] | None  # the samples' clusters (sampling agreement)
    # cloud_generate
    cloud: Generation | None
    redactions: dict[str, Any]
    # everywhere
    signals: Annotated[dict[str, Any], _merge]
    timings_ms: Annotated[dict[str, float], _merge]
    record: dict[str, Any]
