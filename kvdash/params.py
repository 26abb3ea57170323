"""Exact parameter counts, whole-model and per GPU under tensor parallelism.

Each count is split into `linear` (the weight matrices of attention, MLP and experts: what
quantization shrinks) and `other` (norms, biases, routers: kept in 16-bit). Embeddings and the LM
head are counted separately because pipeline stages place them on the first and last GPU.

Tensor parallelism follows vLLM/Megatron: query/output heads and MLP columns are split t ways,
K/V heads split too but never below one per GPU (replicated when t > n_kv_heads), MLA's
down-projections (q_a, kv_a) and all norms and routers are replicated, vocabularies are split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kvdash.layers import LayerParams
from kvdash.model import ModelSpec
from kvdash.units import cdiv

__all__ = ["EmbeddingParams", "LayerParams", "embedding_params", "layer_params", "total_params"]


def _norm(m: ModelSpec, dim: int) -> int:
    return dim * (2 if m.norm == "layer" else 1)


def _mlp(m: ModelSpec, moe: bool, tp: int, active_only: bool) -> LayerParams:
    h = m.hidden_size
    mats = 3 if m.gated_mlp else 2
    if not moe:
        inter = cdiv(m.intermediate_size, tp)
        bias = (mats - 1) * inter + h if m.mlp_bias else 0
        return LayerParams(mats * h * inter, bias)
    experts = m.experts_per_token if active_only else m.n_experts
    linear = experts * mats * h * cdiv(m.expert_intermediate_size, tp)
    other = h * m.n_experts + (m.n_experts if m.router_bias else 0)
    if m.shared_expert_intermediate_size:
        linear += mats * h * cdiv(m.shared_expert_intermediate_size, tp)
        other += h if m.shared_expert_gate else 0
    return LayerParams(linear, other)


@lru_cache(maxsize=256)
def layer_params(m: ModelSpec, tp: int = 1, active_only: bool = False) -> tuple[LayerParams, ...]:
    """Per-layer parameters held by one GPU of a tp-way tensor-parallel group."""
    norms = m.norms_per_layer * _norm(m, m.hidden_size)
    out = []
    for spec, mlp, moe in zip(m.layers, m.mlp_mask, m.moe_mask, strict=True):
        a = spec.params(m.hidden_size, tp)
        f = _mlp(m, moe, tp, active_only) if mlp else LayerParams(0, 0)
        out.append(LayerParams(a.linear + f.linear, a.other + f.other + norms))
    return tuple(out)


@dataclass(frozen=True)
class EmbeddingParams:
    embed: int  # token embedding (+ learned positions), first pipeline stage
    head: int  # LM head, last pipeline stage; the embedding itself when tied and on one stage
    final_norm: int


def embedding_params(m: ModelSpec, tp: int = 1) -> EmbeddingParams:
    vocab = cdiv(m.vocab_size, tp) * m.hidden_size
    return EmbeddingParams(
        embed=vocab + m.learned_pos_embeddings * m.hidden_size,
        head=vocab,
        final_norm=_norm(m, m.hidden_size) if m.final_norm else 0,
    )


def total_params(m: ModelSpec, active_only: bool = False) -> int:
    e = embedding_params(m)
    body = sum(p.total for p in layer_params(m, 1, active_only))
    head = 0 if m.tie_word_embeddings else e.head
    return body + e.embed + head + e.final_norm + m.extra_params + m.encoder_params
