"""CardDAV benchmark: davserver vs Radicale 3.9 vs Xandikos 0.4.10 on the same address book.

Usage: .venv/bin/python bench/carddav.py [--n 10000] [--iterations 20] [--peer-iterations 5]
                                         [--servers davserver,radicale,xandikos]

It generates 10,000 contacts (vCard 3.0 as iOS writes them: names, one to three emails and
numbers, an organisation, a few with photos; deterministic), uploads them into a fresh
address book of each server by PUT (4 concurrent clients; a peer's upload is cut after
--peer-upload-s and the rest copied into its storage folder, as bench/caldav.py does),
then times each workload (median of the iterations): a 100-href addressbook-multiget, a
Depth 1 PROPFIND of the ETags, a full and a one-change sync-collection, an
addressbook-query by email (one exact address) and by name substring (FN contains), and a
PUT of a new contact. Each query's answer is checked against the generated contacts. The
servers run one after the other, each started fresh on a loopback port and stopped by its
PID; each one's peak memory (VmHWM of its process) is read before it stops. It prints the
medians, the ratios (the faster peer's median over davserver's) and PASS/FAIL per floor:
every workload 10x faster than the faster peer, bulk upload >= 300 PUT/s. A benchmark, not
a test: the exit code is 0 even when a floor fails. The peers are bench/caldav.py's
(bench/.venv-caldav-peers, pinned in bench/requirements-caldav-peers.txt).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from urllib.parse import quote, urljoin, urlsplit

import caldav_client as cc
import caldav_servers as servers
from caldav_servers import BENCH, Server, ensure_peers

WORKLOADS = (
    ("multiget", "addressbook-multiget, 100 hrefs"),
    ("propfind", "PROPFIND Depth 1, getetag"),
    ("sync_full", "sync-collection, full"),
    ("sync_delta", "sync-collection, 1 change"),
    ("by_email", "addressbook-query, by email"),
    ("by_name", "addressbook-query, name substring"),
    ("put_new", "PUT of a new contact"),
)
FLOOR_RATIO = 10.0
FLOOR_BULK = 300.0
BOOK = "bench10k"
VCF = "text/vcard; charset=utf-8"
CR = "urn:ietf:params:xml:ns:carddav"
NS = f'xmlns:D="DAV:" xmlns:CR="{CR}"'
MKCOL = (
    f"{cc.HEAD}<D:mkcol {NS}><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/>"
    "</D:resourcetype><D:displayname>bench 10k</D:displayname></D:prop></D:set></D:mkcol>"
)
PROPFIND_HOME = (
    f"{cc.HEAD}<D:propfind {NS}><D:prop><CR:addressbook-home-set/></D:prop></D:propfind>"
)
FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas",
         "Karla", "Luca", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Tara",
         "Uwe", "Vera", "Wim", "Xenia", "Yann", "Zoë"]  # fmt: skip
LAST = ["Müller", "Schmidt", "Meyer", "Weber", "Wagner", "Becker", "Hoffmann", "Koch",
        "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Hofmann", "Lange",
        "Smith", "Jones", "García", "Rossi", "Dubois", "Kowalski", "Novak", "Jensen"]  # fmt: skip
ORGS = ["Example GmbH", "ACME Inc.", "Globex", "Initech", "Umbrella", "Stark", "Wayne"]
PHOTO = "/9j/4AAQSkZJRgABAQAASABIAAD/4QBMRXhpZgAATU0AKgAAAAgAAYdpAAQAAAABAAAAGgAAAAAAA6AB" * 6


def generate(n: int, seed: int) -> list[tuple[str, bytes, str, str]]:
    """(file name, vCard, first email, FN) of ``n`` contacts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        fn = f"{first} {last} {i:05d}"
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        lines = ["BEGIN:VCARD", "VERSION:3.0", "PRODID:-//Apple Inc.//iPhone OS 17.4//EN",
                 f"N:{last};{first};;;", f"FN:{fn}"]  # fmt: skip
        emails = [f"{first.lower()}.{i:05d}@{rng.choice(['example.com', 'example.org'])}"]
        emails += [f"{last.lower()}{i}@mail{j}.test" for j in range(rng.randint(0, 2))]
        for j, email in enumerate(emails):
            lines.append(f"item{j + 1}.EMAIL;type=INTERNET{';type=pref' if not j else ''}:{email}")
        for j in range(rng.randint(1, 3)):
            kind = rng.choice(["CELL", "HOME", "WORK"])
            lines.append(f"TEL;type={kind};type=VOICE:+49 {rng.randint(100, 999)} {i:05d}{j}")
        if rng.random() < 0.5:
            lines.append(f"ORG:{rng.choice(ORGS)};")
        if rng.random() < 0.05:
            lines.append(f"PHOTO;ENCODING=b;TYPE=JPEG:{PHOTO}")
        lines += [f"UID:{uid}", "END:VCARD"]
        text = "\r\n".join(_fold(line) for line in lines) + "\r\n"
        out.append((f"{uid}.vcf", text.encode(), emails[0], fn))
    return out


def _fold(line: str) -> str:
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, rest = [], line
    while len(rest.encode()) > 74:
        cut = 74
        while len(rest[:cut].encode()) > 74:
            cut -= 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    return "\r\n ".join([*parts, rest])


def query(prop: str, text: str, match: str) -> str:
    """An addressbook-query of one text-match, asking for getetag and address-data."""
    return (
        f"{cc.HEAD}<CR:addressbook-query {NS}><D:prop><D:getetag/><CR:address-data/></D:prop>"
        f'<CR:filter><CR:prop-filter name="{prop}"><CR:text-match collation="i;unicode-casemap" '
        f'match-type="{match}">{text}</CR:text-match></CR:prop-filter></CR:filter>'
        "</CR:addressbook-query>"
    )


def multiget(hrefs: list[str]) -> str:
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        f"{cc.HEAD}<CR:addressbook-multiget {NS}><D:prop><D:getetag/><CR:address-data/>"
        f"</D:prop>{links}</CR:addressbook-multiget>"
    )


def peak_memory(srv: Server) -> float | None:
    """The server process's peak resident memory in MiB (VmHWM)."""
    if srv.proc is None:
        return None
    try:
        for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Run:
    """Everything one server is put through, and what came of it."""

    def __init__(self, srv: Server, items: list[tuple[str, bytes, str, str]], args) -> None:
        self.srv = srv
        self.items = items
        self.args = args
        self.client = cc.Client(srv.url + srv.base, srv.auth)
        self.book = ""
        self.result: dict = {"server": srv.name, "workloads": {}, "errors": []}

    def discover(self) -> None:
        """Principal, address-book home, then a fresh address book (extended MKCOL)."""
        c = self.client
        ans = c.request("PROPFIND", self.srv.base, cc.PROPFIND_CUP, Depth="0")
        if ans.status != 207:
            ans = c.request("PROPFIND", "/.well-known/carddav", cc.PROPFIND_CUP, Depth="0")
        found, _ = cc.responses(ans.body)
        principal = found[0][1]["{DAV:}current-user-principal"].findtext("D:href", namespaces=cc.NS)
        ans = c.request("PROPFIND", principal, PROPFIND_HOME, Depth="0")
        found, _ = cc.responses(ans.body)
        home = found[0][1][f"{{{CR}}}addressbook-home-set"].findtext("D:href", namespaces=cc.NS)
        home = home or ""
        self.book = urljoin(home if home.endswith("/") else home + "/", BOOK + "/")
        c.request("DELETE", self.book)
        ans = c.request("MKCOL", self.book, MKCOL)
        if ans.status not in (200, 201):
            raise RuntimeError(f"MKCOL {self.book}: {ans.status} {ans.body[:200]!r}")

    def storage_folder(self) -> Path:
        tmp, name = self.srv.tmp, self.srv.name
        if name == "radicale":
            return tmp / "radicale" / "collections" / "collection-root" / "test" / BOOK
        if name == "xandikos":
            return tmp / "xandikos" / urlsplit(self.book).path.strip("/")
        return tmp / "calendars" / ".addressbooks" / "user" / BOOK

    def upload(self) -> None:
        limit = self.args.upload_s if self.srv.name == "davserver" else self.args.peer_upload_s
        deadline = time.monotonic() + limit

        def put(item: tuple[str, bytes, str, str]) -> str | None:
            name, data = item[0], item[1]
            if time.monotonic() > deadline:
                return None
            ans = self.client.request(
                "PUT", self.book + name, data, Content_Type=VCF, If_None_Match="*"
            )
            return name if ans.status in (200, 201, 204) else f"!{ans.status}"

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(put, self.items))
        wall = time.perf_counter() - t0
        done = [o for o in outcomes if o is not None and not o.startswith("!")]
        failed = [o for o in outcomes if o is not None and o.startswith("!")]
        missing = [item for item, o in zip(self.items, outcomes, strict=True) if o is None]
        rate = len(done) / wall if wall else 0.0
        self.result["upload"] = {
            "put_ok": len(done), "failed": len(failed), "seconds": round(wall, 1),
            "rate": round(rate, 1), "copied": len(missing),
        }  # fmt: skip
        if missing:
            self.copy_rest(missing)
        print(f"  upload: {len(done)} PUT in {wall:.1f} s = {rate:.1f}/s, {len(failed)} failed, "
              f"{len(missing)} copied into storage", flush=True)  # fmt: skip

    def copy_rest(self, missing: list[tuple[str, bytes, str, str]]) -> None:
        folder = self.storage_folder()
        for name, data, _, _ in missing:
            (folder / name).write_bytes(data)
        if self.srv.git_storage:
            from dulwich import porcelain

            porcelain.add(repo=str(folder), paths=[str(folder / m[0]) for m in missing])
            porcelain.commit(
                repo=str(folder), message=b"bench: the rest of the upload",
                author=b"bench <bench@localhost>", committer=b"bench <bench@localhost>",
            )  # fmt: skip

    def timed(self, name: str, fn: Callable[[int], tuple[float, bool]]) -> None:
        n = self.args.iterations if self.srv.name == "davserver" else self.args.peer_iterations
        deadline = time.monotonic() + self.args.max_workload_s
        times, bad = [], 0
        for i in range(n):
            if i and time.monotonic() > deadline:
                break
            seconds, ok = fn(i)
            times.append(seconds)
            bad += not ok
        median = statistics.median(times)
        self.result["workloads"][name] = {
            "median_ms": round(median * 1000, 2), "first_ms": round(times[0] * 1000, 2),
            "n": len(times), "bad": bad,
        }  # fmt: skip
        print(f"  {name:10s} median {median * 1000:9.2f} ms  n={len(times)} bad={bad}", flush=True)

    def report(self, body: str, expect: list[str]) -> Callable[[int], tuple[float, bool]]:
        def run(_i: int) -> tuple[float, bool]:
            ans = self.client.request("REPORT", self.book, body, Depth="1")
            ok = ans.status == 207
            found = cc.file_names(cc.responses(ans.body)[0], self.book) if ok else []
            return ans.seconds, ok and found == expect

        return run

    def workloads(self) -> None:
        names = [item[0] for item in self.items]
        step = max(1, len(names) // 100)
        base = urlsplit(urljoin(self.client.base, self.book)).path
        picked = names[::step][:100]
        self.timed(
            "multiget", self.report(multiget([base + quote(n) for n in picked]), sorted(picked))
        )
        total = len(self.items)

        def propfind(_i: int) -> tuple[float, bool]:
            ans = self.client.request("PROPFIND", self.book, cc.PROPFIND_ETAG, Depth="1")
            return ans.seconds, len(cc.file_names(cc.responses(ans.body)[0], self.book)) == total

        self.timed("propfind", propfind)
        token = ""

        def full(_i: int) -> tuple[float, bool]:
            nonlocal token
            ans = self.client.request("REPORT", self.book, cc.sync_collection(""), Depth="0")
            found, token_now = cc.responses(ans.body)
            token = token_now or token
            return ans.seconds, len(cc.file_names(found, self.book)) == total

        self.timed("sync_full", full)
        data = {item[0]: item[1] for item in self.items}

        def delta(i: int) -> tuple[float, bool]:
            nonlocal token
            name = names[(i * 37) % len(names)]
            changed = data[name].replace(b"\r\nFN:", f"\r\nNOTE:rev {i}\r\nFN:".encode(), 1)
            self.client.request("PUT", self.book + name, changed, Content_Type=VCF)
            ans = self.client.request("REPORT", self.book, cc.sync_collection(token), Depth="0")
            found, token_now = cc.responses(ans.body)
            token = token_now or token
            return ans.seconds, cc.file_names(found, self.book) == [name]

        self.timed("sync_delta", delta)
        _, _, email, _ = self.items[len(self.items) // 3]
        want = sorted(item[0] for item in self.items if item[2] == email)
        self.timed("by_email", self.report(query("EMAIL", email, "equals"), want))
        needle = "zoë müller"
        want = sorted(item[0] for item in self.items if needle in item[3].casefold())
        self.timed("by_name", self.report(query("FN", needle, "contains"), want))

        def put_new(i: int) -> tuple[float, bool]:
            uid = f"bench-new-{uuid.uuid4().hex}"
            card = (
                f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:New;Person {i};;;\r\nFN:New Person {i}\r\n"
                f"EMAIL;type=INTERNET:new{i}@example.net\r\nUID:{uid}\r\nEND:VCARD\r\n"
            )
            ans = self.client.request("PUT", self.book + uid + ".vcf", card.encode(),
                                      Content_Type=VCF, If_None_Match="*")  # fmt: skip
            return ans.seconds, ans.status in (201, 204)

        self.timed("put_new", put_new)

    def run(self) -> dict:
        try:
            self.discover()
            self.upload()
            self.workloads()
        except Exception as exc:
            self.result["errors"].append(f"{type(exc).__name__}: {exc}")
            print(f"  ERROR {type(exc).__name__}: {exc}", flush=True)
        finally:
            self.client.close()
            self.result["peak_mib"] = peak_memory(self.srv)
        return self.result


def table(results: dict[str, dict]) -> str:
    """The medians, the ratio to the faster peer, the verdicts, and peak memory."""
    names = list(results)
    peers = [n for n in names if n != "davserver"]
    head = f"{'workload':36s}" + "".join(f"{n:>13s}" for n in names) + f"{'ratio':>9s}  verdict"
    lines = [head, "-" * len(head)]
    dav = results.get("davserver", {})
    for key, label in WORKLOADS:
        cells, medians = [], {}
        for n in names:
            w = results[n].get("workloads", {}).get(key)
            medians[n] = w["median_ms"] if w else None
            wrong = "!" if w and w["bad"] else " "
            cells.append(f"{w['median_ms']:9.1f} ms{wrong}" if w else f"{'-':>13s}")
        best = min((medians[p] for p in peers if medians[p]), default=None)
        ours = medians.get("davserver")
        ratio = best / ours if best and ours else None
        bad = (dav.get("workloads", {}).get(key) or {}).get("bad", 0)
        verdict = "n/a" if ratio is None else "PASS" if ratio >= FLOOR_RATIO and not bad else "FAIL"
        ratio_text = f"{ratio:8.1f}x" if ratio else f"{'-':>9s}"
        lines.append(f"{label:36s}" + "".join(cells) + ratio_text + f"  {verdict}")
    cells = []
    for n in names:
        up = results[n].get("upload")
        cells.append(f"{up['rate']:9.1f} /s " if up else f"{'-':>13s}")
    rate = (dav.get("upload") or {}).get("rate")
    verdict = "n/a" if rate is None else "PASS" if rate >= FLOOR_BULK else "FAIL"
    lines.append(f"{'bulk upload (PUT/s, floor 300)':36s}" + "".join(cells) + f"{'':9s}  {verdict}")
    cells = [
        f"{results[n]['peak_mib']:9.1f} MiB" if results[n].get("peak_mib") else f"{'-':>13s}"
        for n in names
    ]
    lines.append(f"{'peak memory (VmHWM)':36s}" + "".join(cells))
    lines.append("(! after a median: some answers were wrong)")
    return "\n".join(lines)


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10000, help="contacts to load")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--iterations", type=int, default=20, help="per workload, davserver")
    ap.add_argument("--peer-iterations", type=int, default=5, help="per workload, peers")
    ap.add_argument("--max-workload-s", type=float, default=90, help="time cap per workload")
    ap.add_argument("--upload-s", type=float, default=600, help="davserver's upload cap")
    ap.add_argument("--peer-upload-s", type=float, default=60, help="a peer's upload cap")
    ap.add_argument("--servers", default="davserver,radicale,xandikos")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(n != "davserver" for n in names):
        ensure_peers()
    items = generate(args.n, args.seed)
    print(f"{len(items)} contacts generated", flush=True)
    results: dict[str, dict] = {}
    for name in names:
        srv = Server(name, Path(tempfile.mkdtemp(prefix=f"carddavbench-{name}-")))
        print(f"{name}:", flush=True)
        try:
            servers.start(srv)
            if srv.problem:
                print(f"  not measured: {srv.problem}", flush=True)
                results[name] = {"server": name, "errors": [srv.problem]}
                continue
            results[name] = Run(srv, items, args).run()
        finally:
            servers.stop(srv)
            shutil.rmtree(srv.tmp, ignore_errors=True)
    text = table(results)
    print("\n" + text, flush=True)
    out = BENCH / "results" / time.strftime("carddav-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    (out / "table.txt").write_text(text + "\n")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
