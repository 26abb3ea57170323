"""A class server: several dashboard processes behind nginx with sticky sessions, in one command.

    make class                                   # one process per core, on http://0.0.0.0:8501
    python deploy/class_server.py --workers 4 --port 8501
    docker compose -f deploy/compose.yaml up -d --build      # the same, in a container

One Streamlit process runs its sessions' reruns on one core (Python's lock), so a lecture hall needs
several; nginx (the Debian package, `apt-get install nginx`) spreads the browsers over them and keeps
each on its own (deploy/nginx.conf says how). The processes share one cookie secret, so a session's
XSRF cookie is valid wherever it lands. Stops everything on Ctrl-C or SIGTERM, and exits when any
process dies (a container's restart policy brings the whole set back). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("nginx.conf")
FIRST_WORKER_PORT = 8601


def default_workers() -> int:
    asked = os.environ.get("KVDASH_WORKERS", "").strip()
    return int(asked) if asked.isdigit() else len(os.sched_getaffinity(0))


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def nginx_conf(host: str, port: int, worker_ports: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in worker_ports)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return TEMPLATE.read_text(encoding="utf-8").replace("@SERVERS@", servers).replace("@LISTEN@", listen)


def worker_command(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


class ClassServer:
    """The worker processes and nginx; `start()` returns once the proxy answers."""

    def __init__(self, workers: int, host: str, port: int, run_dir: Path, env: dict | None = None,
                 worker_ports: list[int] | None = None):
        self.workers, self.host, self.port, self.run_dir = workers, host, port, run_dir
        self.worker_ports = worker_ports or [FIRST_WORKER_PORT + i for i in range(workers)]
        self.env = dict(os.environ if env is None else env)
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::') else self.host}:{self.port}"

    def start(self, timeout: float = 120) -> ClassServer:
        nginx = nginx_binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed: `apt-get install nginx` (Debian, Ubuntu), or run the "
                               "class server in its container (deploy/compose.yaml)")
        for d in ("logs", "tmp"):
            (self.run_dir / d).mkdir(parents=True, exist_ok=True)
        ports = self.worker_ports
        # one secret for all (Streamlit takes it from the environment only, which also keeps it out of `ps`)
        env = self.env | {"STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32)}
        for i, p in enumerate(ports):
            log = open(self.run_dir / "logs" / f"worker-{i}.log", "ab")  # noqa: SIM115 (the process holds it)
            self.procs.append(subprocess.Popen(worker_command(p), cwd=ROOT, env=env, stdout=log,
                                               stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for p in ports:  # nginx starts once every process answers, so no first student meets a 502
            while not healthy(f"http://127.0.0.1:{p}"):
                self.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a dashboard process did not start within {timeout:.0f} s "
                                       f"(its log: {self.run_dir / 'logs'})")
                time.sleep(0.3)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(self.host, self.port, ports), encoding="utf-8")
        self.procs.append(subprocess.Popen([nginx, "-p", str(self.run_dir), "-c", str(conf), "-g", "daemon off;"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        while not healthy(self.url):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer on {self.url} within {timeout:.0f} s")
            time.sleep(0.2)
        return self

    def check(self) -> None:
        """Raise if any process has exited."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            if i < self.workers:
                what, said = f"dashboard process {i}", (self.run_dir / "logs" / f"worker-{i}.log").read_bytes()
            else:
                what, said = "nginx", proc.stderr.read() if proc.stderr else b""
            last = said.decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{what} exited with code {proc.returncode}" + (f": {last[0]}" if last else ""))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # nginx first, so no request reaches a stopping process
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=default_workers(),
                    help="dashboard processes (default: $KVDASH_WORKERS, else one per core this process may use)")
    ap.add_argument("--host", default="0.0.0.0", help="address nginx listens on (default: every interface)")
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--run-dir", type=Path, help="nginx's configuration and the logs (default: a new temporary folder)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if not (1 <= args.workers <= 64 and 1 <= args.port <= 65535):
        ap.error("workers 1-64, port 1-65535")
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="kvdash-class-"))
    server = ClassServer(args.workers, args.host, args.port, run_dir)
    try:
        server.start()
        where = "every interface" if args.host in ("0.0.0.0", "::") else args.host
        processes = f"{args.workers} dashboard process{'es' if args.workers > 1 else ''}"
        print(f"kvdash class server: {processes} behind nginx on port {args.port} of {where} "
              f"(here: {server.url}); logs in {run_dir / 'logs'}. Ctrl-C stops it.", flush=True)
        while True:
            server.check()
            time.sleep(1)
    except RuntimeError as e:
        print(f"class server: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a container's stop: main's finally stops the rest
    sys.exit(main())
