"""Questions asked of the breakdown: does it fit, how far can batch or context grow, how many GPUs.

Memory is non-decreasing in batch and in context, so the largest value that fits is found by
doubling then bisecting on the exact per-GPU total (a few dozen evaluations of the same formulas
the breakdown prints).
"""

from __future__ import annotations

from collections.abc import Callable

from kvdash.breakdown import breakdown, fixed_bytes, memory_stages, stage_bytes
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.scenario import MAX_BATCH, MAX_TOKENS, Scenario, check_parallel


def total_bytes_fn(m: ModelSpec, s: Scenario, gpu=None) -> Callable[[int, int], int]:
    """total(batch, prompt_tokens) -> per-GPU bytes, other settings as in `s` (an engine's step limits as on
    `gpu`); the breakdown's total at every point, whatever batch and prompt `s` itself holds."""
    _, s, sts = memory_stages(m, s, gpu)
    fixed = fixed_bytes(s, gpu)

    def total(B: int, P: int) -> int:
        return fixed + max(stage_bytes(st, s, B, P) for st in sts)

    return total


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """Largest n in [lo, hi] with ok(n), given ok is monotone (true then false); lo - 1 if none."""
    if not ok(lo):
        return lo - 1
    step = 1
    while lo + step <= hi and ok(lo + step):
        lo, step = lo + step, step * 2
    hi = min(hi, lo + step - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _usable(gpu) -> int:
    if gpu is None:
        raise KvdashError("choose a GPU first")
    return gpu.usable_bytes


def max_batch(m: ModelSpec, s: Scenario, gpu) -> int:
    """Most concurrent sequences of this scenario's length that fit (0 if even one does not)."""
    total, cap = total_bytes_fn(m, s, gpu), _usable(gpu)
    return _largest(lambda b: total(b, s.prompt_tokens) <= cap, 1, MAX_BATCH)


def max_context(m: ModelSpec, s: Scenario, gpu) -> int:
    """Longest context (prompt + generated tokens) per sequence that fits at this batch; 0 if none.

    Memory decides this, not the model's trained length: compare with max_position_embeddings.
    """
    total, cap = total_bytes_fn(m, s, gpu), _usable(gpu)
    lo = max(1, s.shared_prefix_tokens)
    best = _largest(lambda p: total(s.batch, p) <= cap, lo, MAX_TOKENS)
    return best + s.new_tokens if best >= lo else 0


def kv_tokens_for_budget(m: ModelSpec, budget_bytes: int, kv_dtype: str = "bf16", tp: int = 1) -> int:
    """Tokens of cache that fit `budget_bytes` per GPU, every attention layer holding every token."""
    if type(budget_bytes) is not int or budget_bytes < 0:
        raise KvdashError(f"budget must be a non-negative integer of bytes, not {budget_bytes!r}")
    b = breakdown(m, Scenario(prompt_tokens=1, kv_dtype=kv_dtype, tp=tp))
    if not b.kv_bytes_per_token:
        raise KvdashError("this model holds no per-token cache")
    return budget_bytes // b.kv_bytes_per_token


def valid_tp_degrees(m: ModelSpec, limit: int = 64) -> list[int]:
    out = []
    for t in range(1, limit + 1):
        try:
            check_parallel(m, Scenario(tp=t))
        except KvdashError:
            continue
        out.append(t)
    return out


def gpus_needed(m: ModelSpec, s: Scenario, gpu, limit: int = 64) -> int | None:
    """Smallest tensor-parallel degree at which the scenario fits each GPU; None if none up to limit."""
    cap = _usable(gpu)
    for t in valid_tp_degrees(m, limit):
        if total_bytes_fn(m, s.with_(tp=t), gpu)(s.batch, s.prompt_tokens) <= cap:
            return t
    return None
