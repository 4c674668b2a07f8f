"""The web file manager in a real browser: Debian's chromium, driven through
chromedriver by selenium, against a server process on each backend. It uploads files
(one big enough to go in resumable pieces, resumed from where an earlier attempt
stopped), creates a folder, renames and deletes, downloads a ZIP, and on git restores a
version; each step is checked on disk or in git. Screenshots go to the test's temporary
folder. scripts/test installs chromium; without it the tests fail saying so."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from gitrepo import files, messages
from helpers import ServerProcess

BROWSER = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
BACKENDS = {
    "filesystem": 'root = "data"',
    "git": 'backend = "git"\nrepo = "store.git"',
}
PIECE = 8 << 20


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    assert os.path.exists(BROWSER) and os.path.exists(DRIVER), (
        "chromium and chromium-driver are not installed (scripts/test installs them)"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # the page is reloading
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def names(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.entry")]  # type: ignore[attr-defined]


def stored(tmp_path: Path, backend: str) -> dict[str, bytes]:
    if backend == "filesystem":
        root = tmp_path / "data"
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".dav" not in str(p)
        }
    return {k: v for k, v in files(tmp_path / "store.git").items() if ".dav" not in k}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_file_manager_in_chromium(
    tmp_path: Path, server_process: Callable[..., ServerProcess], browser: object, backend: str
) -> None:
    from selenium.webdriver.common.by import By

    driver: object = browser
    d: object = driver
    shots = tmp_path / "screenshots"
    shots.mkdir()
    (tmp_path / "dav.toml").write_text(
        f'[server]\nstate_dir = "state"\nworkers = 1\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\n{BACKENDS[backend]}\n'
    )
    server = server_process("--config", "dav.toml")
    base = server.url + "/"
    upload = tmp_path / "to-upload"
    upload.mkdir()
    small = upload / "notes.txt"
    small.write_bytes(b"first version\n")
    big = upload / "big.bin"
    big.write_bytes(os.urandom(2 * PIECE + 12345))

    # A resumable upload that was cut after its first piece: the page goes on from there.
    os.utime(big, (1_700_000_000, 1_700_000_000))
    upload_id = "0123456789abcdef0123456789abcdef"
    first = requests.patch(
        base + "big.bin?upload=" + upload_id,
        data=big.read_bytes()[:PIECE],
        headers={"Content-Type": "application/x-sabredav-partialupdate",
                 "X-Update-Range": f"bytes=0-{PIECE - 1}",
                 "X-Upload-Length": str(big.stat().st_size)},
        timeout=60,
    )  # fmt: skip
    assert first.status_code == 202
    d.get(base)  # type: ignore[attr-defined]
    d.execute_script(  # type: ignore[attr-defined]
        "localStorage.setItem(arguments[0], arguments[1])",
        f"davserver-upload /big.bin {big.stat().st_size} 1700000000000",
        upload_id,
    )
    d.save_screenshot(str(shots / "1-empty.png"))  # type: ignore[attr-defined]

    picker = d.find_element(By.ID, "pick-files")  # type: ignore[attr-defined]
    d.execute_script("arguments[0].style.display = 'block'", picker)  # type: ignore[attr-defined]
    picker.send_keys(f"{small}\n{big}")
    wait_for(lambda: set(names(d)) == {"big.bin", "notes.txt"}, "the uploads to show")
    d.save_screenshot(str(shots / "2-uploaded.png"))  # type: ignore[attr-defined]
    assert stored(tmp_path, backend) == {
        "notes.txt": small.read_bytes(),
        "big.bin": big.read_bytes(),
    }
    patches = [line for line in server.log().splitlines() if "PATCH /big.bin?upload=" in line]
    assert len(patches) == 1 + 2  # the cut attempt's piece, then only the two left

    # A new folder.
    d.find_element(By.ID, "new-folder").click()  # type: ignore[attr-defined]
    prompt = d.switch_to.alert  # type: ignore[attr-defined]
    prompt.send_keys("reports")
    prompt.accept()
    wait_for(lambda: "reports/" in names(d), "the new folder")
    if backend == "filesystem":
        assert (tmp_path / "data" / "reports").is_dir()
    else:
        assert messages(tmp_path / "store.git")[-1] == "MKCOL /reports"

    # Rename (move into the folder).
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-name="notes.txt"]')  # type: ignore[attr-defined]
    row.find_element(By.CSS_SELECTOR, "button.rename").click()
    prompt = d.switch_to.alert  # type: ignore[attr-defined]
    prompt.send_keys("reports/renamed.txt")
    prompt.accept()
    wait_for(lambda: "notes.txt" not in names(d), "the rename")
    assert stored(tmp_path, backend)["reports/renamed.txt"] == small.read_bytes()

    # Delete, after confirming.
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-name="big.bin"]')  # type: ignore[attr-defined]
    row.find_element(By.CSS_SELECTOR, "button.delete").click()
    d.switch_to.alert.accept()  # type: ignore[attr-defined]
    wait_for(lambda: "big.bin" not in names(d), "the delete")
    assert "big.bin" not in stored(tmp_path, backend)
    d.save_screenshot(str(shots / "3-changed.png"))  # type: ignore[attr-defined]

    # Download the folder as a ZIP.
    d.find_element(By.CSS_SELECTOR, 'a.entry[href="/reports/"]').click()  # type: ignore[attr-defined]
    wait_for(lambda: "renamed.txt" in names(d), "the folder's page")
    d.find_element(By.CSS_SELECTOR, "a.zip").click()  # type: ignore[attr-defined]
    archive = tmp_path / "downloads" / "reports.zip"
    wait_for(archive.exists, "the ZIP download")
    wait_for(lambda: zipfile.is_zipfile(archive), "the ZIP to be complete")
    assert zipfile.ZipFile(archive).read("renamed.txt") == small.read_bytes()

    if backend == "git":
        # A second version, then restore the first from the history page.
        assert requests.put(base + "reports/renamed.txt", data=b"second\n", timeout=30).ok
        d.get(base + "reports/renamed.txt?history")  # type: ignore[attr-defined]
        d.save_screenshot(str(shots / "4-history.png"))  # type: ignore[attr-defined]
        d.find_element(By.CSS_SELECTOR, "button[data-restore]").click()  # type: ignore[attr-defined]
        d.switch_to.alert.accept()  # type: ignore[attr-defined]
        repo = tmp_path / "store.git"
        wait_for(lambda: messages(repo)[-1].startswith("RESTORE /reports/renamed.txt"), "restore")
        assert files(repo)["reports/renamed.txt"] == small.read_bytes()
    assert shutil.disk_usage(shots).used and len(list(shots.iterdir())) >= 3
