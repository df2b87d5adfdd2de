"""The local tier: a GGUF model run in-process by llama.cpp, with per-token logprobs.

One loaded model serves many requests; llama.cpp contexts are not thread-safe, so every
generation holds a lock for its whole duration (callers run it in a worker thread).
Logprobs come from the logits row the sampler used, read through llama.cpp's C API after each
token, so they cost well under a millisecond per token and need no ``logits_all``.

No tool turns (``supports_tools`` False): llama-cpp-python renders a chat as role and text and
has no parser for the calls in a model's answer (llama-server with ``--jinja`` has both, see
``agents.remote``); such a turn raises ``ToolsUnsupported`` and the router sends it to the cloud.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agents import fim, kv_reuse
from agents.base import (
    Alternative,
    Backend,
    FinishReason,
    Generation,
    GenerationRequest,
    InfillRequest,
    Timings,
    TokenEvent,
    TokenLogprob,
    Usage,
)
from agents.config import LocalConfig
from agents.errors import FimUnsupported, PromptTooLong, ToolsUnsupported
from agents.fim import Stopper, stop_strings, with_block_end
from agents.logprobs import step_logprobs


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def free_sampler(llama: Any) -> None:
    """Free the sampler that ``Llama.generate`` made and keeps until the next call.

    llama-cpp-python's ``LlamaSampler`` sits in a reference cycle (its own free callback), so
    only Python's cyclic collector frees it, and its native buffer (a row of candidates for the
    whole vocabulary: 0.6 MB for SmolLM2, 1.8 MB for Qwen2.5) waited for a full collection:
    173 MB held after 300 chats, and a process that grew a few MiB a minute under load."""
    sampler, llama._sampler = llama._sampler, None
    if sampler is not None:
        sampler.close()


def logits_row(pointer: Any, n_vocab: int) -> np.ndarray:
    """The logits behind a ``float *`` as an array, without copying. Not
    ``np.ctypeslib.as_array``: its ``ctypes.cast`` leaves a reference cycle per call."""
    address = ctypes.addressof(pointer.contents)
    return np.ctypeslib.as_array((ctypes.c_float * n_vocab).from_address(address))


class LocalBackend(Backend):
    supports_logprobs = True
    supports_tools = False  # see the module's docstring

    def __init__(self, config: LocalConfig, model_path: Path, *, name: str | None = None) -> None:
        # deferred: llama_cpp is heavy; importing this module must not load it
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        self._config = config
        self._name = name or model_path.stem
        kwargs: dict[str, Any] = {
            "model_path": str(model_path),
            "n_ctx": config.n_ctx,
            "n_threads": config.n_threads,
            "n_threads_batch": config.n_threads,
            "n_batch": config.n_batch,
            "flash_attn": config.flash_attn,
            "logits_all": False,
            "verbose": False,
        }
        if config.kv_cache_type == "q8_0":
            kwargs["type_k"] = llama_cpp.GGML_TYPE_Q8_0
            if config.flash_attn:  # llama.cpp quantizes the V cache only with flash attention
                kwargs["type_v"] = llama_cpp.GGML_TYPE_Q8_0
        if config.prompt_lookup_tokens:
            kwargs["draft_model"] = LlamaPromptLookupDecoding(
                num_pred_tokens=config.prompt_lookup_tokens
            )
            # llama-cpp-python verifies draft tokens from logits of every position, and sizes
            # its logits buffer from this flag: n_ctx x n_vocab floats (2.5 GB at 4096 x 152k).
            kwargs["logits_all"] = True
        started = time.perf_counter()
        self._llama = llama_cpp.Llama(**kwargs)
        self.load_s = time.perf_counter() - started
        self._closed = False
        # A context of its own for inline completion (the weights are shared through mmap),
        # made at the first completion: chats in between then leave its KV cache alone.
        self._fim_kwargs = {**kwargs, "n_ctx": config.fim_n_ctx, "logits_all": False}
        self._fim_kwargs.pop("draft_model", None)
        self._fim_llama: Any = None
        self._score_llama: Any = None
        self._fim_lock = threading.Lock()
        vocab = self._llama._model.vocab
        ids = (llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab),
               llama_cpp.llama_vocab_fim_mid(vocab))
        self._fim = fim.FimTokens(*ids) if min(ids) >= 0 else None
        self.supports_fim = self._fim is not None
        self._is_eog = lambda token: bool(
            llama_cpp.llama_vocab_is_eog(self._llama._model.vocab, token)
        )
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{model_path.name} has no chat template in its GGUF metadata")
        eos, bos = self._llama.token_eos(), self._llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self._llama._model.token_get_text(bos) if bos != -1 else "",
        )
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def n_ctx(self) -> int:
        return self._config.n_ctx

    def render(self, request: GenerationRequest) -> str:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return self._formatter(messages=messages).prompt  # type: ignore[arg-type]

    def tokenize(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode(), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return len(self.tokenize(self.render(request)))

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        if request.uses_tools:
            raise ToolsUnsupported(
                f"tools: the in-process local model {self._name} cannot take tool calls; send "
                "the turn to the cloud, or run the local tier on llama-server with jinja on "
                "(local.mode: server)")
        prompt = self.tokenize(self.render(request))
        if len(prompt) >= self.n_ctx:
            raise PromptTooLong(len(prompt), self.n_ctx)
        with self._lock:
            yield from self._decode(self._llama, prompt, request, stop_strings(request.stop))

    def code_tokens(self, text: str) -> list[int]:
        """Tokens of code as text: control-token names in it stay text."""
        return self._llama.tokenize(text.encode(), add_bos=False, special=False)

    def infill(self, request: InfillRequest) -> Iterator[TokenEvent | Generation]:
        if request.suffix is not None and self._fim is None:
            raise FimUnsupported(
                f"suffix: model {self._name} has no fill-in-the-middle tokens in its tokenizer; "
                "send the request without suffix, or configure a FIM-trained local model "
                "(e.g. qwen2.5-coder-0.5b)")
        prefix, suffix = request.prefix, request.suffix
        if suffix is None and self._fim is not None:  # an editor's own FIM template?
            texts = tuple(self._llama._model.token_get_text(t) for t in (
                self._fim.prefix, self._fim.suffix, self._fim.middle))
            parsed = fim.untemplate(prefix, texts)  # type: ignore[arg-type]
            if parsed is not None:
                prefix, suffix = parsed
        win = fim.window(prefix, suffix or "",
                         prefix_tokens=request.prefix_tokens, suffix_tokens=request.suffix_tokens,
                         count=lambda text: len(self.code_tokens(text)))
        bos = self._llama.tokenize(b"", add_bos=True, special=False)
        if suffix is None or self._fim is None:
            prompt = [*bos, *self.code_tokens(win.prefix)]
        else:
            prompt = fim.layout(self.code_tokens(win.prefix), self.code_tokens(win.suffix),
                                self._fim, order=request.order, bos=bos)
        stopper = stop_strings(request.stop)
        if request.stop_at_block_end:
            stopper = with_block_end(stopper, fim.BlockEnd.around(win.prefix, win.suffix))
        generation_request = GenerationRequest(messages=(), max_tokens=request.max_tokens,
                                               temperature=request.temperature,
                                               stop=request.stop, logprobs=False)
        shared = self._config.fim_n_ctx == 0
        lock = self._lock if shared else self._fim_lock
        with lock:
            llama = self._llama if shared else self._fim_context()
            n_ctx = self.n_ctx if shared else self._config.fim_n_ctx
            if len(prompt) >= n_ctx:
                raise PromptTooLong(len(prompt), n_ctx)
            reused, moved = self._reuse_cache(llama, prompt, request.reuse_min_tokens,
                                              request.reuse_refresh_tokens)
            for item in self._decode(llama, prompt, generation_request, stopper, n_ctx=n_ctx):
                if isinstance(item, Generation):
                    item.extra.update(cached_prompt_tokens=reused, moved_prompt_tokens=moved,
                                      window={
                        "prefix_lines_dropped": win.prefix_lines_dropped,
                        "suffix_lines_dropped": win.suffix_lines_dropped})
                yield item

    @staticmethod
    def _reuse_cache(llama: Any, prompt: list[int], min_tokens: int,
                     refresh: int = 0) -> tuple[int, int]:
        """Prepare ``llama``'s cache for ``prompt``: (prompt tokens it already holds, of which
        moved from another position). With ``min_tokens`` 0 only the common prefix counts (what
        ``generate`` reuses by itself); else :mod:`agents.kv_reuse` keeps the runs after it,
        less their first ``refresh`` tokens."""
        old = llama.input_ids[:llama.n_tokens].tolist()
        prefix = common_prefix(old, prompt)
        if not min_tokens or not old or not kv_reuse.can_move(llama):
            return prefix, 0
        runs = kv_reuse.plan(old, prompt, min_tokens, refresh)
        kept = sum(run.length for run in runs)
        if kept <= prefix:
            return prefix, 0
        try:
            kv_reuse.apply(llama, runs, prompt)
        except RuntimeError:  # a failed decode: start this prompt from an empty cache
            llama._ctx.kv_cache_clear()  # both sequences
            llama.n_tokens = 0
            return 0, 0
        return kept, kept - prefix

    def _fim_context(self) -> Any:
        if self._fim_llama is None:
            import llama_cpp  # deferred: heavy

            self._fim_llama = kv_reuse.with_scratch_sequence(llama_cpp.Llama(**self._fim_kwargs))
        return self._fim_llama

    def _decode(
        self, llama: Any, prompt: list[int], request: GenerationRequest, stopper: Stopper,
        *, n_ctx: int | None = None,
    ) -> Iterator[TokenEvent | Generation]:
        n_vocab = llama.n_vocab()
        max_tokens = min(request.max_tokens, (n_ctx or self.n_ctx) - len(prompt))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, emitted, count = "", 0, 0
        logprobs: list[TokenLogprob] = []
        finish: FinishReason = "length"
        started = time.perf_counter()
        first_at = last_at = None
        cut: int | None = None
        generator = llama.generate(prompt, temp=request.temperature, top_k=0, top_p=1.0,
                                   min_p=0.0, repeat_penalty=1.0)
        try:
            for index, token in enumerate(generator):
                now = time.perf_counter()
                first_at = first_at or now
                last_at = now
                if self._is_eog(token):
                    finish = "stop"
                    break
                piece = llama.detokenize([token])
                count += 1
                entry = None
                if request.logprobs:
                    # The logits that chose this token: its row counted back from the last decoded.
                    row = len(prompt) - 1 + index - llama.n_tokens
                    logits = logits_row(llama._ctx.get_logits_ith(row), n_vocab)
                    logprob, top = step_logprobs(logits, token, request.top_logprobs)
                    entry = TokenLogprob(
                        token=piece.decode("utf-8", errors="replace"),
                        logprob=logprob,
                        top=tuple(Alternative(self._piece(t), lp) for t, lp in top),
                    )
                    logprobs.append(entry)
                text += decoder.decode(piece)
                cut, safe = stopper(text)
                if cut is not None:
                    text, finish = text[:cut], "stop"
                    if cut > emitted:
                        yield TokenEvent(text[emitted:], entry)
                    break
                if safe > emitted:
                    yield TokenEvent(text[emitted:safe], entry)
                    emitted = safe
                else:
                    yield TokenEvent("", entry)
                if count >= max_tokens:
                    break
        finally:
            generator.close()  # also when the caller abandons the stream
            free_sampler(llama)
        if cut is None:  # no stop string cut the text: flush a trailing partial character
            text += decoder.decode(b"", final=True)
        if len(text) > emitted:
            yield TokenEvent(text[emitted:])
        total = time.perf_counter() - started
        decode_rate = None
        if first_at is not None and last_at is not None and count > 1:
            decode_rate = (count - 1) / max(last_at - first_at, 1e-9)
        yield Generation(
            text=text,
            model=self._name,
            finish_reason=finish,
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=count),
            timings=Timings(
                total_ms=total * 1000,
                first_token_ms=(first_at - started) * 1000 if first_at else None,
                decode_tokens_per_s=decode_rate,
            ),
            logprobs=tuple(logprobs) if request.logprobs else None,
        )

    def score(self, request: GenerationRequest, text: str) -> tuple[TokenLogprob, ...]:
        """Teacher forcing: each token of ``text`` as this model's answer to ``request``, with
        its logprob and the request's top-k alternatives, from one forward pass over prompt
        and answer (what greedy decoding saw, had it produced these tokens). For scoring
        recorded answers without decoding them again; a context of its own that keeps the
        logits of every position is made at the first call."""
        import llama_cpp  # deferred: heavy

        prompt = self.tokenize(self.render(request))
        answer = self.code_tokens(text)
        tokens = [*prompt, *answer]
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(len(tokens), self.n_ctx)
        with self._lock:
            if self._score_llama is None:
                self._score_llama = llama_cpp.Llama(**{**self._fim_kwargs,
                                                       "n_ctx": self.n_ctx, "logits_all": True})
            llama = self._score_llama
            llama.reset()
            llama.eval(tokens)
            entries = []
            for index, token in enumerate(answer):
                row = np.asarray(llama.scores[len(prompt) - 1 + index], dtype=np.float32)
                logprob, top = step_logprobs(row, token, request.top_logprobs)
                entries.append(TokenLogprob(self._piece(token), logprob,
                                            tuple(Alternative(self._piece(t), lp) for t, lp in top)))
        return tuple(entries)

    def _piece(self, token: int) -> str:
        return self._llama.detokenize([token]).decode("utf-8", errors="replace")

    def unavailable(self) -> str | None:
        return "the local model was unloaded (closed)" if self._closed else None

    def close(self) -> None:
        self._closed = True
        if self._score_llama is not None:
            self._score_llama.close()
        if self._fim_llama is not None:
            self._fim_llama.close()
        self._llama.close()
