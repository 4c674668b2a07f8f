"""``davserver serve``: run the server from a config file or the embedded default;
``davserver user``: manage accounts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from .accesslog import MountAccessLogger
from .app import ROUTER_KEY, create_app
from .auth import htpasswd, users_cli
from .config import Config, ConfigError, embedded_default, load, override

log = logging.getLogger("davserver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="davserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--host", help="address to listen on (overrides the config)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides the config)")
    serve.add_argument(
        "--root", type=Path, help="folder to serve (overrides the first filesystem WebDAV mount)"
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    users_cli.add_parser(sub)
    return parser


async def serve(config: Config) -> None:
    """Listen until SIGINT or SIGTERM, then let in-flight requests finish."""
    app = create_app(config)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("davserver.access") if config.server.access_log else None,
        access_log_class=MountAccessLogger,
        shutdown_timeout=config.server.shutdown_timeout,
        handle_signals=False,
    )
    await runner.setup()
    # Everything made so far (modules, the app, the mounts) lives as long as the process:
    # out of the collector's sight, full collections stop walking it again and again
    # (a PROPFIND Depth 1 makes thousands of objects; ~10 % of its time went there).
    gc.freeze()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_address=True)
    await site.start()
    for host, port in (a[:2] for a in runner.addresses):
        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        for m in config.mounts:
            print(
                f"davserver: {m.type} of {m.app or m.root or m.repo} at {base}{m.prefix}/",
                flush=True,
            )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("davserver: stopping", flush=True)
    # aiohttp's own shutdown stops reading request bodies at once; stop listening first and
    # let the requests under way (uploads too) finish, for shutdown_timeout at most.
    for running_site in list(runner.sites):
        await running_site.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[ROUTER_KEY].wait_idle(), config.server.shutdown_timeout)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """The command line entry point."""
    args = _parser().parse_args(argv)
    if args.command == "user":
        return users_cli.run(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load(args.config) if args.config else embedded_default(Path.cwd())
        config = override(config, host=args.host, port=args.port, root=args.root)
        if config.auth.htpasswd is not None:
            htpasswd.read(config.auth.htpasswd)  # a broken accounts file stops us here
        asyncio.run(serve(config))
    except (ConfigError, htpasswd.HtpasswdError) as exc:
        print(f"davserver: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"davserver: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
