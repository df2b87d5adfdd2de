"""`smallcode worker`: run async tasks (``POST /v1/tasks``) from the queue in Redis, on any
host that reaches it. Stops on SIGTERM or Ctrl-C; a task it was running goes back to the queue."""

from __future__ import annotations

import argparse
import asyncio
import logging

from prometheus_client import start_http_server

from router.backends import build_cloud, build_local
from router.runtime import build_context
from router.service.metrics import Metrics
from router.settings import ConfigError, load_settings
from router.store.names import Names

log = logging.getLogger("smallcode.worker")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("worker", help="run queued tasks (needs redis.url)")
    parser.add_argument("--concurrency", type=int,
                        help="tasks run at once (default: tasks.concurrency)")
    parser.add_argument("--metrics-port", type=int,
                        help="serve /metrics (the tasks this worker ran) on this port "
                        "(default: tasks.metrics_port; none: no /metrics)")
    parser.add_argument("--no-retrieval", action="store_true",
                        help="do not open the code index (tasks naming a repo get no snippets)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if not settings.redis.url:
        raise ConfigError("smallcode worker needs redis.url (or SMALLCODE_REDIS__URL): the "
                          "Redis that `smallcode serve` and the other workers use; an embedded "
                          "one is private to its `smallcode serve`, which runs its own worker")
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency: must be 1 or more")
    port = args.metrics_port if args.metrics_port is not None else settings.tasks.metrics_port
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError("--metrics-port: a port, 1 to 65535")
    # deferred on purpose: the graph (langgraph) and the worker load only for this command
    from router.graph.graph import build_graph
    from router.worker import serve_worker

    local = build_local(settings)
    try:
        cloud = build_cloud(settings)
        try:
            context = build_context(settings, local, cloud, with_retrieval=not args.no_retrieval)
            metrics, server = None, None
            if port is not None:
                metrics = Metrics(queue_gauges=False)
                server, _ = start_http_server(port, addr=settings.server.host,
                                              registry=metrics.registry)
                log.info("worker metrics on http://%s:%d/metrics", settings.server.host, port)
            try:
                asyncio.run(serve_worker(settings, Names(settings.redis.prefix),
                                         graph=build_graph(), context=context,
                                         concurrency=args.concurrency, metrics=metrics))
            finally:
                if server is not None:
                    server.shutdown()
                    server.server_close()
                if context.retrieval is not None:
                    context.retrieval.close()
        finally:
            cloud.close()
    finally:
        local.close()
    return 0
