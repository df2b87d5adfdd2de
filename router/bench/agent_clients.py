"""The coding agents a team deploys, run as a new user configures them (README, "Coding
agents") against a SmallCode Router at ``url`` with a key: Claude Code through the Anthropic
Messages API, Codex CLI through the Responses API, opencode and Continue's CLI (``cn``, its
agent mode headless) through the chat API with tools.

``scripts/agent-clients.sh`` installs them at pinned versions from npm, cached outside the
clone; :func:`install` runs it. The agent tests and ``smallcode bench agents`` both start the
clients here, so both use the configuration the README shows.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

CLIENTS = ("claude", "codex", "opencode", "continue")
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


class InstallFailed(Exception):
    """``scripts/agent-clients.sh`` failed (npm's registry unreachable, or npm missing)."""


def install() -> Path:
    """The bin directory of the pinned clients, installed first where they are not."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "agent-clients.sh")],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise InstallFailed(done.stderr[-3000:])
    return Path(done.stdout.strip().splitlines()[-1])


def command(client: str, *, bin_dir: Path, url: str, key: str, repo: Path, home: Path,
            task: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``client`` doing ``task`` in ``repo`` through the
    router at ``url`` (``home``: the client's own HOME, where it keeps its state)."""
    env = {"HOME": str(home), "PWD": str(repo)}  # opencode takes its project from PWD
    if client == "claude":
        return ([str(bin_dir / "claude"), "-p", task, "--model", "claude-sonnet-5-5",
                 "--permission-mode", "acceptEdits"],
                {**env, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": key,
                 "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    if client == "codex":
        config = home / "codex"
        config.mkdir(parents=True, exist_ok=True)
        (config / "config.toml").write_text(
            'model = "gpt-5-codex"\nmodel_provider = "smallcode"\n\n'
            "[model_providers.smallcode]\n"
            'name = "SmallCode Router"\n'
            f'base_url = "{url}/v1"\n'
            'env_key = "SMALLCODE_API_KEY"\n'
            'wire_api = "responses"\n')
        return ([str(bin_dir / "codex"), "exec", "--skip-git-repo-check",
                 "--dangerously-bypass-approvals-and-sandbox", task],
                {**env, "CODEX_HOME": str(config), "SMALLCODE_API_KEY": key})
    if client == "opencode":
        (repo / "opencode.json").write_text(json.dumps({
            "$schema": "https://opencode.ai/config.json",
            "provider": {"sc": {"npm": "@ai-sdk/openai-compatible", "name": "SmallCode Router",
                                "options": {"baseURL": f"{url}/v1", "apiKey": key},
                                "models": {"auto": {"name": "auto"}}}},
            "model": "sc/auto", "small_model": "sc/auto"}))
        return ([str(bin_dir / "opencode"), "run", "-m", "sc/auto", task],
                {**env, "OPENCODE_DISABLE_AUTOUPDATE": "1"})
    if client == "continue":
        # A local config file: no hub login. Headless, cn leaves out the tools that would ask
        # first (Edit, MultiEdit, Write); --allow Edit offers its edit tool.
        config = home / ".continue" / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(continue_config(url, key))
        return ([str(bin_dir / "cn"), "-p", task, "--config", str(config), "--allow", "Edit"],
                {**env, "CONTINUE_CLI_ENABLE_TELEMETRY": "0"})
    raise ValueError(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")


def continue_config(url: str, key: str) -> str:
    """Continue's ``config.yaml`` (the CLI's; the IDE extension reads the same file): the
    router as an OpenAI-compatible model ``auto`` that may call tools."""
    return ("name: SmallCode\nversion: 1.0.0\nschema: v1\nmodels:\n"
            "  - name: SmallCode\n    provider: openai\n    model: auto\n"
            f"    apiBase: {url}/v1\n    apiKey: {key}\n"
            "    roles: [chat]\n    capabilities: [tool_use]\n")


def run(client: str, *, bin_dir: Path, url: str, key: str, repo: Path, home: Path,
        task: str, timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``client`` on ``task`` to its end (no input; output captured); raises
    ``subprocess.TimeoutExpired`` after ``timeout_s``."""
    line, env = command(client, bin_dir=bin_dir, url=url, key=key, repo=repo, home=home,
                        task=task)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "OPENAI_", "SMALLCODE_", "CONTINUE_", "OTEL_"))}
    return subprocess.run(line, cwd=repo, env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout_s, stdin=subprocess.DEVNULL)


def scratch_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` holding ``files``, committed."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path
