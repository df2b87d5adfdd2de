"""Reuse of a llama.cpp KV cache beyond the common prefix, for inline completion.

A keystroke at the cursor changes a fill-in-the-middle prompt in the middle: with the psm
layout (``<pre> prefix <suf> suffix <mid>``) everything after the cursor follows the change, so
a plain prefix match evaluates the whole suffix again at each keystroke. Here the old and new
prompts are aligned (:func:`plan`), the cached runs that are still in the new prompt are kept
and moved to their new positions (llama.cpp shifts their RoPE positions), and only the tokens
in between are evaluated (:func:`apply`). The last token is always evaluated again, so the
first new token is chosen from logits that saw the whole new prompt.

The moved runs keep the keys and values they were computed with, before the edit: an
approximation (the same one as llama-server's ``--cache-reuse``, which only moves runs left;
this also moves them right, for text typed before them). Runs shorter than ``min_tokens`` are
evaluated again rather than moved. With ``refresh`` the first tokens of each moved run
(those right after the edit) are evaluated again too, so they see what was typed.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Run:
    """``length`` cached tokens at ``old`` that the new prompt has at ``new``."""

    old: int
    new: int
    length: int


def plan(old: list[int], new: list[int], min_tokens: int, refresh: int = 0) -> list[Run]:
    """The cached runs to keep, in order: the common prefix (any length) and every other
    matching run of at least ``min_tokens``, less its first ``refresh`` tokens. None covers
    the new prompt's last token."""
    last = len(new) - 1
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    runs = []
    for block in matcher.get_matching_blocks():
        length = min(block.size, last - block.b)
        is_prefix = block.a == 0 and block.b == 0
        if length > 0 and is_prefix:
            runs.append(Run(0, 0, length))
        elif length >= min_tokens and length > refresh:
            runs.append(Run(block.a + refresh, block.b + refresh, length - refresh))
    return runs


def evaluated(runs: list[Run], n_new: int) -> int:
    """How many of the new prompt's tokens :func:`apply` evaluates (the last one included)."""
    return n_new - sum(run.length for run in runs)


def with_scratch_sequence(llama: Any) -> Any:
    """``llama`` (a ``llama_cpp.Llama``) with a context of two sequences sharing one KV buffer
    (``kv_unified``, so no more memory): llama.cpp only decodes a sequence's tokens right after
    its highest cached position, so :func:`apply` evaluates the tokens between moved runs in
    sequence 1, then hands their cells to sequence 0. llama-cpp-python makes a context of one
    sequence and has no parameter for more, so the context is made again."""
    from llama_cpp import _internals  # deferred: loads llama_cpp (heavy)

    params = llama.context_params
    params.n_seq_max, params.kv_unified = 2, True
    old = llama._ctx
    llama._ctx = llama._stack.enter_context(contextlib.closing(_internals.LlamaContext(
        model=llama._model, params=params, verbose=False)))
    old.close()
    return llama


def can_move(llama: Any) -> bool:
    import llama_cpp  # deferred: heavy

    memory = llama._ctx.memory
    return (memory is not None and llama.context_params.n_seq_max >= 2
            and bool(llama_cpp.llama_memory_can_shift(memory)))


SCRATCH = 1  # the sequence the tokens between moved runs are evaluated in


def apply(llama: Any, runs: list[Run], new: list[int]) -> None:
    """Lay out the cache of ``llama`` (made by :func:`with_scratch_sequence`; its sequence 0
    holds ``input_ids[:n_tokens]``) as ``new`` minus its last token, keeping ``runs``; its next
    ``generate(new)`` then evaluates the last token only."""
    ctx = llama._ctx
    end = 0
    for run in runs:  # drop what is not kept
        if run.old > end:
            ctx.kv_cache_seq_rm(0, end, run.old)
        end = run.old + run.length
    ctx.kv_cache_seq_rm(0, end, -1)
    # Move runs so that none lands on cells another run has not left yet: leftward moves
    # first to last, then rightward moves last to first.
    for run in [r for r in runs if r.new < r.old]:
        ctx.kv_cache_seq_shift(0, run.old, run.old + run.length, run.new - run.old)
    for run in reversed([r for r in runs if r.new > r.old]):
        ctx.kv_cache_seq_shift(0, run.old, run.old + run.length, run.new - run.old)
    position = 0
    for start, length in [(r.new, r.length) for r in runs] + [(len(new) - 1, 0)]:
        if start > position:  # the gap before this run: evaluated after what precedes it
            ctx.kv_cache_seq_rm(SCRATCH, -1, -1)
            ctx.kv_cache_seq_cp(0, SCRATCH, 0, position)
            for at in range(position, start, llama.n_batch):
                batch = new[at:min(start, at + llama.n_batch)]
                llama._batch.set_batch(batch=batch, n_past=at, logits_all=False)
                for i in range(len(batch)):
                    llama._batch.batch.seq_id[i][0] = SCRATCH
                ctx.decode(llama._batch)
            ctx.kv_cache_seq_cp(SCRATCH, 0, position, start)
        position = start + length
    ctx.kv_cache_seq_rm(SCRATCH, -1, -1)
    llama.input_ids[:len(new) - 1] = new[:-1]
    llama.n_tokens = len(new) - 1
    llama._requires_eval = True
