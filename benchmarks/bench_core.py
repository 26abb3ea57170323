"""Speed of the sizing core on this machine: one scenario, and a 1,000,000-point sweep.

Targets (issue #2, on the 2-core development machines): one scenario under 50 microseconds;
a million-point batch x context sweep under 1 second. Run with `make bench`; results go in
BENCHMARKS.md.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

from kvdash.breakdown import breakdown
from kvdash.gpus import load_gpus
from kvdash.hf_config import model_from_config
from kvdash.presets import preset_model
from kvdash.report import formulas
from kvdash.scenario import Scenario
from kvdash.sweep import fit_grid, total_grid

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "configs"


def model(name: str):
    """A preset, or a real config from the test corpus (hybrid and chunked stacks)."""
    path = CORPUS / f"{name}.json"
    return model_from_config(json.loads(path.read_text())["config"]) if path.exists() else preset_model(name)


CASES = [
    ("llama-3.1-8b", Scenario(batch=8, prompt_tokens=4096)),
    ("qwen3-next-80b-a3b-thinking", Scenario(batch=16, prompt_tokens=32768, block_size=16, tp=4)),
    ("llama-4-scout-17b-16e-instruct", Scenario(batch=8, prompt_tokens=65536, block_size=16,
                                                shared_prefix_tokens=1024)),
    ("gpt-oss-120b", Scenario(batch=32, prompt_tokens=8192, moe_weights_dtype="mxfp4")),
    ("llama-3.1-405b", Scenario(batch=4, prompt_tokens=32768, tp=8, kv_dtype="fp8")),
    ("gemma-3-27b", Scenario(batch=16, prompt_tokens=8192, block_size=16, shared_prefix_tokens=1024)),
    ("deepseek-v3", Scenario(batch=32, prompt_tokens=16384, tp=8, pp=2, weights_dtype="fp8")),
]


def per_call_us(fn, number: int) -> float:
    """Median of 7 repeats of `number` calls, in microseconds per call."""
    runs = timeit.repeat(fn, number=number, repeat=7)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, {platform.machine()}, "
          f"{platform.processor() or 'cpu'}")
    print("\n| scenario | breakdown(), µs | breakdown() + every formula's text, µs |")
    print("|---|---|---|")
    for preset, s in CASES:
        m = model(preset)
        breakdown(m, s)  # warm the per-model caches, as a dashboard session would

        def with_text(m=m, s=s):
            return formulas(breakdown(m, s))

        print(f"| {preset}, batch {s.batch}, {s.context:,} tokens, tp {s.tp}, pp {s.pp} | "
              f"{per_call_us(lambda m=m, s=s: breakdown(m, s), 2000):.1f} | {per_call_us(with_text, 2000):.1f} |")

    batches = np.arange(1, 1001)
    prompts = 1024 + np.arange(1000) * 128  # from the longest shared prefix in CASES
    gpus = list(load_gpus().values())
    print("\n| sweep (1,000 batches x 1,000 context lengths = 1,000,000 points) | seconds (median of 5) |")
    print("|---|---|")
    for preset, s in CASES:
        m = model(preset)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            total_grid(m, s, batches, prompts)
            times.append(time.perf_counter() - t0)
        print(f"| {preset}: per-GPU totals | {statistics.median(times):.3f} |")
    m, s = preset_model("llama-3.1-8b"), CASES[0][1]
    t0 = time.perf_counter()
    fits = fit_grid(m, s, batches, prompts, gpus)
    print(f"| llama-3.1-8b: totals + fit on all {len(gpus)} GPUs ({fits.size:,} booleans) | "
          f"{time.perf_counter() - t0:.3f} |")
    plan_search()


def plan_search() -> None:
    """kvdash.plan over the GPUs with measured kernels: every GPU x engine x weight format x KV format x, for
    aggregated replicas, each (tp, expert parallel) layout, and for disaggregated pools each prefill layout x decode
    layout (issue #22)."""
    from kvdash.engines import ENGINES
    from kvdash.gpus import load_gpus
    from kvdash.plan import default_gpus, parallel_layouts, plan, weight_formats

    print("\n| plan | candidates (aggregated + disaggregated) | options | seconds (median of 3) |")
    print("|---|---|---|---|")
    chosen = default_gpus(load_gpus())
    for preset, args in (("llama-3.1-8b", (10.0, 1024, 256, 0.5, 0.025)),
                         ("qwen3-30b-a3b", (20.0, 4096, 512, 1.0, 0.05))):
        m, times = preset_model(preset), []
        layouts = len(parallel_layouts(m, 64))
        combos = sum(len(weight_formats(m, g)) for g in chosen) * len(ENGINES) * 2
        plan(m, args[0] * 0.9, *args[1:], chosen)  # warm the per-model tables, as a page's second plan finds them
        for i in range(3):
            t0 = time.perf_counter()
            options, _ = plan(m, args[0] + i * 1e-9, *args[1:], chosen)  # a new rate each time: no cached answer
            times.append(time.perf_counter() - t0)
        print(f"| {preset}, {args[0]:g} requests/s of {args[1]:,} + {args[2]:,} tokens | "
              f"{combos * (layouts + layouts ** 2):,} ({combos * layouts:,} + {combos * layouts ** 2:,}) | "
              f"{len(options):,} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
