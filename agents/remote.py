"""The local tier as a server: llama.cpp's server or any OpenAI-compatible one (vLLM, Ollama)
on a GPU host. Logprobs are taken from its response; a server that gives none yields None.

Tool turns (``supports_tools``): only llama.cpp's llama-server started with ``--jinja``
(``local.jinja``, on by default) renders tools and tool turns with the GGUF's own chat template
and parses the calls in the answer. Whether the server is one is asked, not assumed (a
``server_url`` may point at a server someone else started): ``/props`` answers (llama.cpp)
with ``chat_template_caps.supports_tool_calls``, and ``/apply-template`` renders a chat with a
tool (llama-server refuses tools without ``--jinja``: "tools param requires --jinja flag").
Other servers: False, so tool turns go to the cloud. llama-server refuses logprobs on a
streamed tool turn ("logprobs is not supported with tools + stream"), so a tool turn that asks
for logprobs is sent whole and played back as a stream (the router judges a local answer
before it releases it, so nothing is lost but the stream's pacing).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from agents import fim
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
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    Usage,
)
from agents.config import LocalConfig
from agents.errors import BackendUnavailable, FimUnsupported, RequestRefused, ToolsUnsupported

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 2.0  # a readiness probe must not hang /readyz
FILES_KEPT = 1000  # inline completion: file → slot entries remembered (least recent dropped)
FILE_KEY_CHARS = 512  # a file is known by the start of the code before the cursor


def _token_logprobs(choice: dict[str, Any]) -> list[TokenLogprob]:
    content = (choice.get("logprobs") or {}).get("content") or []
    return [
        TokenLogprob(
            token=item["token"],
            logprob=float(item["logprob"]),
            top=tuple(Alternative(a["token"], float(a["logprob"])) for a in item.get("top_logprobs") or ()),
        )
        for item in content
    ]


class _LogprobsRefused(Exception):
    pass


class _Reconnect(Exception):
    """The connection failed before any token (a pooled keep-alive connection the server had
    closed, say): the request can be sent again as it is."""


class RemoteLocalBackend(Backend):
    supports_logprobs = True
    # llama.cpp's llama-server fills in the middle through /infill; other servers answer 404
    # there, and a request with a suffix is then refused (FimUnsupported).
    supports_fim = True

    def __init__(self, config: LocalConfig) -> None:
        assert config.server_url is not None  # checked by LocalConfig
        self._config = config
        self._url = config.server_url.rstrip("/") + "/chat/completions"
        # No keep-alive: llama-server (cpp-httplib) closes a reused connection now and then,
        # and a request sent on it then stalls; a new loopback connection costs nothing.
        self._client = httpx.Client(timeout=config.timeout_s,
                                    limits=httpx.Limits(max_keepalive_connections=0))
        # Cleared when the server refuses logprobs; generations then carry none, and the
        # router escalates them (no evidence is not confidence).
        self.supports_logprobs = True
        self._llama_cpp: bool | None = None  # known once the server has answered /props
        self._tools: bool | None = None  # known once it has answered /apply-template
        self._problem: str | None = None  # why /health failed when last asked
        self._slots: int | None = None  # llama-server's slots (/props total_slots)
        self._file_slots: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._next_slot = 0
        self._slots_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self._config.server_url or ""

    def _root(self) -> str:
        return self.url.rstrip("/").removesuffix("/v1")

    def is_llama_cpp(self) -> bool:
        """Whether the server is llama.cpp's llama-server (its ``/props`` describes its slots):
        then requests ask for its prompt cache, and prompts are counted with its tokenizer."""
        if self._llama_cpp is None:
            try:
                response = self._client.get(f"{self._root()}/props", timeout=HEALTH_TIMEOUT_S)
            except httpx.HTTPError:
                return False  # asked again next time: it may be starting
            props = _json_object(response)
            self._llama_cpp = (response.status_code == 200
                               and "default_generation_settings" in props)
            slots = props.get("total_slots")
            self._slots = slots if isinstance(slots, int) and slots > 0 else None
        return self._llama_cpp

    def file_slot(self, prefix: str) -> int | None:
        """The slot that completes in this file (known by its start): llama-server gives a
        request the idle slot whose cached prompt is most alike, and a line typed at the cursor
        moves the start of the FIM window, so the next keystroke went to another slot and
        evaluated its whole window again (8 slots: 0 of 520 prompt tokens cached). Files take
        the slots in turn; None where the server is not llama-server or its slots are not
        known."""
        if not self.is_llama_cpp() or not self._slots:
            return None
        key = hashlib.sha256(prefix[:FILE_KEY_CHARS].encode()).hexdigest()
        with self._slots_lock:
            slot = self._file_slots.get(key)
            if slot is None:
                slot, self._next_slot = self._next_slot, (self._next_slot + 1) % self._slots
            self._file_slots[key] = slot
            self._file_slots.move_to_end(key)
            while len(self._file_slots) > FILES_KEPT:
                self._file_slots.popitem(last=False)
        return slot

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]
        """llama-server with ``--jinja`` and a chat template that takes tool calls (see the
        module's docstring); asked once the server answers, False while it does not."""
        if self._tools is None:
            if not self.is_llama_cpp():
                return False
            try:
                props = _json_object(self._client.get(f"{self._root()}/props",
                                                      timeout=HEALTH_TIMEOUT_S))
                rendered = self._client.post(
                    f"{self._root()}/apply-template", timeout=HEALTH_TIMEOUT_S,
                    json={"messages": [{"role": "user", "content": "hi"}], "tools": [PROBE_TOOL]})
            except httpx.HTTPError:
                return False  # asked again next time
            caps = props.get("chat_template_caps") or {}
            self._tools = (rendered.status_code == 200
                           and bool(caps.get("supports_tool_calls", True)))
        return self._tools

    @supports_tools.setter
    def supports_tools(self, value: bool) -> None:
        self._tools = value

    def count_tokens(self, text: str) -> int | None:
        """llama-server's own tokenizer (``/tokenize``); an estimate while it does not answer;
        None for other servers (the router estimates)."""
        if not self.is_llama_cpp():
            return None
        if not text:
            return 0
        tokens = self._tokenize(text)
        return len(tokens) if tokens is not None else max(1, round(len(text) / 3.5))

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """The chat as llama-server renders it (``/apply-template``), in its own tokens; a
        tool turn's tools are in the prompt too (the template writes their schemas there)."""
        if not self.is_llama_cpp():
            return None
        try:
            response = self._client.post(
                f"{self._root()}/apply-template", timeout=HEALTH_TIMEOUT_S,
                json={"messages": request.openai_messages(), **request.openai_tools()})
            response.raise_for_status()
            prompt = response.json()["prompt"]
        except (httpx.HTTPError, KeyError, ValueError):
            return None
        tokens = self._tokenize(prompt)
        return None if tokens is None else len(tokens)

    def _tokenize(self, text: str) -> list[int] | None:
        try:
            response = self._client.post(f"{self._root()}/tokenize", timeout=HEALTH_TIMEOUT_S,
                                         json={"content": text, "add_special": False,
                                               "parse_special": True})
            response.raise_for_status()
            return list(response.json()["tokens"])
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    @property
    def model_name(self) -> str:
        return self._config.model

    @property
    def n_ctx(self) -> int:
        return self._config.n_ctx

    def unavailable(self) -> str | None:
        """Asks the server's ``/health`` (llama-server answers 503 while it loads its model);
        any other answer under 500 (a server without that route: 404) is a live server."""
        base = self._config.server_url or ""
        try:
            response = self._client.get(f"{self._root()}/health", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            self._problem = f"local server {base} does not answer ({type(exc).__name__})"
        else:
            self._problem = None if response.status_code < 500 else (
                f"local server {base} is not ready (its /health answers {response.status_code})")
        return self._problem

    def members(self) -> list[dict[str, object]]:
        """This one server as :meth:`agents.pool.LocalPool.members` describes each: its URL,
        and whether its ``/health`` answered when last asked (``unavailable``)."""
        return [{"url": self.url, "up": self._problem is None, "problem": self._problem}]

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        if request.uses_tools and not self.supports_tools:
            raise ToolsUnsupported(
                f"tools: the local server {self._config.server_url} cannot take tool calls (it "
                "is not llama.cpp's llama-server started with --jinja, or its model's chat "
                "template has no tool calls); send the turn to the cloud, or turn local.jinja on")
        body: dict[str, Any] = {
            "model": self._config.model,
            "messages": request.openai_messages(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            **request.openai_tools(),
        }
        if self.supports_logprobs and request.logprobs:
            body.update(logprobs=True, top_logprobs=request.top_logprobs)
        if request.stop:
            body["stop"] = list(request.stop)
        if self.is_llama_cpp():
            # Keep this conversation's prompt in its slot: the next turn, sent with the same
            # prefix, goes to the slot that holds it (llama-server picks the idle slot whose
            # cached prompt is most alike, and restores idle slots' prompts from host memory)
            # and evaluates only what is new. ``timings.cache_n`` says how much was reused.
            body["cache_prompt"] = True
        if "tools" in body and "logprobs" in body:
            yield from self._whole(body)  # see the module's docstring
            return
        try:
            try:
                yield from self._stream(body)
            except _Reconnect:
                # Once more on a fresh connection (the pool drops the dead one). The client is
                # shared by every request in flight: never close it here.
                try:
                    yield from self._stream(body)
                except _Reconnect as exc:
                    if "logprobs" in body:
                        raise _LogprobsRefused from exc
                    raise BackendUnavailable(f"local server {self._config.server_url} dropped "
                                             "the connection twice; see its log") from exc
        except _LogprobsRefused:
            body.pop("logprobs", None)
            body.pop("top_logprobs", None)
            try:
                yield from self._stream(body)  # a server that fails anyway raises here
            except _Reconnect as exc:
                raise BackendUnavailable(f"local server {self._config.server_url} dropped the "
                                         "connection; see its log") from exc
            log.warning("%s answers only without logprobs; not asking for them again",
                        self._config.server_url)
            self.supports_logprobs = False

    def _stream(self, body: dict[str, Any]) -> Iterator[TokenEvent | Generation]:
        started = time.perf_counter()
        first_at: float | None = None
        parts: list[str] = []
        calls = ToolCallAssembler()
        logprobs: list[TokenLogprob] = []
        unscored = 0  # tokens sent without their probability (see below)
        finish: FinishReason = "stop"
        usage: Usage | None = None
        timings: dict[str, Any] = {}
        cached: int | None = None
        finished = False
        top_k = int(body.get("top_logprobs") or 0)
        try:
            with self._client.stream("POST", self._url, json=body) as response:
                if response.status_code >= 400 and "logprobs" in body:
                    raise _LogprobsRefused  # nothing was yielded yet
                if response.status_code in (400, 422) and "tools" in body:
                    response.read()
                    raise self._refused(response)
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    if chunk.get("usage"):
                        usage = Usage(chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
                        details = chunk["usage"].get("prompt_tokens_details") or {}
                        if details.get("cached_tokens") is not None:
                            cached = int(details["cached_tokens"])
                    if isinstance(chunk.get("timings"), dict):
                        timings = chunk["timings"]  # llama-server, on its last chunk
                    for choice in chunk.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content") or ""
                        if choice.get("finish_reason"):
                            finished = True
                            finish = _finish(choice["finish_reason"])
                        for piece in _deltas(choice.get("delta") or {}):
                            first_at = first_at or time.perf_counter()
                            calls.add(piece)
                            parts.append("")  # something has gone out: no retry from here
                            yield TokenEvent("", tool_call=piece)
                        step = _token_logprobs(choice)
                        # A token asked with alternatives that comes without any was not
                        # scored: llama-server sends the tokens it accepted from a speculative
                        # draft with probability 1 and no alternatives, unless built with
                        # scripts/llama-server-draft-probs.patch. That is no evidence.
                        unscored += sum(1 for t in step if top_k and not t.top)
                        logprobs.extend(step)
                        if delta:
                            first_at = first_at or time.perf_counter()
                            parts.append(delta)
                            yield TokenEvent(delta, step[-1] if step else None)
        except httpx.TransportError as exc:
            if not parts:
                raise _Reconnect from exc
            raise BackendUnavailable(
                f"local server {self._config.server_url} did not answer ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            if "logprobs" in body and not parts:
                raise _LogprobsRefused from exc
            raise BackendUnavailable(
                f"local server {self._config.server_url} did not answer ({type(exc).__name__})"
            ) from exc
        if not finished:
            # Some servers (llama-cpp-python without logits_all) fail inside the stream
            # when asked for logprobs: it ends before any answer.
            if "logprobs" in body and not parts:
                raise _LogprobsRefused
            raise BackendUnavailable(f"local server {self._config.server_url} ended the "
                                     "answer early; see its log")
        if usage is None:
            usage = Usage(0, len(logprobs))
        yield self._generation("".join(parts), finish, usage, timings, cached, logprobs,
                               unscored, calls.calls(), started, first_at)

    def _whole(self, body: dict[str, Any]) -> Iterator[TokenEvent | Generation]:
        """One request answered whole (``stream`` false), played back as a stream: its text
        as one event, then each tool call as one delta, then the generation."""
        body = {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False}
        started = time.perf_counter()
        try:
            response = self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"local server {self._config.server_url} did not answer ({type(exc).__name__})"
            ) from exc
        if response.status_code in (400, 422):
            raise self._refused(response)
        if response.status_code >= 400:
            raise BackendUnavailable(f"local server {self._config.server_url} answered "
                                     f"{response.status_code}; see its log")
        data = _json_object(response)
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        logprobs = _token_logprobs(choice)
        top_k = int(body.get("top_logprobs") or 0)
        unscored = sum(1 for t in logprobs if top_k and not t.top)
        calls = tuple(
            ToolCall(id=call.get("id") or f"call_{n}",
                     name=(call.get("function") or {}).get("name") or "",
                     arguments=(call.get("function") or {}).get("arguments") or "")
            for n, call in enumerate(message.get("tool_calls") or ()))
        first_at = time.perf_counter()
        if text:
            yield TokenEvent(text, logprobs[-1] if logprobs else None)
        for n, call in enumerate(calls):
            yield TokenEvent("", tool_call=ToolCallDelta(n, call.id, call.name, call.arguments))
        raw = data.get("usage") or {}
        usage = Usage(int(raw.get("prompt_tokens", 0)),
                      int(raw.get("completion_tokens", len(logprobs))))
        details = raw.get("prompt_tokens_details") or {}
        cached = int(details["cached_tokens"]) if details.get("cached_tokens") is not None \
            else None
        timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
        yield self._generation(text, _finish(choice.get("finish_reason")), usage, timings or {},
                               cached, logprobs, unscored, calls, started, first_at)

    def _refused(self, response: httpx.Response) -> RequestRefused:
        error = _json_object(response).get("error")
        said = error.get("message") if isinstance(error, dict) else None
        return RequestRefused(f"the local server {self._config.server_url} refused the tool "
                              f"turn ({response.status_code}): {said or response.text[:200]}")

    def _generation(self, text: str, finish: FinishReason, usage: Usage,
                    timings: dict[str, Any], cached: int | None, logprobs: list[TokenLogprob],
                    unscored: int, tool_calls: tuple[ToolCall, ...], started: float,
                    first_at: float | None) -> Generation:
        total = time.perf_counter() - started
        extra: dict[str, object] = {}
        if "cache_n" in timings:
            cached = int(timings["cache_n"])
        if cached is not None:
            extra["cached_prompt_tokens"] = cached
        if "draft_n" in timings:
            extra.update(draft_tokens=int(timings["draft_n"]),
                         draft_tokens_accepted=int(timings.get("draft_n_accepted", 0)))
        if unscored:
            log.warning("%s sent %d of %d tokens without their probability (speculative "
                        "decoding without scripts/llama-server-draft-probs.patch?): this "
                        "answer has no logprobs", self._config.server_url, unscored,
                        len(logprobs))
            extra["unscored_tokens"] = unscored
        rate = timings.get("predicted_per_second")
        return Generation(
            text=text,
            model=self._config.model,
            finish_reason=finish,
            usage=usage,
            timings=Timings(total_ms=total * 1000,
                            first_token_ms=(first_at - started) * 1000 if first_at else None,
                            decode_tokens_per_s=float(rate) if rate else None),
            logprobs=tuple(logprobs) if logprobs and not unscored else None,
            extra=extra,
            tool_calls=tool_calls,
        )

    def infill(self, request: InfillRequest) -> Iterator[TokenEvent | Generation]:
        """``/infill`` of llama-server for a request with a suffix (it lays out the model's
        FIM tokens and reuses its cached prompt prefix), ``/completions`` without one."""
        win = fim.window(request.prefix, request.suffix or "",
                         prefix_tokens=request.prefix_tokens, suffix_tokens=request.suffix_tokens,
                         count=lambda text: max(1, round(len(text) / 3.5)))
        base = self._config.server_url.rstrip("/")  # type: ignore[union-attr]
        body: dict[str, Any] = {"temperature": request.temperature, "stream": True}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.suffix is None:
            url, text_of = base + "/completions", _completion_text
            body.update(model=self._config.model, prompt=win.prefix, max_tokens=request.max_tokens)
        else:
            root = base[:-3] if base.endswith("/v1") else base
            url, text_of = root + "/infill", _infill_text
            body.update(input_prefix=win.prefix, input_suffix=win.suffix, input_extra=[],
                        prompt="", n_predict=request.max_tokens, cache_prompt=True,
                        # each chunk says how much of the prompt was cached (``cache_n``): an
                        # answer cut at its block's end stops reading before the last one
                        timings_per_token=True)
            slot = self.file_slot(request.prefix)
            if slot is not None:  # the slot that holds this file's window
                body["id_slot"] = slot
        stopper = fim.stop_strings(request.stop)
        if request.stop_at_block_end:
            stopper = fim.with_block_end(stopper, fim.BlockEnd.around(win.prefix, win.suffix))
        started = time.perf_counter()
        first_at: float | None = None
        text, emitted, count = "", 0, 0
        finish: FinishReason = "length"
        usage: Usage | None = None
        cached: int | None = None
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code in (404, 405, 501) and request.suffix is not None:
                    raise FimUnsupported(
                        f"suffix: the local server {self._config.server_url} cannot fill in the "
                        "middle (it has no llama.cpp /infill, or its model has no FIM tokens); "
                        "send the request without suffix, or serve a FIM model with llama-server")
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    if isinstance(chunk.get("timings"), dict) and "cache_n" in chunk["timings"]:
                        cached = int(chunk["timings"]["cache_n"])
                    piece, done, chunk_usage = text_of(chunk)
                    usage = chunk_usage or usage
                    if piece:
                        first_at = first_at or time.perf_counter()
                        count += 1
                        text += piece
                    cut, safe = stopper(text)
                    if cut is not None:
                        text, finish = text[:cut], "stop"
                        break
                    if safe > emitted:
                        yield TokenEvent(text[emitted:safe])
                        emitted = safe
                    if done is not None:
                        finish = done
                        break
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"local server {self._config.server_url} did not answer ({type(exc).__name__})"
            ) from exc
        if len(text) > emitted:
            yield TokenEvent(text[emitted:])
        total = time.perf_counter() - started
        yield Generation(
            text=text, model=self._config.model, finish_reason=finish,
            usage=usage or Usage(0, count),
            timings=Timings(total_ms=total * 1000,
                            first_token_ms=(first_at - started) * 1000 if first_at else None),
            extra={"window": {"prefix_lines_dropped": win.prefix_lines_dropped,
                              "suffix_lines_dropped": win.suffix_lines_dropped},
                   **({} if cached is None else {"cached_prompt_tokens": cached})})

    def close(self) -> None:
        self._client.close()


PROBE_TOOL = {"type": "function", "function": {
    "name": "probe", "description": "asks whether the server takes tools",
    "parameters": {"type": "object", "properties": {}}}}


def _finish(reason: str) -> FinishReason:
    return reason if reason in ("length", "tool_calls") else "stop"  # type: ignore[return-value]


def _deltas(delta: dict[str, Any]) -> list[ToolCallDelta]:
    """The tool-call pieces of one streamed chunk's delta."""
    out = []
    for n, piece in enumerate(delta.get("tool_calls") or ()):
        function = piece.get("function") or {}
        out.append(ToolCallDelta(index=int(piece.get("index", n)), id=piece.get("id") or None,
                                 name=function.get("name") or None,
                                 arguments=function.get("arguments") or ""))
    return out


def _infill_text(chunk: dict[str, Any]) -> tuple[str, FinishReason | None, Usage | None]:
    """A chunk of llama-server's native stream: its text, why it stopped, what it used."""
    if not chunk.get("stop"):
        return chunk.get("content") or "", None, None
    usage = None
    if "tokens_evaluated" in chunk:
        usage = Usage(int(chunk["tokens_evaluated"]), int(chunk.get("tokens_predicted", 0)))
    reason: FinishReason = "length" if chunk.get("stop_type") == "limit" else "stop"
    return chunk.get("content") or "", reason, usage


def _completion_text(chunk: dict[str, Any]) -> tuple[str, FinishReason | None, Usage | None]:
    """A chunk of an OpenAI-style legacy completions stream."""
    usage = None
    if chunk.get("usage"):
        usage = Usage(chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
    choices = chunk.get("choices") or [{}]
    reason = choices[0].get("finish_reason")
    done: FinishReason | None = None if not reason else ("length" if reason == "length" else "stop")
    return choices[0].get("text") or "", done, usage


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
