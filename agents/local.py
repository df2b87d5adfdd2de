"""The local tier: a GGUF model run in-process by llama.cpp, with per-token logprobs.

One loaded model serves many requests; llama.cpp contexts are not thread-safe, so every
generation holds a lock for its whole duration (callers run it in a worker thread).
Logprobs come from the logits row the sampler used, read through llama.cpp's C API after each
token, so they cost well under a millisecond per token and need no ``logits_all``.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import (
    Alternative,
    Backend,
    FinishReason,
    Generation,
    GenerationRequest,
    Timings,
    TokenEvent,
    TokenLogprob,
    Usage,
)
from agents.config import LocalConfig
from agents.errors import PromptTooLong
from agents.logprobs import step_logprobs


class LocalBackend(Backend):
    supports_logprobs = True

    def __init__(self, config: LocalConfig, model_path: Path, *, name: str | None = None) -> None:
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
        prompt = self.tokenize(self.render(request))
        if len(prompt) >= self.n_ctx:
            raise PromptTooLong(len(prompt), self.n_ctx)
        with self._lock:
            yield from self._decode(prompt, request)

    def _decode(
        self, prompt: list[int], request: GenerationRequest
    ) -> Iterator[TokenEvent | Generation]:
        llama = self._llama
        n_vocab = llama.n_vocab()
        max_tokens = min(request.max_tokens, self.n_ctx - len(prompt))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stop = request.stop
        hold = max((len(s) for s in stop), default=1) - 1  # text that may start a stop string
        text, emitted, count = "", 0, 0
        logprobs: list[TokenLogprob] = []
        finish: FinishReason = "length"
        started = time.perf_counter()
        first_at = last_at = None
        cut = -1
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
                    logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(row), shape=(n_vocab,))
                    logprob, top = step_logprobs(logits, token, request.top_logprobs)
                    entry = TokenLogprob(
                        token=piece.decode("utf-8", errors="replace"),
                        logprob=logprob,
                        top=tuple(Alternative(self._piece(t), lp) for t, lp in top),
                    )
                    logprobs.append(entry)
                text += decoder.decode(piece)
                cut = min((text.find(s) for s in stop if s in text), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                    if cut > emitted:
                        yield TokenEvent(text[emitted:], entry)
                    break
                safe = len(text) - hold
                if safe > emitted:
                    yield TokenEvent(text[emitted:safe], entry)
                    emitted = safe
                else:
                    yield TokenEvent("", entry)
                if count >= max_tokens:
                    break
        finally:
            generator.close()  # also when the caller abandons the stream
        if cut < 0:  # no stop string cut the text: flush a trailing partial character
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

    def _piece(self, token: int) -> str:
        return self._llama.detokenize([token]).decode("utf-8", errors="replace")

    def close(self) -> None:
        self._llama.close()
