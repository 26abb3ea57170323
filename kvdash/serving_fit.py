"""Fit an engine's host overheads and queueing terms to measured serving runs: the one fitting routine that
benchmarks/fit_serving.py uses on the reference runs and the Speed page on a user's own ("calibrate to my
cluster").

Only what the GPU's kernels do not explain is fitted: the engine's time per step, per layer and per running
sequence in each layer (from TPOT), then the first token's queueing terms (from TTFT). The kernels themselves
are timed at the GPU's measured ceilings (kvdash.kernels), which no end-to-end run adjusts. The loss is the
mean |log(predicted / measured)| with each run's term capped at 1 (a factor of e): a run missed by more than
that is an outlier whose exact size should not steer the fit of the others. Each term's grid is searched whole
(the best point of the whole grid, not a local one).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

import numpy as np

from kvdash.errors import KvdashError
from kvdash.gpus import Gpu
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario
from kvdash.serving import EngineProfile, serving

CAP = 1.0
TUNED = ("step_overhead_s", "layer_overhead_s", "seq_overhead_s")
GRIDS = {"seq_overhead_s": [0.0] + [1e-8 * 1.5**i for i in range(20)],
         "step_overhead_s": [0.0] + [1e-4 * 1.5**i for i in range(18)],
         "layer_overhead_s": [0.0] + [1e-6 * 1.5**i for i in range(16)],
         "queue_steps": [0.5 * i for i in range(81)],
         "queue_share": [0.005 * i for i in range(40)] + [0.2 + 0.05 * i for i in range(17)],
         "queue_prompts": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0],
         "request_overhead_s": [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2,
                                0.25, 0.3]}
FITTED = (*TUNED, "queue_steps", "queue_share", "queue_prompts", "request_overhead_s")


@dataclass(frozen=True)
class Observed:
    """One measured run: what ran (model, scenario with its engine as runtime, GPU, load) and what it measured."""

    model: ModelSpec
    scenario: Scenario
    gpu: Gpu
    concurrency: int
    isl: int
    osl: int
    ttft_s: float
    tpot_s: float
    label: str = ""


def predict(o: Observed, p: EngineProfile):
    return serving(o.model, o.scenario, o.gpu, o.concurrency, o.isl, o.osl, p)


def errors(obs: list[Observed], p: EngineProfile, what: str) -> list[float]:
    """predicted / measured - 1 per run for "tpot" or "ttft" (inf where the model refuses the run)."""
    out = []
    for o in obs:
        try:
            r = predict(o, p)
        except KvdashError:
            out.append(float("inf"))
            continue
        out.append(getattr(r, f"{what}_s") / getattr(o, f"{what}_s") - 1)
    return out


def loss(obs: list[Observed], p: EngineProfile, what: str) -> float:
    return statistics.fmean(min(CAP, abs(math.log1p(max(-0.99, e)))) for e in errors(obs, p, what))


def _tpot_lines(obs: list[Observed], p: EngineProfile) -> np.ndarray:
    """Per run (TPOT at zero overheads, and its change per second of per-step, per-layer and per-sequence
    overhead): a step's time is its kernels plus those overheads, and TPOT a fixed mix of steps, so TPOT is
    linear in them. A run the model refuses is NaN."""
    zero = replace(p, step_overhead_s=0.0, layer_overhead_s=0.0, seq_overhead_s=0.0)
    out = np.full((len(obs), 4), np.nan)
    for i, o in enumerate(obs):
        try:
            base = predict(o, zero).tpot_s
            out[i] = [base, *((predict(o, replace(zero, **{t: 1e-6})).tpot_s - base) / 1e-6 for t in TUNED)]
        except KvdashError:
            continue
    return out


def fit_profile(obs: list[Observed], engine: str, fixed: dict | None = None, grids: dict = GRIDS) -> EngineProfile:
    """The engine's overheads fitted to the runs' TPOT, then its queueing terms to their TTFT, each by a search
    of the whole grid (TPOT is linear in the overheads, so every grid point is one multiply-add per run). `fixed`
    holds terms at a value."""
    if not obs:
        raise KvdashError("no measured runs to fit")
    grids = grids | {name: [v] for name, v in (fixed or {}).items()}
    lines = _tpot_lines(obs, EngineProfile(engine))
    measured = np.array([o.tpot_s for o in obs])
    axes = np.meshgrid(*(np.array(grids[t]) for t in TUNED), indexing="ij")
    total = np.zeros(axes[0].shape)
    for (base, ds, dl, dq), m in zip(lines, measured, strict=True):
        if np.isnan(base):
            total += CAP
            continue
        pred = base + ds * axes[0] + dl * axes[1] + dq * axes[2]
        total += np.minimum(CAP, np.abs(np.log(pred / m)))
    i = np.unravel_index(np.argmin(total), total.shape)
    p = EngineProfile(engine, **{t: float(a[i]) for t, a in zip(TUNED, axes, strict=True)})
    # the four queueing terms of TTFT on a full grid: the steps do not depend on them, so each run's report is
    # computed once and its first-token time evaluated over the whole grid at once
    q, s, c, n = np.meshgrid(grids["queue_steps"], grids["queue_share"], grids["request_overhead_s"],
                             grids["queue_prompts"], indexing="ij")
    total = np.zeros(q.shape)
    for o in obs:
        try:
            r = predict(o, p)
        except KvdashError:
            continue
        total += np.minimum(CAP, np.abs(np.log(r.ttft_with(q, s, c, n, np.minimum) / o.ttft_s)))
    i = np.unravel_index(np.argmin(total), total.shape)
    return replace(p, queue_steps=float(q[i]), queue_share=float(s[i]), request_overhead_s=float(c[i]),
                   queue_prompts=float(n[i]))


def summary(errs: list[float]) -> str:
    """'median / 90th percentile' of |error|."""
    a = sorted(abs(e) for e in errs)
    if not a:
        return "—"
    return f"{statistics.median(a):.1%} / {a[min(len(a) - 1, int(0.9 * len(a)))]:.0%}"
