"""Request and response bodies of the OpenAI-compatible chat API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from retrieval.errors import BadRepoName
from retrieval.names import check_repo_name
from router.graph.errors import InvalidTask
from router.graph.validation import (
    DEFAULT_MAX_TOKENS,
    MAX_TOKENS_LIMIT,
    NOT_TEXT,
    unencodable_field,
)

MAX_FILES = 1000  # attached files of one task: past it no window holds them anyway


def stop_list(value: str | list[str] | None) -> list[str] | None:
    """OpenAI's ``stop``: one string or up to four, none empty (chat and completions alike)."""
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if len(stops) > 4 or any(not s for s in stops):
        raise ValueError("give at most 4 non-empty stop strings")
    return stops


class TextBody(BaseModel):
    """A request body whose strings must be text: the one check of a wire body's text, as it
    is parsed, naming the body's field (``messages[0].content``), a 400 through the
    :class:`InvalidTask` handler. Raised as that, not as a pydantic error, so that its message
    is the intake's own (the graph's intake checks the tasks that come another way)."""

    @model_validator(mode="after")
    def _text(self) -> TextBody:
        bad = unencodable_field(self.model_dump(), "")
        if bad is not None:
            raise InvalidTask(bad, NOT_TEXT)
        return self


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str = "{}"


class ToolCallIn(BaseModel):
    """A call an earlier assistant turn made (OpenAI's ``tool_calls`` entry)."""

    model_config = ConfigDict(extra="ignore")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def turn(self) -> dict[str, Any]:
        """This message as a turn of an agent's conversation (:mod:`router.graph.agent_turn`)."""
        out: dict[str, Any] = {"role": self.role, "content": self.text() or None}
        if self.tool_calls:
            out["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(TextBody):
    # Unknown OpenAI fields (user, seed, …) are accepted and ignored, as providers do.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="local or cloud")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")
    # Function calling: an agent's turn (the graph checks the tools and the conversation).
    # The legacy ``functions`` / ``function_call`` are refused, never silently ignored.
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    # SmallCode extensions, used by model "auto" (the routed tier); OpenAI SDKs send them
    # with extra_body={...}.
    files: list[dict[str, str]] | None = Field(
        None, max_length=MAX_FILES, description=f"files the task is about (at most {MAX_FILES}): "
        "{path, content}")
    repo: str | None = None
    team: str | None = None
    type: str | None = None
    route: str | None = None

    @field_validator("messages")
    @classmethod
    def _needs_a_task(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" for m in messages):
            raise PydanticCustomError(
                "no_user_message",
                "needs at least one user message: a system message alone asks no task")
        return messages

    @field_validator("functions", "function_call")
    @classmethod
    def _no_functions(cls, value: Any) -> Any:
        if value:
            raise PydanticCustomError(
                "unsupported", "the legacy functions API is not supported: send tools and "
                "tool_choice instead")
        return None

    @property
    def agent_turn(self) -> bool:
        """Whether this is an agent's turn: it offers tools, or its conversation holds tool
        calls or results (then it travels structured)."""
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

    @field_validator("repo")
    @classmethod
    def _repo_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_repo_name(value)
        except BadRepoName as exc:
            raise PydanticCustomError("repo_name", "{reason}", {"reason": str(exc)}) from None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        return stop_list(value)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS

