"""An agent turn's prompt tokens, counted once per message.

An agent resends its whole conversation every turn (Claude Code: a system prompt of about
20,000 tokens, then every tool call and result so far), and the intake needs its size to decide
whether it fits the local window. Tokenizing it whole each turn cost about 1-4 ms per 1,000
tokens, most of the router's own time per turn (90 of 100 ms on a 23,000-token Claude Code
turn, 2 busy cores). Here a
message's text is tokenized once and its count kept in a bounded LRU keyed by a hash of the
text, so a later turn of the session (or another session with the same system prompt) only
tokenizes what is new.

The sum is the whole prompt's count or a little more, never less:

- the chat template's frame (role markers, a default system prompt, the generation prompt) is
  the template rendered over the same roles with empty texts, counted whole (a few tokens a
  message);
- each text is tokenized on its own, plus ``BOUNDARY_TOKENS``: a text tokenized apart from its
  frame can only split where the whole would merge, as a template's frames end in special
  tokens or a newline, so it counts the same or more; the margin covers a tokenizer that
  would merge across;
- an assistant turn's tool calls count too (their id, name and arguments), which an
  in-process template that writes text only leaves out: a tier that renders them sees them.

A longer text is counted in pieces (:func:`pieces`), cut after line ends chosen by the
characters just before them, so that a text that changes in one place (the date or the working
directory in an agent's system prompt, the user's words after a long reminder, a file read
again after an edit) keeps the counts of its other pieces: a new session's first turn
tokenizes what is new in it. Each piece adds its margin (about one token in 200).

A message seen whole before is one lookup (its total is kept too), and the pieces a message
brings that were never counted are tokenized side by side (:func:`count_all`): llama.cpp's
tokenizer runs without the interpreter lock, so the first turn of a client the process has not
seen (its system prompt and tools, 10,000-25,000 tokens) spreads over the cores.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from agents.base import Backend, GenerationRequest, Message

BOUNDARY_TOKENS = 1  # per text: a tokenizer may merge a text's first token with its frame
PIECE_CHARS = 1024  # a text this long or longer is counted in pieces
MIN_PIECE_CHARS = 256  # no piece ends sooner (each piece adds its margin)
CUT_ONE_IN = 8  # a piece ends after about one line end in this many (~800 characters of code)
CUT_CONTEXT_CHARS = 64  # a line end is chosen by the characters just before it
_LINE_ENDS = re.compile(r"\n+")
PARALLEL_CHARS = 8192  # new pieces this long in all are tokenized side by side
MAX_TOKENIZERS = 4  # threads tokenizing one message's new pieces at once
ESTIMATED_FRAME_TOKENS = 4  # per message, where the tier cannot render its template
MAX_TEXTS = 4096  # counts kept; about 100 bytes each

Counter = Callable[[str], int]


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class TextTokens:
    """A bounded LRU of token counts: (counter, what, hash of the text) → tokens, where
    ``what`` is ``"text"`` (the text tokenized alone) or ``"message"`` (a message's own
    tokens, :func:`message_tokens`). Thread-safe (the graph runs in a thread per request)."""

    def __init__(self, max_texts: int = MAX_TEXTS) -> None:
        self.max_texts = max_texts
        self._counts: OrderedDict[tuple[Counter, str, bytes], int] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, count: Counter, text: str, what: str = "text") -> int | None:
        key = (count, what, _digest(text))
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
            return found

    def keep(self, count: Counter, text: str, tokens: int, what: str = "text") -> None:
        with self._lock:
            self._counts[(count, what, _digest(text))] = tokens
            while len(self._counts) > self.max_texts:
                self._counts.popitem(last=False)


TEXTS = TextTokens()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _tokenizers() -> ThreadPoolExecutor:
    """The threads that tokenize new pieces side by side, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=min(MAX_TOKENIZERS, os.cpu_count() or 1),
                                       thread_name_prefix="tokenize")
        return _pool


def count_all(count: Counter, texts: Sequence[str], kept: TextTokens = TEXTS) -> list[int]:
    """Each text's tokens, as :class:`TextTokens` counts them; the ones never counted, when
    there are several and they are long (:data:`PARALLEL_CHARS`), tokenized side by side."""
    found = [kept.find(count, text) if text else 0 for text in texts]
    new = list(dict.fromkeys(t for t, n in zip(texts, found, strict=True) if n is None))
    if len(new) > 1 and sum(map(len, new)) >= PARALLEL_CHARS:
        tokens = dict(zip(new, _tokenizers().map(count, new), strict=True))
    else:
        tokens = {text: count(text) for text in new}
    for text, n in tokens.items():
        kept.keep(count, text, int(n))
    return [int(tokens[t]) if n is None else n for t, n in zip(texts, found, strict=True)]


def pieces(text: str) -> list[str]:
    """``text`` in pieces that join to it: cut after the line ends whose last
    :data:`CUT_CONTEXT_CHARS` characters hash to 0 modulo :data:`CUT_ONE_IN`, at least
    :data:`MIN_PIECE_CHARS` apart, so that where a piece ends depends on what is near, not on
    where it is."""
    if len(text) < PIECE_CHARS:
        return [text]
    out, start = [], 0
    for line_end in _LINE_ENDS.finditer(text):
        end = line_end.end()
        if end - start < MIN_PIECE_CHARS or end == len(text):
            continue
        near = text[max(0, end - CUT_CONTEXT_CHARS):end].encode("utf-8", "surrogatepass")
        if zlib.crc32(near) % CUT_ONE_IN == 0:
            out.append(text[start:end])
            start = end
    out.append(text[start:])
    return out


def frame_tokens(local: Backend, messages: Sequence[Message]) -> int:
    """The chat template's own tokens for these roles: the prompt rendered with every text
    empty; estimated where the tier cannot render it."""
    frame = tuple(Message(m.role, "", tool_call_id=m.tool_call_id, name=m.name)
                  for m in messages)
    counted = local.count_prompt_tokens(GenerationRequest(messages=frame))
    return counted if counted is not None else ESTIMATED_FRAME_TOKENS * len(messages)


def message_tokens(count: Counter, message: Message, texts: TextTokens = TEXTS) -> int:
    """One message's own tokens (its text and tool calls), without its frame."""
    tokens = texts.find(count, message.content, "message") if message.content else 0
    if tokens is None:
        cut = pieces(message.content)
        tokens = sum(count_all(count, cut, texts)) + BOUNDARY_TOKENS * len(cut)
        texts.keep(count, message.content, tokens, "message")
    for call in message.tool_calls:
        tokens += sum(count_all(count, [call.id, call.name, call.arguments], texts))
        tokens += 3 * BOUNDARY_TOKENS
    return tokens


def conversation_tokens(local: Backend, count: Counter, messages: Sequence[Message],
                        texts: TextTokens = TEXTS) -> int:
    """The prompt's tokens as ``local`` sees it, or a few more: the frame, then each message
    counted once (:data:`TEXTS`)."""
    return frame_tokens(local, messages) + sum(message_tokens(count, m, texts)
                                               for m in messages)
