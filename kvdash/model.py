"""The model description: a frozen, validated record of a decoder transformer's architecture.

Field names follow Hugging Face configs. Per-layer behaviour lives in two tuples, `layer_types`
(which attention each layer uses, so hybrid stacks are first-class) and `moe_layers` (which layers
route to experts). Parameter counts are derived here, exactly, from the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

from kvdash.errors import KvdashError

FULL = "full"  # full causal attention: holds every token
SLIDING = "sliding"  # sliding-window attention: holds the last `sliding_window` tokens
MLA = "mla"  # multi-head latent attention: holds the compressed latent + shared rope key
LINEAR = "linear"  # linear attention / state space: a fixed state per sequence, no KV cache
LAYER_TYPES = (FULL, SLIDING, MLA, LINEAR)

# Bounds that no real model comes near; they turn typos and garbage into clear errors.
LIMITS = {
    "n_layers": 10_000,
    "hidden_size": 1_000_000,
    "n_heads": 100_000,
    "n_kv_heads": 100_000,
    "head_dim": 65_536,
    "v_head_dim": 65_536,
    "vocab_size": 100_000_000,
    "intermediate_size": 10_000_000,
    "sliding_window": 1 << 34,
    "kv_lora_rank": 1_000_000,
    "q_lora_rank": 1_000_000,
    "qk_rope_head_dim": 65_536,
    "qk_nope_head_dim": 65_536,
    "linear_state_elems": 1 << 40,
    "linear_layer_params": 1 << 40,
    "n_experts": 100_000,
    "experts_per_token": 100_000,
    "expert_intermediate_size": 10_000_000,
    "shared_expert_intermediate_size": 100_000_000,
    "n_shared_experts": 100_000,
    "max_position_embeddings": 1 << 34,
    "learned_pos_embeddings": 1 << 34,
    "norms_per_layer": 16,
    "extra_params": 1 << 50,
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    v_head_dim: int = 0  # 0: same as head_dim
    gated_mlp: bool = True  # SwiGLU/GeGLU: gate, up and down projections
    layer_types: tuple[str, ...] = ()  # () : every layer FULL
    sliding_window: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0  # 0: queries projected directly from the hidden state
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    # Linear-attention / state-space layers
    linear_state_elems: int = 0  # state values held per sequence per LINEAR layer
    linear_layer_params: int = 0  # mixer parameters of one LINEAR layer
    # Mixture of experts
    n_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    n_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0  # all shared experts together
    shared_expert_gate: bool = False  # Qwen2-MoE's sigmoid gate on the shared expert
    router_bias: bool = False  # DeepSeek-V3's e_score_correction_bias
    moe_layers: tuple[bool, ...] = ()  # () : every layer is MoE when n_experts > 0
    # Embeddings, biases, norms
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 0
    learned_pos_embeddings: int = 0  # rows of a learned position table (GPT-2, OPT)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm: str = "rms"  # "rms": weight only; "layer": weight and bias
    norms_per_layer: int = 2
    final_norm: bool = True  # a norm after the last layer (absent in post-LN OPT-350m)
    qk_norm: bool = False  # per-head RMSNorm on queries and keys (Qwen3, Gemma-3)
    extra_params: int = 0  # parameters outside this schema, stated by the importer
    default_dtype: str = "bf16"
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived shape -------------------------------------------------------------------
    @property
    def v_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        return self.layer_types or (FULL,) * self.n_layers

    @cached_property
    def moe_mask(self) -> tuple[bool, ...]:
        if not self.n_experts:
            return (False,) * self.n_layers
        return self.moe_layers or (True,) * self.n_layers

    @cached_property
    def _kind_counts(self) -> dict[str, int]:
        return {k: self.kinds.count(k) for k in LAYER_TYPES}

    def count(self, kind: str) -> int:
        return self._kind_counts[kind]

    def __hash__(self) -> int:
        # Specs key the per-model caches on every slider move: hash the fields once, not each time.
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))
        return h

    @property
    def attention_label(self) -> str:
        """MHA / GQA / MQA / MLA, plus sliding or hybrid when layers differ."""
        present = sorted(set(self.kinds), key=LAYER_TYPES.index)
        if MLA in present:
            base = "MLA"
        elif self.n_kv_heads == self.n_heads:
            base = "MHA"
        elif self.n_kv_heads == 1:
            base = "MQA"
        else:
            base = f"GQA ({self.n_heads // self.n_kv_heads} queries per KV head)"
        if present == [SLIDING]:
            return f"{base}, sliding window {self.sliding_window}"
        if len(present) > 1:
            parts = ", ".join(f"{self.count(k)} {k}" for k in present)
            return f"{base}, hybrid: {parts}"
        return base

    # ---- parameters ------------------------------------------------------------------------
    @cached_property
    def params(self) -> int:
        """Exact parameter count of the checkpoint's tensors (embeddings counted once if tied)."""
        from kvdash.params import total_params

        return total_params(self)

    @cached_property
    def active_params(self) -> int:
        """Parameters used per token: for MoE, only the routed experts actually chosen."""
        from kvdash.params import total_params

        return total_params(self, active_only=True)

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def _validate(m: ModelSpec) -> None:
    if not isinstance(m.name, str) or not m.name or len(m.name) > 200:
        raise KvdashError("name must be a non-empty string of at most 200 characters")
    for f in fields(m):
        v = getattr(m, f.name)
        if f.type == "int":
            if type(v) is not int:
                raise KvdashError(f"{f.name} must be an integer, not {v!r}")
            lo = 1 if f.name in _POSITIVE else 0
            if v < lo or v > LIMITS.get(f.name, 1 << 50):
                raise KvdashError(f"{f.name} = {v} is out of range ({lo} to {LIMITS.get(f.name, 1 << 50):,})")
        elif f.type == "bool" and type(v) is not bool:
            raise KvdashError(f"{f.name} must be true or false, not {v!r}")
    if m.norm not in ("rms", "layer"):
        raise KvdashError(f"norm must be 'rms' or 'layer', not {m.norm!r}")
    if m.layer_types:
        if len(m.layer_types) != m.n_layers:
            raise KvdashError(
                f"layer_types lists {len(m.layer_types)} layers but n_layers is {m.n_layers}"
            )
        bad = [t for t in m.layer_types if t not in LAYER_TYPES]
        if bad:
            raise KvdashError(f"layer_types: unknown kind {bad[0]!r}; use one of {', '.join(LAYER_TYPES)}")
    kinds = set(m.layer_types or (FULL,))
    if kinds & {FULL, SLIDING} and m.n_heads % m.n_kv_heads:
        raise KvdashError(
            f"n_heads ({m.n_heads}) must be a multiple of n_kv_heads ({m.n_kv_heads})"
        )
    if SLIDING in kinds and not m.sliding_window:
        raise KvdashError("sliding layers need sliding_window >= 1")
    if MLA in kinds and not (m.kv_lora_rank and m.qk_rope_head_dim and m.qk_nope_head_dim):
        raise KvdashError("latent (MLA) layers need kv_lora_rank, qk_rope_head_dim and qk_nope_head_dim")
    if LINEAR in kinds and not m.linear_state_elems:
        raise KvdashError("linear/state-space layers need linear_state_elems >= 1")
    if m.n_experts:
        if not 1 <= m.experts_per_token <= m.n_experts:
            raise KvdashError(
                f"experts_per_token ({m.experts_per_token}) must be between 1 and n_experts ({m.n_experts})"
            )
        if not m.expert_intermediate_size:
            raise KvdashError("MoE models need expert_intermediate_size >= 1")
        if m.moe_layers and len(m.moe_layers) != m.n_layers:
            raise KvdashError(f"moe_layers lists {len(m.moe_layers)} layers but n_layers is {m.n_layers}")
        if any(type(x) is not bool for x in m.moe_layers):
            raise KvdashError("moe_layers must hold true/false per layer")
    elif m.moe_layers or m.experts_per_token:
        raise KvdashError("moe_layers / experts_per_token given without n_experts")
    if not m.intermediate_size and not all(m.moe_mask):
        raise KvdashError("intermediate_size must be >= 1 (dense MLP layers need it)")
    if m.n_shared_experts and not m.shared_expert_intermediate_size:
        raise KvdashError("shared experts need shared_expert_intermediate_size")


_POSITIVE = {"n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "vocab_size"}
