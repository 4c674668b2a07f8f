"""Drive benchmark: the web file manager's upload protocols against plain PUT.

Usage: .venv/bin/python bench/drive.py [--backend filesystem|git|both] [--files 1000]
                                       [--big-mib 1024]

It starts `python -m davserver serve` (one worker, this interpreter's davserver) in a
fresh temporary folder with one WebDAV mount at / on each backend asked for, on a free
loopback port, and measures over one keep-alive connection:

- ``--files`` files of 4 KiB uploaded one after the other by plain PUT, by the PUT the
  web page sends (its headers: X-Davserver-UI, Origin, Sec-Fetch-Site), and by the
  page's resumable protocol (one PATCH ?upload piece each, what it uses for big files),
  the three taking turns by rounds of 100 files;
- a resumable upload of ``--big-mib`` MiB in 8 MiB pieces, cut in the middle of the
  piece that crosses half of it (the connection closed with half the piece sent), then
  resumed from the offset HEAD reports: the bytes sent in all, against the file's size,
  and the file checked whole afterwards.

It prints a table and writes bench/results/drive-YYYYmmdd-HHMMSS.json. Only loopback
traffic; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
PIECE = 8 << 20
SMALL = 4096
PATCH_TYPE = {"Content-Type": "application/x-sabredav-partialupdate"}


def start(backend: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = (
        f'root = "{tmp / "root"}"'
        if backend == "filesystem"
        else f'backend = "git"\nrepo = "{tmp / "store.git"}"'
    )
    (tmp / "root").mkdir()
    config = tmp / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp / "state"}"\naccess_log = false\nworkers = 1\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\n{store}\n'
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "davserver", "serve", "--config", str(config), "--port", str(port)],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("davserver did not start")


ROUND = 100
"""Files per round: the three ways take turns, so that a busy machine weighs on each alike."""


async def small_files(
    session: aiohttp.ClientSession, base: str, first: int, n: int, how: str
) -> float:
    """Seconds to upload ``n`` files of 4 KiB (numbered from ``first``) the way ``how``
    says."""
    data = os.urandom(SMALL)
    if first == 0:
        await session.request("MKCOL", f"{base}/{how}/")
    page = {"X-Davserver-UI": "1", "Origin": base, "Sec-Fetch-Site": "same-origin"}
    started = time.perf_counter()
    for i in range(first, first + n):
        url = f"{base}/{how}/f{i}.bin"
        if how == "put":
            resp = await session.put(url, data=data)
        elif how == "page-put":
            resp = await session.put(url, data=data, headers=page)
        else:
            resp = await session.patch(
                f"{url}?upload=bench{i:08d}", data=data,
                headers={**page, **PATCH_TYPE, "X-Update-Range": f"bytes=0-{SMALL - 1}",
                         "X-Upload-Length": str(SMALL)},
            )  # fmt: skip
        assert resp.status == 201, (how, resp.status, await resp.text())
        resp.release()
    return time.perf_counter() - started


async def cut_piece(base: str, path: str, data: bytes, offset: int, total: int) -> int:
    """Send half of a piece over a raw connection, then close it; the bytes sent."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {PATCH_TYPE['Content-Type']}\r\nContent-Length: {len(data)}\r\n"
        f"X-Update-Range: bytes={offset}-{offset + len(data) - 1}\r\n"
        f"X-Upload-Length: {total}\r\n\r\n"
    ).encode()
    half = data[: len(data) // 2]
    writer.write(head + half)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader
    return len(half)


async def resumable(
    session: aiohttp.ClientSession, base: str, size: int, tmp: Path
) -> dict[str, object]:
    """A big upload cut at half and resumed: bytes sent in all and seconds taken."""
    source = tmp / "big.bin"
    with source.open("wb") as f:
        for _ in range(size // PIECE):
            f.write(os.urandom(PIECE))
    expected = hashlib.sha1(source.read_bytes()).hexdigest() if size <= (2 << 30) else ""
    path = "/big.bin?upload=bench-resumable-1"
    sent = 0
    cut = False
    started = time.perf_counter()
    offset = 0
    with source.open("rb") as f:
        while offset < size:
            f.seek(offset)
            piece = f.read(PIECE)
            if not cut and offset + len(piece) > size // 2:
                sent += await cut_piece(base, path, piece, offset, size)
                cut = True
                await asyncio.sleep(0.5)  # the server sees the connection go
                head = await session.head(base + path)
                offset = int(head.headers["X-Upload-Offset"])
                continue
            last = offset + len(piece) - 1
            resp = await session.patch(
                base + path, data=piece,
                headers={**PATCH_TYPE, "X-Update-Range": f"bytes={offset}-{last}",
                         "X-Upload-Length": str(size)},
            )  # fmt: skip
            if resp.status == 416:
                offset = int(resp.headers["X-Upload-Offset"])
                continue
            assert resp.status in (201, 202, 204), (resp.status, await resp.text())
            sent += len(piece)
            offset += len(piece)
            resp.release()
    elapsed = time.perf_counter() - started
    got = hashlib.sha1()
    async with session.get(base + "/big.bin") as resp:
        async for chunk in resp.content.iter_chunked(1 << 20):
            got.update(chunk)
    assert not expected or got.hexdigest() == expected, "the stored file differs"
    return {"size": size, "sent": sent, "overhead": sent - size, "seconds": round(elapsed, 1)}


async def run(backend: str, files: int, big: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="davserver-drive-"))
    proc, base = start(backend, tmp)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            result: dict[str, object] = {"backend": backend}
            ways = ("put", "page-put", "page-pieces")
            spent = dict.fromkeys(ways, 0.0)
            for first in range(0, files, ROUND):
                for how in ways:
                    spent[how] += await small_files(
                        session, base, first, min(ROUND, files - first), how
                    )
            for how in ways:
                result[how] = {
                    "seconds": round(spent[how], 2),
                    "files_per_s": round(files / spent[how]),
                }
            result["resumable"] = await resumable(session, base, big, tmp)
        return result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("filesystem", "git", "both"), default="both")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--big-mib", type=int, default=1024)
    args = ap.parse_args()
    backends = ("filesystem", "git") if args.backend == "both" else (args.backend,)
    results = [asyncio.run(run(b, args.files, args.big_mib << 20)) for b in backends]
    print(
        f"{'backend':<11} {'PUT':>12} {'page PUT':>12} {'page pieces':>12}"
        "   resumable (cut at 50 %)"
    )
    for r in results:
        cells = [f"{r[k]['files_per_s']:>7} f/s" for k in ("put", "page-put", "page-pieces")]  # type: ignore[index]
        big = r["resumable"]
        print(
            f"{r['backend']:<11} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12}   "
            f"{big['sent'] / (1 << 20):,.0f} MiB sent for {big['size'] / (1 << 20):,.0f} MiB "  # type: ignore[index]
            f"(+{big['overhead'] / (1 << 20):.1f} MiB), {big['seconds']} s"  # type: ignore[index]
        )
    out = BENCH / "results" / time.strftime("drive-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
