"""A Starlette application the ASGI tests mount: lifespan state, streaming both ways, a
WebSocket echo, a view that raises, X-Sendfile."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"started": "yes"}
    marker = os.environ.get("ASGI_SHUTDOWN_MARKER")
    if marker:
        await asyncio.to_thread(Path(marker).write_text, "shut down")


async def hello(request: Request) -> Response:
    return PlainTextResponse("Hello from Starlette", headers={"X-App": "starlette"})


async def scope_view(request: Request) -> Response:
    scope = request.scope
    return JSONResponse(
        {
            "path": scope["path"],
            "root_path": scope["root_path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "url": str(request.url),
            "url_for": str(request.url_for("hello")),
            "client": list(scope["client"]),
            "started": request.state.started,
            "method": request.method,
            "header": request.headers.get("x-thing"),
        }
    )


async def echo(request: Request) -> Response:
    digest, size, pieces = hashlib.sha256(), 0, 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
        pieces += 1
    return PlainTextResponse(f"{size} {digest.hexdigest()} {pieces > 1}")


async def stream(request: Request) -> Response:
    n = int(request.query_params.get("n", "3"))
    pause = float(request.query_params.get("pause", "0"))

    async def parts() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"part {i}\n".encode()
            await asyncio.sleep(pause)

    return StreamingResponse(parts(), media_type="text/plain")


async def fail(request: Request) -> Response:
    raise RuntimeError("the view failed")


async def sendfile(request: Request) -> Response:
    """The X-Sendfile* and Content-Range headers (and the status) the query gives."""
    query = request.query_params
    headers = {k: v for k, v in query.items() if k.lower().startswith(SENT_HEADERS)}
    status = int(query.get("status", "200 OK")[:3])
    return PlainTextResponse("never sent", headers=headers, status_code=status)


SENT_HEADERS = ("x-sendfile", "content-range")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=(websocket.scope["subprotocols"] or [None])[0])
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "close":
                await websocket.close(code=4000, reason="asked to")
                return
            if message.get("text") == "raise":
                raise RuntimeError("the socket view failed")
            if message.get("text") is not None:
                await websocket.send_text("echo: " + message["text"])
            else:
                await websocket.send_bytes(message["bytes"][::-1])
    except WebSocketDisconnect:
        return


async def ws_refuse(websocket: WebSocket) -> None:
    await websocket.close()


app = Starlette(
    routes=[
        Route("/", hello, name="hello"),
        Route("/scope/{rest:path}", scope_view, methods=["GET", "POST"]),
        Route("/echo", echo, methods=["POST", "PUT"]),
        Route("/stream", stream),
        Route("/fail", fail),
        Route("/sendfile", sendfile),
        WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/ws-refuse", ws_refuse),
    ],
    lifespan=lifespan,
)
