"""`import kvdash` (and the CLI) must pull in neither streamlit nor torch: speed is a feature."""

import subprocess
import sys

CODE = (
    "import sys, kvdash, kvdash.cli, kvdash.sweep, kvdash.capacity, kvdash.presets; "
    "print(' '.join(m for m in ('torch', 'streamlit', 'plotly', 'pandas') if m in sys.modules))"
)


def test_core_imports_no_heavy_packages():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
