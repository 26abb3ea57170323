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

from kvdash.model import FULL, LINEAR, MLA, SLIDING, ModelSpec
from kvdash.units import cdiv


def kv_heads_per_gpu(m: ModelSpec, tp: int) -> int:
    """K/V heads each GPU holds: split when possible, one replicated head otherwise."""
    return max(1, m.n_kv_heads // tp)


@dataclass(frozen=True)
class LayerParams:
    linear: int
    other: int

    @property
    def total(self) -> int:
        return self.linear + self.other


def _norm(m: ModelSpec, dim: int) -> int:
    return dim * (2 if m.norm == "layer" else 1)


def _attention(m: ModelSpec, kind: str, tp: int) -> LayerParams:
    h = m.hidden_size
    nh = m.n_heads // tp
    if kind in (FULL, SLIDING):
        kv = kv_heads_per_gpu(m, tp)
        q, k, v = nh * m.head_dim, kv * m.head_dim, kv * m.v_dim
        linear = h * (q + k + v) + nh * m.v_dim * h
        other = (q + k + v if m.qkv_bias else 0) + (h if m.o_bias else 0)
        other += 2 * m.head_dim if m.qk_norm else 0
        return LayerParams(linear, other)
    if kind == MLA:
        q_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:  # q_a (replicated) -> norm -> q_b (split by heads)
            linear = h * m.q_lora_rank + m.q_lora_rank * nh * q_dim
            other = m.q_lora_rank
        else:
            linear, other = h * nh * q_dim, 0
        linear += h * (m.kv_lora_rank + m.qk_rope_head_dim)  # kv_a with the shared rope key
        linear += m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_dim)  # kv_b up-projection
        linear += nh * m.v_dim * h  # o_proj
        return LayerParams(linear, other + m.kv_lora_rank)
    assert kind == LINEAR
    return LayerParams(cdiv(m.linear_layer_params, tp), 0)


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
    for kind, moe in zip(m.kinds, m.moe_mask, strict=False):
        a = _attention(m, kind, tp)
        f = _mlp(m, moe, tp, active_only)
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
    return body + e.embed + head + e.final_norm + m.extra_params
