"""`smallcode ask PROMPT`: one task from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from agents.base import Generation, GenerationRequest, Message
from router.backends import build_cloud, build_local
from router.settings import load_settings

ROUTES = ("local", "cloud")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("ask", help="answer one coding task")
    parser.add_argument("prompt", help="the task")
    parser.add_argument("--route", choices=ROUTES, default="local", help="which tier answers")
    parser.add_argument("--max-tokens", type=int, default=512, help="completion token limit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def to_json(generation: Generation, route: str) -> dict[str, object]:
    return {
        "text": generation.text,
        "model": generation.model,
        "route": route,
        "finish_reason": generation.finish_reason,
        "usage": asdict(generation.usage),
        "timings": asdict(generation.timings),
        "cost_usd": generation.cost_usd,
        "logprobs": [
            {"token": t.token, "logprob": t.logprob,
             "top_logprobs": [{"token": a.token, "logprob": a.logprob} for a in t.top]}
            for t in generation.logprobs or ()
        ],
    }


def run(args: argparse.Namespace) -> int:
    if not args.prompt.strip():
        print("smallcode: prompt: is empty; give the task as the first argument", file=sys.stderr)
        return 2
    if args.max_tokens < 1:
        print("smallcode: --max-tokens: must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    backend = build_local(settings) if args.route == "local" else build_cloud(settings)
    try:
        request = GenerationRequest(
            messages=(Message("user", args.prompt),), max_tokens=args.max_tokens,
            top_logprobs=settings.local.top_logprobs,
        )
        generation = backend.generate(request)
    finally:
        backend.close()
    if args.json:
        print(json.dumps(to_json(generation, args.route)))
    else:
        print(generation.text)
    return 0
