"""The set-up contract: `make run` installs torch (several GB) only where the Live run page can use an
NVIDIA GPU, or when asked (LIVE=1); the dashboard's own requirements never pull it in."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dry_run(empty_dir: Path, *args: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is part of the set-up contract and must be installed")
    # PATH is an empty folder, so `command -v nvidia-smi` finds nothing: a machine with no NVIDIA GPU
    env = dict(os.environ, PATH=str(empty_dir))
    env.pop("LIVE", None)
    done = subprocess.run([make, "-n", "-B", "run", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_skips_torch_without_a_gpu_and_installs_it_on_request(tmp_path):
    plain = dry_run(tmp_path)
    assert "requirements.txt" in plain and "requirements-live.txt" not in plain
    assert "torch is not installed" in plain
    assert "pip install -q -r requirements-live.txt" in dry_run(tmp_path, "LIVE=1")
    # where nvidia-smi answers, torch comes with `make run`
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    assert "pip install -q -r requirements-live.txt" in dry_run(tmp_path)


def test_the_dashboard_requirements_do_not_name_torch():
    needs = [line.split("==")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "torch" not in needs and {"streamlit", "plotly", "pandas", "numpy"} <= set(needs)
    assert "torch==" in (ROOT / "requirements-live.txt").read_text()
    # the container installs the same files
    docker = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in docker
