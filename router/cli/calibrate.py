"""`smallcode calibrate`: set the confidence threshold from recorded outcomes."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

from policies.calibration import calibrate, load_outcomes
from router.settings import DEFAULT_CONFIG, load_settings

_DEFAULT_KEY = re.compile(r"^(\s+confidence_threshold:\s*)([0-9.]+)", re.M)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("calibrate", help="derive the confidence threshold")
    parser.add_argument("outcomes", type=Path, nargs="?", default=None,
                        help="JSON lines with confidence, local_passed, cloud_passed "
                             "(default: <data_dir>/outcomes.jsonl)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-cloud-share", type=float, metavar="SHARE",
                        help="share of tasks to send to the cloud, 0..1")
    target.add_argument("--target-quality", type=float, metavar="PASS_RATE",
                        help="pass rate to reach with the smallest cloud share, 0..1")
    parser.add_argument("--from-feedback", action="store_true",
                        help="learn from the outcome labels clients posted on their tasks "
                             "(POST /v1/tasks/{id}/feedback) instead of an outcomes file")
    parser.add_argument("--team", help="write the threshold for this team only")
    parser.add_argument("--write", action="store_true", help="write it to the config file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def write_threshold(path: Path, threshold: float, team: str | None) -> None:
    text = path.read_text() if path.is_file() else ""
    value = f"{threshold:.4f}"
    if team is None and _DEFAULT_KEY.search(text):
        # Edit the one line in place so the file keeps its comments.
        path.write_text(_DEFAULT_KEY.sub(lambda m: m.group(1) + value, text, count=1))
        return
    data = yaml.safe_load(text) or {}
    policies = data.setdefault("policies", {}) or {}
    data["policies"] = policies
    if team is None:
        policies.setdefault("default", {})["confidence_threshold"] = float(value)
    else:
        teams = policies.setdefault("teams", {}) or {}
        policies["teams"] = teams
        teams.setdefault(team, {})["confidence_threshold"] = float(value)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(args: argparse.Namespace) -> int:
    for name in ("target_cloud_share", "target_quality"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            print(f"smallcode: --{name.replace('_', '-')}: must be between 0 and 1")
            return 2
    settings = load_settings(args.config)
    if args.from_feedback:
        outcomes = _feedback_outcomes(settings, args.team)
        if not outcomes:
            print("smallcode: no task served locally has feedback yet (POST "
                  "/v1/tasks/{id}/feedback with accepted or tests_passed)")
            return 2
    else:
        outcomes = load_outcomes(args.outcomes or settings.data_dir / "outcomes.jsonl")
    result = calibrate(outcomes, target_cloud_share=args.target_cloud_share,
                       target_quality=args.target_quality)
    summary: dict[str, Any] = {"threshold": result.threshold, "expected_cloud_share": result.expected_cloud_share,
               "expected_quality": result.expected_quality, "n": result.n,
               "written": False}
    if args.write:
        config = args.config or DEFAULT_CONFIG
        write_threshold(config, result.threshold, args.team)
        load_settings(config)  # what was written must still load
        summary["written"] = str(config)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"threshold {result.threshold:.4f} over {result.n} outcomes: expected cloud share "
              f"{result.expected_cloud_share:.1%}, expected pass rate {result.expected_quality:.1%}"
              + (f"; written to {summary['written']}" if args.write else
                 " (not written; add --write)"))
    return 0


def _feedback_outcomes(settings: Any, team: str | None) -> list[Any]:
    import asyncio

    from policies.calibration import outcomes_from_feedback
    from router.store.connect import command_redis

    async def labelled(url: str) -> list[dict[str, Any]]:
        from redis.asyncio import Redis

        from router.store import tasks
        from router.store.names import Names

        redis = Redis.from_url(url)
        try:
            found = await tasks.with_feedback(redis, Names(settings.redis.prefix))
        finally:
            await redis.aclose()
        return [t for t in found if team is None or t.get("team") == team]

    with command_redis(settings.redis.url, settings.data_dir) as url:
        return outcomes_from_feedback(asyncio.run(labelled(url)))
