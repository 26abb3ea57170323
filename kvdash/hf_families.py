"""Config readers for hybrid, state-space, chunked, cross-attention and older-dialect families.

Each reader resolves the family's layer pattern exactly as its reference modelling code does and
builds one layer spec per layer (kvdash.layers). Field names come from the families' config.json;
the rule each reader follows is quoted in its docstring. kvdash.hf_config picks the reader by model_type.
"""

from __future__ import annotations

from dataclasses import replace

from kvdash.errors import KvdashError
from kvdash.hf_readers import (
    _common,
    _Fields,
    _heads,
    _layers,
    _pattern_list,
    _qwen,
    _show,
    _sliding_pattern,
    _window,
)
from kvdash.layers import (
    BlockSparse,
    ChunkedLocal,
    CrossAttention,
    FullAttention,
    LatentAttention,
    NoCache,
    SlidingWindow,
    gated_deltanet,
    kda,
    mamba1,
    mamba2,
    rg_lru,
    rwkv4,
    short_conv,
)
from kvdash.model import FULL, LIMITS, SLIDING, ModelSpec
from kvdash.units import cdiv


def _attention(f: _Fields, bias: bool = False, **kw) -> FullAttention:
    _, heads, kv, hd = _heads(f)
    return FullAttention(n_heads=heads, n_kv_heads=kv, head_dim=hd, qkv_bias=bias, o_bias=bias, **kw)


def _ssm_fp32(f: _Fields) -> bool:
    """Whether the config asks for the recurrent state in fp32 (vLLM honours these fields)."""
    return "float32" in (f.str("mamba_ssm_dtype") or "", f.str("mamba_ssm_cache_dtype") or "")


def _with_specs(f: _Fields, name: str, specs: list, **kw) -> ModelSpec:
    """A ModelSpec from explicit layer specs (the family reader read the layer pattern itself)."""
    return _common(f, name, layer_specs=tuple(specs), **kw)


# ---- hybrids and state-space models -------------------------------------------------------------------
def _jamba(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Jamba (modeling_jamba.py): layer i is attention when i % attn_layer_period == attn_layer_offset,
    Mamba-1 otherwise; MoE when i % expert_layer_period == expert_layer_offset."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    period, offset = f.int("attn_layer_period", default=8), f.int("attn_layer_offset", default=4, lo=0)
    e_period, e_offset = f.int("expert_layer_period", default=2), f.int("expert_layer_offset", default=1, lo=0)
    expand, d_state = f.int("mamba_expand", default=2), f.int("mamba_d_state", default=16)
    dt_rank = f.cfg.get("mamba_dt_rank", "auto")
    dt_rank = cdiv(hidden, 16) if dt_rank == "auto" else f.int("mamba_dt_rank")
    mamba = mamba1(hidden, expand * hidden, d_state, f.int("mamba_d_conv", default=4), dt_rank,
                   conv_bias=f.bool("mamba_conv_bias", True), proj_bias=f.bool("mamba_proj_bias", False),
                   bcdt_norms=True)
    attn = _attention(f)
    specs = [attn if i % period == offset else mamba for i in range(n)]
    experts = f.int("num_experts", default=1)
    inter = f.int("intermediate_size", hi=LIMITS["intermediate_size"])
    kw: dict = {}
    if experts > 1:
        kw = dict(n_experts=experts, experts_per_token=f.int("num_experts_per_tok", default=2),
                  expert_intermediate_size=inter,
                  moe_layers=tuple(i % e_period == e_offset for i in range(n)))
    return _with_specs(f, name, specs, **kw)


_NEMOTRON_H = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
_NEMOTRON_H_NAMES = {v: k for k, v in _NEMOTRON_H.items()}


def _nemotron_h(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Nemotron-H (modeling_nemotron_h.py): `hybrid_override_pattern` has one character per block:
    M Mamba-2, * attention, - MLP, E mixture of experts. Each block is one RMSNorm and one mixer. The newer
    `layers_block_type` list may stand for num_hidden_layers (Nemotron-3 Ultra's config has only the list)."""
    listed = f.list("layers_block_type")
    n = _layers(f) if f.has("num_hidden_layers") or listed is None else len(listed)
    hidden = f.int("hidden_size", hi=LIMITS["hidden_size"])
    blocks = _pattern_list(f, "layers_block_type", n, _NEMOTRON_H_NAMES)  # the newer list form
    pattern = "".join(blocks) if blocks else f.str("hybrid_override_pattern")
    if pattern is None or len(pattern) != n or set(pattern) - set(_NEMOTRON_H):
        raise KvdashError(f"config field 'hybrid_override_pattern' must have one of M * - E for each of the {n} "
                          f"layers, not {_show(pattern)}")
    heads, head_dim = f.int("mamba_num_heads"), f.int("mamba_head_dim")
    mamba = mamba2(hidden, heads * head_dim, f.int("ssm_state_size"), f.int("conv_kernel", default=4), heads,
                   f.int("n_groups", default=1), conv_bias=f.bool("use_conv_bias", True),
                   proj_bias=f.bool("use_bias", False), recurrent_fp32=_ssm_fp32(f))
    cfg = dict(f.cfg)
    if f.has("attention_head_dim") and not f.has("head_dim"):
        cfg["head_dim"] = f.int("attention_head_dim")
    attn = _attention(_Fields(cfg), bias=f.bool("attention_bias", False))
    specs = [{"M": mamba, "*": attn}.get(c, NoCache()) for c in pattern]
    kw: dict = dict(gated_mlp=False, norms_per_layer=1, mlp_layers=tuple(c in "-E" for c in pattern),
                    intermediate_size=f.int("intermediate_size", default=0, lo=0))
    if "E" in pattern:
        moe = f.int("moe_intermediate_size")
        shared = f.int("n_shared_experts", default=0, lo=0)
        kw.update(n_experts=f.int("n_routed_experts"), experts_per_token=f.int("num_experts_per_tok"),
                  expert_intermediate_size=moe, moe_layers=tuple(c == "E" for c in pattern),
                  n_shared_experts=shared, router_bias=True,
                  shared_expert_intermediate_size=shared * f.int("moe_shared_expert_intermediate_size", default=moe))
        # Nemotron-3 Super's latent MoE: the routed experts work in moe_latent_size, with fc1_latent_proj and
        # fc2_latent_proj around them (NemotronHMoE)
        kw["moe_latent_size"] = f.int("moe_latent_size", default=0, lo=0, hi=hidden)
    return _with_specs(_Fields(cfg), name, specs, **kw)


def _mamba2_fields(f: _Fields, hidden: int):
    """The Mamba-2 mixer of Bamba and Granite-4.0-H (mamba_n_heads, mamba_d_head, mamba_d_state, ...)."""
    heads = f.int("mamba_n_heads")
    d_inner = f.int("mamba_expand", default=2) * hidden
    return mamba2(hidden, d_inner, f.int("mamba_d_state"), f.int("mamba_d_conv", default=4), heads,
                  f.int("mamba_n_groups", default=1), conv_bias=f.bool("mamba_conv_bias", True),
                  proj_bias=f.bool("mamba_proj_bias", False), recurrent_fp32=_ssm_fp32(f))


def _granite_hybrid(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Granite-4.0-H (modeling_granitemoehybrid.py): `layer_types` names each layer mamba (Mamba-2) or
    attention; every layer has a gated shared MLP of `shared_intermediate_size` and, with
    num_local_experts > 0, gated experts of `intermediate_size` behind a bias-free router."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    specs = _pattern_list(f, "layer_types", n, {"mamba": _mamba2_fields(f, hidden), "attention": _attention(f)})
    if specs is None:
        raise KvdashError("config is missing 'layer_types' (mamba / attention per layer)")
    shared = f.int("shared_intermediate_size", hi=LIMITS["intermediate_size"])
    experts = f.int("num_local_experts", default=0, lo=0)
    cfg = dict(f.cfg, intermediate_size=shared)
    kw: dict = {}
    if experts:
        kw = dict(n_experts=experts, experts_per_token=f.int("num_experts_per_tok"),
                  expert_intermediate_size=f.int("intermediate_size"), n_shared_experts=1,
                  shared_expert_intermediate_size=shared)
    return _with_specs(_Fields(cfg), name, specs, tie_word_embeddings=f.bool("tie_word_embeddings", True), **kw)


def _bamba(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Bamba (modeling_bamba.py): attention at the layers in `attn_layer_indices`, Mamba-2 elsewhere;
    a dense gated MLP in every layer."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    at = f.list("attn_layer_indices") or []
    if any(type(i) is not int or not 0 <= i < n for i in at):
        raise KvdashError("config field 'attn_layer_indices' must list layer indices")
    mamba, attn = _mamba2_fields(f, hidden), _attention(f)
    return _with_specs(f, name, [attn if i in at else mamba for i in range(n)])


def _mamba(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Mamba / Falcon-Mamba (modeling_mamba.py): every layer one RMSNorm and a Mamba-1 mixer, no MLP."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    d_inner = f.int("intermediate_size", default=f.int("expand", default=2) * hidden)
    dt_rank = f.cfg.get("time_step_rank", "auto")
    dt_rank = cdiv(hidden, 16) if dt_rank == "auto" else f.int("time_step_rank")
    mixer = mamba1(hidden, d_inner, f.int("state_size", default=16), f.int("conv_kernel", default=4), dt_rank,
                   conv_bias=f.bool("use_conv_bias", True), proj_bias=f.bool("use_bias", False))
    cfg = dict(f.cfg, intermediate_size=1)  # no MLP: the field is the mixer's width
    return _with_specs(_Fields(cfg), name, [mixer] * n, mlp_layers=(False,) * n, norms_per_layer=1,
                       tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _mamba2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Mamba-2 (modeling_mamba2.py): every layer one RMSNorm and a Mamba-2 mixer, no MLP."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    heads, head_dim = f.int("num_heads"), f.int("head_dim", default=64)
    mixer = mamba2(hidden, heads * head_dim, f.int("state_size", default=128), f.int("conv_kernel", default=4),
                   heads, f.int("n_groups", default=1), conv_bias=f.bool("use_conv_bias", True),
                   proj_bias=f.bool("use_bias", False))
    return _with_specs(f, name, [mixer] * n, mlp_layers=(False,) * n, norms_per_layer=1, intermediate_size=0,
                       tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _qwen3_next(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Qwen3-Next / Qwen3.5 (modeling_qwen3_next.py): `layer_types` names each layer full_attention or
    linear_attention (Gated DeltaNet); without it, every full_attention_interval-th layer is full."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    gdn = gated_deltanet(hidden, f.int("linear_num_key_heads"), f.int("linear_num_value_heads"),
                         f.int("linear_key_head_dim"), f.int("linear_value_head_dim"),
                         f.int("linear_conv_kernel_dim", default=4), recurrent_fp32=_ssm_fp32(f))
    attn = _attention(f, qk_norm=True, gated_q=f.bool("attn_output_gate", True))
    kinds = _pattern_list(f, "layer_types", n, {"full_attention": attn, "linear_attention": gdn})
    if kinds is None:
        interval = f.int("full_attention_interval", default=4)
        kinds = [attn if (i + 1) % interval == 0 else gdn for i in range(n)]
    kw: dict = {}
    if f.has("num_experts"):
        step = f.int("decoder_sparse_step", default=1)
        dense = f.list("mlp_only_layers") or []
        shared = f.int("shared_expert_intermediate_size", default=0, lo=0)
        kw = dict(n_experts=f.int("num_experts"), experts_per_token=f.int("num_experts_per_tok"),
                  expert_intermediate_size=f.int("moe_intermediate_size"),
                  moe_layers=tuple((i + 1) % step == 0 and i not in dense for i in range(n)),
                  n_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared,
                  shared_expert_gate=bool(shared))
    return _with_specs(f, name, kinds, **kw)


def _kimi_linear(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Kimi-Linear (modeling_kimi_linear.py, configuration_kimi_linear.py): Kimi Delta Attention layers
    interleaved with latent-attention (MLA, no rotary) layers, listed 1-indexed in the checkpoint's
    `linear_attn_config` (full_attn_layers, kda_layers; else `layer_types`, else every 4th layer from the
    second full); DeepSeek-style experts after the first `first_k_dense_replace` dense layers."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    lin = f.cfg.get("linear_attn_config") or {}
    if not isinstance(lin, dict):
        raise KvdashError(f"config field 'linear_attn_config' must be an object, not {_show(lin)}")
    g = _Fields(lin, "linear_attn_config.")
    delta = kda(hidden, g.int("num_heads", default=f.int("linear_num_heads", default=32)),
                g.int("head_dim", default=f.int("linear_head_dim", default=128)),
                g.int("short_conv_kernel_size", default=f.int("linear_conv_kernel_dim", default=4)))
    heads = f.int("num_attention_heads", hi=LIMITS["n_heads"])
    mla = LatentAttention(n_heads=heads, kv_lora_rank=f.int("kv_lora_rank", default=512),
                          qk_rope_head_dim=f.int("qk_rope_head_dim", default=64),
                          qk_nope_head_dim=f.int("qk_nope_head_dim", default=128),
                          v_head_dim=f.int("v_head_dim", default=128),
                          q_lora_rank=f.int("q_lora_rank", default=0, lo=0))
    full, linear = g.list("full_attn_layers"), g.list("kda_layers")
    if full is not None and linear is not None:
        if sorted([*full, *linear]) != list(range(1, n + 1)):
            raise KvdashError(f"linear_attn_config's full_attn_layers and kda_layers must number the {n} layers "
                              "1 to n once each")
        specs = [mla if i + 1 in full else delta for i in range(n)]
    else:
        specs = _pattern_list(f, "layer_types", n, {"full_attention": mla, "linear_attention": delta}) or \
            [mla if i and i % 4 == 0 else delta for i in range(n)]
    experts = f.int("num_experts", "num_local_experts", "n_routed_experts", default=0, lo=0, hi=LIMITS["n_experts"])
    kw: dict = {}
    if experts:
        first_dense = f.int("first_k_dense_replace", default=1, lo=0, hi=LIMITS["n_layers"])
        inter = f.int("moe_intermediate_size", hi=LIMITS["expert_intermediate_size"])
        shared = f.int("num_shared_experts", "n_shared_experts", default=0, lo=0, hi=LIMITS["n_shared_experts"])
        kw = dict(n_experts=experts, experts_per_token=f.int("num_experts_per_token", "num_experts_per_tok"),
                  expert_intermediate_size=inter, n_shared_experts=shared,
                  shared_expert_intermediate_size=shared * inter, router_bias=True,
                  moe_layers=tuple(i >= first_dense for i in range(n)))
    return _with_specs(f, name, specs, tie_word_embeddings=f.bool("tie_word_embeddings", False), **kw)


def _nemotron_nas(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Llama-Nemotron Super / Ultra / Nano (DeciLM, model_type nemotron-nas): a Llama whose layers a
    neural-architecture search made unequal. `block_configs` gives each layer its attention (n_heads_in_group:
    num_attention_heads // n_heads_in_group K/V heads; no_op: no attention, no cache, no input norm) and its
    MLP (ffn_mult: width _find_multiple(int(2 x ffn_mult x hidden / 3), 256); no_op: none, no post-attention
    norm) — vLLM's models/nemotron_nas.py and the checkpoints' modeling_decilm.py. Blocks replaced by a
    linear map, or with an attention window, are not modelled by vLLM's loader and are refused here."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("num_attention_heads", hi=LIMITS["n_heads"])
    head_dim = f.int("head_dim", default=hidden // heads, hi=LIMITS["head_dim"])
    blocks = f.list("block_configs")
    if blocks is None or len(blocks) != n or not all(isinstance(b, dict) for b in blocks):
        raise KvdashError(f"config field 'block_configs' must list one block for each of the {n} layers")
    specs, widths, norms = [], [], []
    for i, b in enumerate(blocks):
        attn, ffn = b.get("attention") or {}, b.get("ffn") or {}
        if not isinstance(attn, dict) or not isinstance(ffn, dict):
            raise KvdashError(f"config field 'block_configs[{i}]' needs 'attention' and 'ffn' objects")
        a, m = _Fields(attn, f"block_configs[{i}].attention."), _Fields(ffn, f"block_configs[{i}].ffn.")
        for part, g in (("attention", a), ("ffn", m)):
            if g.bool("replace_with_linear", False):
                raise KvdashError(f"block_configs[{i}].{part}.replace_with_linear is not modelled (vLLM's "
                                  "nemotron_nas loader does not build it either)")
        if attn.get("window_length") not in (None, 0):
            raise KvdashError(f"block_configs[{i}].attention.window_length (windowed attention) is not modelled")
        if a.bool("no_op", False):
            specs.append(NoCache())
        else:
            group = a.int("n_heads_in_group", hi=LIMITS["n_heads"])
            if heads % group:
                raise KvdashError(f"block_configs[{i}].attention.n_heads_in_group ({group}) must divide the "
                                  f"{heads} attention heads")
            specs.append(FullAttention(heads, heads // group, head_dim))
        if m.bool("no_op", False):
            widths.append(0)
        elif ffn.get("ffn_mult") is not None:
            mult = ffn["ffn_mult"]
            if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not 0 < mult <= 64:
                raise KvdashError(f"config field 'block_configs[{i}].ffn.ffn_mult' = {_show(mult)} must be a "
                                  "positive number")
            # DeciLM's _ffn_mult_to_intermediate_size: int(2 x ffn_mult x hidden / 3), rounded up to 256
            widths.append(cdiv(int(2 * mult * hidden / 3), 256) * 256)
        else:
            widths.append(m.int("intermediate_size", hi=LIMITS["intermediate_size"]))
        norms.append(int(not a.bool("no_op", False)) + int(not m.bool("no_op", False)))
    kw: dict = dict(intermediate_size=max(widths), mlp_layers=tuple(w > 0 for w in widths), layer_norms=tuple(norms))
    if len(set(w for w in widths if w)) > 1:
        kw["intermediate_sizes"] = tuple(w or max(widths) for w in widths)
    return _with_specs(f, name, specs, tie_word_embeddings=f.bool("tie_word_embeddings", False), **kw)


def _rwkv(f: _Fields, name: str, mt: str) -> ModelSpec:
    """RWKV-4 (modeling_rwkv.py): every layer a time mixing with a fixed state and a channel mixing (a
    squared-ReLU MLP of intermediate_size, default 4 x hidden, with a receptance gate); LayerNorms with
    biases, one more before the first layer; an untied head. No engine kvdash models serves it."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    attention = f.int("attention_hidden_size", default=hidden, hi=LIMITS["hidden_size"])
    inter = f.int("intermediate_size", default=4 * hidden, hi=LIMITS["intermediate_size"])
    cfg = dict(f.cfg, intermediate_size=inter)
    spec = _with_specs(_Fields(cfg), name, [rwkv4(hidden, attention)] * n, gated_mlp=False, norm="layer",
                       extra_params=2 * hidden, tie_word_embeddings=f.bool("tie_word_embeddings", False))
    return replace(spec, warnings=(*spec.warnings, "vLLM, SGLang and TensorRT-LLM do not serve RWKV: under their "
                                   "runtimes kvdash shows what such an engine would hold, not a measured one"))


def _olmo2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """OLMo-2 / OLMo-3 (modeling_olmo2.py, modeling_olmo3.py): RMSNorms on the whole q and k projections (not
    per head), norms after attention and after the MLP (none before); OLMo-3 slides 3 layers in 4 by default
    (configuration_olmo3.py: sliding unless (i + 1) % 4 == 0), `layer_types` wins."""
    n, (_, heads, kv, hd) = _layers(f), _heads(f)
    bias = f.bool("attention_bias", False)
    attn = FullAttention(heads, kv, hd, qkv_bias=bias, o_bias=bias, qk_norm=True, qk_norm_full=True)
    window = _window(f) if mt == "olmo3" else None
    local = SlidingWindow(**{k: getattr(attn, k) for k in ("n_heads", "n_kv_heads", "head_dim", "qkv_bias", "o_bias",
                                                            "qk_norm")}, qk_norm_full=True, window=window) \
        if window else attn
    kinds = _pattern_list(f, "layer_types", n, {"full_attention": attn, "sliding_attention": local})
    if kinds is None:
        kinds = [attn if mt == "olmo2" or (i + 1) % 4 == 0 else local for i in range(n)]
    return _with_specs(f, name, kinds, tie_word_embeddings=f.bool("tie_word_embeddings", False))


def _minimax_m2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """MiniMax-M2 (modeling_minimax_m2.py): grouped-query attention with RMSNorms over the whole q and k
    projections (q_norm of heads x head_dim), head_dim as stored; every layer routes to `num_local_experts`
    experts of `intermediate_size` with a score-correction bias (e_score_correction_bias). In this lineage an
    `attn_type_list` entry of 0 is a lightning (linear) attention layer, which kvdash does not model: refused."""
    n, (_, heads, kv, hd) = _layers(f), _heads(f)
    kinds = f.list("attn_type_list")
    if kinds is not None and (len(kinds) != n or any(k != 1 for k in kinds)):
        raise KvdashError("config field 'attn_type_list' has lightning (linear) attention layers (0), which kvdash "
                          "does not model for minimax_m2")
    attn = FullAttention(heads, kv, hd, qk_norm=f.bool("use_qk_norm", True), qk_norm_full=True)
    inter = f.int("intermediate_size", hi=LIMITS["expert_intermediate_size"])
    return _with_specs(f, name, [attn] * n, n_experts=f.int("num_local_experts", hi=LIMITS["n_experts"]),
                       experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
                       expert_intermediate_size=inter, router_bias=f.bool("use_routing_bias", True),
                       tie_word_embeddings=f.bool("tie_word_embeddings", False))


def _layer_flags(f: _Fields, key: str, n: int, default: bool | None) -> list[bool]:
    """A per-layer list of 0 / 1 (MiniMax-M3's and MiMo-V2's layer patterns); absent: `default` for every layer
    (None: the field is required)."""
    v = f.list(key)
    if v is None and default is not None:
        return [default] * n
    if v is None or len(v) != n or any(x not in (0, 1, True, False) for x in v):
        raise KvdashError(f"config field {key!r} must list 0 or 1 for each of the {n} layers")
    return [bool(x) for x in v]


def _minimax_m3(f: _Fields, name: str, mt: str) -> ModelSpec:
    """MiniMax-M3 (vLLM models/minimax_m3; transformers modeling_minimax_m3_vl.py, whose config reads the
    release's `sparse_attention_config` the same way): grouped-query attention with per-head q/k norms on
    every layer; the layers of `sparse_attention_freq` (transformers: layer_types "minimax_m3_sparse") are
    block-sparse, with a lightning indexer whose key (and, where sparse_disable_index_value is 0, value)
    is cached per token. Layers of moe_layer_freq (mlp_layer_types "sparse") route to num_local_experts
    experts of intermediate_size beside n_shared_experts shared ones, the rest are dense MLPs of
    dense_intermediate_size; the router keeps a score-correction bias."""
    n, (_, heads, kv, hd) = _layers(f), _heads(f)
    sparse_cfg = f.cfg.get("sparse_attention_config") or {}
    if not isinstance(sparse_cfg, dict):
        raise KvdashError("config field 'sparse_attention_config' must be an object")
    g = _Fields(sparse_cfg, "sparse_attention_config.")
    kinds = _pattern_list(f, "layer_types", n, {"minimax_m3_sparse": True, "full_attention": False})
    sparse = kinds if kinds is not None else _layer_flags(g, "sparse_attention_freq", n, False)
    keep_value = [not d for d in _layer_flags(g, "sparse_disable_index_value", n, True)]
    norm = f.bool("use_qk_norm", True)
    index = dict(index_dim=f.int("index_head_dim", default=g.int("sparse_index_dim", default=128)),
                 index_heads=f.int("index_n_heads", default=g.int("sparse_num_index_heads", default=kv)),
                 block=f.int("index_block_size", default=g.int("sparse_block_size", default=128)),
                 topk_blocks=f.int("index_topk_blocks", default=g.int("sparse_topk_blocks", default=16)),
                 local_blocks=f.int("index_local_blocks", default=g.int("sparse_local_block", default=1, lo=0),
                                    lo=0))
    full = FullAttention(n_heads=heads, n_kv_heads=kv, head_dim=hd, qk_norm=norm)
    specs = [BlockSparse(n_heads=heads, n_kv_heads=kv, head_dim=hd, qk_norm=norm, index_values=v, **index) if s
             else full for s, v in zip(sparse, keep_value, strict=True)]
    names = _pattern_list(f, "mlp_layer_types", n, {"sparse": True, "dense": False})
    moe = names if names is not None else _layer_flags(f, "moe_layer_freq", n, True)
    inter = f.int("intermediate_size", hi=LIMITS["expert_intermediate_size"])
    shared = f.int("n_shared_experts", default=0, lo=0, hi=LIMITS["n_shared_experts"])
    spec = _with_specs(f, name, specs, intermediate_size=f.int("dense_intermediate_size", default=inter),
                       n_experts=f.int("num_local_experts", hi=LIMITS["n_experts"]),
                       experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
                       expert_intermediate_size=f.int("moe_intermediate_size", default=inter), moe_layers=tuple(moe),
                       n_shared_experts=shared,
                       shared_expert_intermediate_size=f.int("shared_intermediate_size", default=inter) * shared,
                       router_bias=f.bool("use_routing_bias", True),
                       tie_word_embeddings=f.bool("tie_word_embeddings", False))
    note = ("vLLM keeps the index keys in a cache group of their own with pages of one 128-token block; kvdash "
            "counts them with their layer's K/V: the bytes per token are exact, vLLM's blocks and start-up tokens "
            "for them are not modelled") if any(sparse) else None
    return replace(spec, warnings=(*spec.warnings, note)) if note else spec


def _mimo(f: _Fields, name: str, mt: str) -> ModelSpec:
    """MiMo-7B (vLLM mimo.py: MiMoForCausalLM is Qwen2ForCausalLM with multi-token-prediction layers, which
    load only for speculative decoding): a Qwen2 decoder, q/k/v biases included."""
    return _qwen(f, name, "qwen2")


def _smollm3(f: _Fields, name: str, mt: str) -> ModelSpec:
    """SmolLM3 (modeling_smollm3.py): Llama with no rotary positions on every 4th layer (no_rope_layers:
    nothing for the cache) and a tied head by default; with use_sliding_window, the no-rope layers slide
    (configuration_smollm3.py), unless `layer_types` says otherwise."""
    n = _layers(f)
    kw: dict = dict(tie_word_embeddings=f.bool("tie_word_embeddings", True))
    w = _window(f) if f.bool("use_sliding_window", False) else None
    if w and not f.has("layer_types"):
        rope = f.list("no_rope_layers") or [int((i + 1) % f.int("no_rope_layer_interval", default=4) != 0)
                                             for i in range(n)]
        if len(rope) != n or any(x not in (0, 1) for x in rope):
            raise KvdashError(f"config field 'no_rope_layers' must hold 0 or 1 for each of the {n} layers")
        kw.update(layer_types=tuple(SLIDING if not r else FULL for r in rope), sliding_window=w)
    return _common(f, name, qkv_bias=f.bool("attention_bias", False), o_bias=f.bool("attention_bias", False),
                   mlp_bias=f.bool("mlp_bias", False), **kw)


def _lfm2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """LFM2 (modeling_lfm2.py): `layer_types` names each layer conv (a gated short convolution of
    conv_L_cache taps) or full_attention (with q/k norms); SwiGLU MLP whose width is auto-adjusted like
    Llama's (2/3 of block_ff_dim, times the multiplier, rounded up to block_multiple_of)."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    conv = short_conv(hidden, f.int("conv_L_cache", default=3), bias=f.bool("conv_bias", False))
    specs = _pattern_list(f, "layer_types", n, {"conv": conv, "full_attention": _attention(f, qk_norm=True)})
    if specs is None:
        raise KvdashError("config is missing 'layer_types' (conv / full_attention per layer)")
    ff = f.int("block_ff_dim", "intermediate_size", hi=LIMITS["intermediate_size"])
    if f.bool("block_auto_adjust_ff_dim", False):
        mult = f.cfg.get("block_ffn_dim_multiplier") or 1.0
        if not isinstance(mult, (int, float)) or not 0 < mult < 1000:
            raise KvdashError(f"config field 'block_ffn_dim_multiplier' must be a positive number, not {_show(mult)}")
        step = f.int("block_multiple_of", default=256)
        ff = cdiv(int(mult * int(2 * ff / 3)), step) * step
    cfg = dict(f.cfg, intermediate_size=ff)
    return _with_specs(_Fields(cfg), name, specs, tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _recurrent_gemma(f: _Fields, name: str, mt: str) -> ModelSpec:
    """RecurrentGemma (modeling_recurrent_gemma.py): `block_types` repeats over the layers; recurrent
    blocks are RG-LRU, attention blocks are local (window `attention_window_size`). The MLP is gated with
    intermediate_size // 2 per branch, with biases."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    # the Hub's config.json stores the pattern as "_block_types" (the config class's private attribute)
    blocks = f.list("block_types") or f.list("_block_types") or ["recurrent", "recurrent", "attention"]
    heads = f.int("num_attention_heads")
    lru = rg_lru(hidden, f.int("lru_width", default=hidden), heads, f.int("conv1d_width", default=4))
    local = SlidingWindow(n_heads=heads, n_kv_heads=f.int("num_key_value_heads", default=heads),
                          head_dim=f.int("head_dim", default=hidden // heads), o_bias=True,
                          window=f.int("attention_window_size", default=2048))
    names = {"recurrent": lru, "attention": local}
    if not blocks or any(not isinstance(b, str) or b not in names for b in blocks):
        raise KvdashError(f"config field 'block_types' must list recurrent/attention, not {_show(blocks)}")
    specs = [names[blocks[i % len(blocks)]] for i in range(n)]
    cfg = dict(f.cfg, intermediate_size=f.int("intermediate_size") // 2)
    return _with_specs(_Fields(cfg), name, specs, mlp_bias=True, tie_word_embeddings=True)


def _llama4(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Llama-4 text (modeling_llama4.py): layers with rotary positions (`no_rope_layers[i]` = 1) attend
    within chunks of `attention_chunk_size`; the NoPE layers (every 4th by default) attend globally.
    Every `interleave_moe_layer_step`-th layer routes to experts plus one shared expert."""
    n = _layers(f)
    rope = f.list("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(n)]
    if len(rope) != n or any(x not in (0, 1) for x in rope):
        raise KvdashError(f"config field 'no_rope_layers' must hold 0 or 1 for each of the {n} layers")
    full = _attention(f, bias=f.bool("attention_bias", False))
    chunk = f.int("attention_chunk_size", default=0, lo=0)
    local = ChunkedLocal(**{k: getattr(full, k) for k in ("n_heads", "n_kv_heads", "head_dim", "qkv_bias", "o_bias")},
                         chunk=chunk) if chunk else full
    specs = [local if r else full for r in rope]
    step = f.int("interleave_moe_layer_step", default=1)
    expert = f.int("intermediate_size")
    cfg = dict(f.cfg, intermediate_size=f.int("intermediate_size_mlp", default=expert))
    return _with_specs(
        _Fields(cfg, f.where), name, specs, n_experts=f.int("num_local_experts"),
        experts_per_token=f.int("num_experts_per_tok", default=1), expert_intermediate_size=expert,
        n_shared_experts=1, shared_expert_intermediate_size=expert,
        moe_layers=tuple((i + 1) % step == 0 for i in range(n)))


def _mllama(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Llama-3.2-Vision text model (modeling_mllama.py): the layers listed in `cross_attention_layers`
    attend to the image tokens instead of the text (with q/k RMSNorms and two tanh gates); the rest are
    self-attention. Image tokens per sequence: max_num_tiles x ((image_size / patch_size)^2 + 1), read
    from vision_config (stashed by the wrapper reader). The embedding has 8 extra rows."""
    n = _layers(f)
    cross = f.list("cross_attention_layers") or []
    if any(type(i) is not int or not 0 <= i < n for i in cross):
        raise KvdashError("config field 'cross_attention_layers' must list layer indices")
    v = f.cfg.get("_vision_config")
    vision = _Fields(v if isinstance(v, dict) else {}, "vision_config.")
    tiles = vision.int("max_num_tiles", default=4)
    side = vision.int("image_size", default=560) // vision.int("patch_size", default=14)
    self_attn = _attention(f)
    cross_attn = CrossAttention(n_heads=self_attn.n_heads, n_kv_heads=self_attn.n_kv_heads,
                                head_dim=self_attn.head_dim, qk_norm=True, source_len=tiles * (side * side + 1))
    specs = [cross_attn if i in cross else self_attn for i in range(n)]
    hidden = self_attn.n_heads * self_attn.head_dim
    return _with_specs(f, name, specs, extra_params=8 * hidden + 2 * len(cross))


# ---- older dialects ------------------------------------------------------------------------------------
def _gemma4(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Gemma-4 text (modeling_gemma4.py): `layer_types` sliding / full; full layers use `global_head_dim`
    (and `num_global_key_value_heads`) when set, and with `attention_k_eq_v` reuse the key projection as
    values (Gemma4Attention.use_alternative_attention: no v_proj; the cache keeps K and the v-normed V);
    the last `num_kv_shared_layers` layers read the K/V of the last earlier layer of their type and hold
    none; per-layer input embeddings (PLE) of `hidden_size_per_layer_input` per layer; q/k norms, four
    norms per layer; optional MoE block."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    # attention_k_eq_v: full layers take their values from the key projection (no v_proj); it also gates
    # num_global_key_value_heads, which configuration_gemma4.py applies only when the flag is true or absent
    k_eq_v = f.bool("attention_k_eq_v", True)
    _, heads, kv, hd = _heads(f)
    g_hd = f.int("global_head_dim", default=hd)
    g_kv = f.int("num_global_key_value_heads", default=kv) if k_eq_v else kv
    window = f.int("sliding_window", default=512)
    first_shared = n - f.int("num_kv_shared_layers", default=0, lo=0, hi=n)
    names = _pattern_list(f, "layer_types", n, {"sliding_attention": "s", "full_attention": "f"})
    if names is None:
        raise KvdashError("config is missing 'layer_types' (sliding_attention / full_attention per layer)")
    specs = []
    for i, t in enumerate(names):
        shared = i >= first_shared
        specs.append(SlidingWindow(n_heads=heads, n_kv_heads=kv, head_dim=hd, qk_norm=True, window=window,
                                   kv_shared=shared) if t == "s" else
                     FullAttention(n_heads=heads, n_kv_heads=g_kv, head_dim=g_hd, qk_norm=True, kv_shared=shared,
                                   v_from_k=f.bool("attention_k_eq_v", False)))
    ple = f.int("hidden_size_per_layer_input", default=0, lo=0)
    vocab_ple = f.int("vocab_size_per_layer_input", default=f.int("vocab_size"))
    # PLE: one table of n x ple per token, a projection from the hidden state, and per layer a gate,
    # a projection back and a norm
    extra = (vocab_ple * n * ple + hidden * n * ple + ple + n * (2 * hidden * ple + hidden)) if ple else 0
    kw: dict = dict(norms_per_layer=4, gated_mlp=True, tie_word_embeddings=f.bool("tie_word_embeddings", True),
                    extra_params=extra)
    warnings = ["Gemma-4 per-layer input embeddings are counted from the config's sizes (table, projections, "
                "gates); small scalars are not"] if ple else []
    if f.bool("enable_moe_block", False):
        kw.update(n_experts=f.int("num_experts"), experts_per_token=f.int("top_k_experts"),
                  expert_intermediate_size=f.int("moe_intermediate_size", "expert_intermediate_size"),
                  n_shared_experts=1,
                  shared_expert_intermediate_size=f.int("intermediate_size"))
        warnings.append("Gemma-4's dense MLP beside the experts is counted as a shared expert")
    spec = _with_specs(f, name, specs, **kw)
    return replace(spec, warnings=tuple(warnings))


def _mimo_v2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """MiMo-V2-Flash (vLLM mimo_v2_flash.py, transformers modeling_mimo_v2_flash.py): `hybrid_layer_pattern`
    1 is a sliding-window layer with its own geometry (swa_num_attention_heads, swa_num_key_value_heads,
    swa_head_dim, swa_v_head_dim; one learned sink logit per query head with add_swa_attention_sink_bias),
    0 a full layer; keys are head_dim wide and values v_head_dim (192 and 128: vLLM's DiffKV cache holds
    each at its own width). The window is `sliding_window_size` tokens, as vLLM allocates it
    (per_layer_sliding_window; transformers attends to one more, the query). `attention_chunk_size` equals
    the window and is not chunked attention: neither engine reads it. Layer i routes when
    moe_layer_freq[i] (n_routed_experts of moe_intermediate_size, no shared expert, a router with a
    score-correction bias), else a dense MLP of intermediate_size. A config transformers re-saved has
    `layer_types` and its rule of twice the KV heads on sliding layers instead of the swa_* fields."""
    n, (_, heads, kv, hd) = _layers(f), _heads(f)
    vhd = f.int("v_head_dim", default=hd, hi=LIMITS["head_dim"])
    if f.has("hybrid_layer_pattern"):  # 1: sliding
        sliding = _layer_flags(f, "hybrid_layer_pattern", n, None)
    else:
        names = _pattern_list(f, "layer_types", n, {"sliding_attention": True, "full_attention": False})
        if names is None:
            raise KvdashError("config is missing 'hybrid_layer_pattern' (or 'layer_types')")
        sliding = names
    swa_heads = f.int("swa_num_attention_heads", default=heads, hi=LIMITS["n_heads"])
    swa = SlidingWindow(n_heads=swa_heads, n_kv_heads=f.int("swa_num_key_value_heads", default=2 * kv,
                                                           hi=LIMITS["n_kv_heads"]),
                        head_dim=f.int("swa_head_dim", default=hd, hi=LIMITS["head_dim"]),
                        v_head_dim=f.int("swa_v_head_dim", default=vhd, hi=LIMITS["head_dim"]),
                        window=f.int("sliding_window_size", "sliding_window", hi=LIMITS["max_position_embeddings"]))
    full = FullAttention(n_heads=heads, n_kv_heads=kv, head_dim=hd, v_head_dim=vhd)
    moe = _layer_flags(f, "moe_layer_freq", n, None)
    n_swa = sum(sliding)
    sinks = (n_swa * swa_heads * f.bool("add_swa_attention_sink_bias", False)
             + (n - n_swa) * heads * f.bool("add_full_attention_sink_bias", False))
    return _with_specs(f, name, [swa if s else full for s in sliding],
                       n_experts=f.int("n_routed_experts", "num_local_experts", hi=LIMITS["n_experts"]),
                       experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
                       expert_intermediate_size=f.int("moe_intermediate_size", hi=LIMITS["expert_intermediate_size"]),
                       router_bias=True, moe_layers=tuple(moe), extra_params=sinks)


def _per_layer(f: _Fields, key: str, n: int, default=None) -> int:
    """A field Hunyuan may give per layer (a list, read by layer index) or once; kvdash's spec takes one value,
    so a list whose layers differ is refused."""
    v = f.cfg.get(key, default)
    values = set(v) if isinstance(v, list) and len(v) == n else {v}
    if len(values) != 1 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in values):
        raise KvdashError(f"config field {key!r} must be one non-negative integer, or the same for each of the {n} "
                          f"layers (kvdash does not model layers that differ)")
    return values.pop()


def _hunyuan(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Hunyuan (Tencent's remote code `hunyuan`; transformers' hunyuan_v1_dense / hunyuan_v1_moe; vLLM
    hunyuan_v1.py): grouped-query attention with per-head q/k RMSNorms (use_qk_norm) and the head size
    `attention_head_dim` (or head_dim); the MoE model routes every layer to `num_experts` experts of
    moe_intermediate_size (else intermediate_size), top `moe_topk`, beside a shared MLP of intermediate_size x
    num_shared_expert when use_mixed_mlp_moe (vLLM reads the lists by layer index). Cross-layer attention
    (use_cla: every cla_share_factor-th layer computes the K/V the next ones read) is refused: transformers'
    port ignores it, and vLLM builds the sharing layers as encoder-decoder attention its V1 cache cannot
    hold, so what an engine would allocate is not known."""
    n = _layers(f)
    if f.bool("use_cla", False) and f.int("cla_share_factor", default=1) > 1:
        raise KvdashError("Hunyuan's cross-layer attention (use_cla) is not modelled: transformers ignores it and "
                          "vLLM cannot cache the sharing layers")
    if f.bool("use_mla", False):
        raise KvdashError("Hunyuan's latent attention (use_mla) is not modelled")
    hidden, heads = f.int("hidden_size", hi=LIMITS["hidden_size"]), f.int("num_attention_heads", hi=LIMITS["n_heads"])
    hd = f.int("head_dim", "attention_head_dim", default=hidden // heads, hi=LIMITS["head_dim"])
    kv = f.int("num_key_value_heads", default=heads, hi=LIMITS["n_kv_heads"])
    bias = f.bool("attention_bias", False)
    attn = FullAttention(n_heads=heads, n_kv_heads=kv, head_dim=hd, qk_norm=f.bool("use_qk_norm", False),
                         qkv_bias=bias, o_bias=bias)
    kw: dict = dict(tie_word_embeddings=f.bool("tie_word_embeddings", True), mlp_bias=f.bool("mlp_bias", False))
    experts = _per_layer(f, "num_experts", n, default=1)
    if mt != "hunyuan_v1_dense" and experts > 1:
        if _per_layer(f, "moe_layer_num_skipped", n, default=0):
            raise KvdashError("config field 'moe_layer_num_skipped' (dense leading layers) is not modelled for Hunyuan")
        inter = f.int("intermediate_size", hi=LIMITS["intermediate_size"])
        shared = _per_layer(f, "num_shared_expert", n, default=1) if f.bool("use_mixed_mlp_moe", False) else 0
        kw.update(n_experts=experts, experts_per_token=_per_layer(f, "moe_topk", n, default=1),
                  expert_intermediate_size=_per_layer(f, "moe_intermediate_size", n, default=inter) or inter,
                  n_shared_experts=shared, shared_expert_intermediate_size=shared * inter)
    return _with_specs(f, name, [attn] * n, **kw)


def _cohere(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Cohere Command-R / Aya (modeling_cohere.py): attention and MLP in parallel after one bias-free
    LayerNorm per layer; optional q/k LayerNorms (`use_qk_norm`); tied head by default. Cohere2 (Command-R7B,
    Command-A) slides 3 layers in 4: without `layer_types`, configuration_cohere2.py builds them from the
    integer `sliding_window_pattern` (default 4), every p-th layer full; its head_dim is always hidden / heads."""
    kw: dict = {}
    if mt == "cohere2":
        # Cohere2Config.__post_init__ sets head_dim = hidden_size // num_attention_heads over any stored value
        f = _Fields({k: v for k, v in f.cfg.items() if k != "head_dim"})
        n, w = _layers(f), _window(f)
        if w and not f.has("layer_types"):
            kw.update(layer_types=_sliding_pattern(f, n, default=4), sliding_window=w)
    return _common(f, name, norms_per_layer=1, qk_norm=f.bool("use_qk_norm", False),
                   qkv_bias=f.bool("attention_bias", False), o_bias=f.bool("attention_bias", False),
                   tie_word_embeddings=f.bool("tie_word_embeddings", True), **kw)


def _exaone4(f: _Fields, name: str, mt: str) -> ModelSpec:
    """EXAONE-4 (modeling_exaone4.py): Llama-like layers with q/k RMSNorms and the norms after attention and
    after the MLP; sliding layers from `layer_types`, else from `sliding_window_pattern` (configuration_exaone4.py:
    an integer p makes every p-th layer full, default 4; a string of L and G repeats, the final layer global);
    no sliding layer when `sliding_window` is null."""
    n, w = _layers(f), _window(f)
    kw: dict = dict(qk_norm=True, tie_word_embeddings=f.bool("tie_word_embeddings", False))
    if w and not f.has("layer_types"):
        kw.update(layer_types=_sliding_pattern(f, n, default=4, last_full=True), sliding_window=w)
    return _common(f, name, **kw)


def _chatglm(f: _Fields, name: str, mt: str) -> ModelSpec:
    """ChatGLM2/3, GLM-4 (modeling_chatglm.py): `multi_query_group_num` K/V groups of `kv_channels`,
    fused QKV with bias (`add_qkv_bias`), SwiGLU of `ffn_hidden_size`, untied `output_layer`."""
    heads = f.int("num_attention_heads")
    kv = f.int("multi_query_group_num") if f.bool("multi_query_attention", False) else heads
    bias = f.bool("add_bias_linear", False)
    cfg = dict(f.cfg, num_hidden_layers=f.int("num_layers", "num_hidden_layers"), num_key_value_heads=kv,
               head_dim=f.int("kv_channels"), intermediate_size=f.int("ffn_hidden_size"),
               vocab_size=f.int("padded_vocab_size", "vocab_size"),
               max_position_embeddings=f.int("seq_length", "max_position_embeddings", default=0, lo=0))
    qkv = f.bool("add_qkv_bias", False)
    return _common(_Fields(cfg), name, qkv_bias=qkv, o_bias=bias, mlp_bias=bias,
                   norm="rms" if f.bool("rmsnorm", True) else "layer",
                   final_norm=f.bool("post_layer_norm", True), tie_word_embeddings=False)


def _glm(f: _Fields, name: str, mt: str) -> ModelSpec:
    """GLM in Hugging Face's format (modeling_glm.py GlmForCausalLM, modeling_glm4.py Glm4ForCausalLM for
    GLM-4-0414): Llama's field names with GlmConfig's defaults where a field is absent (head_dim 128, not
    hidden / heads; 2 K/V heads; q/k/v biases on, o_proj without), fused gate/up; Glm4 adds a norm after
    attention and after the MLP. A config in ChatGLM's own dialect (`kv_channels`, model_type chatglm or glm)
    goes to that reader."""
    if f.has("kv_channels", "multi_query_group_num"):
        return _chatglm(f, name, mt)
    cfg = dict(f.cfg)
    for key, default in (("head_dim", 128), ("num_key_value_heads", 2), ("attention_bias", True)):
        if cfg.get(key) is None:
            cfg[key] = default
    g = _Fields(cfg)
    return _common(g, name, qkv_bias=g.bool("attention_bias", True), o_bias=False,
                   norms_per_layer=4 if mt == "glm4" else 2, tie_word_embeddings=g.bool("tie_word_embeddings", False))


def _bloom(f: _Fields, name: str, mt: str) -> ModelSpec:
    """BLOOM (modeling_bloom.py): MHA with ALiBi, biases everywhere, 4h GELU MLP, LayerNorms, plus a
    LayerNorm right after the word embedding; tied head."""
    hidden = f.int("hidden_size", "n_embed", hi=LIMITS["hidden_size"])
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=f.int("n_head", "num_attention_heads"),
               num_hidden_layers=f.int("n_layer", "num_hidden_layers"), intermediate_size=4 * hidden)
    return _common(_Fields(cfg), name, gated_mlp=False, norm="layer", qkv_bias=True, o_bias=True, mlp_bias=True,
                   tie_word_embeddings=True, extra_params=2 * hidden)


def _mpt(f: _Fields, name: str, mt: str) -> ModelSpec:
    """MPT / Replit (modeling_mpt.py): d_model, n_heads, n_layers, expansion_ratio; `attn_config` may set
    kv_n_heads (grouped-query) and alibi (no learned positions); `no_bias` drops every bias and the
    LayerNorms' biases; tied head. Copies that write the standard names (hidden_size, num_attention_heads,
    num_hidden_layers) are read the same: MptConfig maps them onto d_model, n_heads, n_layers."""
    hidden = f.int("d_model", "hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("n_heads", "num_attention_heads")
    attn = f.cfg.get("attn_config") or {}
    if not isinstance(attn, dict):
        raise KvdashError(f"config field 'attn_config' must be an object, not {_show(attn)}")
    a = _Fields(attn, "attn_config.")
    for key in ("sliding_window_size", "rope", "qk_ln", "qk_gn"):
        if attn.get(key) not in (None, -1, False):
            raise KvdashError(f"config field 'attn_config.{key}' = {_show(attn[key])} is not modelled")
    no_bias = f.bool("no_bias", False)
    learned = 0 if a.bool("alibi", False) else f.int("max_seq_len", default=2048)
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=heads,
               num_hidden_layers=f.int("n_layers", "num_hidden_layers"),
               num_key_value_heads=a.int("kv_n_heads", default=heads),
               intermediate_size=f.int("expansion_ratio", default=4) * hidden,
               max_position_embeddings=f.int("max_seq_len", default=0, lo=0))
    return _common(_Fields(cfg), name, gated_mlp=False, norm="rms" if no_bias else "layer",
                   qkv_bias=not no_bias, o_bias=not no_bias, mlp_bias=not no_bias, learned_pos_embeddings=learned,
                   tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _gptj(f: _Fields, name: str, mt: str) -> ModelSpec:
    """GPT-J (modeling_gptj.py): bias-free q/k/v/out, one LayerNorm per block (attention and MLP in
    parallel), a 4h GELU MLP with biases, an untied LM head with a bias."""
    hidden = f.int("n_embd", hi=LIMITS["hidden_size"])
    vocab = f.int("vocab_size", hi=LIMITS["vocab_size"])
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=f.int("n_head"), num_hidden_layers=f.int("n_layer"),
               intermediate_size=f.int("n_inner", default=4 * hidden))
    return _common(_Fields(cfg), name, gated_mlp=False, norm="layer", norms_per_layer=1, mlp_bias=True,
                   tie_word_embeddings=f.bool("tie_word_embeddings", False), extra_params=vocab)


def _phi(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Phi-1 / 1.5 / 2, in Hugging Face's format (modeling_phi.py, model_type phi) or Microsoft's original
    (phi-msft: n_embd, n_head, n_head_kv, n_layer, n_inner): attention and MLP in parallel after one LayerNorm
    per block, q/k/v and the output projection with biases, a GELU MLP of n_inner (null: 4 x n_embd) with
    biases, a final LayerNorm and an untied LM head with a bias. Rotary embedding on `rotary_dim` (or
    partial_rotary_factor) of each head changes nothing in the cache: K and V are whole heads."""
    hidden = f.int("n_embd", "hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("n_head", "num_attention_heads", hi=LIMITS["n_heads"])
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=heads,
               num_hidden_layers=f.int("n_layer", "num_hidden_layers", hi=LIMITS["n_layers"]),
               num_key_value_heads=f.int("n_head_kv", "num_key_value_heads", default=heads, hi=LIMITS["n_kv_heads"]),
               intermediate_size=f.int("n_inner", "intermediate_size", default=4 * hidden,
                                       hi=LIMITS["intermediate_size"]))
    for k in ("n_head_kv", "n_inner"):  # null in the original format: read as absent
        if cfg.get(k) is None:
            cfg.pop(k, None)
    return _common(_Fields(cfg), name, gated_mlp=False, norm="layer", norms_per_layer=1, qkv_bias=True, o_bias=True,
                   mlp_bias=True, qk_norm=f.bool("qk_layernorm", False),
                   tie_word_embeddings=f.bool("tie_word_embeddings", False), extra_params=f.int("vocab_size"))


def _gpt_bigcode(f: _Fields, name: str, mt: str) -> ModelSpec:
    """GPT-BigCode / SantaCoder / StarCoder (modeling_gpt_bigcode.py): `multi_query` keeps one K/V head;
    biases everywhere, LayerNorms, a 4h GELU MLP, learned positions, tied head."""
    hidden = f.int("n_embd", "hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("n_head", "num_attention_heads")
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=f.int("n_layer"),
               num_key_value_heads=1 if f.bool("multi_query", True) else heads,
               intermediate_size=f.int("n_inner", default=4 * hidden))
    return _common(_Fields(cfg), name, gated_mlp=False, norm="layer", qkv_bias=True, o_bias=True, mlp_bias=True,
                   learned_pos_embeddings=f.int("n_positions"), tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _starcoder2(f: _Fields, name: str, mt: str) -> ModelSpec:
    """StarCoder2 (modeling_starcoder2.py): grouped-query attention with biases (`use_bias`), a GELU MLP
    with biases, LayerNorms, `sliding_window` on every layer, tied head."""
    bias = f.bool("use_bias", True)
    n = _layers(f)
    w = f.int("sliding_window", default=0, lo=0, hi=LIMITS["sliding_window"])
    return _common(f, name, gated_mlp=False, norm="layer", qkv_bias=bias, o_bias=bias, mlp_bias=bias,
                   layer_types=("sliding",) * n if w else (), sliding_window=w,
                   tie_word_embeddings=f.bool("tie_word_embeddings", True))


def _gpt_oss(f: _Fields, name: str, mt: str) -> ModelSpec:
    """gpt-oss (modeling_gpt_oss.py): `layer_types` alternates sliding (window 128) and full attention,
    with q/k/v/o biases and one learned attention sink per head; every layer is a mixture of gated experts
    with biases (gate_up 2 x intermediate, down hidden) behind a router with a bias."""
    n, hidden = _layers(f), f.int("hidden_size", hi=LIMITS["hidden_size"])
    experts, inter = f.int("num_local_experts"), f.int("intermediate_size")
    heads = f.int("num_attention_heads")
    cfg = dict(f.cfg)
    return _common(_Fields(cfg), name, qkv_bias=True, o_bias=True, n_experts=experts,
                   experts_per_token=f.int("num_experts_per_tok", "experts_per_token"),
                   expert_intermediate_size=inter, router_bias=True,
                   extra_params=n * (heads + experts * (2 * inter + hidden)))


# ---- encoder-decoders: the decoder's layers, each split into a self-attention and a cross-attention
# sub-layer (the MLP on the second); the encoder's weights as their own component -------------------------
def _t5(f: _Fields, name: str, mt: str) -> ModelSpec:
    """T5 / Flan-T5 / mT5 (modeling_t5.py): decoder blocks of self-attention, cross-attention and an MLP
    (ReLU, or gated GELU for `feed_forward_proj` gated-gelu), bias-free, weight-only LayerNorms;
    relative-position buckets in each stack's first self-attention. The cross-attention holds the
    encoder's output: `n_positions` (the trained encoder length) tokens per sequence."""
    d, heads, kv = f.int("d_model"), f.int("num_heads"), f.int("d_kv")
    ff, enc_layers = f.int("d_ff"), f.int("num_layers")
    dec_layers = f.int("num_decoder_layers", default=enc_layers)
    gated = "gated" in (f.str("feed_forward_proj") or "relu")
    buckets = f.int("relative_attention_num_buckets", default=32)
    attn = 4 * d * heads * kv
    mlp = (3 if gated else 2) * d * ff
    encoder = enc_layers * (attn + mlp + 2 * d) + buckets * heads + d  # + final norm
    self_attn = FullAttention(n_heads=heads, n_kv_heads=heads, head_dim=kv)
    cross = CrossAttention(n_heads=heads, n_kv_heads=heads, head_dim=kv, source_len=f.int("n_positions", default=512))
    cfg = dict(f.cfg, hidden_size=d, num_attention_heads=heads, head_dim=kv, num_hidden_layers=2 * dec_layers,
               intermediate_size=ff)
    # per decoder block 3 norms: one per sub-layer here, the MLP's norm in extra_params
    return _common(_Fields(cfg), name, layer_specs=(self_attn, cross) * dec_layers, gated_mlp=gated,
                   mlp_layers=(False, True) * dec_layers, norms_per_layer=1,
                   tie_word_embeddings=f.bool("tie_word_embeddings", True),
                   extra_params=dec_layers * d + buckets * heads, encoder_params=encoder)


def _whisper(f: _Fields, name: str, mt: str) -> ModelSpec:
    """Whisper (modeling_whisper.py): decoder blocks of self-attention, cross-attention over the
    encoder's `max_source_positions` (1,500) frames, and a GELU MLP; q, v and out projections have
    biases, k does not; LayerNorms; learned decoder positions (`max_target_positions`); tied head.
    Encoder: two convolutions over the mel bins, positions, blocks, a final LayerNorm."""
    d, heads = f.int("d_model"), f.int("decoder_attention_heads")
    dec_layers, ff = f.int("decoder_layers"), f.int("decoder_ffn_dim")
    enc_layers, enc_ff = f.int("encoder_layers"), f.int("encoder_ffn_dim")
    frames, mels = f.int("max_source_positions", default=1500), f.int("num_mel_bins", default=80)
    if d % heads:
        raise KvdashError(f"d_model ({d}) must be divisible by decoder_attention_heads ({heads})")
    attn = 4 * d * d + 3 * d  # q, k, v, out; biases on q, v, out
    block = attn + 2 * d * enc_ff + enc_ff + d + 2 * 2 * d
    encoder = (mels * d * 3 + d) + (d * d * 3 + d) + frames * d + enc_layers * block + 2 * d
    self_attn = FullAttention(n_heads=heads, n_kv_heads=heads, head_dim=d // heads, qkv_bias=True, o_bias=True)
    cross = CrossAttention(n_heads=heads, n_kv_heads=heads, head_dim=d // heads, qkv_bias=True, o_bias=True,
                           source_len=frames)
    cfg = dict(f.cfg, hidden_size=d, num_attention_heads=heads, num_hidden_layers=2 * dec_layers,
               intermediate_size=ff, max_position_embeddings=f.int("max_target_positions", default=448))
    # Two counts cancel per block: the specs give k_proj a bias it lacks (d in each of the 2 attention
    # sub-layers) and one LayerNorm per sub-layer, one short of the block's three (2 x d).
    return _common(_Fields(cfg), name, layer_specs=(self_attn, cross) * dec_layers, gated_mlp=False,
                   mlp_layers=(False, True) * dec_layers, norm="layer", norms_per_layer=1, mlp_bias=True,
                   learned_pos_embeddings=f.int("max_target_positions", default=448), tie_word_embeddings=True,
                   encoder_params=encoder)


def _bart(f: _Fields, name: str, mt: str) -> ModelSpec:
    """BART / mBART (modeling_bart.py, modeling_mbart.py): decoder blocks of self-attention,
    cross-attention over the encoder's output (at most `max_position_embeddings` tokens) and a GELU MLP,
    biases everywhere, LayerNorms; learned positions with 2 offset rows and a LayerNorm after the
    embeddings in each stack; mBART adds a final LayerNorm to each stack; tied head."""
    d, ff, heads = f.int("d_model"), f.int("decoder_ffn_dim"), f.int("decoder_attention_heads")
    dec_layers, enc_layers = f.int("decoder_layers"), f.int("encoder_layers")
    enc_ff = f.int("encoder_ffn_dim", default=ff)
    positions = f.int("max_position_embeddings", default=1024)
    final = mt == "mbart"
    if d % heads:
        raise KvdashError(f"d_model ({d}) must be divisible by decoder_attention_heads ({heads})")
    encoder = ((positions + 2) * d + 2 * d + enc_layers * (4 * d * d + 4 * d + 2 * d * enc_ff + enc_ff + d + 4 * d)
               + (2 * d if final else 0))
    hd = d // heads
    self_attn = FullAttention(n_heads=heads, n_kv_heads=heads, head_dim=hd, qkv_bias=True, o_bias=True)
    cross = CrossAttention(n_heads=heads, n_kv_heads=heads, head_dim=hd, qkv_bias=True, o_bias=True,
                           source_len=positions)
    cfg = dict(f.cfg, hidden_size=d, num_attention_heads=heads, num_hidden_layers=2 * dec_layers,
               intermediate_size=ff)
    # the third LayerNorm of each block (one per sub-layer is counted) and the embedding LayerNorm
    return _common(_Fields(cfg), name, layer_specs=(self_attn, cross) * dec_layers, gated_mlp=False,
                   mlp_layers=(False, True) * dec_layers, norm="layer", norms_per_layer=1, mlp_bias=True,
                   learned_pos_embeddings=positions + 2, final_norm=final, tie_word_embeddings=True,
                   extra_params=dec_layers * 2 * d + 2 * d, encoder_params=encoder)


BUILDERS = {
    "jamba": _jamba,
    "granitemoehybrid": _granite_hybrid,
    "bamba": _bamba,
    "nemotron_h": _nemotron_h,
    "mamba": _mamba,
    "falcon_mamba": _mamba,
    "mamba2": _mamba2,
    "qwen3_next": _qwen3_next,
    "qwen3_5": _qwen3_next,
    "qwen3_5_text": _qwen3_next,
    "qwen3_5_moe": _qwen3_next,
    "qwen3_5_moe_text": _qwen3_next,
    "lfm2": _lfm2,
    "kimi_linear": _kimi_linear,
    "mimo_v2_flash": _mimo_v2,
    "minimax_m3": _minimax_m3,
    "minimax_m3_vl": _minimax_m3,
    "minimax_m3_vl_text": _minimax_m3,
    "hunyuan": _hunyuan,
    "hunyuan_v1_moe": _hunyuan,
    "hunyuan_v1_dense": _hunyuan,
    "nemotron-nas": _nemotron_nas,
    "mimo": _mimo,
    "rwkv": _rwkv,
    "olmo2": _olmo2,
    "olmo3": _olmo2,
    "smollm3": _smollm3,
    "minimax_m2": _minimax_m2,
    "recurrent_gemma": _recurrent_gemma,
    "llama4": _llama4,
    "llama4_text": _llama4,
    "mllama": _mllama,
    "mllama_text_model": _mllama,
    "chatglm": _chatglm,
    "glm": _glm,
    "glm4": _glm,
    "bloom": _bloom,
    "mpt": _mpt,
    "t5": _t5,
    "mt5": _t5,
    "umt5": _t5,
    "whisper": _whisper,
    "gemma4": _gemma4,
    "gemma4_text": _gemma4,
    "cohere": _cohere,
    "cohere2": _cohere,
    "exaone4": _exaone4,
    "exaone4_5_text": _exaone4,  # EXAONE-4.5's text model (under its multimodal wrapper's text_config)
    "bart": _bart,
    "mbart": _bart,
    "gptj": _gptj,
    "phi": _phi,
    "phi-msft": _phi,
    "gpt_bigcode": _gpt_bigcode,
    "starcoder2": _starcoder2,
    "gpt_oss": _gpt_oss,
}
