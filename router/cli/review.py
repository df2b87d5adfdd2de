"""`smallcode review`: review a diff (or write tests or docs for it) as routed tasks, for a
pre-commit hook or a CI job.

The diff comes from git itself (``--staged``, the default, or ``--base REF``) or a file
(``--diff FILE``, ``-`` for stdin). Each request carries the change with new-file line
numbers and the changed files' enclosing functions; a large diff goes file by file and the
answers are merged. Findings print as ``path:line: severity: message`` (or JSON); the exit
status is 1 when one is at or above ``--fail-on``, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from router.backends import build_cloud, build_local
from router.graph.errors import InvalidTask
from router.graph.validation import DEFAULT_MAX_TOKENS
from router.review import diff as diffs
from router.review.findings import SEVERITIES, Finding, Kind, at_or_above, enclosing, parse_findings, task_text
from router.runtime import build_context
from router.settings import load_settings
from router.standin_demand import StartsStandin

#: Rendered diff per request before it is split per file (about 1,700 tokens of code).
SPLIT_CHARS = 6000


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "review", help="review a diff (or write tests or docs for it); for hooks and CI")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--staged", action="store_true",
                        help="the staged changes (`git diff --staged`; the default)")
    source.add_argument("--diff", metavar="FILE", help="a unified diff file ('-': stdin)")
    source.add_argument("--base", metavar="REF",
                        help="the changes since REF (`git diff REF...HEAD`, e.g. origin/main)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--tests", action="store_true", help="write tests for the change")
    kind.add_argument("--docs", action="store_true", help="write documentation for the change")
    parser.add_argument("--repo", help="an indexed repository to take snippets from")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--fail-on", choices=[*SEVERITIES, "never"], default="never",
                        help="exit 1 when a finding is at least this severe (default: never)")
    parser.add_argument("--url", help="a SmallCode service (its key from SMALLCODE_API_KEY); "
                        "default: run the models in this process")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="answer tokens per request")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Answer:
    text: str
    route: dict[str, Any]


def _git(args: list[str], what: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise InvalidTask(what, "needs git, which is not installed") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InvalidTask(what, reason[0] if reason else f"git {args[0]} failed")
    return done.stdout


def read_diff(args: argparse.Namespace) -> tuple[str, str]:
    """The diff text and where it came from (for messages)."""
    if args.diff:
        if args.diff == "-":
            return diffs.decode(sys.stdin.buffer.read(), "the diff on stdin"), "stdin"
        try:
            data = Path(args.diff).read_bytes()
        except OSError as exc:
            raise InvalidTask("--diff", f"cannot read {args.diff}: {exc.strerror}") from None
        return diffs.decode(data, f"--diff {args.diff}"), "file"
    options = ["--no-color", "--no-ext-diff", "--unified=3"]
    if args.base:
        _git(["rev-parse", "--is-inside-work-tree"], "--base")
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
                               capture_output=True, check=False)
        if found.returncode != 0:
            raise InvalidTask("--base", f"no commit named {args.base!r} in this repository "
                              "(in CI, fetch it first: `git fetch origin main`)")
        return diffs.decode(_git(["diff", *options, f"{args.base}...HEAD"], "--base"),
                            f"the diff against {args.base}"), "base"
    return diffs.decode(_git(["diff", "--staged", *options], "--staged"),
                        "the staged diff"), "staged"


def new_text(file: diffs.FileDiff, origin: str) -> str | None:
    """The file as the change leaves it (for its enclosing functions), where it can be read."""
    if file.deleted or not file.path:
        return None
    spec = {"staged": f":{file.path}", "base": f"HEAD:{file.path}"}.get(origin)
    if spec is not None:
        done = subprocess.run(["git", "show", spec], capture_output=True, check=False)
        data = done.stdout if done.returncode == 0 else None
    else:
        try:
            data = Path(file.path).read_bytes()
        except OSError:
            data = None
    if data is None or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def build_tasks(chunks: list[list[diffs.FileDiff]], origin: str, kind: Kind,
                repo: str | None, max_tokens: int) -> list[dict[str, Any]]:
    tasks = []
    for chunk in chunks:
        files = []
        for file in chunk:
            text = new_text(file, origin)
            context = enclosing(file.path, text, file.changed_lines()) if text else ""
            if context:
                files.append({"path": file.name, "content": context})
        task: dict[str, Any] = {"prompt": task_text(kind, chunk), "type": kind,
                                "max_tokens": max_tokens}
        if files:
            task["files"] = files
        if repo:
            task["repo"] = repo
        tasks.append(task)
    return tasks


def run_in_process(args: argparse.Namespace, tasks: list[dict[str, Any]]) -> list[Answer]:
    # deferred on purpose: the graph (langgraph) loads only when this command runs in-process
    from router.graph.graph import build_graph, run_task

    settings = load_settings(args.config)
    local = build_local(settings)
    context = None
    answers = []
    # A change the cloud must see starts the stand-in when nothing answers at its address.
    cloud = StartsStandin(build_cloud(settings), settings)
    try:
        context = build_context(settings, local, cloud, with_retrieval=args.repo is not None)
        graph = build_graph()
        for task in tasks:
            answer = run_task(graph, task, context)  # type: ignore[arg-type]
            answers.append(Answer(answer.text, answer.record))
    finally:
        if context is not None and context.retrieval is not None:
            context.retrieval.close()
        local.close()
        cloud.close()
    return answers


class ServiceError(Exception):
    """The service refused or failed a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def run_on_service(url: str, tasks: list[dict[str, Any]], timeout_s: float = 900) -> list[Answer]:
    base = url.rstrip("/")
    endpoint = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
    headers = {}
    key = os.environ.get("SMALLCODE_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    answers = []
    with httpx.Client(timeout=timeout_s) as client:
        for task in tasks:
            body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": task["prompt"]}],
                    "max_tokens": task["max_tokens"], "type": task["type"],
                    **{k: task[k] for k in ("files", "repo") if k in task}}
            try:
                response = client.post(endpoint, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ServiceError(0, f"{endpoint} did not answer ({type(exc).__name__})") from None
            if response.status_code >= 400:
                try:
                    message = response.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    message = response.text[:200]
                raise ServiceError(response.status_code,
                                   f"the service refused the review ({response.status_code}): "
                                   f"{message}")
            reply = response.json()
            answers.append(Answer(reply["choices"][0]["message"]["content"],
                                  reply.get("smallcode", {}).get("route", {})))
    return answers


def run(args: argparse.Namespace) -> int:
    kind: Kind = "test" if args.tests else "document" if args.docs else "review"
    text, origin = read_diff(args)
    files = diffs.parse(text, {"file": f"--diff {args.diff}", "stdin": "the diff on stdin",
                               "base": f"the diff against {args.base}"}.get(origin, "the staged diff"))
    skipped = [f.name for f in files if f.binary]
    chunks = diffs.split(files, SPLIT_CHARS)
    if not chunks:
        what = "no text changes to review" + (f" (binary: {', '.join(skipped)})" if skipped else "")
        if args.json:
            print(json.dumps({"kind": kind, "findings": [], "results": [], "skipped": skipped}))
        else:
            print(f"smallcode review: {what}", file=sys.stderr)
        return 0
    tasks = build_tasks(chunks, origin, kind, args.repo, args.max_tokens)
    if args.url:
        try:
            answers = run_on_service(args.url, tasks)
        except ServiceError as exc:
            print(f"smallcode: {exc}", file=sys.stderr)
            return 2 if 400 <= exc.status < 500 else 1
    else:
        answers = run_in_process(args, tasks)
    results = [([f.name for f in chunk], answer, parse_findings(answer.text, chunk))
               for answer, chunk in zip(answers, chunks, strict=True)]
    findings: list[Finding] = sorted((f for _, _, found in results for f in found),
                                     key=lambda f: (f.path, f.line))
    failing = at_or_above(findings, args.fail_on) if args.fail_on != "never" else []
    if args.json:
        print(json.dumps({
            "kind": kind,
            "findings": [f.as_json() for f in findings] if kind == "review" else [],
            "results": [{"files": names, "text": a.text, "route": a.route}
                        for names, a, _ in results],
            "skipped": skipped,
            "failed": bool(failing),
        }))
    else:
        for names, answer, _ in results:
            if kind != "review":
                print(f"# {', '.join(names)}\n{answer.text.strip()}\n")
            route = answer.route
            print(f"[{', '.join(names)}: route {route.get('final')} "
                  f"({route.get('reason')}), cost ${float(route.get('cost_usd') or 0):.5f}]",
                  file=sys.stderr)
        if kind == "review":
            for finding in findings:
                print(finding)
            if not findings:
                print("smallcode review: no findings", file=sys.stderr)
        if skipped:
            print(f"smallcode review: skipped binary files: {', '.join(skipped)}", file=sys.stderr)
    return 1 if failing else 0
