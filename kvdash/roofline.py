"""Roofline floors: the least time a step can take on a GPU's memory bandwidth and matrix rate.

A decode step reads every weight once plus the cache of every sequence, so its floor is
bytes / bandwidth. A prefill does about 2 x params x tokens FLOPs for the matrix products plus the
attention products (2 x 2 x heads x head_dim per query-key pair), so its floor is FLOPs / rate.
These are floors, not predictions: real steps add kernel launches and imperfect utilisation.
"""

from __future__ import annotations

from kvdash.breakdown import breakdown
from kvdash.model import SLIDING, ModelSpec
from kvdash.scenario import Scenario


def decode_bytes(m: ModelSpec, s: Scenario) -> int:
    """Bytes one decode step reads at the scenario's context: weights + every cached token."""
    b = breakdown(m, s)
    return b["weights"] + b["kv_cache"]


def prefill_flops(m: ModelSpec, batch: int, tokens: int) -> int:
    """Matrix FLOPs of a prefill of `tokens` per sequence (causal: each query sees its prefix)."""
    matmul = 2 * (m.params - m.vocab_size * m.hidden_size * (1 if m.tie_word_embeddings else 2))
    lm_head = 2 * m.vocab_size * m.hidden_size  # last position only
    pairs = 0
    for kind in m.kinds:  # query-key pairs a causal (or windowed) layer scores
        w = m.sliding_window if kind == SLIDING and m.sliding_window < tokens else tokens
        pairs += w * (w + 1) // 2 + (tokens - w) * w
    attention = 2 * 2 * m.n_heads * m.head_dim * pairs  # QK^T and PV
    return batch * (matmul * tokens + lm_head + attention)


def floor_seconds(work: int, rate_per_s: float) -> float:
    return work / rate_per_s
