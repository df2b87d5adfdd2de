"""`smallcode eval`: HumanEval three ways (local, cloud, routed), its report and its curve."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from router.backends import build_cloud, build_local
from router.checks.sandbox import open_sandbox
from router.evals import (
    curve,
    edgecases,
    everyday,
    examples,
    features,
    humaneval,
    judge_tables,
    judges,
    repair,
    report,
    sampling,
)
from router.evals.humaneval import task_prompt
from router.graph.validation import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT
from router.settings import load_settings

if TYPE_CHECKING:
    from router.evals.humaneval import Problem

#: The problem sets `eval features --set` records.
SETS = ("humaneval", "edge", "everyday")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("eval", help="evaluate routed quality against cost")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    humaneval = targets.add_parser("humaneval", help="run HumanEval local, cloud and routed")
    humaneval.add_argument("--out", type=Path, required=True, help="results file (JSON lines)")
    humaneval.add_argument("--resume", action="store_true", help="skip problems already in --out")
    humaneval.add_argument("--limit", type=int, help="only the first N problems")
    humaneval.add_argument("--problems", nargs="+", metavar="ID",
                           help="task ids (HumanEval/3 or 3)")
    humaneval.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="completion token limit")
    humaneval.add_argument("--no-progress", action="store_true", help="no progress bar")
    humaneval.set_defaults(handler=_humaneval)
    routed = targets.add_parser(
        "routed", help="the routed row end to end: the whole graph with the configured policy "
        "on a HumanEval half, beside the figure simulated from the records")
    routed.add_argument("--out", type=Path, required=True,
                        help="results file (JSON lines; resumed when it exists)")
    routed.add_argument("--split", choices=("report", "calibrate", "all"), default="report",
                        help="which half of HumanEval (default: the held-out one)")
    routed.add_argument("--replay", action="store_true",
                        help="replay generations whose request is identical to a recorded one "
                             "(docs/humaneval-*.jsonl); others run live")
    routed.add_argument("--limit", type=int,
                        help="run at most N problems not yet in --out (a long run in chunks)")
    routed.add_argument("--problems", nargs="+", metavar="ID", help="task ids (HumanEval/3 or 3)")
    routed.add_argument("--summary", action="store_true", help="only summarise --out, run nothing")
    routed.add_argument("--json", action="store_true", help="print one JSON object")
    routed.set_defaults(handler=_routed)
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
    repair.add_argument("results", type=Path,
                        help="a results file of `eval humaneval` (with --set edge or "
                             "everyday: records of `eval features --cloud`)")
    repair.add_argument("--set", dest="problem_set", choices=SETS, default="humaneval",
                        help="the problem set (default: humaneval)")
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
    features = targets.add_parser(
        "features", help="record the local answers of a problem set with their per-token "
        "logprobs (and, when asked, the cloud's answers and local samples) for the learned "
        "judge and sampling agreement; resumed when --out exists")
    features.add_argument("--set", dest="problem_set", choices=SETS,
                          default="humaneval", help="the problem set (default: humaneval)")
    features.add_argument("--out", type=Path, required=True, help="records (JSON lines)")
    features.add_argument("--cloud", action="store_true", help="also the cloud tier's answers")
    features.add_argument("--samples", type=int, default=0,
                          help="local samples per problem at --temperature (0: none)")
    features.add_argument("--temperature", type=float, default=0.7,
                          help="sampling temperature of --samples")
    features.add_argument("--limit", type=int, help="only the first N problems")
    features.add_argument("--recorded", type=Path, metavar="RESULTS",
                          help="score the local answers of this `eval humaneval` results file "
                               "by teacher forcing (one forward pass each) instead of decoding")
    features.add_argument("--repairs", type=Path, metavar="REPAIRS",
                          help="with --recorded: score the rounds of these `eval repair` "
                               "records by teacher forcing instead (2 rounds at most)")
    features.set_defaults(handler=_features)
    judges = targets.add_parser(
        "judges", help="today's judge against the learned one (fitted on HumanEval's calibrate "
        "half), held out on HumanEval's report half and on the edge-case set, and sampling "
        "agreement on the edge-case set (no model runs)")
    judges.add_argument("--humaneval", type=Path, default=Path("docs/humaneval-features.jsonl"),
                        help="HumanEval records of `eval features`")
    judges.add_argument("--results", type=Path, default=Path("docs/humaneval-results.jsonl"),
                        help="the `eval humaneval` results giving HumanEval's cloud outcomes")
    judges.add_argument("--edge", type=Path, default=Path("docs/edgecases-results.jsonl"),
                        help="edge-case records of `eval features --cloud --samples N`")
    judges.add_argument("--repairs", type=Path,
                        default=Path("docs/humaneval-repair-features.jsonl"),
                        help="HumanEval repair rounds scored by `eval features --repairs`")
    judges.add_argument("--everyday", type=Path, default=Path("docs/everyday-results.jsonl"),
                        help="everyday-set records of `eval features --set everyday --cloud`")
    judges.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="95%% intervals on every figure from N resamples of the problems "
                             "(seeded; 0: none)")
    judges.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    judges.add_argument("--markdown", action="store_true",
                        help="print BENCHMARKS.md's judge tables: cross-fitted on HumanEval's "
                             "halves, the shipped default, the everyday and edge-case sets "
                             f"(--bootstrap {judge_tables.RESAMPLES} unless given)")
    judges.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5],
                        help="sampling agreement's k values (those with enough samples run)")
    judges.add_argument("--json", action="store_true", help="print one JSON object")
    judges.set_defaults(handler=_judges)


def _fail(message: str) -> int:
    print(f"smallcode: {message}", file=sys.stderr)
    return 2


def _humaneval(args: argparse.Namespace) -> int:
    # deferred on purpose: router.evals.run loads the graph (langgraph); only this command needs it
    from router.evals import run

    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1")
    if not 1 <= args.max_tokens <= MAX_TOKENS_LIMIT:
        return _fail(f"--max-tokens must be from 1 to {MAX_TOKENS_LIMIT}")
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


def _routed(args: argparse.Namespace) -> int:
    # deferred on purpose: router.evals.endtoend loads the graph (langgraph)
    from router.evals import endtoend

    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1")
    settings = load_settings(args.config)
    try:
        problems = humaneval.select(humaneval.load_problems(), args.problems)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    problems = [p for p in problems
                if args.split == "all" or humaneval.split_of(p.task_id) == args.split]
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        if args.summary:
            records = [r for r in endtoend.read_results(args.out)
                       if r["task_id"] in {p.task_id for p in problems}]
        else:
            records = endtoend.run(problems, settings=settings, out=args.out,
                                   mode="replay" if args.replay else "live", limit=args.limit,
                                   log=log)
    except endtoend.EvalError as exc:
        return _fail(str(exc))
    if not records:
        return _fail(f"{args.out} holds no results of these problems")
    data = endtoend.summary(records)
    print(json.dumps(data) if args.json else "\n".join(endtoend.format_summary(data)))
    return 0


def _load(path: Path) -> list[dict[str, object]] | None:
    # deferred on purpose: router.evals.run loads the graph (langgraph); only this command needs it
    from router.evals.run import read_results

    records = read_results(path)
    return records or None


def _report(args: argparse.Namespace) -> int:
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
    if not 0 <= args.rounds <= 5:
        return _fail("--rounds must be from 0 to 5")
    settings = load_settings(args.config)
    rules = settings.policies.for_team(None)
    if not args.summary:
        results = _load(args.results)
        if results is None:
            return _fail(f"{args.results} holds no results: run `smallcode eval humaneval` first")
        if args.problem_set != "humaneval":
            local = results[0].get("local")
            if not isinstance(local, dict) or "lp" not in local:
                return _fail(f"{args.results}: not records of `smallcode eval features`")
            results = [repair.from_features(r) for r in results]
        sandbox = open_sandbox(settings.checks)
        if sandbox is None:
            return _fail("the checks cannot run isolated here: install bubblewrap")
        problems = [p for p in load_set(args.problem_set)
                    if args.split == "all" or humaneval.split_of(p.task_id) == args.split]
        problems = problems[:args.limit] if args.limit else problems
        local = build_local(settings)
        try:
            repair.run(problems, results, local, sandbox, out=args.out, rules=rules,
                       rounds=args.rounds, max_tokens=DEFAULT_MAX_TOKENS, style=args.style,
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


def load_set(name: str) -> list[Problem]:
    """The problems of a named set: ``humaneval``, ``edge`` (router/evals/edgecases.py) or
    ``everyday`` (router/evals/everyday.py, frozen before any judge was scored on it)."""
    if name == "edge":
        return list(edgecases.load_problems())
    if name == "everyday":
        return list(everyday.load_problems())
    return list(humaneval.load_problems())


def _features(args: argparse.Namespace) -> int:
    # deferred on purpose: router.evals.run loads the graph (langgraph); only this command needs it
    from router.evals import run

    if not 0 <= args.samples <= 10:
        return _fail("--samples must be from 0 to 10")
    if not 0.0 < args.temperature <= 2.0:
        return _fail("--temperature must be above 0 and at most 2")
    settings = load_settings(args.config)
    sandbox = open_sandbox(settings.checks)
    if sandbox is None:
        return _fail("the tests cannot run isolated here: install bubblewrap")
    problems = load_set(args.problem_set)[:args.limit] if args.limit else load_set(args.problem_set)
    from agents.local import LocalBackend  # deferred on purpose: loads numpy, and llama_cpp once built

    recorded = None
    if args.recorded:
        recorded = {r["task_id"]: r for r in run.read_results(args.recorded)}
        if not recorded:
            return _fail(f"{args.recorded} holds no results")
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    with contextlib.ExitStack() as stack:
        if args.cloud:
            stack.enter_context(run.cloud_available(settings, log))
        local = build_local(settings)
        stack.callback(local.close)
        cloud = build_cloud(settings) if args.cloud else None
        if recorded is not None and not isinstance(local, LocalBackend):
            return _fail("--recorded needs local.mode: inprocess (teacher forcing)")
        if args.repairs:
            if recorded is None:
                return _fail("--repairs needs --recorded (the answers repaired)")
            repairs = {task: {**r, "initial_answer": recorded[task]["local"]["answer"]}
                       for task, r in repair.read_records(args.repairs).items() if task in recorded}
            done = features.score_repairs(problems, repairs, local=local,  # type: ignore[arg-type]
                                          sandbox=sandbox, rules=settings.policies.for_team(None),
                                          out=args.out, log=log)
            print(json.dumps({"n": len(done), "out": str(args.out)}))
            return 0
        records = features.run(problems, local=local, cloud=cloud,  # type: ignore[arg-type]
                               recorded=recorded,
                               sandbox=sandbox, rules=settings.policies.for_team(None),
                               out=args.out, samples=args.samples,
                               temperature=args.temperature, set_name=args.problem_set, log=log)
    passed = sum(r["local"]["passed"] for r in records)
    print(json.dumps({"n": len(records), "local_passed": passed, "out": str(args.out)}))
    return 0


def _judges(args: argparse.Namespace) -> int:
    # deferred on purpose: router.evals.run loads the graph (langgraph); only this command needs it
    from router.evals.run import read_results

    for path in (args.humaneval, args.results):
        if not path.is_file():
            return _fail(f"{path} does not exist: run `smallcode eval features` (or give the "
                         "path)")
    if not 0 <= args.bootstrap <= 100_000:
        return _fail("--bootstrap must be from 0 to 100000")
    settings = load_settings(args.config)
    rules = settings.policies.for_team(None)
    if args.markdown:
        paths = judge_tables.Paths(humaneval=args.humaneval, results=args.results,
                                   repairs=args.repairs, edge=args.edge, everyday=args.everyday)
        tables = judge_tables.build(paths, default_threshold=rules.confidence_threshold,
                                    resamples=args.bootstrap or judge_tables.RESAMPLES,
                                    seed=args.seed)
        print("\n".join(judge_tables.markdown(tables)))
        return 0
    resampling = {"resamples": args.bootstrap, "seed": args.seed}
    cloud = {r["task_id"]: {"passed": bool(r["cloud_passed"]),
                            "latency_ms": r["cloud"]["latency_ms"]}
             for r in read_results(args.results)}
    prompts = {p.task_id: task_prompt(p) for name in SETS for p in load_set(name)}
    records = judges.prepare(list(features.read_records(args.humaneval).values()),
                             prompts=prompts, cloud=cloud)
    cal = [r for r in records if r["split"] == "calibrate"]
    rep = [r for r in records if r["split"] == "report"]
    model, _ = judges.fit_model(cal, target_quality=judges.rates(cal)["cloud"],
                                meta={"fitted_on": "HumanEval calibrate half"})
    scores = {"fixed (today)": judges.fixed_score,
              "learned": judges.learned_score(model),
              "learned, failed checks escalate": judges.learned_score(model,
                                                                      checks_escalate=True)}
    data: dict[str, object] = {"model": {"weights": model.weights(), "C": model.meta.get("C")},
                               "humaneval": judges.compare(cal, rep, scores, **resampling)}
    lines = judges.format_comparison("HumanEval, report half (thresholds from the calibrate "
                                     "half)", data["humaneval"])  # type: ignore[arg-type]
    shift = judges.prompt_shift(rep, model)
    data["prompt_shift"] = shift
    lines.append("learned judge, the report half's right answers with a longer prompt: "
                 + "; ".join(f"{size} tokens: {share:.1%} kept local"
                             for size, share in shift.items()))
    if args.repairs.is_file():
        repaired = judges.with_repair(rep, features.read_records(args.repairs))
        data["humaneval_repair"] = judges.compare(cal, repaired, scores, **resampling)
        lines += judges.format_comparison("HumanEval, report half, repair_rounds: 2",
                                          data["humaneval_repair"])  # type: ignore[arg-type]
    if args.everyday.is_file():
        held = judges.prepare(list(features.read_records(args.everyday).values()),
                              prompts=prompts)
        data["everyday"] = judges.compare(cal, held, scores, **resampling)
        lines += judges.format_comparison("everyday set, frozen (judge and thresholds from "
                                          "HumanEval's calibrate half)",
                                          data["everyday"])  # type: ignore[arg-type]
    if args.edge.is_file():
        edge = judges.prepare(list(features.read_records(args.edge).values()), prompts=prompts)
        data["edge"] = judges.compare(cal, edge, scores, **resampling)
        lines += judges.format_comparison("edge-case set (judge and thresholds from HumanEval's "
                                          "calibrate half)", data["edge"])  # type: ignore[arg-type]
        sandbox = open_sandbox(settings.checks)
        if sandbox is None:
            return _fail("the samples cannot run isolated here: install bubblewrap")
        at = {name: (score, judges.threshold_for(cal, score, "cloud_quality").threshold)
              for name, score in scores.items() if name != "learned, failed checks escalate"}
        data["sampling"] = sampling.evaluate(edge, prompts, args.ks, sandbox, rules, at)
        lines.append("sampling agreement on the edge-case set (judges at HumanEval's "
                     "cloud-quality threshold):")
        lines += sampling.format_sampling(data["sampling"])  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(data))
    else:
        print("\n".join(lines))
    return 0
