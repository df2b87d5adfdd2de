"""llama.cpp's llama-server as the local tier (built by `make llama-server`): its command line
carries the engine's features, a bad setting stops the start with one line naming it,
concurrent requests keep their logprobs, a conversation's next turn reuses its cached prompt,
the server's logprobs give the judge the confidence in-process llama.cpp gives, and
`smallcode serve` starts and stops it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agents import llama_server, model_store
from agents.base import Generation, GenerationRequest, Message
from agents.config import LocalConfig
from agents.errors import BackendMisconfigured
from agents.remote import RemoteLocalBackend
from router.graph.signals import confidence
from tests.conftest import free_port
from tests.helpers import alive, children, wait_until_ok

REPO = Path(__file__).resolve().parents[2]
SMOL = "smollm2-135m"


def smol_path(model_cache: Path) -> Path:
    return model_cache / model_store.MODELS[SMOL].filename


def remote(config: LocalConfig, server: llama_server.LlamaServer) -> RemoteLocalBackend:
    return RemoteLocalBackend(config.model_copy(update={"mode": "server",
                                                        "server_url": server.base_url}))


@pytest.fixture(scope="module")
def smol_server(model_cache: Path) -> Iterator[tuple[LocalConfig, RemoteLocalBackend]]:
    """SmolLM2 behind llama-server with the shipped engine settings (speculation on)."""
    config = LocalConfig(model=SMOL, n_ctx=2048, server_parallel=2)
    with llama_server.start(config, smol_path(model_cache), alias=SMOL) as server:
        backend = remote(config, server)
        yield config, backend
        backend.close()


def test_the_command_line_carries_each_engine_setting() -> None:
    config = LocalConfig(server_parallel=4, n_ctx=2048, flash_attn=True, kv_cache_type="q8_0",
                         cache_reuse=64, spec_type="ngram-mod", spec_draft_n_max=8)
    line = " ".join(llama_server.command(Path("/bin/llama-server"), config, Path("m.gguf"),
                                         alias="m", port=1234))
    for part in ("--parallel 4 --ctx-size 8192", "--jinja", "--cache-reuse 64",
                 "--spec-type ngram-mod --spec-ngram-mod-n-max 8 --spec-ngram-mod-n-min 8",
                 "--flash-attn on",
                 "--cache-type-k q8_0 --cache-type-v q8_0", "--port 1234"):
        assert part in line, (part, line)
    plain = " ".join(llama_server.command(
        Path("/bin/llama-server"), LocalConfig(jinja=False, spec_type="none"), Path("m.gguf"),
        alias="m", port=1))
    assert "--no-jinja" in plain and "--spec-" not in plain and "--cache-type-v" not in plain


def test_the_draft_length_reaches_the_flag_of_the_speculative_type_in_use() -> None:
    # --spec-draft-n-max bounds only a draft model's drafts: ngram-simple drafted 48 tokens
    # whatever it said (measured: the same drafts with 16 and with 8).
    def line(**settings: object) -> str:
        return " ".join(llama_server.command(Path("/bin/llama-server"), LocalConfig(**settings),
                                             Path("m.gguf"), alias="m", port=1))
    one = {"server_parallel": 1}
    assert "--spec-ngram-simple-size-m 12" in line(spec_type="ngram-simple", spec_draft_n_max=12,
                                                   **one)
    assert "--spec-ngram-map-k-size-m 12" in line(spec_type="ngram-map-k", spec_draft_n_max=12,
                                                  **one)
    assert ("--spec-ngram-mod-n-max 96 --spec-ngram-mod-n-min 48"
            in line(spec_type="ngram-mod", spec_draft_n_max=96, **one))
    for default in (line(spec_type="ngram-mod", **one), line(spec_type="ngram-cache")):
        assert "--spec-draft-n-max" not in default and "-size-m" not in default
        assert "-n-max" not in default
    with pytest.raises(ValueError, match=r"local\.spec_draft_n_max"):
        LocalConfig(spec_type="ngram-cache", spec_draft_n_max=8)


def test_every_slots_draft_fits_one_batch() -> None:
    # llama-server aborts when the slots' sampled tokens and drafts overflow its batch: 8 slots
    # drafting ngram-mod's default 64 tokens need 8 x 65 = 520 rows of the 512 batch.
    shipped = LocalConfig()
    assert shipped.server_parallel * (64 + 1) > shipped.n_batch
    line = " ".join(llama_server.command(Path("/bin/llama-server"), shipped, Path("m.gguf"),
                                         alias="m", port=1))
    assert "--spec-type ngram-mod --spec-ngram-mod-n-max 63 --spec-ngram-mod-n-min 48" in line
    many = LocalConfig(server_parallel=32, spec_type="ngram-simple")
    assert dict(llama_server.flags(many))["spec_type"][-2:] == ["--spec-ngram-simple-size-m", "15"]


def test_the_built_server_knows_every_setting() -> None:
    binary = llama_server.find_binary(None)
    assert llama_server.unknown_setting(binary, LocalConfig()) is None
    every = LocalConfig(flash_attn=True, kv_cache_type="q8_0", spec_type="ngram-cache")
    assert llama_server.unknown_setting(binary, every) is None
    for kind in ("ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod"):
        bounded = LocalConfig(spec_type=kind, spec_draft_n_max=24)
        assert llama_server.unknown_setting(binary, bounded) is None, kind


def test_a_flag_the_server_does_not_know_stops_the_start_naming_the_setting(
        model_cache: Path, tmp_path: Path) -> None:
    real = llama_server.find_binary(None)
    older = tmp_path / "llama-server"  # an older build: no speculative decoding in its --help
    older.write_text(f'#!/bin/sh\nif [ "$1" = --help ]; then "{real}" --help | grep -v spec-; '
                     f'else exec "{real}" "$@"; fi\n')
    older.chmod(0o755)
    config = LocalConfig(model=SMOL, llama_server=str(older), n_ctx=512, server_parallel=1)
    with pytest.raises(BackendMisconfigured, match=r"^local\.spec_type: .* --spec-type"):
        llama_server.start(config, smol_path(model_cache), alias=SMOL)
    off = config.model_copy(update={"spec_type": "none"})  # passes no --spec-type at all
    assert llama_server.unknown_setting(older, off) is None


def test_a_taken_port_stops_the_start_naming_the_setting(model_cache: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = LocalConfig(model=SMOL, server_port=port, n_ctx=512, server_parallel=1)
        with pytest.raises(BackendMisconfigured, match=rf"^local\.server_port {port}: "):
            llama_server.start(config, smol_path(model_cache), alias=SMOL)


def test_a_model_it_cannot_load_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))
    config = LocalConfig(model=str(broken), n_ctx=512, server_parallel=1)
    with pytest.raises(BackendMisconfigured) as info:
        llama_server.start(config, broken, alias="broken", timeout_s=60)
    message = str(info.value)
    assert message.startswith("local.model: ") and str(broken) in message, message
    assert "\n" not in message


def test_concurrent_requests_all_keep_their_logprobs(model_cache: Path) -> None:
    config = LocalConfig(model=SMOL, n_ctx=1024, server_parallel=4, server_port=free_port())
    with llama_server.start(config, smol_path(model_cache), alias=SMOL) as server:
        backend = remote(config, server)
        try:
            def one(i: int) -> bool:
                request = GenerationRequest(
                    messages=(Message("user", f"Task {i}: write a Python function."),),
                    max_tokens=32)
                return bool(backend.generate(request).logprobs)

            # More requests than slots, back to back. A connection llama-server dropped used
            # to read as "this server refuses logprobs" and switched them off for good.
            with ThreadPoolExecutor(4) as pool:
                assert all(pool.map(one, range(12)))
            assert backend.supports_logprobs is True
        finally:
            backend.close()


LONG_CONTEXT = "\n".join(f"def helper_{i}(x):\n    return x * {i} + {i % 7}\n"
                         for i in range(40))


def test_the_next_turn_of_a_conversation_reuses_its_cached_prompt(
        smol_server: tuple[LocalConfig, RemoteLocalBackend]) -> None:
    _, backend = smol_server
    history = [Message("system", "You answer questions about this module:\n" + LONG_CONTEXT),
               Message("user", "What does helper_3 return for 2?")]
    first = backend.generate(GenerationRequest(messages=tuple(history), max_tokens=16))
    history += [Message("assistant", first.text), Message("user", "And helper_5?")]
    second = backend.generate(GenerationRequest(messages=tuple(history), max_tokens=16))
    # the whole first turn (system, question, answer) was in the slot: only the new turn is
    # evaluated
    assert second.extra["cached_prompt_tokens"] >= first.usage.prompt_tokens - 4, second.extra
    assert second.usage.prompt_tokens - second.extra["cached_prompt_tokens"] < 40


def test_the_server_counts_prompts_as_in_process_llama_cpp_does(
        smol: object, smol_server: tuple[LocalConfig, RemoteLocalBackend]) -> None:
    _, backend = smol_server
    request = GenerationRequest(messages=(Message("system", "Be brief."),
                                          Message("user", "def add(a, b): pass  # fix it")))
    assert backend.count_prompt_tokens(request) == smol.count_prompt_tokens(request)  # type: ignore[attr-defined]
    assert backend.count_tokens(LONG_CONTEXT) == smol.count_tokens(LONG_CONTEXT)  # type: ignore[attr-defined]


PROMPTS = (
    "Write a Python function that returns the square of a number.",
    "Copy this code exactly, and nothing else:\n" + "\n".join(
        f"total_{i} = compute(values[{i}], weight={i})" for i in range(4)),
    "What is the capital of France? Answer in one word.",
    "Rewrite with a for loop:\n" + "\n".join(f"print({i})" for i in range(12)),
)


def test_the_judge_sees_the_same_confidence_from_the_server_as_in_process(
        smol: object, smol_server: tuple[LocalConfig, RemoteLocalBackend]) -> None:
    """Logprobs from llama-server (``n_probs``), with speculative decoding on: tokens accepted
    from a draft carry their probabilities too (scripts/llama-server-draft-probs.patch)."""
    _, backend = smol_server
    drafted = 0
    for prompt in PROMPTS:
        request = GenerationRequest(messages=(Message("user", prompt),), max_tokens=64)
        here = smol.generate(request)  # type: ignore[attr-defined]
        there = backend.generate(request)
        assert there.text == here.text, prompt
        assert there.logprobs is not None and here.logprobs is not None
        assert [t.token for t in there.logprobs] == [t.token for t in here.logprobs]
        assert all(len(t.top) == 2 for t in there.logprobs)
        ours = confidence([t.logprob for t in here.logprobs])
        theirs = confidence([t.logprob for t in there.logprobs])
        assert ours is not None and theirs is not None
        assert abs(ours - theirs) < 0.01, (prompt, ours, theirs)
        drafted += int(there.extra.get("draft_tokens_accepted", 0))  # type: ignore[call-overload]
    assert drafted > 0  # the copy prompt was answered largely from drafts


def test_a_sampled_token_below_the_top_alternatives_keeps_its_own_probability(
        smol_server: tuple[LocalConfig, RemoteLocalBackend]) -> None:
    """Sampling (temperature 1.5) picks tokens the one alternative asked for is not: the
    server gives each its own log-probability, lower than the top alternative's, not the top's
    and not 0 (scripts/llama-server-token-probs.patch finds it apart from the leading ones)."""
    _, backend = smol_server
    request = GenerationRequest(messages=(Message("user", "Tell me a story about a fox."),),
                                max_tokens=48, temperature=1.5, top_logprobs=1)
    below = 0
    for _ in range(3):
        answer = backend.generate(request)
        assert answer.logprobs, "logprobs must come back"
        for token in answer.logprobs:
            assert len(token.top) == 1
            best = token.top[0]
            assert -50.0 < token.logprob <= best.logprob + 1e-4, (token, best)
            if token.token != best.token:
                below += 1
                assert token.logprob < best.logprob - 1e-6, (token, best)
    assert below > 0  # at temperature 1.5, some of 144 sampled tokens are not the top one


def test_serve_starts_llama_server_as_its_local_engine_by_default(model_cache: Path,
                                                                   tmp_path: Path) -> None:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_SERVER__PORT": str(api_port),
                "SMALLCODE_LOCAL__MODEL": SMOL, "SMALLCODE_LOCAL__N_CTX": "1024",
                "SMALLCODE_LOCAL__SERVER_PARALLEL": "2",
                "SMALLCODE_AUTH__ENABLED": "false", "SMALLCODE_DATA_DIR": str(tmp_path)})
    process = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve", "--no-standin"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        wait_until_ok(f"http://127.0.0.1:{api_port}/readyz", process)
        [engine] = [pid for pid, cmd in children(process.pid).items() if "llama-server" in cmd]
        reply = httpx.post(f"http://127.0.0.1:{api_port}/v1/chat/completions", timeout=120,
                           json={"model": "local", "max_tokens": 8, "logprobs": True,
                                 "messages": [{"role": "user", "content": "Say hi."}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["logprobs"]["content"]
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert "starting llama-server" in output, output
    deadline = time.monotonic() + 10
    while alive(engine) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(engine), "llama-server outlived serve"


def test_serve_runs_the_model_in_process_where_no_llama_server_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from router.cli.serve import starts_llama_server
    from router.settings import load_settings

    monkeypatch.setenv("SMALLCODE_LLAMA_SERVER_CACHE", str(tmp_path / "none-built"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    settings = load_settings()
    assert settings.local.mode == "auto"
    with caplog.at_level(logging.WARNING, logger="smallcode.serve"):
        assert starts_llama_server(settings) is False
    assert "llama-server is not built (`make llama-server` builds it)" in caplog.text
    assert "in this process" in caplog.text
    forced = settings.model_copy(update={"local": settings.local.model_copy(
        update={"llama_server": str(tmp_path / "missing")})})
    with pytest.raises(BackendMisconfigured, match=r"^local\.llama_server "):
        starts_llama_server(forced)  # one that was named must be there


def test_serve_with_mode_server_and_no_url_starts_llama_server(model_cache: Path,
                                                               tmp_path: Path) -> None:
    api_port, local_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_SERVER__PORT": str(api_port), "SMALLCODE_LOCAL__MODE": "server",
                "SMALLCODE_LOCAL__MODEL": SMOL, "SMALLCODE_LOCAL__N_CTX": "1024",
                "SMALLCODE_LOCAL__SERVER_PARALLEL": "2",
                "SMALLCODE_LOCAL__SERVER_PORT": str(local_port),
                "SMALLCODE_AUTH__ENABLED": "false", "SMALLCODE_DATA_DIR": str(tmp_path)})
    process = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve", "--no-standin"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_until_ok(f"http://127.0.0.1:{api_port}/readyz", process)
        assert httpx.get(f"http://127.0.0.1:{local_port}/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{local_port}/health", timeout=2)


def test_the_next_keystroke_in_a_file_reuses_its_slot_among_many(model_cache: Path) -> None:
    """Inline completion through /infill with several slots: a line typed at the cursor moves
    the start of the window, so llama-server's own slot choice (the most alike cached prompt)
    sent the next keystroke to another slot and evaluated the whole window again; a file keeps
    its slot, and the edit re-evaluates little more than what was typed."""
    from agents.base import InfillRequest

    coder = "qwen2.5-coder-0.5b"
    config = LocalConfig(model=coder, n_ctx=2048, server_parallel=4)
    prefix = "".join(f"def f{i}(x):\n    return x * {i} + {i % 5}\n\n\n" for i in range(120))
    suffix = "\n\ndef main() -> None:\n    print(f3(2))\n"
    with llama_server.start(config, model_cache / model_store.MODELS[coder].filename,
                            alias=coder) as server:
        backend = remote(config, server)
        try:
            def fill(before: str) -> Generation:
                [answer] = [item for item in backend.infill(InfillRequest(
                    prefix=before, suffix=suffix, max_tokens=4, stop_at_block_end=False))
                    if isinstance(item, Generation)]
                return answer

            fill("import os\n\n\n")  # another file first: it holds a slot of its own
            first = fill(prefix)
            typed = fill(prefix + "def g(x):\n")
        finally:
            backend.close()
    cached = typed.extra["cached_prompt_tokens"]
    assert isinstance(cached, int) and cached > first.usage.prompt_tokens * 0.6, typed.extra


def test_eight_slots_drafting_at_once_keep_the_server_up(model_cache: Path) -> None:
    # Alike answers: the second wave's slots all draft long chains ngram-mod learned
    # from the first; with its default 64-token drafts that overflowed the 512-row batch and
    # llama-server aborted (every request after it: connection refused).
    config = LocalConfig(model=SMOL, n_ctx=1024, server_parallel=8, spec_type="ngram-mod")
    prompt = "List the numbers from 1 to 40, one per line, each followed by its square."
    with llama_server.start(config, smol_path(model_cache), alias=SMOL) as server:
        backend = remote(config, server)
        try:
            for _wave in range(2):
                with ThreadPoolExecutor(8) as pool:
                    answers = list(pool.map(lambda i: backend.generate(GenerationRequest(
                        messages=(Message("user", f"{prompt} (run {i % 2})"),),
                        max_tokens=120)), range(8)))
                assert all(a.usage.completion_tokens > 0 for a in answers)
            drafted = sum(a.extra.get("draft_tokens", 0) for a in answers)
            assert drafted > 0, "the second wave drafted nothing: this test shows nothing"
            assert server.process.poll() is None
        finally:
            backend.close()
