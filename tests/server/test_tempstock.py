"""Files made ahead of the filesystem backend's writes by the helper process
(runtime/tempstock.py, runtime/closer.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.temps import STOCK_DIR
from helpers import fill_stock, made_ahead

from davserver.dav.deadprops import PROPS_CODEC
from davserver.runtime import closer, tempstock


@pytest.fixture
def stock(tmp_path: Path) -> str:
    folder = tmp_path / STOCK_DIR
    folder.mkdir()
    return str(folder)


def test_without_a_helper_there_is_none(stock: str, tmp_path: Path) -> None:
    assert not tempstock.active()
    assert tempstock.place(stock, str(tmp_path / "t")) is None
    assert not (tmp_path / "t").exists()


def test_a_file_made_ahead_is_linked_where_the_write_wants_it(
    helper: int, stock: str, tmp_path: Path
) -> None:
    """The first take asks and finds none (the caller creates its own file); a batch
    then arrives, and each take links one at the name it is given."""
    assert tempstock.active()
    name = tmp_path / "t"
    assert tempstock.place(stock, str(name)) is None
    assert not name.exists()
    fill_stock(stock)
    held = made_ahead(stock)
    assert len(held) >= tempstock.BATCH - 1  # a batch, perhaps two (both asked for)
    fd = tempstock.place(stock, str(name))
    assert fd is not None
    try:
        os.write(fd, b"body")
        assert name.read_bytes() == b"body"
        assert os.stat(name).st_ino in held
        assert os.stat(name).st_mode & 0o777 == 0o666 & ~_umask()
        assert os.listdir(stock) == []  # the stock folder holds no names
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_link_keeps_the_file_for_the_next_write(
    helper: int, stock: str, tmp_path: Path
) -> None:
    fill_stock(stock)
    held = made_ahead(stock)
    assert tempstock.place(stock, str(tmp_path / "missing" / "t")) is None
    assert not (tmp_path / "missing").exists()
    assert made_ahead(stock) >= held  # (more may have come meanwhile)
    (tmp_path / "t").write_bytes(b"")
    assert tempstock.place(stock, str(tmp_path / "t")) is None  # a name that is taken
    assert (tmp_path / "t").read_bytes() == b""
    assert made_ahead(stock) >= held


def test_the_stock_is_topped_up(helper: int, stock: str, tmp_path: Path) -> None:
    fill_stock(stock)
    deadline = time.monotonic() + 10
    taken = 0
    while taken < 3 * tempstock.BATCH:
        fd = tempstock.place(stock, str(tmp_path / f"t{taken}"))
        if fd is None:
            assert time.monotonic() < deadline, "not topped up"
            time.sleep(0.01)
            continue
        os.close(fd)
        taken += 1
    assert len(os.listdir(tmp_path)) == 3 * tempstock.BATCH + 1  # and the stock folder


def test_a_helper_that_stopped_costs_no_wait(helper: int, stock: str, tmp_path: Path) -> None:
    os.kill(helper, signal.SIGSTOP)
    started = time.monotonic()
    for n in range(100):
        assert tempstock.place(stock, str(tmp_path / f"t{n}")) is None
    assert time.monotonic() - started < 5
    assert sorted(os.listdir(tmp_path)) == [STOCK_DIR]


def test_a_folder_without_unnamed_files_gets_none_again(
    helper: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stock folder the helper cannot make files in (here: none there) is told once;
    the server asks no more for it."""
    missing = str(tmp_path / "no-such-folder")
    with caplog.at_level(logging.WARNING, "davserver.runtime.tempstock"):
        deadline = time.monotonic() + 10
        while "no files made ahead in" not in caplog.text:
            assert time.monotonic() < deadline
            assert tempstock.place(missing, str(tmp_path / "t")) is None
            time.sleep(0.01)
    assert "No such file or directory" in caplog.text
    assert tempstock.place(missing, str(tmp_path / "t")) is None
    assert not (tmp_path / "t").exists()


def test_stopping_the_helper_closes_what_is_made_ahead(stock: str, tmp_path: Path) -> None:
    closer.start(0)  # not pinned: the CPU named changes nothing
    try:
        fill_stock(stock)
        assert made_ahead(stock)
    finally:
        closer.stop()
    assert made_ahead(stock) == set()
    assert not tempstock.active()
    assert tempstock.place(stock, str(tmp_path / "t")) is None


def test_a_helper_whose_batch_was_never_read_ends_quietly(
    stock: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The server stops with a batch it asked for still unread on its end of the socket
    (the helper then reads ECONNRESET, not the end): the helper ends all the same, with
    status 0 and nothing on the server's stderr."""
    closer.start(0)  # not pinned: the CPU named changes nothing
    process = closer._helper
    assert process is not None
    try:
        assert tempstock.place(stock, str(tmp_path / "t")) is None  # asks for a batch
        channel = closer._to_helper
        assert channel is not None
        deadline = time.monotonic() + 10
        while True:  # until the batch waits on the server's end (peeked at, not read)
            with contextlib.suppress(BlockingIOError):
                if channel.recv(1, socket.MSG_PEEK) == tempstock._MADE:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        closer.stop()
    assert process.returncode == 0
    assert "Traceback" not in capfd.readouterr().err
    assert sorted(os.listdir(tmp_path)) == [STOCK_DIR]


async def test_the_filesystem_backend_writes_into_files_made_ahead(tmp_path: Path) -> None:
    """A write of the filesystem backend takes a file made ahead for its temporary file:
    the stored file is one the process held unnamed in the root's stock folder, and the
    root's listing shows neither."""
    await asyncio.to_thread(closer.start, 0)
    storage = FilesystemStorage(tmp_path / "root", PROPS_CODEC)
    try:
        await storage.open()
        assert storage.stock == str(tmp_path / "root" / STOCK_DIR)
        await asyncio.to_thread(fill_stock, storage.stock)
        held = await asyncio.to_thread(made_ahead, storage.stock)
        async with storage.change(author="test <t@example.org>", message="w") as change:
            await change.write("a.txt", b"new")
        assert os.stat(tmp_path / "root" / "a.txt").st_ino in held
        assert (tmp_path / "root" / "a.txt").read_bytes() == b"new"
        names = [r.name async for batch in storage.children("") for r in batch]
        assert names == ["a.txt"]
        assert sorted(os.listdir(tmp_path / "root")) == [STOCK_DIR, "a.txt"]
        assert os.listdir(tmp_path / "root" / STOCK_DIR) == []
    finally:
        await storage.close()
        await asyncio.to_thread(closer.stop)


async def test_without_a_helper_the_backend_keeps_no_stock_folder(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "root", PROPS_CODEC)
    await storage.open()
    try:
        assert storage.stock is None
        async with storage.change(author="test <t@example.org>", message="w") as change:
            await change.write("a.txt", b"new")
        assert sorted(os.listdir(tmp_path / "root")) == ["a.txt"]
    finally:
        await storage.close()
