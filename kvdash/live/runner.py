"""One live run at a time per process (every browser session shares it), and what is installed.

Importing this module does not import torch: the dashboard page can say what is missing.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable

RUN_LOCK = threading.Lock()


def torch_status() -> dict:
    """{'torch': bool, 'version': str|None, 'cuda': bool, 'device': str}; imports torch only if present."""
    if importlib.util.find_spec("torch") is None:
        return {"torch": False, "version": None, "cuda": False, "device": "none"}
    import torch

    cuda = torch.cuda.is_available()
    return {"torch": True, "version": torch.__version__, "cuda": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "CPU"}


def run_exclusive(cfg, progress=None, on_wait: Callable[[], None] | None = None, timeout: float = 600) -> dict:
    """Run the benchmark holding RUN_LOCK; call on_wait() first if another run holds it."""
    from kvdash.errors import KvdashError
    from kvdash.live.bench import run_benchmark

    if not RUN_LOCK.acquire(blocking=False):
        if on_wait is not None:
            on_wait()
        if not RUN_LOCK.acquire(timeout=timeout):
            raise KvdashError(f"the device stayed busy with another run for {timeout:.0f} s; try again")
    try:
        return run_benchmark(cfg, progress)
    finally:
        RUN_LOCK.release()
