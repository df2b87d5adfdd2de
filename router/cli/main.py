"""`smallcode`: the command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agents.errors import AgentError
from policies.errors import CalibrationError, OutcomesError, PolicyError
from retrieval.errors import RetrievalError
from router.cli import ask, bench, calibrate, evals, index, keys, models, review, serve, tune, usage, worker
from router.graph.errors import RouterError
from router.logs import one_line_handlers, uncaught_in_one_line
from router.settings import ConfigError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smallcode", description="SmallCode Router: local-first coding assistant gateway"
    )
    parser.add_argument("--config", type=Path, help="config file (default: ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (models, ask, serve, index, tune, bench, calibrate, evals, keys, usage, worker,
                   review):
        module.register(commands)
    return parser


# The project's own loggers; every other library speaks only at WARNING and above (their INFO
# lines, such as the OpenAI client's "Retrying request", are noise to a command-line user).
OWN_LOGGERS = ("smallcode", "agents", "router", "retrieval", "policies")


def configure_logging() -> None:
    """One format for every line (uvicorn's too: `smallcode serve` leaves it none of its own),
    and no stack trace in any (:mod:`router.logs`)."""
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    one_line_handlers()
    uncaught_in_one_line()
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ConfigError, RouterError, PolicyError, OutcomesError, CalibrationError) as exc:
        print(f"smallcode: {exc}", file=sys.stderr)  # the request or the configuration
        return 2
    except (AgentError, RetrievalError) as exc:
        print(f"smallcode: {exc}", file=sys.stderr)  # a model, a server or an index
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
