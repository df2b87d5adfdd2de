"""The intake's checks: refuse bad input before anything runs, naming the field.

The CLI, the HTTP API and the evaluation harness all submit tasks through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

import orjson

from policies.config import TaskType
from retrieval.errors import BadRepoName
from retrieval.names import check_repo_name
from router.graph.context import RouterContext
from router.graph.errors import InvalidTask

TASK_TYPES: tuple[str, ...] = get_args(TaskType)
MAX_TOKENS_LIMIT = 32_768
DEFAULT_MAX_TOKENS = 512
NOT_TEXT = ("is not valid Unicode text (it holds a lone surrogate such as \\ud800, which no "
            "UTF-8 text can): send UTF-8 text")


def unencodable_field(value: Any, path: str) -> str | None:
    """The path of the first string in ``value`` that is not valid Unicode text (a lone
    surrogate, which JSON escapes and undecodable command-line bytes can carry), or None.
    A bad mapping key is reported as its mapping's path: a path never echoes bad text.

    Nearly every task is good text: it is checked whole first, encoded as JSON by orjson,
    which refuses a lone surrogate (in C: 0.05 ms for a 90 kB agent turn, where walking its
    tools' nested schemas here took 0.7 ms and the standard library's encoder 0.6 ms), and
    walked only to name the field where that fails or the value is not plain JSON."""
    try:
        orjson.dumps(value)
        return None
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, or not plain JSON
        return _walk(value, path)


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _walk(key, path):
                return path
            if found := _walk(item, f"{path}.{key}" if path else str(key)):
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if found := _walk(item, f"{path}[{i}]"):
                return found
    return None


def validate(state: Mapping[str, Any], ctx: RouterContext) -> None:
    """Refuse bad input before anything runs, naming the field."""
    bad = unencodable_field(state, "")
    if bad is not None:
        raise InvalidTask(bad or "task", NOT_TEXT)
    prompt = state.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidTask("prompt", "is empty; describe the coding task")
    route = state.get("route", "auto")
    if route not in ("auto", "local", "cloud"):
        raise InvalidTask("route", f"unknown route {route!r}: use auto, local or cloud")
    task_type = state.get("type")
    if task_type is not None and task_type not in TASK_TYPES:
        raise InvalidTask("type", f"unknown task type {task_type!r}: use one of "
                          + ", ".join(TASK_TYPES))
    max_tokens = state.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidTask("max_tokens", f"must be an integer from 1 to {MAX_TOKENS_LIMIT}")
    history = state.get("history") or []
    if not isinstance(history, list):
        raise InvalidTask("history", "must be a list of earlier turns")
    for i, turn in enumerate(history):
        if not isinstance(turn, Mapping) or turn.get("role") not in ("user", "assistant"):
            raise InvalidTask(f"history[{i}].role", "must be user or assistant")
        if not isinstance(turn.get("content"), str):
            raise InvalidTask(f"history[{i}].content", "must be the turn's text")
    for i, item in enumerate(state.get("files") or []):
        path, content = item.get("path"), item.get("content")
        if not isinstance(path, str) or not path.strip():
            raise InvalidTask(f"files[{i}].path", "is missing; give the file's path")
        if not isinstance(content, str):
            raise InvalidTask(f"files[{i}].content", "must be the file's text")
        if "\x00" in content:
            raise InvalidTask(f"files[{i}].content", f"{path} is binary; attach text files only")
        size = len(content.encode())
        if size > ctx.max_file_bytes:
            raise InvalidTask(f"files[{i}].content",
                              f"{path} is {size} bytes, over the {ctx.max_file_bytes}-byte cap")
    repo = state.get("repo")
    if repo is not None:
        try:
            check_repo_name(repo)
        except BadRepoName as exc:
            raise InvalidTask("repo", str(exc)) from None
        known = {r["repo"] for r in ctx.retrieval.list_repos()} if ctx.retrieval else set()
        if repo not in known:
            raise InvalidTask("repo", f"repository {repo!r} is not indexed: run "
                              f"`smallcode index PATH --repo {repo}`")
