"""`smallcode bench TARGET`: benchmarks that print figures (never pass/fail)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from agents.config import LocalConfig
from agents.model_store import resolve
from router.bench import agent_clients, concurrency
from router.bench.rag_tasks import MODES as RAG_MODES
from router.bench.rag_tasks import TASKS as RAG_TASKS
from router.cli.index import register_bench
from router.graph.validation import DEFAULT_MAX_TOKENS
from router.settings import ConfigError, load_settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("bench", help="measure speed and quality")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    local = targets.add_parser("local", help="local model: load, prompt, decode, options")
    local.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure")
    local.add_argument("--json", action="store_true", help="print one JSON object")
    local.set_defaults(handler=_local)
    routing = targets.add_parser("router", help="routing overhead per task and end to end")
    routing.add_argument("--tasks", type=int, default=1000, help="synthetic tasks")
    routing.add_argument("--json", action="store_true", help="print one JSON object")
    routing.set_defaults(handler=_router)
    agents = targets.add_parser("agents", help="Claude Code, Codex and opencode each fix a bug "
                                "through the router: turns, tiers, cost, router time per turn")
    agents.add_argument("--clients", default=",".join(agent_clients.CLIENTS),
                        help=f"comma-separated, some of {','.join(agent_clients.CLIENTS)}")
    agents.add_argument("--real", action="store_true",
                        help="real models on the whole session: the local model and the 1.5B "
                        "coder as the cloud, each on llama-server --jinja (slow on CPU)")
    agents.add_argument("--json", action="store_true", help="print one JSON object")
    agents.set_defaults(handler=_agents)
    turn = targets.add_parser("turn", help="the router's own time per agent turn (a "
                              "Claude-Code-like session, the cloud scripted): first and next turn")
    turn.add_argument("--sessions", type=int, default=20, help="sessions of two turns each")
    turn.add_argument("--json", action="store_true", help="print one JSON object")
    turn.set_defaults(handler=_turn)
    speed = targets.add_parser("speed", help="the local tier through each layer vs the raw call")
    speed.add_argument("--rounds", type=int, default=3, help="alternating rounds per layer")
    speed.add_argument("--json", action="store_true", help="print one JSON object")
    speed.set_defaults(handler=_speed)
    concurrency = targets.add_parser(
        "concurrency", help="local throughput at 1/4/8 concurrent tasks: in-process vs llama-server")
    concurrency.add_argument("--tokens", type=int, default=128, help="tokens per completion")
    concurrency.add_argument("--rounds", type=int, default=2, help="waves per concurrency level")
    concurrency.add_argument("--levels", default="1,4,8",
                             help="concurrent tasks per level, comma-separated")
    concurrency.add_argument("--through", default="engine",
                             help="how llama-server is reached, comma-separated: engine "
                             "(directly) and/or serve (through `smallcode serve`'s HTTP API)")
    concurrency.add_argument("--json", action="store_true", help="print one JSON object")
    concurrency.set_defaults(handler=_concurrency)
    multiturn = targets.add_parser(
        "multiturn", help="llama-server: time to first token of each turn of a conversation "
        "with a long shared prefix (the prompt cache kept per session)")
    multiturn.add_argument("--prefix-tokens", type=int, default=3000,
                           help="tokens of code the conversation starts with")
    multiturn.add_argument("--turns", type=int, default=5, help="turns of the conversation")
    multiturn.add_argument("--json", action="store_true", help="print one JSON object")
    multiturn.set_defaults(handler=_multiturn)
    speculation = targets.add_parser(
        "speculation", help="llama-server: decode tok/s with and without n-gram speculative "
        "decoding, on an edit and on generation from scratch (output compared byte for byte)")
    speculation.add_argument("--types", default="",
                             help="speculative types to compare with none, comma-separated "
                             "(default: local.spec_type)")
    speculation.add_argument("--rounds", type=int, default=2, help="requests per task and mode")
    speculation.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="answer budget")
    speculation.add_argument("--json", action="store_true", help="print one JSON object")
    speculation.set_defaults(handler=_speculation)
    judged = targets.add_parser(
        "confidence", help="llama-server: the recorded HumanEval run's local requests again "
        "through the server with the shipped flags; the judge's confidence, server vs in-process")
    judged.add_argument("--recorded", type=Path, default=Path("docs/humaneval-results.jsonl"),
                        help="an `eval humaneval` results file (in-process answers)")
    judged.add_argument("--limit", type=int, default=None, help="only the first N problems")
    judged.add_argument("--concurrency", type=int, default=4, help="requests at a time")
    judged.add_argument("--json", action="store_true", help="print one JSON object")
    judged.set_defaults(handler=_confidence)
    api = targets.add_parser("api", help="the service with replayed models: enqueue, workers, "
                             "read endpoints under 100 clients, ledger writes")
    api.add_argument("--tasks", type=int, default=1000, help="tasks to enqueue and drain")
    api.add_argument("--duration", type=float, default=20, help="seconds of read load")
    api.add_argument("--apis", type=int, default=1, choices=range(1, 9), metavar="N",
                     help="API processes the read load is spread over (1-8)")
    api.add_argument("--json", action="store_true", help="print one JSON object")
    api.set_defaults(handler=_api)
    fim = targets.add_parser("fim", help="inline completion: HumanEval single-line infilling "
                             "pass@1, cold and warm time to first token")
    fim.add_argument("--orders", default="psm,spm", help="FIM layouts to measure (psm,spm)")
    fim.add_argument("--limit", type=int, help="first N HumanEval problems (default: all 164)")
    fim.add_argument("--rounds", type=int, default=5, help="latency rounds per figure")
    fim.add_argument("--latency-only", action="store_true", help="skip the HumanEval part")
    fim.add_argument("--suffix-tokens", type=int, help="the window's code after the cursor "
                     "(default: completions.suffix_tokens)")
    fim.add_argument("--reuse-min-tokens", type=int, help="move cached runs of at least this "
                     "many tokens (default: completions.reuse_min_tokens; 0: prefix only)")
    fim.add_argument("--reuse-refresh-tokens", type=int, help="evaluate again this many "
                     "tokens at the start of each moved run (default: "
                     "completions.reuse_refresh_tokens)")
    fim.add_argument("--warm-quality", action="store_true", help="ask each HumanEval problem "
                     "right after the same file one line shorter (as while typing), "
                     "and cold (after another file) in the same run to compare")
    fim.add_argument("--engine", action="store_true", help="also llama-server's /infill "
                     "(serve's local engine), in the same run: the order `server`")
    fim.add_argument("--json", action="store_true", help="print one JSON object")
    fim.set_defaults(handler=_fim)
    stream = targets.add_parser("stream", help="routed streams: time to first byte and first "
                                "content token, local-kept vs escalated vs straight to the cloud")
    stream.add_argument("--rounds", type=int, default=3, help="rounds of the three kinds (max 5)")
    stream.add_argument("--max-tokens", type=int, default=128, help="max_tokens of each request")
    stream.add_argument("--json", action="store_true", help="print one JSON object")
    stream.set_defaults(handler=_stream)
    review = targets.add_parser("review", help="smallcode review on planted-bug diffs: bugs "
                                "found, findings that are noise")
    review.add_argument("--route", choices=["local", "cloud", "auto"], default="local",
                        help="the tier that reviews (default: local)")
    review.add_argument("--max-tokens", type=int, default=256, help="answer tokens per diff")
    review.add_argument("--json", action="store_true", help="print one JSON object")
    review.set_defaults(handler=_review)
    rag = targets.add_parser("rag", help="retrieval's lift on answers: repository tasks over "
                             "the installed requests package, without and with --repo, and "
                             "with --repo and the local repair rounds")
    rag.add_argument("--limit", type=int, help="first N tasks (default: all 21)")
    rag.add_argument("--offset", type=int, default=0, help="skip the first N tasks")
    rag.add_argument("--modes", default=",".join(RAG_MODES),
                     help=f"comma-separated, some of {','.join(RAG_MODES)} (default: all)")
    rag.add_argument("--repair-rounds", type=int, help="the repair mode's rounds (default: "
                     "the policy's repair_rounds)")
    rag.add_argument("--max-tokens", type=int, default=320, help="answer budget per task")
    rag.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                     help="summarise the --json outputs of runs over parts of the set instead "
                     "of running")
    rag.add_argument("--json", action="store_true", help="print one JSON object")
    rag.set_defaults(handler=_rag)
    register_bench(targets)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _local_model(args: argparse.Namespace) -> tuple[Any, Path]:
    settings = load_settings(args.config)
    return settings.local, resolve(settings.local.model, settings.models.cache_dir)


def _rag(args: argparse.Namespace) -> int:
    from router.bench import rag  # deferred on purpose: each bench loads only for its command

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in RAG_MODES for m in modes):
        _stderr(f"smallcode: --modes must be some of {','.join(RAG_MODES)}, got {args.modes!r}")
        return 2
    if args.limit is not None and args.limit < 1:
        _stderr("smallcode: --limit must be at least 1")
        return 2
    if not 0 <= args.offset < len(RAG_TASKS):
        _stderr(f"smallcode: --offset must be from 0 to {len(RAG_TASKS) - 1}")
        return 2
    if args.repair_rounds is not None and not 0 <= args.repair_rounds <= 5:
        _stderr("smallcode: --repair-rounds must be from 0 to 5")
        return 2
    if args.max_tokens < 16:
        _stderr("smallcode: --max-tokens must be at least 16")
        return 2
    if args.merge:
        try:
            result = rag.merge([json.loads(p.read_text(encoding="utf-8")) for p in args.merge])
        except (OSError, ValueError, KeyError) as exc:
            _stderr(f"smallcode: --merge: {exc}")
            return 2
    else:
        settings = load_settings(args.config)
        path = resolve(settings.local.model, settings.models.cache_dir)
        end = None if args.limit is None else args.offset + args.limit
        result = rag.run(settings, path, tasks=RAG_TASKS[args.offset:end], modes=modes,
                         repair_rounds=args.repair_rounds, max_tokens=args.max_tokens,
                         log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    labels = {"without": "without retrieval", "with": "with retrieval",
              "repair": "with retrieval + local repair"}
    for mode in result["modes"]:
        row = result[mode]
        line = (f"{labels[mode]}: {row['passed']}/{result['tasks']} passed "
                f"({100 * row['pass_rate']:.0f}%), imports the helper {row['imports_helper']}, "
                f"{row['seconds_mean']:.1f} s mean / {row['seconds_median']:.1f} s median")
        if "lift_points" in row:
            line += (f"; lift {row['lift_points']:+.1f} points, latency x{row['latency_ratio']} "
                     f"mean / x{row['latency_ratio_median']} median")
        if mode == "repair":
            line += (f"; {row['local_attempts_added']} local attempts added "
                     f"({row['tasks_repaired']} tasks)")
        print(line)
    return 0


def _router(args: argparse.Namespace) -> int:
    from router.bench import router_speed  # deferred on purpose: each bench loads only for its command

    config, path = _local_model(args)
    result = router_speed.run(config, path, tasks=args.tasks, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"routing logic, models replayed: p50 {result['routing_ms_p50']:.2f} ms, "
          f"p99 {result['routing_ms_p99']:.2f} ms over {result['tasks']} tasks "
          f"(routes {result['routes']})")
    print(f"end to end, task kept local ({result['completion_tokens']} tokens): graph "
          f"{result['end_to_end_graph_s']:.2f} s vs direct llama-cpp "
          f"{result['end_to_end_direct_s']:.2f} s, ratio {result['end_to_end_ratio']:.3f}")
    return 0


def _local(args: argparse.Namespace) -> int:
    from router.bench import local_speed  # deferred on purpose: each bench loads only for its command

    config, path = _local_model(args)
    result = local_speed.run(config, path, rounds=args.rounds, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']}, {result['n_threads']} threads, load {result['load_s']:.2f} s")
    print(f"prompt processing: {result['prompt_tokens_per_s']:.1f} tok/s (~500-token prompt)")
    print(f"decode, logprobs off: {result['decode_tokens_per_s_logprobs_off']:.1f} tok/s")
    print(f"decode, logprobs on:  {result['decode_tokens_per_s_logprobs_on']:.1f} tok/s  "
          f"(ratio {result['ratio_logprobs_on_vs_off']:.3f})")
    print(f"raw llama-cpp-python: {result['decode_tokens_per_s_raw_llama_cpp']:.1f} tok/s  "
          f"(ours with logprobs / raw {result['ratio_logprobs_on_vs_raw_llama_cpp']:.3f})")
    for name, row in result["variants"].items():  # type: ignore[attr-defined]
        print(f"{name:<20} prompt {row['prompt_tokens_per_s']:7.1f} tok/s "
              f"({row['prompt_ratio']:.2f}x)  decode {row['decode_tokens_per_s']:5.1f} tok/s "
              f"({row['decode_ratio']:.2f}x)")
    lookup = result["prompt_lookup"]
    print(f"prompt lookup (edit task, {lookup['completion_tokens']} tokens): "  # type: ignore[index]
          f"{lookup['total_s_off']:.1f} s off, {lookup['total_s_on']:.1f} s on, "  # type: ignore[index]
          f"speedup {lookup['speedup']:.2f}x, same text: {lookup['same_text']}")  # type: ignore[index]
    return 0


def _agents(args: argparse.Namespace) -> int:
    # deferred on purpose: agents.local loads numpy, the agents bench the whole service
    from agents.local import LocalBackend
    from router.bench import agents

    clients = tuple(c.strip() for c in args.clients.split(",") if c.strip())
    if not clients or any(c not in agent_clients.CLIENTS for c in clients):
        _stderr(f"smallcode: --clients must be some of {','.join(agent_clients.CLIENTS)}, "
                f"got {args.clients!r}")
        return 2
    settings = load_settings(args.config)
    try:
        if args.real:
            # the router's context check reads the local window from the settings
            settings = settings.model_copy(update={"local": settings.local.model_copy(
                update={"n_ctx": agents.REAL_N_CTX})})
            with agents.real_tiers(settings) as (real_local, cloud):
                result = agents.run(settings, real_local, clients=clients, log=_stderr,
                                    cloud=cloud)
        else:
            local = LocalBackend(settings.local,
                                 resolve(settings.local.model, settings.models.cache_dir))
            try:
                result = agents.run(settings, local, clients=clients, log=_stderr)
            finally:
                local.close()
    except agent_clients.InstallFailed as failed:
        _stderr(f"smallcode: the agent clients could not be installed: {failed}")
        return 1
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"local model {result['local_model']}, cloud {result['cloud_model']}; router time "
          "per turn outside the models")
    for row in result["clients"]:
        print(f"{row['client']:<9} done={row['done']!s:<5} turns={row['turns']:>2} "
              f"local={row['local']} cloud={row['cloud']} ({', '.join(row['reasons'])}) "
              f"cost ${row['cost_usd']:.4f} vs all-cloud ${row['all_cloud_usd']:.4f}  "
              f"router p50 {row['router_ms_p50']} ms  wall {row['wall_s']} s")
        if "later" in row:
            later = row["later"]
            print(f"{'':<9} again: done={later['done']!s:<5} turns={later['turns']:>2} "
                  f"router p50 {later['router_ms_p50']} ms (max {later['router_ms_max']})")
    return 0


def _turn(args: argparse.Namespace) -> int:
    # deferred on purpose: agents.local loads numpy, this bench the whole service
    from agents.local import LocalBackend
    from router.bench import turn_overhead

    settings = load_settings(args.config)
    local = LocalBackend(settings.local, resolve(settings.local.model, settings.models.cache_dir))
    try:
        result = turn_overhead.run(settings, local, sessions=args.sessions, log=_stderr)
    finally:
        local.close()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"local model {result['local_model']} (its tokenizer); {result['sessions']} sessions; "
          "router time per turn outside the models")
    for kind in ("first", "next"):
        row = result[kind]
        print(f"{kind:<6} {row['prompt_tokens']:>6} tokens ({row['route']}, {row['reason']})  "
              f"router p50 {row['router_ms_p50']} ms (min {row['router_ms_min']}, max "
              f"{row['router_ms_max']})  intake p50 {row['intake_ms_p50']} ms  "
              f"cloud_generate p50 {row['cloud_generate_ms_p50']} ms")
    return 0


def _speed(args: argparse.Namespace) -> int:
    from router.bench import speed  # deferred on purpose: each bench loads only for its command

    settings = load_settings(args.config)
    path = resolve(settings.local.model, settings.models.cache_dir)
    result = speed.run(settings, settings.local, path, rounds=args.rounds, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, {result['n_threads']} threads, {result['completion_tokens']} tokens")
    for name, row in result["layers"].items():  # type: ignore[attr-defined]
        print(f"{name:<42} {row['median_s']:6.2f} s  {row['tokens_per_s']:5.1f} tok/s  "
              f"x{row['ratio_vs_raw']:.3f}  paired x{row['paired_ratio_vs_raw']:.3f}")
    for name, row in result["above_the_model"].items():  # type: ignore[attr-defined]
        print(f"{name:<42} {row['overhead_ms_p50']:6.1f} ms above its model call "
              f"(max {row['overhead_ms_max']} ms): x{row['ratio_vs_its_model_call']:.4f}")
    return 0


def _concurrency(args: argparse.Namespace) -> int:
    through = [way.strip() for way in args.through.split(",") if way.strip()]
    if not through or any(way not in concurrency.THROUGH for way in through):
        _stderr(f"smallcode: --through must be some of {','.join(concurrency.THROUGH)}, "
                f"got {args.through!r}")
        return 2
    try:
        levels = [int(n) for n in args.levels.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        _stderr(f"smallcode: --levels must be positive integers, got {args.levels!r}")
        return 2
    config, path = _local_model(args)
    result = concurrency.run(config, path, levels=levels, tokens=args.tokens, rounds=args.rounds,
                             through=through, config_file=args.config, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, {result['n_threads']} threads, {result['tokens']}-token "
          f"completions, logprobs on")
    for kind in result["kinds"]:
        for row in result[kind]:
            ratio = result["ratios_vs_inprocess_single"][f"{kind}@{row['concurrency']}"]
            print(f"{kind:<13} {row['concurrency']} concurrent: {row['tokens_per_s']:6.1f} tok/s "
                  f"(x{ratio:.2f})  latency p50 {row['latency_s_p50']:.1f} s, "
                  f"max {row['latency_s_max']:.1f} s")
    return 0


def _multiturn(args: argparse.Namespace) -> int:
    from router.bench import engine  # deferred on purpose: each bench loads only for its command

    config, path = _local_model(args)
    result = engine.multiturn(config, path, prefix_tokens=args.prefix_tokens, turns=args.turns,
                              log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, {result['n_threads']} threads, llama-server")
    for row in result["turns"]:
        print(f"turn {row['turn']}: {row['prompt_tokens']:5d} prompt tokens, "
              f"{row['cached_prompt_tokens']} from the cache, first token after "
              f"{row['first_token_ms']:8.1f} ms")
    print(f"slowest first token of turns 2+ / turn 1: x{result['later_vs_first_max']}")
    return 0


def _speculation(args: argparse.Namespace) -> int:
    from router.bench import engine  # deferred on purpose: each bench loads only for its command

    types = [kind.strip() for kind in args.types.split(",") if kind.strip()]
    known = get_args(LocalConfig.model_fields["spec_type"].annotation)
    wrong = [kind for kind in types if kind not in known or kind == "none"]
    if wrong:
        _stderr(f"smallcode: --types: {', '.join(wrong)} is not a speculative type "
                f"({', '.join(k for k in known if k != 'none')})")
        return 2
    config, path = _local_model(args)
    result = engine.speculation(config, path, types=types, rounds=args.rounds,
                                max_tokens=args.max_tokens, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    bound = (f"drafts of at most {result['spec_draft_n_max']} tokens"
             if result["spec_draft_n_max"] else "each type's own draft bound")
    print(f"{result['model']}, {result['n_threads']} threads, llama-server, {bound}, "
          f"{result['rounds']} rounds of {result['max_tokens']} tokens, logprobs on unless said")
    for task, rows in result["tasks"].items():
        for name, row in rows.items():
            print(f"{task:<8} {name:<24} {row['decode_tps_median']:6.1f} tok/s "
                  f"(x{row['vs_none']:.2f} none; per round {row['vs_none_per_round']}), "
                  f"identical to none in every round: {row['identical_to_none']}, drafts "
                  f"accepted {row['draft_tokens_accepted']}/{row['draft_tokens']}")
    return 0


def _confidence(args: argparse.Namespace) -> int:
    from router.bench import engine  # deferred on purpose: each bench loads only for its command

    if not args.recorded.is_file():
        _stderr(f"smallcode: --recorded {args.recorded} is not a file (an `eval humaneval` "
                "results file, e.g. docs/humaneval-results.jsonl)")
        return 2
    if args.concurrency < 1 or (args.limit is not None and args.limit < 1):
        _stderr("smallcode: --concurrency and --limit must be at least 1")
        return 2
    config, path = _local_model(args)
    result = engine.confidence(config, path, args.recorded, limit=args.limit,
                               concurrency=args.concurrency, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    same, spread = result["same_answer_delta"], result["all_delta"]
    print(f"{result['model']}, llama-server (spec {result['spec_type']}), "
          f"{result['concurrency']} at a time: {result['problems']} problems")
    print(f"answer word for word as recorded in-process: {result['same_answer']}; "
          f"without logprobs: {result['without_logprobs']}")
    print(f"|confidence - recorded| on those: median {figure(same['median'])}, p90 "
          f"{figure(same['p90'])}, max {figure(same['max'])}; within 0.01: {same['within_0.01']}")
    print(f"on every answer: median {figure(spread['median'])}, p90 {figure(spread['p90'])}, "
          f"max {figure(spread['max'])}")
    return 0


def _api(args: argparse.Namespace) -> int:
    from router.bench import api  # deferred on purpose: each bench loads only for its command

    config, path = _local_model(args)
    result = api.run(config, path, tasks=args.tasks, duration_s=args.duration, apis=args.apis,
                     log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    enqueue, workers, reads = result["enqueue"], result["workers"], result["read_endpoints"]
    print(f"enqueue: {enqueue['tasks_per_s']} tasks/s from 50 clients, p50 {enqueue['p50_ms']} ms, "
          f"p99 {enqueue['p99_ms']} ms, {enqueue['errors']} errors")
    print(f"2 workers: {workers['done']}/{workers['accepted']} done in {workers['seconds']} s "
          f"({workers['tasks_per_s']} tasks/s), {workers['ledger_entries']} ledger entries, "
          f"{workers['lost']} lost")
    print(f"reads, {reads['clients']} clients over {result['api_processes']} API process(es): "
          f"{reads['requests_per_s']} req/s, p50 "
          f"{reads['p50_ms']} ms, p99 {reads['p99_ms']} ms, {reads['errors']} errors")
    print(f"ledger write: p50 {result['ledger_write_ms']['p50']} ms, "
          f"p99 {result['ledger_write_ms']['p99']} ms")
    return 0


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _fim(args: argparse.Namespace) -> int:
    from router.bench import fim  # deferred on purpose: each bench loads only for its command

    settings = load_settings(args.config)
    path = resolve(settings.local.model, settings.models.cache_dir)
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    bad = [o for o in orders if o not in ("psm", "spm")]
    if bad:
        raise ConfigError(f"--orders: unknown FIM layout {bad[0]!r}: use psm, spm or both")
    result = fim.run(settings.local, path, orders=orders, limit=args.limit, rounds=args.rounds,
                     prefix_tokens=settings.completions.prefix_tokens,
                     suffix_tokens=_given(args.suffix_tokens, settings.completions.suffix_tokens),
                     skip_quality=args.latency_only, log=_stderr,
                     reuse=fim.Reuse(_given(args.reuse_min_tokens,
                                            settings.completions.reuse_min_tokens),
                                     _given(args.reuse_refresh_tokens,
                                            settings.completions.reuse_refresh_tokens)),
                     warm_quality=args.warm_quality, engine=args.engine)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, {result['n_threads']} threads, window {result['prefix_tokens']} "
          f"+ {result['suffix_tokens']} tokens, 32-token completions, cached runs moved: "
          f"{result['reuse_min_tokens'] or 'no'}, first {result['reuse_refresh_tokens']} of "
          "each evaluated again")
    for order, row in result["orders"].items():
        if "quality" in row:
            q = row["quality"]
            print(f"{order}: HumanEval single-line infilling pass@1 {q['pass_at_1']:.3f} "
                  f"({q['passed']}/{q['problems']}, {q['empty_completions']} empty"
                  f"{', warm' if q['warm'] else ''})")
        for case, figures in row["latency"].items():
            print(f"{order}: {case:<26} first token p50 {figures['ttft_ms_p50']:7.1f} ms, "
                  f"total p50 {figures['total_ms_p50']:7.1f} ms ({figures['prompt_tokens']} "
                  f"prompt tokens, {figures['cached_prompt_tokens_p50']:.0f} cached)")
    return 0


def _stream(args: argparse.Namespace) -> int:
    from router.bench import stream  # deferred on purpose: each bench loads only for its command

    if not 1 <= args.rounds <= len(stream.TASKS) // len(stream.KINDS):
        raise ConfigError(f"--rounds: 1 to {len(stream.TASKS) // len(stream.KINDS)}")
    result = stream.run(args.config, rounds=args.rounds, max_tokens=args.max_tokens, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']} local, {result['cloud']} as the cloud, {result['n_threads']} "
          f"threads, {result['rounds']} rounds, max_tokens {result['max_tokens']}")
    for kind, row in result["kinds"].items():
        print(f"{kind:<18} first byte p50 {row['first_byte_ms_p50']:7.0f} ms, first content p50 "
              f"{row['first_content_ms_p50'] or 0:7.0f} ms (max {row['first_content_ms_max'] or 0:.0f}),"
              f" total p50 {row['total_ms_p50']:7.0f} ms; routes {row['routes']}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from router.bench import review  # deferred on purpose: each bench loads only for its command

    result = review.run(args.config, route=args.route, max_tokens=args.max_tokens, log=_stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']} (route {result['route']}): {result['found']}/{result['bugs']} "
          f"planted bugs found, {result['noise']} findings elsewhere, "
          f"{result['clean_with_findings']} clean changes with findings")
    for row in result["cases"]:
        print(f"  {row['case']:<20} {'found' if row['found'] else '-':<6} "
              f"{row['findings']} findings, {row['seconds']} s")
    return 0
