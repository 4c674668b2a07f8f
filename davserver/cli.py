"""``davserver serve``: run the server from a config file or the embedded default;
``davserver user``: manage accounts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from . import cpu, logs, malloc, sockets, tls
from .accesslog import MountAccessLogger
from .app import DIRECT_KEY, ROUTER_KEY, create_app, prepare_shared
from .auth import apppasswords, htpasswd, users_cli
from .balance import Seat
from .config import Config, ConfigError, MountConfig, embedded_default, load, override
from .limits import Connection, Limits, guard_body_size
from .listener import Listener
from .master import Master
from .runtime import affinity, closer, metrics, requestid
from .state.errors import SchemaTooNew, StateUnavailable

log = logging.getLogger("davserver")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DRAIN_GRACE = 2.0
"""Seconds a stopping server keeps idle connections, answering (and closing) each once more."""


def _folder(value: str) -> Path:
    """A ``--root`` value: a folder, or a path where one can be created."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} exists and is not a folder")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="davserver", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('davserver')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--host", help="address to listen on (overrides the config)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides the config)")
    serve.add_argument(
        "--root", type=_folder, help="folder to serve (overrides the first filesystem WebDAV mount)"
    )
    serve.add_argument(
        "--workers", type=int, help="worker processes, 0 for one per core (overrides the config)"
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help=", ".join(LOG_LEVELS) + " (default INFO)",
    )
    users_cli.add_parser(sub)
    return parser


async def serve(
    config: Config,
    listening: list[socket.socket] | None = None,
    ready_fd: int | None = None,
    seat: Seat | None = None,
    follower: cpu.Follower | None = None,
) -> None:
    """Listen until SIGINT or SIGTERM, then let in-flight requests finish. A worker gets
    its ``listening`` sockets and its ``seat`` (davserver/balance.py) from the master, and
    writes a byte to ``ready_fd`` once it accepts connections. A single process pinned to
    a CPU moves with its ``follower`` (davserver/cpu.py)."""
    server = config.server
    ssl_context = None
    if server.tls_cert is not None and server.tls_key is not None:
        ssl_context = await asyncio.to_thread(
            tls.server_context, server.tls_cert, server.tls_key, config.source
        )
    app = create_app(config)
    handler_options: dict[str, Any] = {
        "access_log": logging.getLogger(logs.ACCESS_LOGGER),
        "access_log_class": MountAccessLogger.configured(
            as_json=config.log.format == "json", lines=server.access_log
        ),
    }
    runner = web.AppRunner(
        app, shutdown_timeout=server.shutdown_timeout, handle_signals=False, **handler_options
    )
    await runner.setup()
    following = asyncio.create_task(follower.run()) if follower is not None else None
    try:
        await _serve(runner, config, ssl_context, handler_options, listening, ready_fd, seat)
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        await runner.cleanup()


async def _serve(
    runner: web.AppRunner,
    config: Config,
    ssl_context: ssl.SSLContext | None,
    handler_options: dict[str, Any],
    listening: list[socket.socket] | None,
    ready_fd: int | None,
    seat: Seat | None,
) -> None:
    server = config.server
    web_server = runner.server
    assert web_server is not None
    limits = Limits.of(server)
    # A declared body over max_body_size is refused before the application (and its
    # "100 Continue") sees the request.
    # The app has one route: requests go straight to it (app.direct_handler).
    web_server.request_handler = guard_body_size(runner.app[DIRECT_KEY], limits.max_body_size)
    loop = asyncio.get_running_loop()

    router = runner.app[ROUTER_KEY]
    board = router.scoreboard

    def connection(on_close: Callable[[], None]) -> Connection:
        counted = metrics.active
        if board is not None:
            board.connection(1)
        if counted is not None:
            counted.connections.inc()

        def closed() -> None:
            if board is not None:
                board.connection(-1)
            if counted is not None:
                counted.connections.dec()
            on_close()

        return Connection(web_server, limits=limits, on_close=closed, loop=loop, **handler_options)

    listener = Listener(
        connection,
        max_connections=server.max_connections,
        max_connections_per_address=server.max_connections_per_address,
        ssl_context=ssl_context,
        handshake_timeout=server.read_timeout,
        seat=seat,
    )
    # Everything made so far (modules, the app, the mounts) lives as long as the process:
    # out of the collector's sight, full collections stop walking it again and again
    # (a PROPFIND Depth 1 makes thousands of objects; ~10 % of its time went there).
    gc.freeze()
    if listening is None:
        passed = sockets.from_systemd()  # socket activation
        if passed:
            listener.adopt(passed)
        else:
            await listener.start(server.host, server.port)
        print_urls(config, listener.addresses, ssl_context is not None)
    else:
        listener.adopt(listening)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _single_process_sighup)
    loop.add_signal_handler(signal.SIGUSR1, logs.reopen)
    if ready_fd is not None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)
    try:
        await stop.wait()
        if listening is None:
            print("davserver: stopping", flush=True)
    finally:
        # aiohttp's own shutdown stops reading request bodies at once; stop listening first
        # and let the requests under way (uploads too) finish, for shutdown_timeout at most.
        await listener.close()
    router.closing = True  # answers from now on close their connection
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(router.wait_idle(), server.shutdown_timeout)
    # A client that keeps its connection and sends more gets one more answer, which
    # closes it; idle connections are closed once this grace is over.
    deadline = loop.time() + min(DRAIN_GRACE, server.idle_timeout)
    while listener.open_connections and loop.time() < deadline:
        await asyncio.sleep(0.05)


def _single_process_sighup() -> None:
    log.warning("SIGHUP: the configuration is read again only with workers > 1 (ignored)")


def print_urls(config: Config, addresses: list[tuple[str, int]], https: bool) -> None:
    """The start-up lines: each mount's URL on each listening address."""
    scheme = "https" if https else "http"
    for host, port in addresses:
        base = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
        for m in config.mounts:
            print(
                f"davserver: {m.type} of {_served(m)} at {base}{m.prefix}/",
                flush=True,
            )


def _served(m: MountConfig) -> str:
    """What a mount serves, for its start-up line."""
    return str(m.app or m.root or m.repo or m.socket or " ".join(m.command) or "this server")


def _worker(config: Config, listening: list[socket.socket], ready_fd: int, seat: Seat) -> int:
    """A worker process of the master: a whole server on the master's sockets."""

    def run() -> int:
        asyncio.run(serve(config, listening, ready_fd, seat))
        return 0

    return _guarded(run)


def _run_workers(config: Config, reload: Callable[[], Config]) -> int:
    """The master of several worker processes (davserver/master.py)."""
    master = Master(config, reload, _worker, reopen_logs=logs.reopen,
                    worker_exited=lambda pid: _worker_exited(master.config, pid))  # fmt: skip
    master.bind()
    https = config.server.tls_cert is not None
    return master.run(lambda: print_urls(master.config, master.addresses, https))


def _worker_exited(config: Config, pid: int) -> None:
    """What a worker that exited leaves: its live gauges in the metrics."""
    if any(m.type == "metrics" for m in config.mounts):
        metrics.process_died(config.server.state_dir / "metrics", pid)


def main(argv: list[str] | None = None) -> int:
    """The command line entry point."""
    args = _parser().parse_args(argv)
    if args.command == "user":
        return users_cli.run(args)
    logging.basicConfig(level=args.log_level.upper(), format=logs.TEXT_FORMAT)
    logging.getLogger().handlers[0].addFilter(requestid.Filter())

    def run() -> int:
        config = _config(args)
        single = config.server.workers == 1
        logs.configure(args.log_level.upper(), config.log, workers=not single)
        prepare_shared(config)
        malloc.tune()  # before any thread starts: see malloc.py
        if single:
            follower = None
            if config.server.pin_cpu:  # before any thread starts, too: see cpu.py
                pinned = cpu.pin_to_one_cpu()
                if pinned is not None:
                    log.info("running on CPU %d (pin_cpu)", pinned)
                    follower = cpu.Follower(affinity.unpinned(), pinned, closer.keep_off)
                    _start_closer(pinned)
            try:
                asyncio.run(serve(config, follower=follower))
            finally:
                closer.stop()
            return 0
        return _run_workers(config, lambda: _config(args))

    return _guarded(run)


def _start_closer(pinned: int) -> None:
    """Let a helper process free the files PUTs replace, on the CPUs the process pinned to
    ``pinned`` left (davserver/runtime/closer.py); without one, the server frees them
    itself."""
    try:
        pid = closer.start(pinned)
    except OSError as exc:
        log.warning("replaced files are freed on the server's CPU: no helper (%s)", exc)
    else:
        log.info("replaced files are freed by helper process %d", pid)


def _guarded(run: Callable[[], int]) -> int:
    """``run()``, with a bad configuration (2) or a start that fails (1) told in one
    line, without a traceback."""
    try:
        return run()
    except (ConfigError, htpasswd.HtpasswdError) as exc:
        print(f"davserver: configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (OSError, StateUnavailable, SchemaTooNew) as exc:
        print(f"davserver: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1


def _config(args: argparse.Namespace) -> Config:
    """The configuration the command line names, checked (and the accounts file read)."""
    config = load(args.config) if args.config else embedded_default(Path.cwd())
    config = override(config, host=args.host, port=args.port, root=args.root, workers=args.workers)
    accounts = config.auth.htpasswd
    if accounts is not None:
        if not accounts.is_file():  # read() takes a missing file for one without accounts
            problem = "is not a file" if accounts.exists() else "does not exist"
            raise ConfigError(
                f"{config.source}: auth.htpasswd: {accounts} {problem} (accounts are added "
                "with `davserver user --config FILE add NAME`)"
            )
        htpasswd.read(accounts)  # a broken accounts file stops us here
    if config.auth.accounts:
        try:
            apppasswords.read(config.app_passwords)  # and so does a broken app passwords file
        except apppasswords.AppPasswordError as exc:
            raise ConfigError(str(exc)) from None
    return config


if __name__ == "__main__":
    sys.exit(main())
