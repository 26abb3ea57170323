"""The model description: a frozen, validated record of a decoder transformer's architecture.

Field names follow Hugging Face configs. Each layer's token mixer is a layer spec (`kvdash.layers`):
`layers` gives them, one per layer, either explicitly (`layer_specs`, as the config reader builds
hybrid stacks) or from the flat fields below (`layer_types` names full / sliding / mla / linear per
layer, with the shared head sizes), which keeps simple models simple to write. `moe_layers` and
`mlp_layers` say which layers route to experts and which have a feed-forward block at all.
Parameter counts are derived exactly from the architecture (`kvdash.params`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from kvdash.errors import KvdashError
from kvdash.layers import LayerSpec, legacy_layer
from kvdash.params import total_params

# The names `layer_types` accepts (the flat way to describe a model; hybrids use layer_specs).
FULL = "full"  # full causal attention: holds every token
SLIDING = "sliding"  # sliding-window attention: holds the last `sliding_window` tokens
MLA = "mla"  # multi-head latent attention: holds the compressed latent + shared rope key
LINEAR = "linear"  # a generic recurrent layer: `linear_state_elems` values per sequence
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
    mlp_layers: tuple[bool, ...] = ()  # () : every layer has a feed-forward block (dense or MoE)
    layer_specs: tuple[LayerSpec, ...] = ()  # explicit mixers, one per layer; () : from layer_types
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
    encoder_params: int = 0  # a vision tower / audio encoder and its projector: weights, no cache
    default_dtype: str = "bf16"
    weights_format: str = ""  # how the checkpoint stores its matrices (quantization_config); "" = 16-bit
    experts_format: str = ""  # ... and its routed experts, when they differ (gpt-oss: mxfp4)
    notes: str = field(default="", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # what the importer could not model

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived shape -------------------------------------------------------------------
    @property
    def v_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    @cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The mixer spec of every layer (equal layers share one spec object)."""
        if self.layer_specs:
            return self.layer_specs
        made: dict[str, LayerSpec] = {}
        return tuple(made.setdefault(k, legacy_layer(self, k)) for k in self.layer_types or (FULL,) * self.n_layers)

    @cached_property
    def layer_groups(self) -> tuple[tuple[LayerSpec, int], ...]:
        """(spec, number of layers) for each distinct spec, in order of first appearance."""
        counts: dict[LayerSpec, int] = {}
        for spec in self.layers:
            counts[spec] = counts.get(spec, 0) + 1
        return tuple(counts.items())

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        return tuple(spec.kind for spec in self.layers)

    @cached_property
    def moe_mask(self) -> tuple[bool, ...]:
        """Which layers route to experts (a layer without a feed-forward block never does)."""
        if not self.n_experts:
            return (False,) * self.n_layers
        return tuple(moe and mlp for moe, mlp in zip(self.moe_layers or (True,) * self.n_layers, self.mlp_mask,
                                                      strict=True))

    @cached_property
    def mlp_mask(self) -> tuple[bool, ...]:
        return self.mlp_layers or (True,) * self.n_layers

    @cached_property
    def _kind_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k] = out.get(k, 0) + 1
        return out

    def count(self, kind: str) -> int:
        return self._kind_counts.get(kind, 0)

    def map_layers(self, fn, name: str | None = None) -> ModelSpec:
        """A copy with every layer spec replaced by fn(spec) (the dashboard's what-if variants)."""
        return replace(self, layer_specs=tuple(fn(spec) for spec in self.layers), name=name or self.name)

    def __hash__(self) -> int:
        # Specs key the per-model caches on every slider move: hash the fields once, not each time.
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))
        return h

    @property
    def attention_label(self) -> str:
        """MHA / GQA / MQA / MLA of the attention layers, then the layer kinds when they differ."""
        base = next((spec.heads_label for spec in self.layers if spec.heads_label), "no attention")
        shorts: dict[str, int] = {}
        for spec, n in self.layer_groups:
            shorts[spec.short] = shorts.get(spec.short, 0) + n
        if len(shorts) == 1:
            (only,) = shorts
            return base if only in ("full", "MLA") else f"{base}, {only}"
        return f"{base}, hybrid: " + ", ".join(f"{n} {k}" for k, n in shorts.items())

    # ---- parameters ------------------------------------------------------------------------
    @cached_property
    def params(self) -> int:
        """Exact parameter count of the checkpoint's tensors (embeddings counted once if tied)."""
        return total_params(self)

    @cached_property
    def active_params(self) -> int:
        """Parameters used per token: for MoE, only the routed experts actually chosen."""
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
    for name in ("moe_layers", "mlp_layers"):
        mask = getattr(m, name)
        if mask and (len(mask) != m.n_layers or any(type(x) is not bool for x in mask)):
            raise KvdashError(f"{name} must hold true/false for each of the {m.n_layers} layers")
    if m.layer_specs:
        if len(m.layer_specs) != m.n_layers:
            raise KvdashError(f"layer_specs lists {len(m.layer_specs)} layers but n_layers is {m.n_layers}")
        if not all(isinstance(x, LayerSpec) for x in m.layer_specs):
            raise KvdashError("layer_specs must hold layer specs (kvdash.layers)")
        return _validate_ffn(m)
    if m.layer_types:
        if len(m.layer_types) != m.n_layers:
            raise KvdashError(
                f"layer_types lists {len(m.layer_types)} layers but n_layers is {m.n_layers}"
            )
        bad = [t for t in m.layer_types if t not in LAYER_TYPES]
        if bad:
            raise KvdashError(f"layer_types: unknown kind {bad[0]!r}; use one of {', '.join(LAYER_TYPES)}")
    _ = m.layers  # builds (and so validates) each layer's spec from the flat fields
    _validate_ffn(m)


def _validate_ffn(m: ModelSpec) -> None:
    if m.n_experts:
        if not 1 <= m.experts_per_token <= m.n_experts:
            raise KvdashError(
                f"experts_per_token ({m.experts_per_token}) must be between 1 and n_experts ({m.n_experts})"
            )
        if not m.expert_intermediate_size:
            raise KvdashError("MoE models need expert_intermediate_size >= 1")
    elif m.moe_layers or m.experts_per_token:
        raise KvdashError("moe_layers / experts_per_token given without n_experts")
    dense = [mlp and not moe for mlp, moe in zip(m.mlp_mask, m.moe_mask, strict=True)]
    if not m.intermediate_size and any(dense):
        raise KvdashError("intermediate_size must be >= 1 (dense MLP layers need it)")
    if m.n_shared_experts and not m.shared_expert_intermediate_size:
        raise KvdashError("shared experts need shared_expert_intermediate_size")


_POSITIVE = {"n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "vocab_size"}
