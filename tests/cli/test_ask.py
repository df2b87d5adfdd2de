"""`smallcode ask` on its own, no server running: a task the cloud must answer starts the
stand-in for the command's duration, says so on stderr, and prints no third-party INFO lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_a_big_file_is_answered_by_the_cloud_with_no_server_running(
        model_cache: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(90)))
    port = free_port()  # nothing answers there
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env.update({"SMALLCODE_CLOUD__API_BASE": f"http://127.0.0.1:{port}/v1",
                "SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "1024",
                "SMALLCODE_STANDIN__N_CTX": "4096"})
    result = subprocess.run([sys.executable, "-m", "router.cli.main", "ask",
                             "What does f3 return for x = 2?", "--file", str(big), "--json",
                             "--max-tokens", "16"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["route"]["final"], answer["route"]["reason"]) == ("cloud", "context")
    assert answer["text"]
    assert "starting the cloud stand-in" in result.stderr
    assert not re.search(r" INFO (?!smallcode|agents|router|retrieval|policies)[\w.]+: ",
                         result.stderr), result.stderr
    # and it stopped with the command: nothing answers on its port any more
    import httpx

    try:
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
        raise AssertionError("the stand-in outlived `smallcode ask`")
    except httpx.ConnectError:
        pass
