"""Fit the serving model's engine profiles to measured runs, and report how well they hold.

Reads data/serving/h100.csv (784 runs of vLLM, SGLang and TensorRT-LLM on H100 SXM,
from the public AIConfigurator repository; see its README) and the model configs beside it. For each
engine it fits memory, cache and compute efficiency and the per-step, per-layer and per-sequence overheads to the
measured TPOT (least |log error|, coordinate descent over log grids), then the four queueing terms to TTFT, and
writes data/engines/ENGINE.json. It prints the median and 90th-percentile |error| per engine and
model, in sample and leave-one-model-out (refitted without that model's rows; an engine with one model
is held out by tensor-parallel size).

    python benchmarks/fit_serving.py [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from datetime import date
from pathlib import Path

import numpy as np

from kvdash import serving_runs
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.hf_config import load_config_file, model_from_config
from kvdash.scenario import Scenario
from kvdash.serving import ENGINES_DIR, EngineProfile, serving

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "data" / "serving"
CONFIGS = {
    "Qwen/Qwen3-32B": "Qwen--Qwen3-32B.json", "Qwen/Qwen3-235B-A22B-FP8": "Qwen--Qwen3-235B-A22B.json",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama--Meta-Llama-3.1-8B.json",
    "meta-llama/Llama-3.1-70B": "meta-llama--Meta-Llama-3.1-70B.json",
    "openai/gpt-oss-120b": "openai--gpt-oss-120b.json", "MiniMaxAI/MiniMax-M2.5": "MiniMaxAI--MiniMax-M2.5.json",
}
# Each engine's defaults (step limits, memory share, admission, whether it overlaps scheduling) are facts read
# in its source (kvdash.engines), and its KV pool is kvdash.startup's, the budget `kvdash capacity --gpu`
# prints: none of them is fitted here. TensorRT-LLM (PyTorch backend, `disable_overlap_scheduler` False by
# default) and SGLang (its overlap schedule, on by default) prepare step n + 1 on the CPU while the GPU runs
# step n, so they have no per-step overhead to fit; what remains is per layer and per sequence. (Fitted anyway,
# TensorRT-LLM's came out at 0.3 ms in sample and 2.6 ms with Llama-3.1-8B left out, the confusion that made
# that model's TPOT 25 % off left out; 18 % without it, in sample unchanged.)
# Terms held at 0 rather than fitted. vLLM's queue_prompts (a fixed number of other prompts ahead of a new
# one): fitted, it gained 1 point of TTFT in sample and lost 5 left out (Llama-3.1-70B 20 % -> 49 %), so
# it is over-fitting there; TensorRT-LLM's runs, whose prompts run whole (no chunked prefill by default),
# are where it holds left out. (An engine that overlaps scheduling also keeps its step overhead at 0.)
FIXED = {"vllm": {"queue_prompts": 0.0}}
# The loss is the mean |log(predicted / measured)|, each run's capped at 1 (a factor of e): a run the model
# misses by more than that (a benchmark that ran fewer requests than it reports, a format whose kernels are
# not modelled) is an outlier whose exact size should not steer the fit of every other run.
CAP = 1.0  # (0.5 and 5 were tried: 0.5 is no better left out, 5 lets the outliers pull every fit)
TUNED = ("memory_eff", "cache_eff", "compute_eff", "step_overhead_s", "layer_overhead_s", "seq_overhead_s")
# Coordinate descent stops in a local minimum that depends on where it starts (with Llama-3.1-8B left out,
# TensorRT-LLM's TTFT came out 25 % or 27 % by the start alone), so it starts from three profiles.
STARTS = ({}, {"memory_eff": 0.9, "cache_eff": 0.9, "compute_eff": 0.7, "step_overhead_s": 0.0,
               "layer_overhead_s": 0.0, "seq_overhead_s": 0.0},
          {"memory_eff": 0.6, "cache_eff": 0.5, "compute_eff": 0.4, "step_overhead_s": 2e-3,
           "layer_overhead_s": 40e-6, "seq_overhead_s": 1e-6})
GRIDS = {"memory_eff": [0.3 + 0.05 * i for i in range(14)], "cache_eff": [0.2 + 0.05 * i for i in range(16)],
         "compute_eff": [0.15 + 0.05 * i for i in range(17)],
         "seq_overhead_s": [0.0] + [1e-8 * 1.5**i for i in range(20)],
         "step_overhead_s": [0.0] + [1e-4 * 1.5**i for i in range(18)],
         "layer_overhead_s": [0.0] + [1e-6 * 1.5**i for i in range(16)],
         "queue_steps": [0.5 * i for i in range(81)],
         "queue_share": [0.005 * i for i in range(40)] + [0.2 + 0.05 * i for i in range(17)],
         "queue_prompts": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0],
         "request_overhead_s": [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2,
                                0.25, 0.3]}


def load_rows() -> list[dict]:
    models = {k: model_from_config(load_config_file(REF / "configs" / v)) for k, v in CONFIGS.items()}
    gpu = get_gpu(serving_runs.GPU)
    rows = []
    for r in serving_runs.load_runs():
        m = models[r.model]
        s = Scenario(tp=r.tp, weights_dtype=r.weights, runtime=r.engine,
                     moe_weights_dtype=r.experts if m.n_experts and r.experts != r.weights else "",
                     expert_parallel=r.ep > 1, kv_dtype=r.kv)
        rows.append(dict(engine=r.engine, model=r.model, m=m, s=s, gpu=gpu, c=r.concurrency, isl=r.isl, osl=r.osl,
                         tpot=r.tpot_s, ttft=r.ttft_s))
    return rows


def predict(row: dict, p: EngineProfile):
    return serving(row["m"], row["s"], row["gpu"], row["c"], row["isl"], row["osl"], p)


def errors(rows: list[dict], p: EngineProfile, what: str) -> list[float]:
    out = []
    for r in rows:
        try:
            rep = predict(r, p)
        except KvdashError:
            out.append(float("inf"))
            continue
        out.append(getattr(rep, f"{what}_s") / r[what] - 1)
    return out


def loss(rows, p, what) -> float:
    return statistics.fmean(min(CAP, abs(math.log1p(max(-0.99, e)))) for e in errors(rows, p, what))


def fit(rows: list[dict], engine: str) -> EngineProfile:
    overlap = engine_facts(engine).overlap_scheduler
    base = EngineProfile(engine, step_overhead_s=0.0 if overlap else 1e-3)
    fixed = FIXED.get(engine, {}) | ({"step_overhead_s": 0.0} if overlap else {})
    grids = GRIDS | {name: [v] for name, v in fixed.items()}
    fits = []
    for start in STARTS:  # coordinate descent over the TPOT parameters, from each start; the best one wins
        p = dataclasses.replace(base, **{k: v for k, v in start.items() if k not in fixed})
        for _ in range(4):
            for name in TUNED:
                p = min((dataclasses.replace(p, **{name: v}) for v in grids[name]),
                        key=lambda q: loss(rows, q, "tpot"))
        fits.append((loss(rows, p, "tpot"), p))
    p = min(fits, key=lambda f: f[0])[1]
    # then the four queueing terms of TTFT on a full grid: the steps do not depend on them, so each run's
    # report is computed once and its first-token time evaluated over the whole grid at once (numpy)
    q, s, c, n = np.meshgrid(grids["queue_steps"], grids["queue_share"], grids["request_overhead_s"],
                             grids["queue_prompts"], indexing="ij")
    total = np.zeros(q.shape)
    for r in rows:
        try:
            rep = predict(r, p)
        except KvdashError:
            continue
        total += np.minimum(CAP, np.abs(np.log(rep.ttft_with(q, s, c, n, np.minimum) / r["ttft"])))
    i = np.unravel_index(np.argmin(total), total.shape)
    return dataclasses.replace(p, queue_steps=float(q[i]), queue_share=float(s[i]), request_overhead_s=float(c[i]),
                               queue_prompts=float(n[i]))


def summary(errs: list[float]) -> str:
    a = sorted(abs(e) for e in errs)
    if not a:
        return "—"
    return f"{statistics.median(a):.1%} / {a[min(len(a) - 1, int(0.9 * len(a)))]:.0%}"


def held_out(rows: list[dict]):
    """(label, held-out rows, the rest) for each model of an engine; an engine with one model (SGLang) is
    held out by tensor-parallel size instead, the nearest check it allows."""
    models = sorted({r["model"] for r in rows})
    if len(models) > 1:
        return [(m, [r for r in rows if r["model"] == m], [r for r in rows if r["model"] != m]) for m in models]
    return [(f"{models[0]} at tp {tp}", [r for r in rows if r["s"].tp == tp], [r for r in rows if r["s"].tp != tp])
            for tp in sorted({r["s"].tp for r in rows})]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="fit the serving engine profiles")
    ap.add_argument("--write", action="store_true", help="write data/engines/ENGINE.json")
    args = ap.parse_args(argv)
    rows = load_rows()
    print(f"{len(rows)} measured runs; median / 90th percentile of |predicted / measured - 1|\n")
    print("| engine | held out | runs | TPOT in sample | TTFT in sample | TPOT held out | TTFT held out |")
    print("|---|---|---|---|---|---|---|")
    profiles = {}
    every_in = {"tpot": [], "ttft": []}
    every_out = {"tpot": [], "ttft": []}
    for engine in ENGINES:
        er = [r for r in rows if r["engine"] == engine]
        p = profiles[engine] = fit(er, engine)
        all_in = {"tpot": [], "ttft": []}
        all_out = {"tpot": [], "ttft": []}
        for label, mine, rest in held_out(er):
            ins = {w: errors(mine, p, w) for w in ("tpot", "ttft")}
            q = fit(rest, engine)
            outs = {w: errors(mine, q, w) for w in ("tpot", "ttft")}
            for w in ("tpot", "ttft"):
                all_in[w] += ins[w]
                all_out[w] += outs[w]
            print(f"| {engine} | {label} | {len(mine)} | {summary(ins['tpot'])} | {summary(ins['ttft'])} | "
                  f"{summary(outs['tpot'])} | {summary(outs['ttft'])} |")
        print(f"| **{engine}** | all | {len(er)} | {summary(all_in['tpot'])} | {summary(all_in['ttft'])} | "
              f"{summary(all_out['tpot'])} | {summary(all_out['ttft'])} |")
        for w in ("tpot", "ttft"):
            every_in[w] += all_in[w]
            every_out[w] += all_out[w]
    print(f"| **all engines** | all | {len(rows)} | {summary(every_in['tpot'])} | {summary(every_in['ttft'])} | "
          f"{summary(every_out['tpot'])} | {summary(every_out['ttft'])} |")
    print()
    for engine, p in profiles.items():
        data = dataclasses.asdict(p) | {"source": f"fitted by benchmarks/fit_serving.py on the {engine} rows "
                                                  f"of data/serving/h100.csv, {date.today().isoformat()}"}
        print(engine, {k: round(v, 6) if isinstance(v, float) else v for k, v in data.items()})
        if args.write:
            ENGINES_DIR.mkdir(parents=True, exist_ok=True)
            (ENGINES_DIR / f"{engine}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
