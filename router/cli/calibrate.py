"""`smallcode calibrate`: set the confidence threshold from recorded outcomes."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from policies.calibration import calibrate, judge_rows_from_feedback, load_outcomes, outcomes_from_feedback
from policies.errors import CalibrationError
from router.cli.evals import load_set
from router.evals import features, judges
from router.evals.humaneval import task_prompt
from router.graph.judge_model import JudgeModelError, save
from router.settings import DEFAULT_CONFIG, load_settings
from router.store import tasks
from router.store.connect import client, command_redis
from router.store.names import Names

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
                             "(POST /v1/tasks/{id}/feedback) instead of an outcomes file; "
                             "with --fit, from the judge features their route records kept")
    parser.add_argument("--fit", action="store_true",
                        help="fit the learned judge (a logistic regression over every signal) "
                             "from OUTCOMES, records of `smallcode eval features` (or "
                             "--from-feedback), and write "
                             "its model file (--model-out); its threshold meets the target")
    parser.add_argument("--cloud-results", type=Path, metavar="RESULTS",
                        help="with --fit: an `eval humaneval` results file giving the cloud's "
                             "outcomes, for records that hold no cloud answer")
    parser.add_argument("--split", choices=("calibrate", "report", "all"), default="all",
                        help="with --fit: fit on this half of the problems (default: all)")
    parser.add_argument("--model-out", type=Path, metavar="PATH",
                        help="with --fit: the model file (default: <data_dir>/judge-model.json)")
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
    if args.fit:
        return _fit(args, settings)
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
    return _report(args, summary,
                   f"threshold {result.threshold:.4f} over {result.n} outcomes: expected cloud "
                   f"share {result.expected_cloud_share:.1%}, expected pass rate "
                   f"{result.expected_quality:.1%}",
                   write=lambda config: write_threshold(config, result.threshold, args.team),
                   written="; written to {config}", unwritten=" (not written; add --write)")


def _report(args: argparse.Namespace, summary: dict[str, Any], text: str, *,
            write: Callable[[Path], None], written: str, unwritten: str) -> int:
    """With ``--write``, ``write`` the config file (which must still load after); then print
    ``summary`` as JSON (``--json``) or ``text`` with what was written."""
    if args.write:
        config = args.config or DEFAULT_CONFIG
        write(config)
        load_settings(config)  # what was written must still load
        summary["written"] = str(config)
    if args.json:
        print(json.dumps(summary))
    else:
        print(text + (written.format(config=summary["written"]) if args.write else unwritten))
    return 0


def _feedback_outcomes(settings: Any, team: str | None) -> list[Any]:
    return outcomes_from_feedback(_labelled_tasks(settings, team))


def _labelled_tasks(settings: Any, team: str | None) -> list[dict[str, Any]]:
    """The tasks clients labelled (``POST /v1/tasks/{id}/feedback``), a team's or all."""
    async def labelled(url: str) -> list[dict[str, Any]]:
        redis = client(settings.redis, url=url)
        try:
            found = await tasks.with_feedback(redis, Names(settings.redis.prefix))
        finally:
            await redis.aclose()
        return [t for t in found if team is None or t.get("team") == team]

    with command_redis(settings.redis.url, settings.data_dir) as url:
        return asyncio.run(labelled(url))


def _fit(args: argparse.Namespace, settings: Any) -> int:
    try:
        fitted = _fit_feedback(args, settings) if args.from_feedback else _fit_records(args)
    except (JudgeModelError, CalibrationError) as exc:
        print(f"smallcode: {exc}", file=sys.stderr)
        return 2
    if isinstance(fitted, str):
        print(f"smallcode: {fitted}", file=sys.stderr)
        return 2
    return _write_model(args, settings, *fitted)


def _fit_feedback(args: argparse.Namespace, settings: Any) -> Any:
    """The learned judge fitted on the features and labels of the tasks clients labelled."""
    rows = judge_rows_from_feedback(_labelled_tasks(settings, args.team))
    if not rows:
        return ("no task served locally has both feedback and judge features yet (POST "
                "/v1/tasks/{id}/feedback with accepted or tests_passed)")
    where = f"feedback of team {args.team}" if args.team else "feedback"
    return judges.fit_rows(rows, target_cloud_share=args.target_cloud_share,
                           target_quality=args.target_quality, meta={"fitted_on": where})


def _fit_records(args: argparse.Namespace) -> Any:
    """The learned judge fitted on records of `smallcode eval features`."""
    # deferred on purpose: router.evals.run loads the graph (langgraph); only this command needs it
    from router.evals.run import read_results

    if args.outcomes is None or not args.outcomes.is_file():
        return "--fit needs OUTCOMES (a records file of `smallcode eval features`) or --from-feedback"
    records = list(features.read_records(args.outcomes).values())
    if args.split != "all":
        records = [r for r in records if r.get("split") == args.split]
    if not records or "lp" not in records[0].get("local", {}):
        return f"{args.outcomes}: no records of `smallcode eval features` (split {args.split})"
    cloud = None
    if args.cloud_results:
        cloud = {r["task_id"]: {"passed": bool(r["cloud_passed"])}
                 for r in read_results(args.cloud_results)}
    sets = {r.get("set", "humaneval") for r in records}
    prompts = {p.task_id: task_prompt(p) for name in sets for p in load_set(name)}
    prepared = judges.prepare(records, prompts=prompts, cloud=cloud)
    missing = sum(r["cloud_passed"] is None for r in prepared)
    if missing and args.target_quality is not None:
        return (f"{missing} records have no cloud outcome: give --cloud-results, or use "
                "--target-cloud-share")
    return judges.fit_model(prepared, target_cloud_share=args.target_cloud_share,
                            target_quality=args.target_quality,
                            meta={"fitted_on": f"{args.outcomes.name} ({args.split})"})


def _write_model(args: argparse.Namespace, settings: Any, model: Any, point: Any) -> int:
    out = args.model_out or settings.data_dir / "judge-model.json"
    save(model, out)
    summary: dict[str, Any] = {"model": str(out), "threshold": model.threshold, "n": point.n,
                               "expected_cloud_share": point.expected_cloud_share,
                               "expected_quality": point.expected_quality, "written": False}
    return _report(args, summary,
                   f"learned judge fitted on {point.n} outcomes, written to {out}: threshold "
                   f"{model.threshold:.4f}, expected cloud share "
                   f"{point.expected_cloud_share:.1%}, expected pass rate "
                   f"{point.expected_quality:.1%}",
                   write=lambda config: write_policy_key(config, "judge_model",
                                                         str(out.resolve()), args.team),
                   written="; {config} now points to it",
                   unwritten=" (config not changed; add --write)")


def write_policy_key(path: Path, key: str, value: object, team: str | None) -> None:
    """Set one policy key in the config file (the default policy, or a team's)."""
    text = path.read_text() if path.is_file() else ""
    line = re.compile(rf"^(\s+{key}:\s*)(\S+)", re.M)
    if team is None and line.search(text):  # in place: the file keeps its comments
        path.write_text(line.sub(lambda m: m.group(1) + json.dumps(value), text, count=1))
        return
    data = yaml.safe_load(text) or {}
    policies = data.setdefault("policies", {}) or {}
    data["policies"] = policies
    if team is None:
        policies.setdefault("default", {})[key] = value
    else:
        teams = policies.setdefault("teams", {}) or {}
        policies["teams"] = teams
        teams.setdefault(team, {})[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
