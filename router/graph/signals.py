"""Signals: small pure functions of a task's features. None of them compares with a threshold;
that happens in ``decide.py`` only."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from policies.config import TaskType

CONFIDENCE_WINDOW = 16
LOW_QUANTILE = 0.1


# --- confidence ----------------------------------------------------------------------------

def token_probs(logprobs: Sequence[float]) -> list[float]:
    return [math.exp(lp) for lp in logprobs]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values`` (at least one), interpolated linearly between
    the two nearest ranks; the project's one percentile (confidence, benchmarks alike)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def worst_window(probs: Sequence[float], window: int = CONFIDENCE_WINDOW) -> float:
    """The lowest mean token probability over any ``window`` consecutive tokens."""
    if len(probs) <= window:
        return sum(probs) / len(probs)
    total = sum(probs[:window])
    worst = total
    for i in range(window, len(probs)):
        total += probs[i] - probs[i - window]
        worst = min(worst, total)
    return worst / window


def confidence(logprobs: Sequence[float] | None) -> float | None:
    """A length-robust confidence in [0, 1] from per-token logprobs; None without evidence.

    The mean of two views that do not shrink as an answer grows longer (unlike the summed
    sequence probability): the 10th-percentile token probability (how sure the model is at
    its shakier steps) and the worst sliding-window mean (a stretch where it lost its way).
    """
    if not logprobs:
        return None
    probs = token_probs(logprobs)
    return 0.5 * quantile(probs, LOW_QUANTILE) + 0.5 * worst_window(probs)


def window_mean(recent_logprobs: Sequence[float]) -> float:
    """Mean probability of the most recent tokens (the early-abort signal)."""
    probs = token_probs(recent_logprobs)
    return sum(probs) / len(probs)


# --- context fit ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ContextFit:
    prompt_tokens: int
    snippet_tokens: int
    max_tokens: int
    window: int
    margin: int

    @property
    def needed(self) -> int:
        return self.prompt_tokens + self.snippet_tokens + self.max_tokens

    @property
    def available(self) -> int:
        return self.window - self.margin

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


# --- files the task touches ----------------------------------------------------------------

_EXTENSIONS = (
    "py|pyi|js|jsx|ts|tsx|mjs|go|rs|java|kt|scala|c|h|cc|cpp|hpp|cs|rb|php|swift|m|sql|sh|"
    "yaml|yml|toml|json|md|rst|html|css|scss|vue|svelte|proto|tf|cfg|ini"
)
_PATH = re.compile(rf"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:{_EXTENSIONS}))(?![\w/-])")


_FENCED = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
_LABELLED = re.compile(
    rf"^[ \t]*[`*]*((?:[\w.-]+/)*[\w-][\w.-]*\.(?:{_EXTENSIONS}))[`*:]*[ \t]*\n[ \t]*(?:`{{3}}|~{{3}})",
    re.M)


def _normal(path: str) -> str:
    return path.lstrip("./") or path


_DIFF_HEADER = re.compile(r"^(?:diff --git a/(\S+) b/\S+|--- a/(\S+)|\+\+\+ b/(\S+))[ \t]*$", re.M)


def paths_in_prompt(prompt: str) -> list[str]:
    """File paths the task text names (``utils.py``, ``src/app/main.go``), in order; paths
    inside code blocks are code, not files the task touches, and are left out. A git diff's
    ``a/x.py`` and ``b/x.py`` are one file, ``x.py`` (Aider's commit-message request)."""
    seen: dict[str, None] = {}
    text = _FENCED.sub("", prompt)
    for match in _DIFF_HEADER.finditer(text):
        seen.setdefault(_normal(next(g for g in match.groups() if g)), None)
    for match in _PATH.finditer(_DIFF_HEADER.sub("", text)):
        seen.setdefault(_normal(match.group(1)), None)
    return list(seen)


_INLINED_USER = re.compile(r"^USER: ", re.M)
_INLINED_REPLY = re.compile(
    r"^ASSISTANT: .*?(?=^(?:USER|SYSTEM|ASSISTANT): |^# Diffs:|^diff --git |\Z)", re.M | re.S)


def without_inlined_replies(text: str) -> str:
    """The text without the model's replies of a chat it quotes as ``USER: ...`` /
    ``ASSISTANT: ...`` paragraphs (Aider's commit-message request quotes the edit's chat
    before the diff). A reply's file listing names what the model wrote (often the wrong
    ``path/to/shapes.py``), not a file the client sent; the diff says what changed."""
    if not _INLINED_USER.search(text):
        return text
    return _INLINED_REPLY.sub("", text)


def files_sent(text: str) -> list[str]:
    """Files a client sent inside a message: a path alone on a line, then a code block with
    its content (how Aider, Continue and most chat clients attach a file), in order."""
    seen: dict[str, None] = {}
    for match in _LABELLED.finditer(text):
        seen.setdefault(_normal(match.group(1)), None)
    return list(seen)


_SYMBOL_HINT = re.compile(r"`([A-Za-z_][\w.]*)`|\b([A-Za-z_]\w*)\(")


def symbols_in_prompt(prompt: str) -> list[str]:
    """Identifiers the task talks about: `quoted` names and names followed by a call."""
    seen: dict[str, None] = {}
    for match in _SYMBOL_HINT.finditer(prompt):
        name = (match.group(1) or match.group(2)).rsplit(".", 1)[-1]
        if len(name) > 2 and not name.isupper():
            seen.setdefault(name, None)
    return list(seen)


# --- task type -----------------------------------------------------------------------------

_TYPE_RULES: tuple[tuple[TaskType, re.Pattern[str]], ...] = (
    ("test", re.compile(r"\b(unit ?tests?|pytest|test cases?|write tests?|add tests?)\b", re.I)),
    ("document", re.compile(r"\b(docstrings?|document|documentation|comments? for)\b", re.I)),
    ("review", re.compile(r"\b(review|critique|audit)\b", re.I)),
    ("refactor", re.compile(r"\b(refactor|rename|restructure|extract (a |the )?(function|method|class))\b", re.I)),
    ("debug", re.compile(r"\b(bug|fix|debug|traceback|exception|error|crash(es)?|fails?)\b", re.I)),
    ("edit", re.compile(r"\b(change|modify|update|edit|rewrite|replace)\b", re.I)),
    ("complete", re.compile(r"\b(complete|finish|fill in)\b", re.I)),
)


def classify_task(prompt: str) -> TaskType:
    """A cheap rule-based task type; the first matching rule wins, ``generate`` otherwise."""
    for task_type, pattern in _TYPE_RULES:
        if pattern.search(prompt):
            return task_type
    return "generate"
