"""Bare aiohttp app: the ceiling of davserver's HTTP stack for the GET workload.

Answers GET (and HEAD) on any path with the same 4096 bytes from memory: no filesystem, no
WebDAV logic, no middleware, no access log, one process on the default asyncio event loop.

Usage: python bare_aiohttp.py --port PORT [--host 127.0.0.1]
"""

import argparse

from aiohttp import web

BODY_4K = b"x" * 4096


async def get(request: web.Request) -> web.Response:
    """Return the fixed 4 KiB body."""
    return web.Response(body=BODY_4K, content_type="application/octet-stream")


def main() -> None:
    """Parse the command line and serve until killed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", get)  # also answers HEAD
    print(f"serving on http://{args.host}:{args.port}/", flush=True)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
