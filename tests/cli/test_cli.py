"""`smallcode` from the command line, as a user runs it (a subprocess, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers import smallcode

ADD = "Write a Python function add(a, b) that returns a + b."


def test_ask_local_json_has_logprobs(model_cache) -> None:
    result = smallcode("ask", ADD, "--route", "local", "--json", "--max-tokens", "16",
                       env={"SMALLCODE_LOCAL__MODEL": "smollm2-135m"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["route"]["final"] == "local" and answer["route"]["reason"] == "forced"
    assert answer["model"] == "smollm2-135m"
    assert answer["text"] and answer["usage"]["completion_tokens"] == len(answer["logprobs"])
    assert all(entry["logprob"] <= 0 for entry in answer["logprobs"])
    assert {"total_ms", "first_token_ms", "decode_tokens_per_s"} <= answer["timings"].keys()


def test_ask_cloud_json_goes_through_the_stand_in(standin_url: str) -> None:
    result = smallcode("ask", ADD, "--route", "cloud", "--json", "--max-tokens", "32",
                       env={"SMALLCODE_CLOUD__API_BASE": standin_url})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["route"]["final"] == "cloud" and "def add" in answer["text"]
    assert answer["route"]["cost_usd"] > 0


def test_stand_in_not_running_is_one_line_that_says_what_to_do() -> None:
    result = smallcode("ask", ADD, "--route", "cloud", env={
        "SMALLCODE_CLOUD__API_BASE": f"http://127.0.0.1:{free_port()}/v1",
        "SMALLCODE_STANDIN__ENABLED": "false",  # enabled, `ask` starts it (tests/cli)
        "SMALLCODE_CLOUD__NUM_RETRIES": "0"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "smallcode standin" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_file_says_to_pull(tmp_path: Path) -> None:
    result = smallcode("ask", ADD, env={"SMALLCODE_MODELS__CACHE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "smallcode models pull qwen2.5-coder-0.5b" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (("ask", "   "), {}, "prompt: is empty"),
        (("ask", ADD), {"SMALLCODE_LOCAL__N_THREADS": "0"}, "local.n_threads"),
        (("ask", ADD, "--route", "moon"), {}, "route: unknown route 'moon'"),
        (("ask", ADD, "--type", "poetry"), {}, "type: unknown task type 'poetry'"),
        (("ask", ADD, "--file", "/nonexistent/x.py"), {}, "files[0].path: cannot read"),
        (("ask", ADD, "--repo", "../../etc"), {},
         "repo: repo name '../../etc' is not allowed: use 1-100 letters, digits"),
        (("ask", b"Fix \xff here."), {}, "prompt: is not valid Unicode text"),  # not UTF-8
    ],
)
def test_bad_input_fails_clearly(args: tuple[str, ...], env: dict[str, str], needle: str) -> None:
    result = smallcode(*args, env=env)
    assert result.returncode == 2 and needle in result.stderr
    assert "Traceback" not in result.stderr


def test_prompt_longer_than_the_window(model_cache, standin_url: str) -> None:
    env = {"SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "1024",
           "SMALLCODE_CLOUD__API_BASE": standin_url}
    forced = smallcode("ask", "word " * 1500, "--route", "local", env=env)
    assert forced.returncode == 1 and "context window is 1024" in forced.stderr
    routed = smallcode("ask", "word " * 1500 + "\nReply OK.", "--json", "--max-tokens", "8",
                       env=env)
    assert routed.returncode == 0, routed.stderr
    record = json.loads(routed.stdout)["route"]
    assert record["final"] == "cloud" and record["reason"] == "context"


def test_a_task_larger_than_both_windows_is_refused_before_any_call(model_cache) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # had it been called: "cannot reach"
    result = smallcode("ask", "word " * 3000, env={
        "SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "1024",
        "SMALLCODE_CLOUD__API_BASE": dead, "SMALLCODE_CLOUD__N_CTX": "2048",
        "SMALLCODE_CLOUD__NUM_RETRIES": "0"})
    assert result.returncode == 2, result.stderr
    assert "local context window (1024 tokens" in result.stderr
    assert "cloud model's (2048 tokens)" in result.stderr and "the task is 30" in result.stderr


def test_three_attached_files_go_to_the_cloud(tmp_path: Path, standin_url: str) -> None:
    paths = []
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text(f"def {name[0]}():\n    return 1\n")
        paths += ["--file", str(tmp_path / name)]
    result = smallcode("ask", ADD, *paths, "--json", "--max-tokens", "16",
                       env={"SMALLCODE_CLOUD__API_BASE": standin_url,
                            "SMALLCODE_LOCAL__MODEL": "smollm2-135m"})
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)["route"]
    assert record["final"] == "cloud" and record["reason"] == "multi_file"
    assert [f["path"] for f in record["files"]] == [str(tmp_path / n) for n in ("a.py", "b.py", "c.py")]


def test_models_list_shows_all_three(model_cache) -> None:
    result = smallcode("models", "list", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"}
    assert all(row["present"] for row in rows.values())
    path = smallcode("models", "path", "smollm2-135m").stdout.strip()
    assert path == rows["smollm2-135m"]["path"]
