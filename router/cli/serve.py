"""`smallcode serve` (the HTTP API, with the stand-in) and `smallcode standin` (alone)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from agents import llama_server, model_store, standin
from agents.errors import BackendMisconfigured
from router.backends import standin_alias
from router.settings import ConfigError, Settings, load_settings
from router.store.connect import serving_redis

log = logging.getLogger("smallcode.serve")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("serve", help="run the OpenAI-compatible HTTP API")
    parser.add_argument("--host", help="bind address (default: server.host)")
    parser.add_argument("--port", type=int, help="port (default: server.port)")
    parser.add_argument("--no-standin", action="store_true", help="do not start the stand-in")
    parser.set_defaults(handler=serve)
    alone = commands.add_parser("standin", help="run the offline cloud stand-in server")
    alone.set_defaults(handler=run_standin)


def _start_standin(settings: Settings) -> standin.Standin:
    path = model_store.resolve(settings.standin.model, settings.models.cache_dir)
    log.info("starting the cloud stand-in (%s) on port %d", path.name, settings.standin.port)
    return standin.start(settings.standin, path, alias=standin_alias(settings))


def _start_llama_server(settings: Settings) -> standin.Standin:
    config = settings.local
    path = model_store.resolve(config.model, settings.models.cache_dir)
    log.info("starting llama-server (%s, %d parallel slots of %d tokens, speculation %s) as "
             "the local engine", path.name, config.server_parallel, config.n_ctx,
             config.spec_type)
    return llama_server.start(config, path, alias=config.model)


def starts_llama_server(settings: Settings) -> bool:
    """Whether serve runs llama-server as the local engine: ``local.mode`` server with no URL
    (it must), or auto where a llama-server is built (else the model runs in-process, and the
    log says why). A configured ``local.llama_server`` that is not there stops the start."""
    config = settings.local
    if config.mode == "server":
        return not config.urls
    if config.mode == "inprocess":
        return False
    if config.llama_server:
        llama_server.find_binary(config.llama_server)
        return True
    try:
        llama_server.find_binary(None)
    except BackendMisconfigured:
        log.warning("llama-server is not built (`make llama-server` builds it): the local model "
                    "runs in this process instead, one request at a time")
        return False
    return True


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM stops the server as Ctrl-C does: uvicorn shuts down, then re-raises the signal
    once its own handlers are gone; raising KeyboardInterrupt here (uvicorn swallows it)
    unwinds the ``with`` blocks, so every child started there is stopped, not orphaned."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def serve(args: argparse.Namespace) -> int:
    # deferred on purpose: uvicorn and the whole service load only for `smallcode serve`
    from router.service import server as api_server
    from router.service.app import create_app

    overrides = {}
    if args.host or args.port:
        server = {"host": args.host, "port": args.port}
        overrides["server"] = {k: v for k, v in server.items() if v is not None}
    settings = load_settings(args.config, **overrides)
    problem = standin.port_problem(settings.server.host, settings.server.port)
    if problem:  # say so before loading any model
        raise ConfigError(f"server.port {settings.server.port} on {settings.server.host} cannot "
                          f"be used ({problem}): stop what holds it, or pass --port")
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serving_redis(settings.redis.url, settings.data_dir,
                                                port=settings.redis.port))
        settings = settings.model_copy(update={"redis": settings.redis.model_copy(
            update={"url": url})})
        if settings.standin.enabled and not args.no_standin:
            stack.enter_context(_start_standin(settings))
        if starts_llama_server(settings):
            local_url = stack.enter_context(_start_llama_server(settings)).base_url
            settings = settings.model_copy(update={"local": settings.local.model_copy(
                update={"mode": "server", "server_url": local_url})})
        app = create_app(settings)
        api_server.run(app, settings)
    return 0


def run_standin(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with _start_standin(settings) as server:
        print(f"stand-in ready at {server.base_url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while not done.wait(1.0) and server.process.poll() is None:
                pass
    return 0
