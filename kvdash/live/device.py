"""The CPU as a device the speed model can estimate for, and the memory a run may take on it.

A GPU run is estimated from its catalog row; a CPU has none, so its two roofs are measured here once
per process with numpy (an fp32 matrix product for FLOP/s, a large copy for bandwidth): a measured
constant, labelled as such. Pure: no torch.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import numpy as np

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu
from kvdash.scenario import Scenario

MAX_SECONDS = 30  # a live run holds the one run lock: keep each under half a minute
RAM_SHARE = 0.5  # ... and under half of this machine's free memory


def _best(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@lru_cache(maxsize=1)
def cpu_row() -> Gpu:
    """This machine's CPU as a catalog-like row: fp32 FLOP/s of a 512 x 512 product and the bandwidth of
    a 64 MiB copy, the best of 5 (measured, about 50 ms)."""
    a = np.ones((512, 512), dtype=np.float32)
    flops = 2 * 512**3 / _best(lambda: a @ a)
    src, dst = np.ones(1 << 24, dtype=np.float32), np.empty(1 << 24, dtype=np.float32)
    bandwidth = 2 * src.nbytes / _best(lambda: np.copyto(dst, src))  # read + write
    tflops = flops / 1e12
    return Gpu(id="this-cpu", vendor="CPU", name=f"this CPU ({os.cpu_count()} cores)", cuda_name="", memory_gb=0.0,
               usable_bytes=available_ram() or 0, usable_basis="measured: /proc/meminfo MemAvailable",
               memory_type="RAM", bandwidth_gbps=bandwidth / 1e9, fp32_tflops=tflops, bf16_tflops=tflops,
               fp8_tflops=None, fp4_tflops=None, interconnect="", link_gbps=None, year=None,
               source="measured with numpy when the live page first loads")


def available_ram() -> int | None:
    """Bytes of memory the machine can still give (Linux MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_bytes(spec, batch: int, prompt: int, new: int, dtype: str) -> int:
    """What a live run allocates, as kvdash predicts it: weights, cache, activation peak and logits."""
    b = breakdown(spec, Scenario(batch=batch, prompt_tokens=prompt, new_tokens=new, weights_dtype=dtype,
                                 kv_dtype=dtype, runtime="static", runtime_overhead_bytes=0))
    return b.total


def check_cpu_run(spec, batch: int, prompt: int, new: int, eta_s: float, free_bytes: int | None) -> int:
    """The run's predicted bytes; KvdashError (saying why) when it would take over MAX_SECONDS or more than
    RAM_SHARE of the free memory."""
    need = run_bytes(spec, batch, prompt, new, "fp32")
    if eta_s > MAX_SECONDS:
        raise KvdashError(f"this run would take about {eta_s:,.0f} s on this CPU; make it smaller (fewer layers, "
                          f"tokens or sequences) to stay under {MAX_SECONDS} s")
    if free_bytes is not None and need > RAM_SHARE * free_bytes:
        raise KvdashError(f"this run needs about {need / 2**30:,.2f} GiB, more than half of the "
                          f"{free_bytes / 2**30:,.2f} GiB this machine has free; make it smaller")
    return need
