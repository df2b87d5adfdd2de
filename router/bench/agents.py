"""`smallcode bench agents`: each coding agent (Claude Code, Codex, opencode, Continue's CLI)
fixes a one-line bug in a scratch repository through the router, and its session is read back
from the ledger: its turns, where each was served and why, the tokens served locally and in the
cloud, its cost against all-cloud, the time the router added per turn outside the models, and
whether the task was done. With the scripted cloud each client then fixes the bug again, in a
new session on the same service: the router's time on a client it has seen before (a shared
service sees each client's system prompt and tools once, then in every session).

The cloud is the scripted server of the agent tests (:mod:`router.bench.scripted_cloud`): it
answers with the tool calls a capable model would make, at once, so what is timed is the
router, not a model. The local tier is the configured model, in-process (it cannot call
tools: an agent's turns go to the cloud, reason ``tools``, or ``context`` where the prompt
overflows its window). The service runs with auth on and a team key, on an embedded Valkey.

``real=True`` runs real models on the whole session instead (:func:`real_tiers`): the local
tier is the configured model on llama-server with ``--jinja`` (it calls tools) and a window
that holds an agent's prompt; the cloud is the 1.5B coder on another llama-server, reached
through litellm. Whether the models manage the task is the question; on CPU it is slow.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from agents import llama_server
from agents.base import Backend
from agents.cloud import CloudBackend
from agents.model_store import resolve
from agents.remote import RemoteLocalBackend
from router.bench import agent_clients
from router.bench.scripted_cloud import fix_one_line, scripted_cloud
from router.bench.serving import serving
from router.graph.signals import quantile
from router.service.app import create_app
from router.settings import Settings
from router.store.server import EmbeddedRedis

TASK = "Fix the bug in calc.py: add must return a + b."
OLD, NEW = "    return a - b", "    return a + b"
ADMIN = "bench-agents-admin-key-0123456789"
MODEL_NODES = ("local_generate", "cloud_generate", "repair", "sample")
REAL_CLOUD = "qwen2.5-coder-1.5b"  # the real run's cloud: the offline stand-in's model
REAL_N_CTX = 32768  # what the 0.5B and 1.5B coders are trained for
REAL_TIMEOUT_S = 1800.0  # a session on real models, on CPU


def router_ms(entry: dict[str, Any], record: dict[str, Any]) -> float:
    """The time the router added to a turn: its latency less the models' own calls."""
    timings = record.get("timings_ms") or {}
    return max(0.0, entry["latency_ms"] - sum(timings.get(node, 0.0) for node in MODEL_NODES))


def session(client: str, *, settings: Settings, local: Backend, bin_dir: Path,
            scratch: Path, cloud: Backend | None = None,
            timeout_s: float = agent_clients.TIMEOUT_S, again: bool = False) -> dict[str, Any]:
    """One client's session through a fresh service: its figures. ``cloud``: a real cloud
    tier; None: the scripted one. ``again``: then the same task once more, in a new session
    of the same client on the same service (the bug put back), for the router's time on a
    client the service has seen before (``later``)."""
    original = f"def add(a, b):\n{OLD}\n"
    repo = agent_clients.scratch_repo(scratch / "repo", {"calc.py": original})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(EmbeddedRedis(scratch / "valkey"))
        served = settings.model_copy(update={
            "admin_key": SecretStr(ADMIN), "auth": settings.auth.model_copy(update={"enabled": True}),
            "redis": settings.redis.model_copy(update={"url": redis.url}),
            "tasks": settings.tasks.model_copy(update={"embedded_worker": False})})
        if cloud is None:
            cloud_url, _ = stack.enter_context(
                scripted_cloud(fix_one_line(str(repo / "calc.py"), OLD, NEW)))
            cloud = CloudBackend(settings.cloud.model_copy(update={
                "model": "openai/scripted", "api_base": cloud_url, "num_retries": 0,
                "n_ctx": 200_000}))
        app = create_app(served, local=local, cloud=cloud, with_retrieval=False)
        with serving(app) as url:
            key = httpx.post(f"{url}/v1/keys", json={"team": "bench"}, headers=admin,
                             timeout=30).json()["key"]
            runs: list[dict[str, Any]] = []
            for _ in range(2 if again else 1):
                (repo / "calc.py").write_text(original)
                runs.append(_fix(client, url=url, key=key, repo=repo, bin_dir=bin_dir,
                                 home=scratch / "home", timeout_s=timeout_s,
                                 seen={e["id"] for run in runs for e in run["entries"]}))
    first = runs[0]
    entries = first["entries"]
    added = [router_ms(e, r) for e, r in zip(entries, first["records"], strict=True)]
    local_turns = [e for e in entries if e["route"] == "local"]
    figures = {
        "client": client,
        "done": first["done"],
        "timed_out": first["wall_s"] >= timeout_s,
        "turns": len(entries), "local": len(local_turns),
        "cloud": len(entries) - len(local_turns),
        "reasons": sorted({e["reason"] for e in entries}),
        "routes": [f"{e['route']}:{e['reason']}" for e in reversed(entries)],  # turn by turn
        "sessions": len({e.get("session") for e in entries}),
        "tokens": {"local": sum(e["tokens"]["local"] for e in entries),
                   "cloud": sum(e["tokens"]["cloud"] for e in entries),
                   "prompt_max": max((e["tokens"]["prompt"] for e in entries), default=0)},
        "cost_usd": round(sum(e["cost_usd"] for e in entries), 6),
        "all_cloud_usd": round(sum(e["counterfactual_usd"] for e in entries), 6),
        "router_ms_p50": round(quantile(added, 0.5), 2) if added else None,
        "router_ms_max": round(max(added), 2) if added else None,
        "wall_s": round(first["wall_s"], 1),
    }
    if again:
        later = runs[1]
        added = [router_ms(e, r) for e, r in zip(later["entries"], later["records"], strict=True)]
        figures["later"] = {"done": later["done"], "turns": len(added),
                            "router_ms_p50": round(quantile(added, 0.5), 2) if added else None,
                            "router_ms_max": round(max(added), 2) if added else None}
    return figures


def _fix(client: str, *, url: str, key: str, repo: Path, bin_dir: Path, home: Path,
         timeout_s: float, seen: set[str]) -> dict[str, Any]:
    """The client fixes the bug once: whether it did, its wall time, and the ledger entries
    (newest first) and records of its turns, those in ``seen`` left out."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    started = time.perf_counter()
    try:
        finished = agent_clients.run(client, bin_dir=bin_dir, url=url, key=key, repo=repo,
                                     home=home, task=TASK, timeout_s=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        finished = False
    wall_s = time.perf_counter() - started
    entries = [e for e in httpx.get(f"{url}/v1/usage/entries", params={"limit": 500},
                                    headers=admin, timeout=30).json()["data"]
               if e["id"] not in seen]
    records = [httpx.get(f"{url}/v1/usage/entries/{e['id']}", headers=admin,
                         timeout=30).json()["record"] for e in entries]
    return {"done": finished and (repo / "calc.py").read_text() == f"def add(a, b):\n{NEW}\n",
            "wall_s": wall_s, "entries": entries, "records": records}


def run(settings: Settings, local: Backend, *, clients: tuple[str, ...] = agent_clients.CLIENTS,
        log: Callable[[str], None] = print, cloud: Backend | None = None) -> dict[str, Any]:
    """Every client's session; ``cloud``: a real cloud tier (:func:`real_tiers`), else the
    scripted one, and then each client's second session on the same service (``later``: its
    system prompt and tools are known to the process, as they are to a service in use)."""
    bin_dir = agent_clients.install()
    results = []
    for client in clients:
        log(f"{client}: fixing a one-line bug through the router ...")
        with tempfile.TemporaryDirectory() as scratch:
            results.append(session(client, settings=settings, local=local, bin_dir=bin_dir,
                                   scratch=Path(scratch), cloud=cloud,
                                   timeout_s=REAL_TIMEOUT_S if cloud else agent_clients.TIMEOUT_S,
                                   again=cloud is None))
    added = [r["router_ms_p50"] for r in results if r["router_ms_p50"] is not None]
    later = [r["later"]["router_ms_p50"] for r in results
             if r.get("later", {}).get("router_ms_p50") is not None]
    return {"local_model": local.model_name,
            "cloud_model": cloud.model_name if cloud else "scripted", "clients": results,
            "router_ms_p50_median": round(statistics.median(added), 2) if added else None,
            "later_router_ms_p50_median": round(statistics.median(later), 2) if later else None}


@contextlib.contextmanager
def real_tiers(settings: Settings, *, n_ctx: int = REAL_N_CTX,
               cloud_model: str = REAL_CLOUD) -> Iterator[tuple[Backend, Backend]]:
    """(local, cloud) on real models: the configured local model and ``cloud_model``, each on
    a llama-server of its own with ``--jinja`` (tool calls parsed from the GGUF's template),
    one slot of ``n_ctx`` tokens (an agent's prompt is 6,000 to 21,000), the prompt cache kept
    between a session's turns."""
    config = settings.local.model_copy(update={
        "n_ctx": n_ctx, "server_parallel": 1, "jinja": True, "timeout_s": 1800.0})
    cache = settings.models.cache_dir
    with contextlib.ExitStack() as stack:
        local_server = stack.enter_context(llama_server.start(
            config, resolve(config.model, cache), alias=config.model, timeout_s=300))
        cloud_server = stack.enter_context(llama_server.start(
            config.model_copy(update={"model": cloud_model}), resolve(cloud_model, cache),
            alias=cloud_model, timeout_s=300))
        local = RemoteLocalBackend(config.model_copy(update={
            "mode": "server", "server_url": local_server.base_url, "server_urls": ()}))
        stack.callback(local.close)
        cloud = CloudBackend(settings.cloud.model_copy(update={
            "model": f"openai/{cloud_model}", "api_base": cloud_server.base_url,
            "num_retries": 0, "n_ctx": n_ctx, "timeout_s": 1800.0}))
        yield local, cloud
