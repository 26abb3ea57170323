"""Vectorised sweeps: batch x context (x GPU) grids evaluated in one numpy pass.

They evaluate the very functions the breakdown uses (`kv_bytes`, `activation_bytes`), on int64
arrays, so a grid point equals the breakdown of that scenario to the byte.
"""

from __future__ import annotations

import numpy as np

from kvdash.breakdown import memory_stages, overhead_bytes, reserve_bytes, stage_bytes
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.scenario import MAX_BATCH, MAX_TOKENS, Scenario
from kvdash.solvers import total_bytes_fn

_INT64_SAFE = 1 << 62


def _as_axis(values, name: str, hi: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise KvdashError(f"{name} must be a non-empty 1-D list of integers")
    if a.min() < 1 or a.max() > hi:
        raise KvdashError(f"{name} values must be between 1 and {hi:,}")
    return a.astype(np.int64)


def total_grid(m: ModelSpec, s: Scenario, batches, prompts, gpu=None) -> np.ndarray:
    """Per-GPU bytes for every (batch, prompt_tokens) pair: shape (len(batches), len(prompts)); an engine's
    step limits as on `gpu` (its defaults for the largest GPUs without one)."""
    m, s, sts = memory_stages(m, s, gpu)
    B = _as_axis(batches, "batches", MAX_BATCH)[:, None]
    P = _as_axis(prompts, "prompts", MAX_TOKENS)[None, :]
    if P.min() < s.shared_prefix_tokens:
        raise KvdashError("every prompt length must cover the shared prefix")
    # The corner with the largest batch and prompt bounds every point: check it stays exact in int64.
    if total_bytes_fn(m, s)(int(B.max()), int(P.max())) >= _INT64_SAFE:
        raise KvdashError("sweep range too large for exact 64-bit arithmetic")
    out = None
    for st in sts:
        t = stage_bytes(st, s, B, P, np.minimum, np.maximum)
        out = t if out is None else np.maximum(out, t)
    return np.broadcast_to(out, (B.shape[0], P.shape[1])) + overhead_bytes(s)


def fit_grid(m: ModelSpec, s: Scenario, batches, prompts, gpus) -> np.ndarray:
    """Boolean (len(gpus), len(batches), len(prompts)): does each point fit each GPU? (A grid per distinct
    step limits: an engine's defaults differ by GPU.)"""
    grids: dict[tuple, np.ndarray] = {}
    out = []
    for g in gpus:
        limits = s.step_limits(g)
        if limits not in grids:
            grids[limits] = total_grid(m, s, batches, prompts, g)
        out.append(grids[limits] + reserve_bytes(s.resolved(g), g) <= g.usable_bytes)
    return np.stack(out)
