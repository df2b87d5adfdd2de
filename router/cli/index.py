"""`smallcode index|search|references`, and the `retrieval` target of `smallcode bench`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from retrieval.retriever import Retriever
from router.bench.retrieval import format_report, run_retrieval_bench
from router.settings import load_settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    index = commands.add_parser(
        "index", help="index a repository for retrieval (incremental), list or drop indexes"
    )
    index.add_argument("path", nargs="?", type=Path, help="the repository's root folder")
    index.add_argument("--repo", help="index name: letters, digits, '-' and '_'")
    index.add_argument("--list", action="store_true", help="list indexed repos")
    index.add_argument("--drop", metavar="NAME", help="delete a repo's index")
    index.add_argument("--json", action="store_true", help="print one JSON object")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(handler=_index)

    search = commands.add_parser("search", help="search an indexed repo")
    search.add_argument("query")
    search.add_argument("--repo", required=True)
    search.add_argument("-k", type=int, default=None, help="number of hits (default: top_k)")
    search.add_argument("--json", action="store_true", help="print a JSON list of hits")
    search.add_argument("--text", action="store_true", help="include the chunk text")
    search.set_defaults(handler=_search)

    refs = commands.add_parser(
        "references", help="files that define and that call or import a symbol"
    )
    refs.add_argument("symbol")
    refs.add_argument("--repo", required=True)
    refs.add_argument("--json", action="store_true", help="print one JSON object")
    refs.set_defaults(handler=_references)


def register_bench(targets: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `retrieval` target to the `bench` command group."""
    bench = targets.add_parser("retrieval", help="indexing speed, query latency, recall@5, MRR")
    bench.add_argument("--functions", type=int, default=400, help="functions in the quality set")
    bench.add_argument("--fill", type=int, default=100_000,
                       help="chunks for the latency run at scale (0: skip it)")
    bench.add_argument("--queries", type=int, default=200, help="queries per latency run")
    bench.add_argument(
        "--tune", type=Path, metavar="DIR",
        help="first fine-tune the embedding model on the stdlib outside the corpus into DIR "
        "(reused when DIR holds one), then benchmark with it",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=_bench)


def _retriever(args: argparse.Namespace) -> Retriever:
    settings = load_settings(args.config)
    return Retriever(settings.retrieval, settings.data_dir)


def _fail(message: str) -> int:
    print(f"smallcode: {message}", file=sys.stderr)
    return 2


def _index(args: argparse.Namespace) -> int:
    retriever = _retriever(args)
    if args.list:
        rows = retriever.list_repos()
        if args.json:
            print(json.dumps(rows))
        for row in rows if not args.json else ():
            print(f"{row['repo']:<30} {row['chunks']:>8} chunks  {row['root'] or ''}")
        return 0
    if args.drop:
        retriever.drop(args.drop)
        print(json.dumps({"dropped": args.drop}) if args.json else f"dropped {args.drop}")
        return 0
    if args.path is None or not args.repo:
        return _fail("index needs PATH and --repo NAME (or --list, or --drop NAME)")
    bar = _ProgressBar(enabled=not args.no_progress)
    try:
        summary = retriever.index(args.path, args.repo, bar.update, bar.start)
    finally:
        bar.close()
    result = summary.as_dict()
    for error in summary.errors:
        print(f"smallcode: skipped {error['path']}: {error['detail']}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    rate = summary.files / summary.seconds if summary.seconds else 0.0
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped_by_reason.items()))
    print(
        f"{summary.repo}: {summary.files} files, {summary.chunks} chunks; "
        f"{summary.changed_files} files changed, {summary.embedded} chunks embedded, "
        f"{summary.removed} removed; {summary.skipped} skipped{f' ({skipped})' if skipped else ''}"
        f"; {summary.seconds:.1f} s ({rate:.0f} files/s)"
    )
    return 0


def _search(args: argparse.Namespace) -> int:
    if args.k is not None and not 1 <= args.k <= 100:
        return _fail("-k must be between 1 and 100")
    hits = _retriever(args).search(args.repo, args.query, args.k)
    if args.json:
        print(json.dumps([hit.as_dict(with_text=args.text) for hit in hits]))
        return 0
    for hit in hits:
        print(f"{hit.score:6.3f}  {hit.path}:{hit.start_line}-{hit.end_line}  {hit.symbol or ''}")
        if args.text:
            print("    " + hit.text.replace("\n", "\n    "))
    return 0


def _references(args: argparse.Namespace) -> int:
    refs = _retriever(args).references(args.repo, args.symbol)
    if args.json:
        print(json.dumps(refs.as_dict()))
        return 0
    print(f"{refs.symbol} is defined in:")
    for path in refs.defined_in or ["(nowhere in the index)"]:
        print(f"  {path}")
    print("used in:")
    for path in refs.used_in or ["(nowhere in the index)"]:
        print(f"  {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    result = run_retrieval_bench(load_settings(args.config).retrieval, functions=args.functions,
                                 fill=args.fill, n_queries=args.queries,
                                 tune_dir=Path(args.tune) if args.tune else None)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


class _ProgressBar:
    """tqdm on stderr: files done, with chunks and chunks/s as the postfix."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._chunks = 0
        self._started = time.perf_counter()

    def start(self, total_files: int) -> None:
        if not self.enabled:
            return
        self._started = time.perf_counter()
        self._bar = tqdm(total=total_files, unit="file", desc="indexing", file=sys.stderr)

    def update(self, files: int, chunks: int) -> None:
        if self._bar is None:
            return
        self._chunks += chunks
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._bar.set_postfix(chunks=self._chunks, chunks_s=f"{self._chunks / elapsed:.0f}",
                              refresh=False)
        self._bar.update(files)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
