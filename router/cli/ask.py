"""`smallcode ask PROMPT`: one task from the command line, routed like any other."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.backends import build_cloud, build_local
from router.graph.errors import InvalidTask
from router.graph.state import TaskInput
from router.graph.validation import DEFAULT_MAX_TOKENS
from router.runtime import build_context
from router.settings import load_settings
from router.standin_demand import StartsStandin

if TYPE_CHECKING:  # the graph (and langgraph) load only when a task runs
    from router.graph.graph import RoutedAnswer



def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("ask", help="answer one coding task")
    parser.add_argument("prompt", help="the task")
    parser.add_argument("--route", default="auto", help="auto (default), local or cloud")
    parser.add_argument("--file", action="append", type=Path, default=[], metavar="PATH",
                        help="attach a file (repeatable)")
    parser.add_argument("--repo", help="an indexed repository to take snippets from")
    parser.add_argument("--team", help="apply this team's policies")
    parser.add_argument("--type", dest="task_type", help="task type (default: classified)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="completion token limit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def read_files(paths: list[Path]) -> list[dict[str, str]]:
    files = []
    for i, path in enumerate(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidTask(f"files[{i}].path", f"cannot read {path}: {exc.strerror}") from None
        # Binary content is refused by the router; keep NULs so it can say so.
        files.append({"path": str(path), "content": data.decode("utf-8", errors="replace")})
    return files


def to_json(answer: RoutedAnswer) -> dict[str, Any]:
    """``text`` and the route record, plus what the serving model reported."""
    generation = answer.generation
    out: dict[str, Any] = {"text": answer.text, "route": answer.record}
    if generation is not None:
        out.update({
            "model": generation.model,
            "usage": asdict(generation.usage),
            "timings": asdict(generation.timings),
            "logprobs": [{"token": t.token, "logprob": t.logprob} for t in generation.logprobs or ()],
        })
    return out


def build_task(args: argparse.Namespace) -> TaskInput:
    task: dict[str, Any] = {"prompt": args.prompt, "route": args.route,
                            "max_tokens": args.max_tokens}
    if args.file:
        task["files"] = read_files(args.file)
    for key, value in (("repo", args.repo), ("team", args.team), ("type", args.task_type)):
        if value is not None:
            task[key] = value
    return task  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    # deferred on purpose: the graph (langgraph) loads only when this command runs
    from router.graph.graph import build_graph, run_task

    settings = load_settings(args.config)
    task = build_task(args)
    local = build_local(settings)
    context = None
    cloud = None
    try:
        # No server running: a task that goes to the cloud starts the stand-in when the
        # configured cloud is a loopback address where nothing answers.
        cloud = StartsStandin(build_cloud(settings), settings)
        context = build_context(settings, local, cloud, with_retrieval=args.repo is not None)
        answer = run_task(build_graph(), task, context)
    finally:
        if context is not None and context.retrieval is not None:
            context.retrieval.close()
        local.close()
        if cloud is not None:
            cloud.close()
    if args.json:
        print(json.dumps(to_json(answer)))
    else:
        print(answer.text)
        record = answer.record
        confidence = record["confidence"]
        shown = f"{confidence:.2f}" if confidence is not None else "n/a"
        print(f"\n[route: {record['final']} ({record['reason']}), confidence {shown}, "
              f"cost ${record['cost_usd']:.5f}, all-cloud ${record['counterfactual_cost_usd']:.5f}]")
    return 0
