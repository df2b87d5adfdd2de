"""Fill-in-the-middle: the prompt window around the cursor, the FIM token layout, and where a
completion's block ends. Pure functions; the backends call them.

Latency comes first in inline completion, and llama.cpp re-evaluates a prompt only from its
first changed token (the KV cache keeps the longest common prefix of the previous request).
So the window's edges are anchored to whole blocks of lines: typing on the cursor's line
moves neither edge, and the next request evaluates only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FimOrder = Literal["psm", "spm"]

#: Window edges move in steps of this many lines (see the module docstring).
ANCHOR_LINES = 16


@dataclass(frozen=True)
class FimTokens:
    """A model's FIM control tokens, as read from its GGUF tokenizer."""

    prefix: int
    suffix: int
    middle: int


@dataclass(frozen=True)
class Window:
    prefix: str
    suffix: str
    prefix_lines_dropped: int
    suffix_lines_dropped: int


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def window(prefix: str, suffix: str, *, prefix_tokens: int, suffix_tokens: int,
           count: Callable[[str], int]) -> Window:
    """The code nearest the cursor that fits the budgets, in whole lines: the last lines of
    ``prefix`` within ``prefix_tokens`` and the first of ``suffix`` within ``suffix_tokens``.

    The cursor's own line is always kept whole on both sides (its text before and after the
    cursor). Where lines of the prefix must be dropped, the cut is rounded to a multiple of
    :data:`ANCHOR_LINES` lines (fewer lines, never more than the budget), so the window's
    start stays put while the user types at the cursor."""
    before = _lines(prefix)
    start = _first_kept(before, prefix_tokens, count, from_end=True)
    if start > 0:
        start = min(-(-start // ANCHOR_LINES) * ANCHOR_LINES, len(before) - 1)
    after = _lines(suffix)
    end = _first_kept(after, suffix_tokens, count, from_end=False)  # typing leaves it as is
    return Window(prefix="".join(before[start:]), suffix="".join(after[:end]),
                  prefix_lines_dropped=start, suffix_lines_dropped=len(after) - end)


def _first_kept(lines: list[str], budget: int, count: Callable[[str], int], *,
                from_end: bool) -> int:
    """For ``from_end``: the index of the first line kept counting back from the last line
    (always at least the last); otherwise the number of lines kept from the start (at least
    one)."""
    used = 0
    order = range(len(lines) - 1, -1, -1) if from_end else range(len(lines))
    kept = 0
    for index in order:
        used += count(lines[index])
        if used > budget and kept > 0:
            break
        kept += 1
    return len(lines) - kept if from_end else kept


def layout(prefix: list[int], suffix: list[int], tokens: FimTokens, *,
           order: FimOrder = "psm", bos: list[int] | None = None) -> list[int]:
    """The prompt's token ids: ``PRE prefix SUF suffix MID`` (psm), or ``SUF suffix PRE
    prefix MID`` (spm: the suffix first, so edits at the cursor leave the cached suffix
    intact). The code's own tokens must come from a tokenizer run without special tokens,
    so that code containing ``<|fim_prefix|>`` as text cannot steer the model."""
    head = list(bos or [])
    pre, suf = [tokens.prefix, *prefix], [tokens.suffix, *suffix]
    body = pre + suf if order == "psm" else suf + pre
    return [*head, *body, tokens.middle]


def untemplate(prompt: str, texts: tuple[str, str, str]) -> tuple[str, str] | None:
    """A prompt a client already laid out with the model's FIM tokens as text (an editor's
    template: ``<|fim_prefix|>before<|fim_suffix|>after<|fim_middle|>``, either order), as
    (prefix, suffix); None when it is not one. The parts are tokenized again as code, so
    the control tokens come only from this layout, never from the code inside it."""
    pre, suf, mid = texts
    body = prompt.rstrip()
    if not body.endswith(mid) or body.count(mid) != 1:
        return None
    body = body[: -len(mid)]
    if body.count(pre) != 1 or body.count(suf) != 1:
        return None
    if body.startswith(pre):
        before, after = body[len(pre):].split(suf)
        return before, after
    if body.startswith(suf):
        after, before = body[len(suf):].split(pre)
        return before, after
    return None


# --- where a completion ends ---------------------------------------------------------------

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class BlockEnd:
    """Where an inline completion should stop: at a blank line after some code, at a line
    less indented than the cursor's block (the block ended), or at a line that reproduces the
    suffix's first line (the model is writing what already follows the cursor).

    ``lead`` is the cursor's line before the cursor when it is only whitespace (the
    completion's first line is then a whole line and the rules apply to it too), else None.
    ``newline``: whether a cut keeps the newline that ends the last kept line (yes when the
    cursor is at the start of a line that has code after it: the completion inserts whole
    lines before that code)."""

    indent: int
    suffix_line: str
    lead: str | None
    newline: bool

    @classmethod
    def around(cls, prefix: str, suffix: str) -> BlockEnd:
        current = prefix.rsplit("\n", 1)[-1]
        lead = current if not current.strip() else None
        if lead is not None:
            # The block is the one the cursor sits in: the nearest code line above.
            above = [line for line in prefix.split("\n")[:-1] if line.strip()]
            indent = min(_indent(current), _indent(above[-1])) if above else 0
            if above and above[-1].rstrip().endswith(":"):
                indent = _indent(above[-1]) + 1  # a new block opens below a colon
        else:
            indent = _indent(current)
        rest = suffix.split("\n")
        # Unless the cursor's line is empty after the cursor, the suffix's first line is the
        # rest of the cursor's line; the next code line is what a model running past the
        # cursor would reproduce.
        following = rest if lead is not None and rest[0].strip() else rest[1:]
        code = [line for line in following if line.strip()]
        return cls(indent=indent, suffix_line=code[0].strip() if code else "", lead=lead,
                   newline=lead is not None and bool(rest[0].strip()))

    def _ends_block(self, index: int, line: str) -> bool:
        shown = (self.lead or "") + line if index == 0 else line
        return _indent(shown) < self.indent or bool(
            self.suffix_line and line.strip() == self.suffix_line)

    def cut(self, text: str) -> int | None:
        """The length of ``text`` to keep when it has reached the end of the block, else
        None. Only finished lines (a newline follows) are judged."""
        position = 0
        seen_code = False
        for index, line in enumerate(text.split("\n")):
            whole = index > 0 or self.lead is not None
            finished = position + len(line) < len(text)
            if whole and finished and ((not line.strip() and seen_code) or (
                    line.strip() and self._ends_block(index, line))):
                if index == 0:
                    return 0
                return position if self.newline else position - 1
            seen_code = seen_code or bool(line.strip())
            position += len(line) + 1
        return None

    def safe(self, text: str) -> int:
        """How much of ``text`` can be shown without risk of a later cut taking it back: all
        but the last, unfinished line (and the newline before it) while that line could still
        turn out to end the block."""
        start = text.rfind("\n") + 1
        if start == 0 and self.lead is None:
            return len(text)
        last = text[start:]
        index = 0 if start == 0 else 1
        held = max(start - 1, 0)
        stripped = last.strip()
        if not stripped:
            return held  # it may be a blank line
        if self._ends_block(index, last) or (
                self.suffix_line and self.suffix_line.startswith(stripped)):
            return held
        return len(text)


# --- stop rules as one check on the text so far ----------------------------------------------

#: Given the text so far: the length to cut it to (None: go on), and how much of it is safe
#: to show (the rest may still be cut).
Stopper = Callable[[str], tuple[int | None, int]]


def stop_strings(stop: tuple[str, ...]) -> Stopper:
    hold = max((len(s) for s in stop), default=1) - 1  # text that may start a stop string

    def check(text: str) -> tuple[int | None, int]:
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        return (cut if cut >= 0 else None), len(text) - hold
    return check


def with_block_end(stopper: Stopper, block: BlockEnd) -> Stopper:
    def check(text: str) -> tuple[int | None, int]:
        cut, safe = stopper(text)
        end = block.cut(text if cut is None else text[:cut])
        return (end if end is not None else cut), min(safe, block.safe(text))
    return check
