"""Exact parameter counts, whole-model and per GPU under tensor parallelism.

Each count is split into `linear` (the weight matrices of attention, MLP and experts: what
quantization shrinks) and `other` (norms, biases, routers: kept in 16-bit). Embeddings and the LM
head are counted separately because pipeline stages place them on the first and last GPU.

Tensor parallelism follows vLLM/Megatron: query/output heads and MLP columns are split t ways,
K/V heads split too but never below one per GPU (replicated when t > n_kv_heads), MLA's
down-projections (q_a, kv_a) and all norms and routers are replicated, vocabularies are split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from kvdash.layers import Tensor
from kvdash.units import cdiv

if TYPE_CHECKING:  # a ModelSpec counts its own parameters with this module
    from kvdash.model import ModelSpec

__all__ = ["EmbeddingParams", "FfnWidths", "LayerParams", "embedding_params", "ffn_tensors", "ffn_widths",
           "layer_params", "layer_tensors", "matrix_params", "total_params"]


@dataclass(frozen=True)
class LayerParams:
    linear: int  # weight matrices: what quantization shrinks
    other: int  # norms, biases, small vectors: kept in 16-bit

    @property
    def total(self) -> int:
        return self.linear + self.other


def _norms(m: ModelSpec, name: str) -> list[tuple[Tensor, int]]:
    parts = ("weight", "bias") if m.norm == "layer" else ("weight",)
    return [(Tensor(f"{name}.{p}", m.hidden_size, role="vector"), 1) for p in parts]


def _matrices(m: ModelSpec, prefix: str, inter: int, role: str, count: int, whole: bool = False,
              width: int = 0) -> list[tuple[Tensor, int]]:
    """Gate (if gated), up and down projections between `width` (default hidden_size) and `inter`; `whole`:
    not sharded by tensor parallelism."""
    h = width or m.hidden_size
    up, down = (None, None) if whole else ("rows", "cols")
    gate = [(Tensor(f"{prefix}.gate_proj", inter, h, up, role=role), count)] if m.gated_mlp else []
    return [*gate, (Tensor(f"{prefix}.up_proj", inter, h, up, role=role), count),
            (Tensor(f"{prefix}.down_proj", h, inter, down, role=role), count)]


@lru_cache(maxsize=1024)
def ffn_tensors(m: ModelSpec, moe: bool, active_only: bool = False, ep: int = 1,
                inter: int = 0) -> tuple[tuple[Tensor, int], ...]:
    """(tensor, how many) of one feed-forward block: a dense MLP (of width `inter`, default the model's), or a
    router, routed experts (all of them, or the ones a token uses) and shared experts. With expert parallelism
    over `ep` GPUs each holds E / ep whole experts instead of a 1/tp shard of every expert."""
    h = m.hidden_size
    if not moe:
        inter = inter or m.intermediate_size
        out = _matrices(m, "mlp", inter, "linear", 1)
        if m.mlp_bias:
            ups = ["gate", "up"] if m.gated_mlp else ["up"]
            out += [(Tensor(f"mlp.{u}_bias", inter, split="rows", role="vector"), 1) for u in ups]
            out.append((Tensor("mlp.down_bias", h, role="vector"), 1))
        return tuple(out)
    out = [(Tensor("router", m.n_experts, h, role="vector"), 1)]
    if m.router_bias:
        out.append((Tensor("router.bias", m.n_experts, role="vector"), 1))
    experts = m.experts_per_token if active_only else m.n_experts
    out += _matrices(m, "experts", m.expert_intermediate_size, "expert", cdiv(experts, ep), whole=ep > 1,
                     width=m.moe_latent_size)
    if m.moe_latent_size:  # the routed experts' way in and out of their narrower space
        out += [(Tensor("latent_in", m.moe_latent_size, h), 1), (Tensor("latent_out", h, m.moe_latent_size), 1)]
    if m.shared_expert_intermediate_size:
        out += _matrices(m, "shared_expert", m.shared_expert_intermediate_size, "linear", 1)
        if m.shared_expert_gate:
            out.append((Tensor("shared_expert_gate", 1, h, role="vector"), 1))
    return tuple(out)


def layer_tensors(m: ModelSpec, i: int, active_only: bool = False, ep: int = 1) -> tuple[tuple[Tensor, int], ...]:
    """The weight table of layer i: its mixer's tensors, its feed-forward block, its norms (per GPU of an
    ep-way expert-parallel group for the routed experts)."""
    # the token mixer's matrices take the mixer's format (ModelSpec.mixer_dtype: all of them, or those the checkpoint
    # names), the rest their own role's
    mixer = [(replace(t, role="mixer") if t.role == "linear" and (not m.mixer_tensors or t.name in m.mixer_tensors)
              else t, 1) for t in m.layers[i].tensors(m.hidden_size)]
    inter = m.intermediate_sizes[i] if m.intermediate_sizes else 0
    ffn = list(ffn_tensors(m, m.moe_mask[i], active_only, ep, inter)) if m.mlp_mask[i] else []
    count = m.layer_norms[i] if m.layer_norms else m.norms_per_layer
    norms = [row for k in range(count) for row in _norms(m, f"norm{k + 1}")]
    if m.draft_head and i == m.n_layers - 1:  # a speculative head's layer (kvdash.speculative)
        return head_layer_tensors(m, (*mixer, *ffn, *norms))
    return (*mixer, *ffn, *norms)


def head_layer_tensors(m: ModelSpec, rows) -> tuple:
    """An EAGLE head's layer (kvdash.speculative.with_eagle) from a target layer's tensors: its matrices in 16 bits
    ("draft"); EAGLE-1 without the input norm, EAGLE-3 with q/k/v reading 2 hidden (the embedding and the target's
    hidden state) and a hidden_norm; and the head's fc."""
    h, out = m.hidden_size, []
    for t, n in rows:
        if t.name.startswith("norm1.") and m.draft_head == "eagle":
            continue  # vLLM replaces layer 0's input_layernorm with an identity
        if t.matrix:
            wide = m.draft_head == "eagle3" and t.name in ("q_proj", "k_proj", "v_proj")
            t = replace(t, role="draft", cols=2 * h if wide else t.cols)
        out.append((t, n))
    if m.draft_head == "eagle3":
        out += [(replace(t, name=t.name.replace("norm1.", "hidden_norm.")), n) for t, n in rows
                if t.name.startswith("norm1.")]
    # fc (no bias), with the layer so that a draft pass times it: EAGLE-1 joins the embedding and the hidden state
    # on every pass; EAGLE-3 the target's three hidden states on the first (timed on every pass: slower)
    wide = 2 if m.draft_head == "eagle" else 3
    return (*out, (Tensor("fc", h, wide * h, role="draft"), 1))


def head_tensors(m: ModelSpec) -> list:
    """An EAGLE head's tensors outside its layer: EAGLE-3's final norm, LM head and d2t."""
    h = m.hidden_size
    if m.draft_head == "eagle":
        return []
    return [(Tensor("eagle3.norm.weight", h, role="vector"), 1),
            (Tensor("eagle3.lm_head", m.draft_vocab, h, "rows", role="embed"), 1),
            (Tensor("eagle3.d2t", m.draft_vocab, role="index"), 1)]


def embedding_tensors(m: ModelSpec) -> dict[str, tuple[tuple[Tensor, int], ...]]:
    """The tensors outside the layers, by where a pipeline places them: first stage, last stage."""
    h = m.hidden_size
    first = [(Tensor("embed_tokens", m.vocab_size, h, "rows", role="embed"), 1)]
    if m.learned_pos_embeddings:
        first.append((Tensor("embed_positions", m.learned_pos_embeddings, h, role="embed"), 1))
    if m.extra_params:
        first.append((Tensor("other (stated by the config reader)", m.extra_params, role="vector"), 1))
    if m.draft_head:
        first += head_tensors(m)
    last = [(Tensor("lm_head", m.vocab_size, h, "rows", role="embed"), 1)]
    return {"first": tuple(first), "head": tuple(last),
            "final_norm": tuple(_norms(m, "final_norm")) if m.final_norm else ()}


def _params(rows, tp: int) -> LayerParams:
    linear = other = 0
    for t, n in rows:
        if t.matrix:
            linear += n * t.numel(tp)
        else:
            other += n * t.numel(tp)
    return LayerParams(linear, other)


@lru_cache(maxsize=256)
def layer_params(m: ModelSpec, tp: int = 1, active_only: bool = False, ep: int = 1) -> tuple[LayerParams, ...]:
    """Per-layer parameters held by one GPU of a tp-way tensor-parallel group."""
    return tuple(_params(layer_tensors(m, i, active_only, ep), tp) for i in range(m.n_layers))


@dataclass(frozen=True)
class EmbeddingParams:
    embed: int  # token embedding (+ learned positions), first pipeline stage
    head: int  # LM head, last pipeline stage; the embedding itself when tied and on one stage
    final_norm: int


def embedding_params(m: ModelSpec, tp: int = 1) -> EmbeddingParams:
    t = embedding_tensors(m)
    first = sum(n * x.numel(tp) for x, n in t["first"]) - m.extra_params
    return EmbeddingParams(embed=first, head=sum(n * x.numel(tp) for x, n in t["head"]),
                           final_norm=sum(n * x.numel(tp) for x, n in t["final_norm"]))


def total_params(m: ModelSpec, active_only: bool = False) -> int:
    e = embedding_params(m)
    body = sum(p.total for p in layer_params(m, 1, active_only))
    head = 0 if m.tie_word_embeddings else e.head
    draft = total_params(m.draft_model, active_only) if m.draft_model is not None else 0  # loaded beside it
    return body + e.embed + head + e.final_norm + m.extra_params + m.encoder_params + draft


@lru_cache(maxsize=256)
def matrix_params(m: ModelSpec) -> tuple[int, int]:
    """(parameters every token multiplies by in the layers: all but the routed experts; parameters of one
    routed expert summed over the MoE layers), from the per-tensor table. Embeddings and the LM head are
    not included (a token reads one embedding row; the head runs only for sampled positions)."""
    shared = expert = 0
    for i in range(m.n_layers):
        for t, n in layer_tensors(m, i):
            if t.role == "expert":
                expert += n * t.numel()
            else:
                shared += n * t.numel()
    return shared, expert // m.n_experts if m.n_experts else 0


@dataclass(frozen=True)
class FfnWidths:
    """Feed-forward widths on one GPU, read from the per-tensor table (the shard of each block's up_proj)."""

    dense: int  # a dense MLP's intermediate size per GPU (0: no dense MLP)
    expert: int  # one routed expert's intermediate size per GPU (whole experts under expert parallelism)
    shared_expert: int  # the shared experts' intermediate size per GPU, together
    matrices: int  # 3 for a gated MLP (gate, up, down), else 2


def _up_rows(rows, prefix: str, tp: int) -> int:
    return next((t.shard(tp)[0] for t, _ in rows if t.name == f"{prefix}.up_proj"), 0)


@lru_cache(maxsize=256)
def ffn_widths(m: ModelSpec, tp: int = 1, ep: int = 1) -> FfnWidths:
    dense = _up_rows(ffn_tensors(m, False), "mlp", tp) if m.intermediate_size else 0
    moe = ffn_tensors(m, True, ep=ep) if m.n_experts else ()
    return FfnWidths(dense, _up_rows(moe, "experts", tp), _up_rows(moe, "shared_expert", tp),
                     3 if m.gated_mlp else 2)
