"""`smallcode tune-embedder`: fine-tune the embedding model on a code base's documented functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from retrieval import tuning
from router.settings import load_settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tune = commands.add_parser(
        "tune-embedder",
        help="fine-tune the retrieval embedding model on docstring → code pairs from repositories",
    )
    tune.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="repository root folders")
    tune.add_argument("--out", type=Path, required=True, help="new directory for the tuned model")
    tune.add_argument("--base", help="model to start from (default: retrieval.embedding_model)")
    tune.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                      help="leave out files whose path (relative to its root) matches; repeatable")
    tune.add_argument("--epochs", type=float, default=1.0, help="passes over the pairs (default 1)")
    tune.add_argument("--batch-size", type=int, default=32, help="pairs per step (default 32)")
    tune.add_argument("--learning-rate", type=float, default=3e-5, help="default 3e-5")
    tune.add_argument("--force", action="store_true", help="replace --out if it holds files")
    tune.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    tune.set_defaults(handler=_tune)


def _tune(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    options = tuning.TuneOptions(args.epochs, args.batch_size, args.learning_rate)
    options.check()  # before walking the repositories
    pairs = [p for root in args.paths for p in tuning.collect_pairs(root, settings.retrieval, args.exclude)]
    print(f"{len(pairs)} docstring → code pairs from {len(args.paths)} folder(s)", file=sys.stderr)

    def progress(step: int, steps: int, loss: float) -> None:
        if step == steps or step % 10 == 0:
            print(f"step {step}/{steps}  loss {loss:.3f}", file=sys.stderr, flush=True)

    summary = tuning.tune(
        args.base or settings.retrieval.embedding_model, pairs, args.out, options,
        overwrite=args.force, progress=progress,
    )
    if args.json:
        print(json.dumps(summary.as_dict()))
        return 0
    print(
        f"tuned {summary.base_model} on {summary.pairs} pairs in {summary.steps} steps "
        f"({summary.seconds:.0f} s); loss {summary.first_loss:.3f} → {summary.last_loss:.3f}\n"
        f"saved to {summary.out}: set retrieval.embedding_model to it "
        "(or SMALLCODE_RETRIEVAL__EMBEDDING_MODEL) and re-index"
    )
    return 0
