"""A lecture hall's load on the dashboard: N real sessions over Streamlit's websocket protocol.

Starts the dashboard on a free loopback port, opens N sessions the way a browser does (the
`_stcore/stream` websocket, protobuf BackMsg / ForwardMsg), lets each load a page and then move the
batch input at random intervals (exponential, mean T seconds; T = 0: back to back), and reports the
time of each rerun (send to `script_finished`), errors, and the server's memory before, at the peak
and after the sessions close. Bounded in sessions, reruns and time; it talks to 127.0.0.1 only.

    python benchmarks/load.py --sessions 50 --think 3 --duration 60
    python benchmarks/load.py --sessions 200 --think 3 --duration 60 --workers 2   # the class server

With --workers N it starts the class server instead (deploy/class_server.py: N dashboard processes behind
nginx with sticky sessions): each session first loads the page over HTTP, as a browser does, and opens its
websocket with the route cookie nginx set; memory and CPU are then the sums over every process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))
from class_server import ClassServer, healthy  # noqa: E402 (deploy/ is a folder of scripts, not a package)

HOST = "127.0.0.1"  # loopback only
MAX_SESSIONS, MAX_RERUNS, MAX_SECONDS = 200, 500, 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(pid: int) -> list[int]:
    """A process and its descendants (nginx's master and its worker, say)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += processes(int(child))
    return found


def total(measure, pids: list[int]) -> float:
    return sum(measure(p) for pid in pids for p in processes(pid))


def rerun(page: str, widgets: list[WidgetState]) -> bytes:
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    msg.rerun_script.page_name = page
    msg.rerun_script.widget_states.widgets.extend(widgets)
    return msg.SerializeToString()


def batch_state(kind: str, widget_id: str, batch: int) -> WidgetState:
    """The batch input's new value as the browser sends it: a select_slider sends its option's label."""
    state = WidgetState(id=widget_id)
    if kind == "slider":
        state.string_array_value.data.append(str(batch))
    elif kind == "text_input":
        state.string_value = str(batch)
    else:
        state.int_value = batch
    return state


async def until_finished(ws, found: dict) -> tuple[bool, int]:
    """Read ForwardMsgs until the script finishes; note the batch input's widget id; (error?, messages)."""
    error, n = False, 0
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=120))
        n += 1
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            which = el.WhichOneof("type")
            if which == "exception":
                error = True
            elif which in ("slider", "text_input", "number_input") and getattr(el, which).id.endswith("-batch"):
                found["batch"] = (which, getattr(el, which).id)  # the slider by default, a text box if precise
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                continue
            return error or msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR, n


def route_cookie(http_url: str) -> str:
    """The Cookie header a browser would send after loading the page (the proxy's route; none without one)."""
    with urllib.request.urlopen(http_url + "/", timeout=60) as r:
        return "; ".join(c.split(";", 1)[0] for c in r.headers.get_all("Set-Cookie") or [])


async def session(url: str, page: str, think: float, deadline: float, rng: random.Random, out: dict) -> None:
    found: dict = {}
    try:
        http_url = "http" + url.removeprefix("ws").removesuffix("/_stcore/stream")
        cookie = await asyncio.to_thread(route_cookie, http_url)
        headers = {"Cookie": cookie} if cookie else None
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
                                      additional_headers=headers) as ws:
            t0 = time.perf_counter()
            await ws.send(rerun(page, []))
            err, _ = await until_finished(ws, found)
            out["load"].append(time.perf_counter() - t0)
            out["loaded_at"] = max(out["loaded_at"], time.perf_counter())
            out["errors"] += err
            for _ in range(MAX_RERUNS):
                await asyncio.sleep(rng.expovariate(1 / think) if think else 0)
                if time.perf_counter() > deadline or "batch" not in found:
                    break
                state = batch_state(*found["batch"], rng.choice([1, 2, 4, 8, 16, 32, 64]))
                t0 = time.perf_counter()
                await ws.send(rerun(page, [state]))
                err, _ = await until_finished(ws, found)
                out["rerun"].append(time.perf_counter() - t0)
                out["rerun_at"].append(t0)
                out["errors"] += err
    except (TimeoutError, OSError, websockets.WebSocketException) as e:
        out["errors"] += 1
        out["failures"].append(f"{type(e).__name__}: {e}"[:200])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def drive(url: str, page: str, sessions: int, think: float, duration: float, seed: int) -> dict:
    out: dict = {"load": [], "rerun": [], "rerun_at": [], "loaded_at": 0.0, "errors": 0, "failures": []}
    deadline = time.perf_counter() + duration
    rng = random.Random(seed)
    tasks = []
    for _i in range(sessions):  # arrivals spread over the first second, as a class opening a link
        tasks.append(asyncio.create_task(session(url, page, think, deadline, random.Random(rng.random()), out)))
        await asyncio.sleep(1 / max(1, sessions))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + 300)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--think", type=float, default=3.0, help="mean seconds between a session's input moves")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of input moves")
    ap.add_argument("--page", default="memory", help="url path of the page the sessions use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0,
                    help="0: one dashboard process (as `make run`); N: the class server with N processes")
    args = ap.parse_args(argv)
    if not (1 <= args.sessions <= MAX_SESSIONS and 0 <= args.think <= 60 and 1 <= args.duration <= MAX_SECONDS
            and 0 <= args.workers <= 16):
        ap.error(f"sessions 1-{MAX_SESSIONS}, think 0-60 s, duration 1-{MAX_SECONDS} s, workers 0-16")
    port = free_port()
    env = dict(os.environ, KVDASH_DATA_DIR=os.environ.get("KVDASH_DATA_DIR", "/tmp/kvdash-load"))
    if args.workers:
        run_dir = Path(tempfile.mkdtemp(prefix="kvdash-load-"))
        server = ClassServer(args.workers, HOST, port, run_dir, env=env,
                             worker_ports=[free_port() for _ in range(args.workers)]).start()
        pids = server.pids
    else:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", HOST, "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        pids = [server.pid]
    try:
        for _ in range(120):
            if healthy(f"http://{HOST}:{port}"):
                break
            time.sleep(0.5)
        url = f"ws://{HOST}:{port}/_stcore/stream"
        asyncio.run(drive(url, args.page, max(1, args.workers), 0, 3, args.seed))  # warm the per-process caches
        time.sleep(2)
        before = total(rss_bytes, pids)
        cpu0, client0 = total(cpu_seconds, pids), time.process_time()
        t0 = time.perf_counter()
        out = asyncio.run(drive(url, args.page, args.sessions, args.think, args.duration, args.seed))
        wall = time.perf_counter() - t0
        peak = total(rss_bytes, pids)
        cpu, client = total(cpu_seconds, pids) - cpu0, time.process_time() - client0
        time.sleep(10)  # sessions closed: let the server drop them
        after = total(rss_bytes, pids)
    finally:
        if args.workers:
            server.stop()
        else:
            server.terminate()
            server.wait(timeout=30)
    print(f"{'class server, ' + str(args.workers) + ' processes behind nginx' if args.workers else 'one process'}: ",
          end="")
    r = out["rerun"]
    print(f"sessions {args.sessions}, think {args.think} s, {len(r)} reruns in {wall:.1f} s "
          f"({len(r) / wall:.1f} per second), page {args.page!r}")
    print("| page load p50 / p95 / max, s | rerun p50 / p95 / max, s | errors | server RSS before / peak / "
          "after, MiB |")
    print(f"| {pct(out['load'], .5):.2f} / {pct(out['load'], .95):.2f} / {max(out['load'], default=0):.2f} | "
          f"{pct(r, .5):.2f} / {pct(r, .95):.2f} / {max(r, default=0):.2f} | {out['errors']} | "
          f"{before / 2**20:.0f} / {peak / 2**20:.0f} / {after / 2**20:.0f} |")
    settled = [x for x, at in zip(r, out["rerun_at"], strict=True) if at > out["loaded_at"]]
    print(f"reruns sent after every session had loaded its page ({len(settled)}): p50 / p95 / max "
          f"{pct(settled, .5):.2f} / {pct(settled, .95):.2f} / {max(settled, default=0):.2f} s")
    if r:
        n = len(r) + len(out["load"])
        print(f"mean rerun {statistics.fmean(r):.3f} s; CPU per page load or rerun: server {cpu * 1e3 / n:.1f} ms, "
              f"this client (the sessions, on the same cores) {client * 1e3 / n:.1f} ms")
    for f in out["failures"][:5]:
        print("failure:", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
