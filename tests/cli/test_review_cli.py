"""`smallcode review` as a user runs it: on a scratch git repository with a staged change,
in-process with real models (SmolLM2 local, a SmolLM2 stand-in as the cloud), from the real
pre-commit framework, and refusing bad input in one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BEFORE = '''def divide(a, b):
    """a divided by b."""
    if b == 0:
        raise ZeroDivisionError("b is zero")
    return a / b
'''
AFTER = '''def divide(a, b):
    """a divided by b."""
    return a / b


def mean(values):
    return sum(values) / len(values)
'''


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit and a staged change to calc.py."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / "calc.py").write_text(BEFORE)
    git(repo, "add", "calc.py")
    git(repo, "commit", "-q", "-m", "calc")
    (repo / "calc.py").write_text(AFTER)
    git(repo, "add", "calc.py")
    return repo


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def models_env(standin_url: str) -> dict[str, str]:
    return {"SMALLCODE_LOCAL__MODEL": "smollm2-135m", "SMALLCODE_LOCAL__N_CTX": "2048",
            "SMALLCODE_CLOUD__API_BASE": standin_url, "SMALLCODE_CLOUD__N_CTX": "1024",
            "SMALLCODE_CLOUD__NUM_RETRIES": "0"}


def review(repo: Path, *args: str, env: dict[str, str] | None = None,
           stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "router.cli.main", "review", *args], cwd=repo,
                          env=environment(**(env or {})), capture_output=True, input=stdin,
                          timeout=600, check=False)


def test_staged_review_in_process_with_real_models(repo: Path, smol_standin_url: str) -> None:
    result = review(repo, "--staged", "--json", "--fail-on", "info",
                    env=models_env(smol_standin_url))
    assert result.returncode in (0, 1), result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["kind"] == "review"
    [request] = report["results"]
    assert request["files"] == ["calc.py"]
    assert request["route"]["final"] in ("local", "cloud") and request["text"]
    assert request["route"]["task_type"] == "review"
    assert all(f["path"] == "calc.py" and f["severity"] in ("info", "warning", "error")
               for f in report["findings"])
    # --fail-on info: any finding fails the run, none passes it.
    assert result.returncode == (1 if report["findings"] else 0)
    assert report["failed"] == bool(report["findings"])


def test_tests_for_a_diff_file_print_code(repo: Path, smol_standin_url: str) -> None:
    patch = repo / "change.patch"
    patch.write_text(git(repo, "diff", "--staged"))
    result = review(repo, "--diff", str(patch), "--tests", env=models_env(smol_standin_url))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("# calc.py\n") and len(out.strip()) > len("# calc.py")
    assert "calc.py: route" in result.stderr.decode()


@pytest.mark.parametrize(("args", "stdin", "cause"), [
    (("--base", "no-such-branch"), None, "--base: no commit named 'no-such-branch'"),
    (("--diff", "-"), b"diff --git a/x b/x\n\x00\x89PNG", "is binary"),
    (("--diff", "-"), b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-caf\xe9\n+cafe\n", "not UTF-8"),
    (("--diff", "-"), b"Please review my code, thanks!\n", "not a unified diff"),
    (("--diff", "missing.patch"), None, "--diff: cannot read missing.patch"),
])
def test_bad_input_is_one_line_and_exit_2(repo: Path, args: tuple[str, ...],
                                          stdin: bytes | None, cause: str) -> None:
    result = review(repo, *args, "--json", stdin=stdin)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.count("\n") == 1 and cause in err and "Traceback" not in err
    assert result.stdout == b""  # nothing half-written


def test_nothing_staged_is_nothing_to_review(repo: Path) -> None:
    git(repo, "commit", "-q", "-m", "change")
    result = review(repo, "--staged")
    assert result.returncode == 0
    assert "no text changes to review" in result.stderr.decode()


def test_the_hook_runs_through_pre_commit(repo: Path, tmp_path: Path,
                                          smol_standin_url: str) -> None:
    """The repository's own .pre-commit-hooks.yaml, run by the real pre-commit framework on a
    staged change (pre-commit try-repo: the hook definition as committed here, no network)."""
    env = {**models_env(smol_standin_url), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit")}
    run = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO),
                          "smallcode-review", "--verbose"], cwd=repo, env=environment(**env),
                         capture_output=True, text=True, timeout=900, check=False)
    output = run.stdout + run.stderr
    assert "smallcode review" in output, output
    assert "calc.py: route" in output, output  # the review ran on the staged change
    blocked = any(": error: " in line for line in output.splitlines()
                  if line.startswith("calc.py:"))
    assert run.returncode == (1 if blocked else 0), output  # the hook's --fail-on error


def test_the_hook_blocks_a_commit_it_cannot_review(repo: Path, tmp_path: Path) -> None:
    (repo / "legacy.py").write_bytes(b"# caf\xe9\n")
    git(repo, "add", "legacy.py")
    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit")}
    run = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO),
                          "smallcode-review"], cwd=repo, env=environment(**env),
                         capture_output=True, text=True, timeout=300, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Failed" in output and "the staged diff is not UTF-8 text" in output
