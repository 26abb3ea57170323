"""The class server (deploy/): nginx's configuration, the refusal without nginx, and the compose file.

The browser test through the running class server (sticky sessions, an upload reaching its process) is in
tests/test_e2e.py; benchmarks/load.py measures its load.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))
import class_server  # noqa: E402 (deploy/ is a folder of scripts)


def test_without_nginx_the_launcher_says_how_to_get_it_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(class_server, "nginx_binary", lambda: None)
    assert class_server.main(["--workers", "1", "--port", "18501", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("class server: nginx is not installed: `apt-get install nginx`")
    assert not (tmp_path / "logs").exists()  # refused before any process started


def test_workers_default_to_the_environment_else_the_usable_cores(monkeypatch):
    monkeypatch.setenv("KVDASH_WORKERS", "3")
    assert class_server.default_workers() == 3
    monkeypatch.setenv("KVDASH_WORKERS", "")  # compose passes an unset variable as empty
    assert class_server.default_workers() == len(__import__("os").sched_getaffinity(0))


def test_the_configuration_routes_by_a_cookie_to_each_process():
    conf = class_server.nginx_conf("0.0.0.0", 8501, [8601, 8602, 8603])
    assert "listen 0.0.0.0:8501;" in conf and "@SERVERS@" not in conf and "@LISTEN@" not in conf
    servers = [line.strip() for line in conf.splitlines() if line.strip().startswith("server 127.0.0.1")]
    assert servers == [f"server 127.0.0.1:{p} max_fails=0;" for p in (8601, 8602, 8603)]
    # by the route cookie (set on the first answer), not by address: a lecture hall shares one NAT address
    assert "hash $kvdash_route consistent;" in conf and "ip_hash" not in conf
    assert 'add_header Set-Cookie "kvdash_route=$kvdash_route;' in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf  # the websocket passes
    assert class_server.nginx_conf("::", 80, [1]).count("listen [::]:80;") == 1


@pytest.mark.skipif(class_server.nginx_binary() is None, reason="nginx is not installed (.ci/run installs it)")
def test_nginx_accepts_the_configuration(tmp_path):
    for d in ("logs", "tmp"):
        (tmp_path / d).mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(class_server.nginx_conf("127.0.0.1", 18501, [18601, 18602]))
    done = subprocess.run([class_server.nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_the_compose_file_runs_the_class_server_with_options_it_takes():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    service = compose["services"]["kvdash"]
    command = service["command"]
    assert command[:2] == ["python", "deploy/class_server.py"]
    args = class_server.parser().parse_args(command[2:])  # the launcher's own parser takes them
    assert (args.host, args.port) == ("0.0.0.0", 8501)
    assert service["ports"] == [f"{args.port}:{args.port}"]
    assert service["build"]["context"] == ".."  # the repository's Dockerfile, which must install nginx
    assert "apt-get install -y --no-install-recommends nginx" in (ROOT / "Dockerfile").read_text()
