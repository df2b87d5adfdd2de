"""``POST /v1/completions``: inline fill-in-the-middle through the real API (uvicorn, Valkey,
keys), with the real 0.5B coder where the completion's quality matters and SmolLM2 where no
FIM is needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from agents.remote import RemoteLocalBackend
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

ADMIN = "admin-" + "c" * 24
UNUSED_CLOUD = CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0)

PREFIX = '''import math


def circle_area(radius: float) -> float:
    """The area of a circle of the given radius."""
'''
SUFFIX = '''

def main() -> None:
    print(circle_area(2.0))
'''


def settings(url: str, prefix: str) -> Settings:
    return Settings(redis={"url": url, "prefix": prefix}, admin_key=ADMIN,
                    tasks={"embedded_worker": False})


def create_key(base_url: str, **fields: object) -> str:
    response = httpx.post(f"{base_url}/v1/keys", json=fields,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def post(base_url: str, key: str, **body: Any) -> httpx.Response:
    # json.dumps escapes a lone surrogate as a client's JSON encoder may (httpx refuses it)
    return httpx.post(f"{base_url}/v1/completions", content=json.dumps({"model": "auto", **body}),
                      headers={"Authorization": f"Bearer {key}",
                               "Content-Type": "application/json"}, timeout=120)


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    chunks = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(json.loads(line[6:]))
    return chunks


@pytest.fixture(scope="module")
def coder_url(coder, valkey_server) -> Iterator[str]:
    app = create_app(settings(valkey_server.url, "fim-coder"), local=coder,
                     cloud=CloudBackend(UNUSED_CLOUD), with_retrieval=False)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def smol_url(smol, valkey_server) -> Iterator[str]:
    app = create_app(settings(valkey_server.url, "fim-smol"), local=smol,
                     cloud=CloudBackend(UNUSED_CLOUD), with_retrieval=False)
    with serving(app) as url:
        yield url


@pytest.mark.slow
def test_continue_style_fim_fills_the_function_body(coder_url: str) -> None:
    key = create_key(coder_url, team="editors")
    with openai.OpenAI(base_url=f"{coder_url}/v1", api_key=key, max_retries=0) as sdk:
        reply = sdk.completions.create(model="auto", prompt=PREFIX, suffix=SUFFIX,
                                       max_tokens=48, temperature=0)
    text = reply.choices[0].text
    namespace: dict[str, Any] = {}
    exec(compile(PREFIX + text + SUFFIX, "completed.py", "exec"), namespace)  # the model's code
    assert abs(namespace["circle_area"](2.0) - 12.566370614359172) < 1e-6
    assert "def main" not in text  # stopped at the end of the block, not rewriting the suffix
    route = reply.model_extra["smallcode"]["route"]  # type: ignore[index]
    assert (route["final"], route["reason"], route["cost_usd"]) == ("local", "task_type", 0.0)
    assert route["counterfactual_cost_usd"] > 0
    entries = httpx.get(f"{coder_url}/v1/usage/entries",
                        headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert [(e["source"], e["route"], e["reason"], e["cost_usd"]) for e in entries] == [
        ("completions", "local", "task_type", 0.0)]


@pytest.mark.slow
def test_stream_matches_the_whole_answer_and_ends_with_the_route(coder_url: str) -> None:
    key = create_key(coder_url, team="editors")
    body = {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 48}
    whole = post(coder_url, key, **body).json()
    with httpx.stream("POST", f"{coder_url}/v1/completions", timeout=120,
                      json={"model": "local", "stream": True, **body},
                      headers={"Authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200
        chunks = sse(response)
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["smallcode"]["route"]["reason"] == "task_type"
    assert last["usage"]["completion_tokens"] >= 1


@pytest.mark.slow
def test_next_keystroke_reuses_the_cache_even_after_a_chat(coder_url: str) -> None:
    """Completions keep a llama.cpp context of their own: a chat in between leaves the
    completion's KV cache alone, and a one-line edit at the cursor re-evaluates only the
    changed end of the prompt."""
    key = create_key(coder_url, team="editors")
    prefix = "".join(f"def f{i}(x):\n    return x * {i}\n\n\n" for i in range(40)) + PREFIX
    first = post(coder_url, key, prompt=prefix, suffix=SUFFIX, max_tokens=8).json()
    prompt_tokens = first["usage"]["prompt_tokens"]
    chat = httpx.post(f"{coder_url}/v1/chat/completions", timeout=120,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": "local", "max_tokens": 4,
                            "messages": [{"role": "user", "content": "Say hi."}]})
    assert chat.status_code == 200
    edited = post(coder_url, key, prompt=prefix + "    r = radius\n", suffix=SUFFIX,
                  max_tokens=8).json()
    route = edited["smallcode"]["route"]
    assert route["cached_prompt_tokens"] > prompt_tokens * 0.8
    # The defaults (reuse_min_tokens 16, reuse_refresh_tokens 8) move the code after the
    # cursor past the typed line rather than evaluating it again.
    assert route["moved_prompt_tokens"] > 0


def test_plain_completion_without_suffix_on_smollm2(smol_url: str) -> None:
    key = create_key(smol_url, team="editors")
    reply = post(smol_url, key, prompt="# A list of the first five prime numbers\nprimes = [",
                 max_tokens=12)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "text_completion" and body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "", "suffix": ""}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x = ", "max_tokens": 100_000}, "max_tokens"),
    ({"prompt": "x = ", "echo": True}, "echo"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": "x = \ud800"}, "prompt"),
])
def test_bad_requests_are_400_naming_the_field(smol_url: str, body: dict[str, Any],
                                               param: str) -> None:
    key = create_key(smol_url, team="editors")
    response = post(smol_url, key, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith(param)


def test_a_model_without_fim_tokens_refuses_suffix_naming_it(smol_url: str) -> None:
    """SmolLM2's tokenizer has no FIM tokens: a suffix is refused, not ignored."""
    response = post(smol_url, create_key(smol_url, team="editors"), prompt="def f():\n",
                    suffix="\nf()\n")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("suffix", "fim_unsupported")
    assert error["message"].startswith("suffix:") and "without suffix" in error["message"]


def test_completions_need_a_key_and_keep_its_rate_limit(smol_url: str) -> None:
    anonymous = httpx.post(f"{smol_url}/v1/completions", json={"model": "auto", "prompt": "x"})
    assert anonymous.status_code == 401
    key = create_key(smol_url, team="editors", rpm=2)
    codes = [post(smol_url, key, prompt="x = ", max_tokens=2).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_the_cloud_model_is_not_offered_for_completions(smol_url: str) -> None:
    response = post(smol_url, create_key(smol_url, team="editors"), model="cloud", prompt="x")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_a_server_without_infill_refuses_suffix_naming_it(smol_standin_url: str,
                                                         valkey_server) -> None:
    """The local tier in server mode on a server with no llama.cpp /infill (here
    llama-cpp-python's): a suffix is a 400 naming `suffix`; without one it completes."""
    from agents.config import LocalConfig

    local = RemoteLocalBackend(LocalConfig(mode="server", server_url=smol_standin_url,
                                           model="qwen2.5-coder-1.5b"))
    app = create_app(settings(valkey_server.url, "fim-remote"), local=local,
                     cloud=CloudBackend(UNUSED_CLOUD), with_retrieval=False)
    try:
        with serving(app) as url:
            key = create_key(url, team="editors")
            refused = post(url, key, prompt="def f():\n", suffix="\n")
            plain = post(url, key, prompt="# The first five prime numbers\nprimes = [",
                         max_tokens=8)
    finally:
        local.close()
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "suffix"
    assert "suffix" in refused.json()["error"]["message"]
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["text"]
