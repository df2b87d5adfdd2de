"""The in-process llama.cpp backend, on real GGUF models."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import pytest

from agents import model_store
from agents.base import Generation, TokenEvent
from agents.errors import PromptTooLong
from tests.conftest import ask

PROMPT = "Write a Python function that returns the square of a number."


def test_logprobs_are_present_finite_and_name_the_greedy_choice(smol) -> None:
    result = smol.generate(ask(PROMPT, max_tokens=24))
    assert result.logprobs is not None
    assert len(result.logprobs) == result.usage.completion_tokens > 0
    for entry in result.logprobs:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0.0
        assert len(entry.top) == 2
        # greedy decoding picks the most likely token, so it heads its own alternatives
        assert entry.top[0].logprob == pytest.approx(entry.logprob, abs=1e-6)
        assert entry.top[0].logprob >= entry.top[1].logprob
    assert "".join(t.token for t in result.logprobs) == result.text


def test_logprobs_agree_with_llama_cpp_own_computation(smol, model_cache: Path) -> None:
    """Our cheap logits read must give the numbers llama-cpp-python's slow path gives."""
    import llama_cpp

    ours = smol.generate(ask(PROMPT, max_tokens=12))
    path = model_cache / model_store.MODELS["smollm2-135m"].filename
    slow = llama_cpp.Llama(model_path=str(path), n_ctx=2048, logits_all=True, verbose=False,
                           n_threads=2)
    try:
        prompt = smol.render(ask(PROMPT))
        theirs = slow.create_completion(prompt, max_tokens=12, temperature=0.0, logprobs=1)
    finally:
        slow.close()
    their_logprobs = theirs["choices"][0]["logprobs"]["token_logprobs"]
    assert ours.logprobs is not None
    assert [t.logprob for t in ours.logprobs] == pytest.approx(their_logprobs, abs=2e-3)


def test_greedy_output_is_deterministic(smol) -> None:
    first = smol.generate(ask(PROMPT, max_tokens=32))
    second = smol.generate(ask(PROMPT, max_tokens=32))
    assert first.text == second.text
    assert [t.logprob for t in first.logprobs] == pytest.approx([t.logprob for t in second.logprobs])


def test_streaming_yields_the_same_text_as_generate(smol) -> None:
    whole = smol.generate(ask(PROMPT, max_tokens=40))
    items = list(smol.stream(ask(PROMPT, max_tokens=40)))
    final = items[-1]
    assert isinstance(final, Generation)
    events = [i for i in items[:-1] if isinstance(i, TokenEvent)]
    assert "".join(e.text for e in events) == whole.text == final.text
    assert sum(1 for e in events if e.logprob is not None) == whole.usage.completion_tokens


def test_max_tokens_and_stop_strings(smol) -> None:
    limited = smol.generate(ask(PROMPT, max_tokens=5))
    assert limited.usage.completion_tokens == 5 and limited.finish_reason == "length"
    full = smol.generate(ask(PROMPT, max_tokens=40))
    stop = full.text[10:14]
    stopped = smol.generate(ask(PROMPT, max_tokens=40, stop=(stop,)))
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index(stop)]


def test_prompt_longer_than_the_context_is_refused(smol) -> None:
    with pytest.raises(PromptTooLong, match="context window is 2048"):
        smol.generate(ask("word " * 3000, max_tokens=4))


def test_without_logprobs_returns_none(smol) -> None:
    assert smol.generate(ask(PROMPT, max_tokens=4, logprobs=False)).logprobs is None


@pytest.mark.slow
def test_coder_writes_the_function_and_is_confident(coder) -> None:
    result = coder.generate(ask("Write a Python function add(a, b) that returns a + b.",
                                max_tokens=120))
    assert "def add(a, b)" in result.text
    assert result.logprobs is not None
    mean = sum(t.logprob for t in result.logprobs) / len(result.logprobs)
    assert mean > -0.5  # a trivial task: the small coder is sure of itself


def test_teacher_forcing_reproduces_the_greedy_answers_logprobs(smol) -> None:
    """Scoring a recorded answer gives the logprobs decoding it gave (evaluations score
    recorded answers this way instead of decoding them again)."""
    request = ask(PROMPT, max_tokens=24)
    decoded = smol.generate(request)
    assert decoded.logprobs
    scored = smol.score(request, decoded.text)
    assert [e.token for e in scored] == [e.token for e in decoded.logprobs]
    # One batched pass rounds differently from token-by-token decoding (Q4 weights): close,
    # not bit-equal.
    gaps = [abs(f.logprob - g.logprob) for f, g in zip(scored, decoded.logprobs, strict=True)]
    assert max(gaps) < 0.15 and sum(gaps) / len(gaps) < 0.03
    assert all(len(f.top) == 2 for f in scored)
    # a different answer scores differently (it is scored, not looked up)
    other = smol.score(request, "Nothing about it at all, really.")
    assert sum(e.logprob for e in other) < sum(e.logprob for e in scored)


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_chats_give_their_native_memory_back_at_once(smol) -> None:
    """Each generation's sampler holds a native buffer the size of the vocabulary (0.6 MB for
    SmolLM2, 1.8 MB for Qwen2.5), which llama-cpp-python frees only through Python's cyclic
    collector: a busy server held hundreds of MiB between collections. With the collector off,
    150 chats, finished or abandoned mid-stream, must leave resident memory where it was."""
    request = ask("Say hi.", max_tokens=2)
    smol.generate(request)
    gc.collect()
    gc.disable()
    try:
        before = rss_mib()
        for index in range(150):
            if index % 2:
                smol.generate(request)
            else:
                stream = smol.stream(request)
                next(stream)
                stream.close()
        grown = rss_mib() - before
    finally:
        gc.enable()
    assert grown < 16, f"resident memory grew {grown:.0f} MiB over 150 chats"
