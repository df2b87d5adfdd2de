"""`smallcode eval`: HumanEval three ways (local, cloud, routed), its report and its curve."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from router.settings import load_settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("eval", help="evaluate routed quality against cost")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    humaneval = targets.add_parser("humaneval", help="run HumanEval local, cloud and routed")
    humaneval.add_argument("--out", type=Path, required=True, help="results file (JSON lines)")
    humaneval.add_argument("--resume", action="store_true", help="skip problems already in --out")
    humaneval.add_argument("--limit", type=int, help="only the first N problems")
    humaneval.add_argument("--problems", nargs="+", metavar="ID",
                           help="task ids (HumanEval/3 or 3)")
    humaneval.add_argument("--max-tokens", type=int, default=512, help="completion token limit")
    humaneval.add_argument("--no-progress", action="store_true", help="no progress bar")
    humaneval.set_defaults(handler=_humaneval)
    report = targets.add_parser("report", help="figures from a results file")
    report.add_argument("results", type=Path)
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(handler=_report)
    curve = targets.add_parser("curve", help="draw the cost–quality curve of a results file")
    curve.add_argument("results", type=Path)
    curve.add_argument("--png", type=Path, help="image path (default: RESULTS with .png)")
    curve.add_argument("--json", action="store_true", help="print one JSON object")
    curve.set_defaults(handler=_curve)
    examples = targets.add_parser(
        "examples", help="how well the prompts' own examples predict HumanEval's hidden tests "
        "(canonical solutions and recorded answers; no model runs)")
    examples.add_argument("--results", type=Path,
                          help="a results file whose recorded local and cloud answers to check")
    examples.add_argument("--json", action="store_true", help="print one JSON object")
    examples.set_defaults(handler=_examples)
    repair = targets.add_parser(
        "repair", help="give the recorded local answers that fail their checks back to the "
        "local model, round after round, and score each round (local repair)")
    repair.add_argument("results", type=Path, help="a results file of `eval humaneval`")
    repair.add_argument("--out", type=Path, required=True,
                        help="repair records (JSON lines; resumed when it exists)")
    repair.add_argument("--split", choices=("report", "calibrate", "all"), default="report",
                        help="which half of the problems to run (default: the held-out one)")
    repair.add_argument("--rounds", type=int, default=3, help="repair rounds at most")
    repair.add_argument("--limit", type=int, help="only the first N problems of the split")
    repair.add_argument("--style", choices=("hint", "turn", "rewrite"), default="hint",
                        help="how the repair request is written (router.graph.repair.messages)")
    repair.add_argument("--summary", action="store_true",
                        help="only summarise --out, run nothing")
    repair.add_argument("--json", action="store_true", help="print one JSON object")
    repair.set_defaults(handler=_repair)


def _fail(message: str) -> int:
    print(f"smallcode: {message}", file=sys.stderr)
    return 2


def _humaneval(args: argparse.Namespace) -> int:
    from router.evals import humaneval, report, run

    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1")
    if not 1 <= args.max_tokens <= 32_768:
        return _fail("--max-tokens must be from 1 to 32768")
    settings = load_settings(args.config)
    try:
        problems = humaneval.select(humaneval.load_problems(), args.problems, args.limit)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    try:
        records = run.run(problems, settings=settings, out=args.out, resume=args.resume,
                          max_tokens=args.max_tokens, progress=not args.no_progress,
                          log=lambda line: print(line, file=sys.stderr))
    except run.EvalError as exc:
        return _fail(str(exc))
    for line in report.format_report(report.report(records)):
        print(line, file=sys.stderr)
    print(json.dumps(report.headline(records)))
    return 0


def _load(path: Path) -> list[dict[str, object]] | None:
    from router.evals.run import read_results

    records = read_results(path)
    return records or None


def _report(args: argparse.Namespace) -> int:
    from router.evals import report

    records = _load(args.results)
    if records is None:
        return _fail(f"{args.results} holds no results: run `smallcode eval humaneval` first")
    data = report.report(records)
    if args.json:
        print(json.dumps(data))
    else:
        print("\n".join(report.format_report(data)))
    return 0


def _curve(args: argparse.Namespace) -> int:
    from router.evals import curve

    records = _load(args.results)
    if records is None:
        return _fail(f"{args.results} holds no results: run `smallcode eval humaneval` first")
    png = args.png or args.results.with_suffix(".png")
    curve.draw(records, png)
    data = curve.summary(records, png)
    if args.json:
        print(json.dumps(data))
        return 0
    point = data["threshold_at_cloud_quality"]
    print(f"curve written to {png}")
    if point is None:
        print("no threshold reaches cloud-only pass@1 "
              f"({data['pass_at_1']['cloud']:.1%}) on these {data['n']} problems")
    else:
        print(f"threshold {point['threshold']:.4f} reaches cloud-only pass@1 "
              f"({data['pass_at_1']['cloud']:.1%}) with the smallest cloud share: "
              f"{point['cloud_share']:.1%} (pass@1 {point['pass_at_1']:.1%})")
    return 0


def _examples(args: argparse.Namespace) -> int:
    from router.checks.sandbox import open_sandbox
    from router.evals import examples, humaneval

    settings = load_settings(args.config)
    sandbox = open_sandbox(settings.checks)
    if sandbox is None:
        return _fail("the examples cannot run isolated here: install bubblewrap, or set "
                     "checks.allow_unisolated: true")
    results = _load(args.results) if args.results else []
    if args.results and not results:
        return _fail(f"{args.results} holds no results")
    summary = examples.evaluate(humaneval.load_problems(), results or [], sandbox,
                                settings.policies.for_team(None))
    if args.json:
        print(json.dumps(summary))
    else:
        print("\n".join(examples.format_summary(summary)))
    return 0


def _repair(args: argparse.Namespace) -> int:
    from router.checks.sandbox import open_sandbox
    from router.evals import humaneval, repair

    if not 0 <= args.rounds <= 5:
        return _fail("--rounds must be from 0 to 5")
    settings = load_settings(args.config)
    rules = settings.policies.for_team(None)
    if not args.summary:
        results = _load(args.results)
        if results is None:
            return _fail(f"{args.results} holds no results: run `smallcode eval humaneval` first")
        sandbox = open_sandbox(settings.checks)
        if sandbox is None:
            return _fail("the checks cannot run isolated here: install bubblewrap")
        problems = [p for p in humaneval.load_problems()
                    if args.split == "all" or humaneval.split_of(p.task_id) == args.split]
        problems = problems[:args.limit] if args.limit else problems
        from router.backends import build_local

        local = build_local(settings)
        try:
            repair.run(problems, results, local, sandbox, out=args.out, rules=rules,
                       rounds=args.rounds, max_tokens=512, style=args.style,
                       log=lambda line: print(line, file=sys.stderr))
        finally:
            local.close()
    records = list(repair.read_records(args.out).values())
    data = repair.summary(records, threshold=rules.confidence_threshold,
                          max_rounds=args.rounds)
    if args.json:
        print(json.dumps(data))
    else:
        print("\n".join(repair.format_summary(data)))
    return 0
