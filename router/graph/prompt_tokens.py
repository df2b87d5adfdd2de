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

A long text is counted in pieces (:func:`pieces`), cut after blank lines chosen by the
content of the paragraph before them, so that a text that changes in one place (the date or
the working directory in an agent's system prompt, the user's words after a long reminder)
keeps the counts of its other pieces: a new session's first turn tokenizes what is new in it.
Each piece adds its margin (a few tokens in 10,000).
"""

from __future__ import annotations

import hashlib
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

from agents.base import Backend, GenerationRequest, Message

BOUNDARY_TOKENS = 1  # per text: a tokenizer may merge a text's first token with its frame
PIECE_CHARS = 4096  # a text this long or longer is counted in pieces
CUT_ONE_IN = 4  # a piece ends after one blank line in about this many (about 2,000 characters)
_BLANK = re.compile(r"\n\n+")
ESTIMATED_FRAME_TOKENS = 4  # per message, where the tier cannot render its template
MAX_TEXTS = 4096  # counts kept; about 100 bytes each


class TextTokens:
    """A bounded LRU of token counts: (counter, hash of the text) → tokens. Thread-safe (the
    graph runs in a thread per request)."""

    def __init__(self, max_texts: int = MAX_TEXTS) -> None:
        self.max_texts = max_texts
        self._counts: OrderedDict[tuple[Callable[[str], int], bytes], int] = OrderedDict()
        self._lock = threading.Lock()
        self.counted = 0  # texts tokenized (cache misses), for tests and benchmarks

    def __call__(self, count: Callable[[str], int], text: str) -> int:
        if not text:
            return 0
        key = (count, hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                                      digest_size=16).digest())
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                return found
        tokens = int(count(text))
        with self._lock:
            self.counted += 1
            self._counts[key] = tokens
            while len(self._counts) > self.max_texts:
                self._counts.popitem(last=False)
        return tokens


TEXTS = TextTokens()


def pieces(text: str) -> list[str]:
    """``text`` in pieces that join to it: cut after the blank lines whose paragraph (the text
    since the blank line before) hashes to 0 modulo :data:`CUT_ONE_IN`, so that where a piece
    ends depends on what is near, not on where it is."""
    if len(text) < PIECE_CHARS:
        return [text]
    out, start, paragraph = [], 0, 0
    for blank in _BLANK.finditer(text):
        end = blank.end()
        if zlib.crc32(text[paragraph:end].encode("utf-8", "surrogatepass")) % CUT_ONE_IN == 0:
            out.append(text[start:end])
            start = end
        paragraph = end
    if start < len(text):
        out.append(text[start:])
    return out


def frame_tokens(local: Backend, messages: Sequence[Message]) -> int:
    """The chat template's own tokens for these roles: the prompt rendered with every text
    empty; estimated where the tier cannot render it."""
    frame = tuple(Message(m.role, "", tool_call_id=m.tool_call_id, name=m.name)
                  for m in messages)
    counted = local.count_prompt_tokens(GenerationRequest(messages=frame))
    return counted if counted is not None else ESTIMATED_FRAME_TOKENS * len(messages)


def message_tokens(count: Callable[[str], int], message: Message,
                   texts: TextTokens = TEXTS) -> int:
    """One message's own tokens (its text and tool calls), without its frame."""
    tokens = sum(texts(count, piece) + BOUNDARY_TOKENS for piece in pieces(message.content))
    for call in message.tool_calls:
        tokens += texts(count, call.id) + texts(count, call.name) + texts(count, call.arguments)
        tokens += 3 * BOUNDARY_TOKENS
    return tokens


def conversation_tokens(local: Backend, count: Callable[[str], int],
                        messages: Sequence[Message], texts: TextTokens = TEXTS) -> int:
    """The prompt's tokens as ``local`` sees it, or a few more: the frame, then each message
    counted once (:data:`TEXTS`)."""
    return frame_tokens(local, messages) + sum(message_tokens(count, m, texts)
                                               for m in messages)
