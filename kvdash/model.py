"""The model description: a frozen, validated record of a decoder transformer's architecture.

Field names follow Hugging Face configs. A model is its layers, one spec per layer (`kvdash.layers`: what
each layer's token mixer stores and computes), its feed-forward blocks (`moe_layers` and `mlp_layers` say
which layers route to experts and which have one at all), its embeddings and norms. Parameter counts come
from the per-tensor table (`kvdash.params`). `decoder()` builds the common case, every layer's attention
of one shape, from the flat fields people write (`layer_types` names full / sliding / mla / linear per
layer); hybrid stacks pass their specs directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from kvdash.errors import KvdashError
from kvdash.layers import FullAttention, LatentAttention, LayerSpec, SlidingWindow, StateLayer, Tensor
from kvdash.params import total_params

# The names `layer_types` accepts (the flat way to describe a model; hybrids pass layer specs).
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
    "draft_vocab": 100_000_000,
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden_size: int
    vocab_size: int
    layer_specs: tuple[LayerSpec, ...]  # each layer's token mixer (equal layers may share one spec object)
    intermediate_size: int = 0  # a dense MLP's width (0: no dense MLP); with intermediate_sizes, the widest
    intermediate_sizes: tuple[int, ...] = ()  # each layer's dense MLP width (NAS stacks); () : intermediate_size
    gated_mlp: bool = True  # SwiGLU/GeGLU: gate, up and down projections
    # Mixture of experts
    n_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    moe_latent_size: int = 0  # routed experts work in this width, projected in and out (Nemotron-3 Super); 0: hidden
    n_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0  # all shared experts together
    shared_expert_gate: bool = False  # Qwen2-MoE's sigmoid gate on the shared expert
    router_bias: bool = False  # DeepSeek-V3's e_score_correction_bias
    moe_layers: tuple[bool, ...] = ()  # () : every layer is MoE when n_experts > 0
    mlp_layers: tuple[bool, ...] = ()  # () : every layer has a feed-forward block (dense or MoE)
    # Embeddings, biases, norms
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 0
    learned_pos_embeddings: int = 0  # rows of a learned position table (GPT-2, OPT)
    mlp_bias: bool = False
    norm: str = "rms"  # "rms": weight only; "layer": weight and bias
    norms_per_layer: int = 2
    layer_norms: tuple[int, ...] = ()  # each layer's norm count where they differ (NAS stacks); () : norms_per_layer
    final_norm: bool = True  # a norm after the last layer (absent in post-LN OPT-350m)
    extra_params: int = 0  # parameters outside this schema, stated by the importer
    mtp_layers: int = 0  # multi-token-prediction modules the checkpoint ships (loaded only for speculative decoding)
    mtp_included: bool = False  # this spec already has them as layers (kvdash.speculative.with_mtp)
    draft_head: str = ""  # "eagle" / "eagle3": the last layer is a speculative head's (kvdash.speculative.with_eagle)
    draft_vocab: int = 0  # an EAGLE-3 head's draft vocabulary (its LM head's rows)
    draft_model: ModelSpec | None = None  # a draft model the engine loads beside it (kvdash.speculative.with_draft)
    encoder_params: int = 0  # a vision tower / audio encoder and its projector: weights, no cache
    default_dtype: str = "bf16"
    weights_format: str = ""  # how the checkpoint stores its matrices (quantization_config); "" = 16-bit
    experts_format: str = ""  # ... and its routed experts, when they differ (gpt-oss: mxfp4)
    # ... and its token mixers' (attention's) matrices, when the checkpoint leaves every layer's unquantized beside
    # quantized MLPs (NVIDIA's NVFP4 exports: exclude_modules "model.layers.N.self_attn*"); mixer_tensors: which of
    # the mixers' matrices it leaves so (() for all of them; DeepSeek's FP4-v2 quantizes o_proj)
    mixer_format: str = ""
    mixer_tensors: tuple[str, ...] = ()
    notes: str = field(default="", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # what the importer could not model

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived shape -------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layer_specs)

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The mixer spec of every layer."""
        return self.layer_specs

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

    def mixer_dtype(self, weights_dtype: str) -> str:
        """The token mixers' matrices' format when the other matrices are in `weights_dtype`: the checkpoint's own
        mixer format where the scenario serves the checkpoint's format, else `weights_dtype` (a format chosen for
        the model applies to all its matrices)."""
        return self.mixer_format if self.mixer_format and weights_dtype == self.weights_format else weights_dtype

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


def _check_int(name: str, v, lo: int) -> None:
    if type(v) is not int:
        raise KvdashError(f"{name} must be an integer, not {v!r}")
    if v < lo or v > LIMITS.get(name, 1 << 50):
        raise KvdashError(f"{name} = {v} is out of range ({lo} to {LIMITS.get(name, 1 << 50):,})")


def _validate(m: ModelSpec) -> None:
    if not isinstance(m.name, str) or not m.name or len(m.name) > 200:
        raise KvdashError("name must be a non-empty string of at most 200 characters")
    for f in fields(m):
        v = getattr(m, f.name)
        if f.type == "int":
            _check_int(f.name, v, 1 if f.name in _POSITIVE else 0)
        elif f.type == "bool" and type(v) is not bool:
            raise KvdashError(f"{f.name} must be true or false, not {v!r}")
    if m.draft_head not in ("", "eagle", "eagle3"):
        raise KvdashError(f"draft_head must be '', 'eagle' or 'eagle3', not {m.draft_head!r}")
    if m.norm not in ("rms", "layer"):
        raise KvdashError(f"norm must be 'rms' or 'layer', not {m.norm!r}")
    if not isinstance(m.layer_specs, tuple) or not 1 <= len(m.layer_specs) <= LIMITS["n_layers"]:
        raise KvdashError(f"a model needs 1 to {LIMITS['n_layers']:,} layers (layer_specs)")
    if not all(isinstance(x, LayerSpec) for x in m.layer_specs):
        raise KvdashError("layer_specs must hold layer specs (kvdash.layers)")
    for name in ("moe_layers", "mlp_layers"):
        mask = getattr(m, name)
        if mask and (len(mask) != m.n_layers or any(type(x) is not bool for x in mask)):
            raise KvdashError(f"{name} must hold true/false for each of the {m.n_layers} layers")
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
    if type(m.moe_latent_size) is not int or not 0 <= m.moe_latent_size <= LIMITS["hidden_size"]:
        raise KvdashError(f"moe_latent_size must be an integer from 0 to {LIMITS['hidden_size']:,}")
    if m.n_shared_experts and not m.shared_expert_intermediate_size:
        raise KvdashError("shared experts need shared_expert_intermediate_size")
    if m.layer_norms and (len(m.layer_norms) != m.n_layers or any(type(x) is not int or not 0 <= x <= 16
                                                                     for x in m.layer_norms)):
        raise KvdashError(f"layer_norms must give each of the {m.n_layers} layers a norm count from 0 to 16")
    sizes = m.intermediate_sizes
    if sizes and (len(sizes) != m.n_layers or any(type(x) is not int or not 1 <= x <= LIMITS["intermediate_size"]
                                                  for x in sizes) or max(sizes) != m.intermediate_size):
        raise KvdashError(f"intermediate_sizes must give each of the {m.n_layers} layers a width from 1 to "
                          f"{LIMITS['intermediate_size']:,}, the widest equal to intermediate_size")


_POSITIVE = {"n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "vocab_size"}


def decoder(name: str, n_layers: int, hidden_size: int, n_heads: int, n_kv_heads: int, head_dim: int,
            vocab_size: int, intermediate_size: int = 0, *, v_head_dim: int = 0, layer_types: tuple[str, ...] = (),
            sliding_window: int = 0, kv_lora_rank: int = 0, q_lora_rank: int = 0, qk_rope_head_dim: int = 0,
            qk_nope_head_dim: int = 0, linear_state_elems: int = 0, linear_layer_params: int = 0,
            qkv_bias: bool = False, o_bias: bool = False, qk_norm: bool = False, **rest) -> ModelSpec:
    """A model whose attention layers share one shape, from the flat fields of a config: `layer_types` names
    each layer full, sliding (window `sliding_window`), mla (the latent sizes) or linear (a generic recurrent
    layer of `linear_state_elems` values per sequence, `linear_layer_params` parameters); () : all full.
    `rest` are ModelSpec's own fields (feed-forward, embeddings, norms, formats)."""
    for key, v in (("n_layers", n_layers), ("n_heads", n_heads), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim),
                   ("v_head_dim", v_head_dim), ("sliding_window", sliding_window), ("kv_lora_rank", kv_lora_rank),
                   ("q_lora_rank", q_lora_rank), ("qk_rope_head_dim", qk_rope_head_dim),
                   ("qk_nope_head_dim", qk_nope_head_dim), ("linear_state_elems", linear_state_elems),
                   ("linear_layer_params", linear_layer_params)):
        _check_int(key, v, 1 if key in _POSITIVE else 0)
    for key, v in (("qkv_bias", qkv_bias), ("o_bias", o_bias), ("qk_norm", qk_norm)):
        if type(v) is not bool:
            raise KvdashError(f"{key} must be true or false, not {v!r}")
    kinds = tuple(layer_types) or (FULL,) * n_layers
    if len(kinds) != n_layers:
        raise KvdashError(f"layer_types lists {len(kinds)} layers but n_layers is {n_layers}")
    bad = [t for t in kinds if t not in LAYER_TYPES]
    if bad:
        raise KvdashError(f"layer_types: unknown kind {bad[0]!r}; use one of {', '.join(LAYER_TYPES)}")
    attention = dict(n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, v_head_dim=v_head_dim,
                     qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm)
    makers = {
        FULL: lambda: FullAttention(**attention),
        SLIDING: lambda: SlidingWindow(**attention, window=sliding_window),
        MLA: lambda: LatentAttention(n_heads=n_heads, kv_lora_rank=kv_lora_rank, qk_rope_head_dim=qk_rope_head_dim,
                                     qk_nope_head_dim=qk_nope_head_dim, v_head_dim=v_head_dim or head_dim,
                                     q_lora_rank=q_lora_rank),
        # its state as one split dimension, its parameters as one matrix
        LINEAR: lambda: StateLayer("linear", conv_dim=0, conv_kernel=0, heads=linear_state_elems, head_state=1,
                                   weights=(Tensor("mixer", 1, linear_layer_params, "cols"),)),
    }
    made: dict[str, LayerSpec] = {}
    specs = tuple(made.setdefault(k, makers[k]()) for k in kinds)  # equal layers share one spec
    return ModelSpec(name=name, hidden_size=hidden_size, vocab_size=vocab_size, layer_specs=specs,
                     intermediate_size=intermediate_size, **rest)


def attention_shape(m: ModelSpec) -> LayerSpec | None:
    """The first attention layer's spec (its heads and head sizes), or None for a model without one."""
    return next((spec for spec in m.layers if spec.heads_label), None)
