"""CalDAV query benchmark: davserver vs Radicale 3.9 vs Xandikos 0.4.10 on the same calendar.

Usage: .venv/bin/python bench/caldav.py [--n 10000] [--floating 1000] [--iterations 20]
                                        [--peer-iterations 5]
                                        [--servers davserver,radicale,xandikos]

It loads 10,000 generated events over three years and 1,000 at floating times
(bench/caldav_gen.py; the calendar is made with a calendar-timezone) into each server by
PUT (4 concurrent clients; a peer's upload is cut after --peer-upload-s and the rest copied
into its storage folder, as the team's reference does), checks every query's answer against
recurring-ical-events (bench/caldav_expected.py: 28 windows, and the number of instances of
the expanded week), then times each workload (median of the iterations): the week and the
month query (getetag + calendar-data), the week expanded, a 100-href multiget, a Depth 1
PROPFIND of ETags, a full and a one-change sync-collection, and a PUT of a new event. The
servers run one after the other, each started fresh on a loopback port and stopped by its PID.
It prints the medians, the ratios (the faster peer's median over davserver's) and PASS/FAIL
per floor: every workload 10x faster than the faster peer, bulk upload >= 300 PUT/s, exact
answers. A benchmark, not a test: the exit code is 0 even when a floor fails. The peers go to
bench/.venv-caldav-peers (pip, pinned in bench/requirements-caldav-peers.txt).
"""

from __future__ import annotations

import argparse
import json
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
from caldav_expected import WINDOWS, expected
from caldav_gen import MONTH, WEEK, generate
from caldav_servers import BENCH, Server, ensure_peers

WORKLOADS = (
    ("week", "calendar-query, 1 week"),
    ("expand", "calendar-query, 1 week, expand"),
    ("month", "calendar-query, 1 month"),
    ("multiget", "calendar-multiget, 100 hrefs"),
    ("propfind", "PROPFIND Depth 1, getetag"),
    ("sync_full", "sync-collection, full"),
    ("sync_delta", "sync-collection, 1 change"),
    ("put_new", "PUT of a new event"),
)
FLOOR_RATIO = 10.0
FLOOR_BULK = 300.0
CALENDAR = "perf10k"


class Run:
    """Everything one server is put through, and what came of it."""

    def __init__(self, srv: Server, items: list[tuple[str, bytes]], want: dict, args) -> None:
        self.srv = srv
        self.items = items
        self.want = want
        self.args = args
        self.client = cc.Client(srv.url + srv.base, srv.auth)
        self.calendar = ""
        self.result: dict = {"server": srv.name, "workloads": {}, "errors": []}

    # -- setup -----------------------------------------------------------------------------

    def discover(self) -> None:
        """Principal, calendar home, then a fresh calendar made with MKCALENDAR."""
        c = self.client
        ans = c.request("PROPFIND", self.srv.base, cc.PROPFIND_CUP, Depth="0")
        if ans.status != 207:
            ans = c.request("PROPFIND", "/.well-known/caldav", cc.PROPFIND_CUP, Depth="0")
        found, _ = cc.responses(ans.body)
        principal = found[0][1]["{DAV:}current-user-principal"].findtext("D:href", namespaces=cc.NS)
        ans = c.request("PROPFIND", principal, cc.PROPFIND_HOME, Depth="0")
        found, _ = cc.responses(ans.body)
        home = found[0][1]["{urn:ietf:params:xml:ns:caldav}calendar-home-set"]
        home_path = home.findtext("D:href", namespaces=cc.NS) or ""
        self.calendar = urljoin(
            home_path if home_path.endswith("/") else home_path + "/", CALENDAR + "/"
        )
        c.request("DELETE", self.calendar)
        ans = c.request("MKCALENDAR", self.calendar, cc.MKCALENDAR)
        if ans.status not in (200, 201):
            raise RuntimeError(f"MKCALENDAR {self.calendar}: {ans.status} {ans.body[:200]!r}")

    def storage_folder(self) -> Path:
        """Where the server keeps the benchmark's calendar (for the upload fallback)."""
        tmp, name = self.srv.tmp, self.srv.name
        if name == "radicale":
            return tmp / "radicale" / "collections" / "collection-root" / "test" / CALENDAR
        if name == "xandikos":
            return tmp / "xandikos" / urlsplit(self.calendar).path.strip("/")
        return tmp / "calendars" / "user" / CALENDAR

    def upload(self) -> None:
        """PUT every item (4 clients); a peer's upload stops after --peer-upload-s and the
        rest is placed in its storage folder."""
        limit = self.args.upload_s if self.srv.name == "davserver" else self.args.peer_upload_s
        deadline = time.monotonic() + limit
        done: list[str] = []

        def put(item: tuple[str, bytes]) -> str | None:
            name, data = item
            if time.monotonic() > deadline:
                return None
            ans = self.client.request(
                "PUT", self.calendar + name, data, Content_Type=cc.ICS, If_None_Match="*"
            )
            return name if ans.status in (200, 201, 204) else f"!{ans.status}"

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(put, self.items))
        wall = time.perf_counter() - t0
        done = [o for o in outcomes if o is not None and not o.startswith("!")]
        failed = [o for o in outcomes if o is not None and o.startswith("!")]
        missing = [name for (name, _), o in zip(self.items, outcomes, strict=True) if o is None]
        rate = len(done) / wall if wall else 0.0
        self.result["upload"] = {
            "put_ok": len(done), "failed": len(failed), "seconds": round(wall, 1),
            "rate": round(rate, 1), "copied": len(missing),
        }  # fmt: skip
        if missing:
            self.copy_rest(missing)
        print(
            f"  upload: {len(done)} PUT in {wall:.1f} s = {rate:.1f}/s, {len(failed)} failed, "
            f"{len(missing)} copied into storage",
            flush=True,
        )

    def copy_rest(self, names: list[str]) -> None:
        folder = self.storage_folder()
        data = dict(self.items)
        for name in names:
            (folder / name).write_bytes(data[name])
        if self.srv.git_storage:
            from dulwich import porcelain

            porcelain.add(repo=str(folder), paths=[str(folder / n) for n in names])
            porcelain.commit(
                repo=str(folder), message=b"bench: the rest of the upload",
                author=b"bench <bench@localhost>", committer=b"bench <bench@localhost>",
            )  # fmt: skip

    # -- correctness -----------------------------------------------------------------------

    def correctness(self) -> None:
        """Every window's answer against recurring-ical-events, and the expanded week."""
        wrong = []
        for name, (start, end) in WINDOWS.items():
            ans = self.client.request(
                "REPORT", self.calendar, cc.calendar_query(start, end), Depth="1"
            )
            got = (
                cc.file_names(cc.responses(ans.body)[0], self.calendar) if ans.status == 207 else []
            )
            if ans.status != 207 or got != self.want[name]["files"]:
                wrong.append(name)
        ans = self.client.request(
            "REPORT", self.calendar, cc.calendar_query(*WEEK, expand=True), Depth="1"
        )
        occurrences = 0
        if ans.status == 207:
            for _, props in cc.responses(ans.body)[0]:
                el = props.get(cc.CALENDAR_DATA)
                occurrences += (el.text or "").count("BEGIN:VEVENT") if el is not None else 0
        expand_ok = occurrences == self.want["week"]["occurrences"]
        self.result["correctness"] = {
            "windows": len(WINDOWS), "wrong": wrong, "expand_ok": expand_ok,
            "expand_occurrences": occurrences,
        }  # fmt: skip
        print(
            f"  correctness: {len(WINDOWS) - len(wrong)}/{len(WINDOWS)} windows exact, expanded "
            f"week {occurrences}/{self.want['week']['occurrences']} instances",
            flush=True,
        )

    # -- timed workloads -------------------------------------------------------------------

    def timed(self, name: str, fn: Callable[[int], tuple[float, bool]]) -> None:
        """Run a workload up to its iterations (bounded in time); keep the median."""
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

    def query(self, body: str, expect: int | None) -> Callable[[int], tuple[float, bool]]:
        def run(_i: int) -> tuple[float, bool]:
            ans = self.client.request("REPORT", self.calendar, body, Depth="1")
            found = (
                cc.file_names(cc.responses(ans.body)[0], self.calendar) if ans.status == 207 else []
            )
            return ans.seconds, ans.status == 207 and (expect is None or len(found) == expect)

        return run

    def workloads(self) -> None:
        week, month = self.want["week"]["files"], self.want["month"]["files"]
        self.timed("week", self.query(cc.calendar_query(*WEEK), len(week)))
        self.timed("expand", self.query(cc.calendar_query(*WEEK, expand=True), len(week)))
        self.timed("month", self.query(cc.calendar_query(*MONTH), len(month)))
        names = [n for n, _ in self.items]
        step = max(1, len(names) // 100)
        base = urlsplit(urljoin(self.client.base, self.calendar)).path
        hrefs = [base + quote(n) for n in names[::step][:100]]
        self.timed("multiget", self.query(cc.multiget(hrefs), len(hrefs)))
        total = len(self.items)

        def propfind(_i: int) -> tuple[float, bool]:
            ans = self.client.request("PROPFIND", self.calendar, cc.PROPFIND_ETAG, Depth="1")
            found = cc.file_names(cc.responses(ans.body)[0], self.calendar)
            return ans.seconds, ans.status == 207 and len(found) == total

        self.timed("propfind", propfind)
        token = ""

        def full(_i: int) -> tuple[float, bool]:
            nonlocal token
            ans = self.client.request("REPORT", self.calendar, cc.sync_collection(""), Depth="0")
            found, token_now = cc.responses(ans.body)
            token = token_now or token
            return ans.seconds, len(cc.file_names(found, self.calendar)) == total

        self.timed("sync_full", full)
        data = dict(self.items)

        def delta(i: int) -> tuple[float, bool]:
            nonlocal token
            name = names[(i * 37) % len(names)]
            changed = data[name].replace(b"\r\nSUMMARY:", f"\r\nSUMMARY:[rev{i}] ".encode(), 1)
            self.client.request("PUT", self.calendar + name, changed, Content_Type=cc.ICS)
            ans = self.client.request("REPORT", self.calendar, cc.sync_collection(token), Depth="0")
            found, token_now = cc.responses(ans.body)
            token = token_now or token
            return ans.seconds, cc.file_names(found, self.calendar) == [name]

        self.timed("sync_delta", delta)

        def put_new(i: int) -> tuple[float, bool]:
            uid = f"bench-new-{uuid.uuid4().hex}"
            ans = self.client.request(
                "PUT", self.calendar + uid + ".ics", cc.new_event(uid, i),
                Content_Type=cc.ICS, If_None_Match="*",
            )  # fmt: skip
            return ans.seconds, ans.status in (201, 204)

        self.timed("put_new", put_new)

    def run(self) -> dict:
        """All phases; an error is recorded rather than stopping the benchmark."""
        try:
            self.discover()
            self.upload()
            self.correctness()
            self.workloads()
        except Exception as exc:
            self.result["errors"].append(f"{type(exc).__name__}: {exc}")
            print(f"  ERROR {type(exc).__name__}: {exc}", flush=True)
        finally:
            self.client.close()
        return self.result


# -- the table ----------------------------------------------------------------------------


def table(results: dict[str, dict]) -> str:
    """The medians, the ratio to the faster peer, and the verdicts."""
    names = list(results)
    peers = [n for n in names if n != "davserver"]
    head = f"{'workload':34s}" + "".join(f"{n:>13s}" for n in names) + f"{'ratio':>9s}  verdict"
    lines = [head, "-" * len(head)]
    dav = results.get("davserver", {})
    for key, label in WORKLOADS:
        cells, medians = [], {}
        for n in names:
            w = results[n].get("workloads", {}).get(key)
            medians[n] = w["median_ms"] if w else None
            cells.append(f"{w['median_ms']:10.1f} ms" if w else f"{'-':>13s}")
        best = min((medians[p] for p in peers if medians[p]), default=None)
        ours = medians.get("davserver")
        ratio = best / ours if best and ours else None
        bad = (dav.get("workloads", {}).get(key) or {}).get("bad", 0)
        verdict = "n/a" if ratio is None else "PASS" if ratio >= FLOOR_RATIO and not bad else "FAIL"
        ratio_text = f"{ratio:8.1f}x" if ratio else f"{'-':>9s}"
        lines.append(f"{label:34s}" + "".join(cells) + ratio_text + f"  {verdict}")
    cells = []
    for n in names:
        up = results[n].get("upload")
        cells.append(f"{up['rate']:9.1f} /s " if up else f"{'-':>13s}")
    rate = (dav.get("upload") or {}).get("rate")
    verdict = "n/a" if rate is None else "PASS" if rate >= FLOOR_BULK else "FAIL"
    lines.append(f"{'bulk upload (PUT/s, floor 300)':34s}" + "".join(cells) + f"{'':9s}  {verdict}")
    cells = []
    for n in names:
        corr = results[n].get("correctness")
        if corr:
            good = corr["windows"] - len(corr["wrong"])
            cells.append(f"{good:>5d}/{corr['windows']}{'+x' if corr['expand_ok'] else '-x':>4s} ")
        else:
            cells.append(f"{'-':>13s}")
    corr = dav.get("correctness")
    exact = bool(corr) and not corr["wrong"] and corr["expand_ok"]
    verdict = "n/a" if not corr else "PASS" if exact else "FAIL"
    lines.append(
        f"{'exact answers (windows, +x expand)':34s}" + "".join(cells) + f"{'':9s}  {verdict}"
    )
    return "\n".join(lines)


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10000, help="events to load")
    ap.add_argument("--floating", type=int, default=1000, help="floating events to load too")
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
    items = generate(args.n, args.seed, args.floating)
    print(f"{len(items)} events generated; computing the expected answers", flush=True)
    cache = f"expected-{args.n}-{args.floating}-{args.seed}.json"
    want = expected(items, BENCH / ".cache-caldav" / cache)
    results: dict[str, dict] = {}
    for name in names:
        srv = Server(name, Path(tempfile.mkdtemp(prefix=f"caldavbench-{name}-")))
        print(f"{name}:", flush=True)
        try:
            servers.start(srv)
            if srv.problem:
                print(f"  not measured: {srv.problem}", flush=True)
                results[name] = {"server": name, "errors": [srv.problem]}
                continue
            results[name] = Run(srv, items, want, args).run()
        finally:
            servers.stop(srv)
            shutil.rmtree(srv.tmp, ignore_errors=True)
    text = table(results)
    print("\n" + text, flush=True)
    out = BENCH / "results" / time.strftime("caldav-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    (out / "table.txt").write_text(text + "\n")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
