"""The readers of the common Hugging Face config families (Llama, Mistral, Qwen, Gemma, Falcon, GPT-2, OPT,
DeepSeek, generic decoders) and the typed field access every reader uses. kvdash.hf_families adds the
hybrid, state-space and older-dialect families; kvdash.hf_config parses a config and picks the reader."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from kvdash.errors import KvdashError
from kvdash.model import FULL, LIMITS, LINEAR, MLA, SLIDING, ModelSpec, decoder

_MISSING = object()


_LAYER_TYPE_NAMES = {
    "full_attention": FULL,
    "attention": FULL,
    "global": FULL,
    "sliding_attention": SLIDING,
    "sliding_window": SLIDING,
    "local": SLIDING,
    "linear_attention": LINEAR,
    "mamba": LINEAR,
    "recurrent": LINEAR,
}


class _Fields:
    """Typed, bounded access to a config dict; every error names the field."""

    def __init__(self, cfg: dict, where: str = ""):
        self.cfg = cfg
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}{key}"

    def has(self, *keys: str) -> bool:
        return any(self.cfg.get(k) is not None for k in keys)

    def int(self, *keys: str, default=_MISSING, lo: int = 1, hi: int = 1 << 40) -> int:
        for key in keys:
            v = self.cfg.get(key)
            if v is None:
                continue
            if isinstance(v, float) and v.is_integer() and math.isfinite(v):
                v = int(v)
            if type(v) is not int:
                raise KvdashError(f"config field {self._name(key)!r} must be an integer, not {_show(v)}")
            if not lo <= v <= hi:
                raise KvdashError(f"config field {self._name(key)!r} = {v} is out of range ({lo} to {hi:,})")
            return v
        if default is _MISSING:
            raise KvdashError(f"config is missing {self._name(keys[0])!r}" + (
                f" (or {', '.join(map(repr, keys[1:]))})" if len(keys) > 1 else ""))
        return default

    def bool(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if type(v) is not bool:
            raise KvdashError(f"config field {self._name(key)!r} must be true or false, not {_show(v)}")
        return v

    def str(self, key: str, default: str | None = None) -> str | None:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise KvdashError(f"config field {self._name(key)!r} must be a string, not {_show(v)}")
        return v

    def list(self, key: str) -> list | None:
        v = self.cfg.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise KvdashError(f"config field {self._name(key)!r} must be a list, not {_show(v)}")
        return v


def _show(v) -> str:
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- reading -----------------------------------------------------------------------------------


# ---- shared pieces -----------------------------------------------------------------------------
def _dtype(f: _Fields) -> str:
    dt = f.str("torch_dtype") or f.str("dtype") or "bfloat16"
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(dt, "bf16")


def _heads(f: _Fields) -> tuple[int, int, int, int]:
    hidden = f.int("hidden_size", "n_embd", "d_model", hi=LIMITS["hidden_size"])
    heads = f.int("num_attention_heads", "n_head", "num_heads", hi=LIMITS["n_heads"])
    kv = f.int("num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads, hi=LIMITS["n_kv_heads"])
    if f.has("head_dim"):
        hd = f.int("head_dim", hi=LIMITS["head_dim"])
    else:
        if hidden % heads:
            raise KvdashError(
                f"config has no 'head_dim' and hidden_size ({hidden}) is not divisible by "
                f"num_attention_heads ({heads})"
            )
        hd = hidden // heads
    if heads % kv:
        raise KvdashError(f"num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv})")
    return hidden, heads, kv, hd


def _layers(f: _Fields) -> int:
    return f.int("num_hidden_layers", "n_layer", "num_layers", hi=LIMITS["n_layers"])


def _pattern_list(f: _Fields, key: str, n: int, allowed: dict) -> list | None:
    """The config's per-layer list `key` mapped through `allowed` (None when absent); an unknown name or a
    wrong length is refused, naming the field."""
    raw = f.list(key)
    if raw is None:
        return None
    if len(raw) != n:
        raise KvdashError(f"config field {key!r} lists {len(raw)} layers but num_hidden_layers is {n}")
    for i, t in enumerate(raw):
        if not isinstance(t, str) or t not in allowed:
            raise KvdashError(f"config field '{key}[{i}]' = {_show(t)} is not a known layer type "
                              f"({', '.join(sorted(allowed))})")
    return [allowed[t] for t in raw]


def _explicit_layer_types(f: _Fields, n: int) -> tuple[str, ...] | None:
    out = _pattern_list(f, "layer_types", n, _LAYER_TYPE_NAMES)
    if out is None:
        return None
    if LINEAR in out:
        raise KvdashError("config has linear-attention/state-space layers; their state size is "
                          "architecture-specific: describe this model as a custom ModelSpec")
    return tuple(out)


def _sliding_pattern(f: _Fields, n: int, default: int | None = None,
                     last_full: bool = False) -> tuple[str, ...] | None:
    """Layer kinds from `sliding_window_pattern` where a config has no `layer_types`, or None without one.
    An integer p: layer i is full where (i + 1) % p == 0, the others slide (transformers' Cohere2Config and
    Exaone4Config build layer_types by that expression; Gemma-3 by the same rule); 0 means no sliding layer.
    A string of L (local: sliding) and G (global: full) repeats from layer 0 (Exaone4Config's docstring,
    which adds that the final layer is then always global: `last_full`)."""
    raw = f.cfg.get("sliding_window_pattern")
    raw = default if raw is None else raw  # an explicit null is no pattern, as an absent key
    if raw is None:
        return None
    if isinstance(raw, str):
        if not raw or len(raw) > LIMITS["n_layers"] or set(raw.upper()) - {"L", "G"}:
            raise KvdashError(f"config field 'sliding_window_pattern' = {_show(raw)} is neither a layer count nor a "
                              "string of L (local) and G (global)")
        kinds = [SLIDING if raw[i % len(raw)].upper() == "L" else FULL for i in range(n)]
    else:
        p = f.int("sliding_window_pattern", default=default, lo=0, hi=LIMITS["n_layers"])
        kinds = [SLIDING if p and (i + 1) % p else FULL for i in range(n)]
    if last_full and isinstance(raw, str):
        kinds[-1] = FULL
    return tuple(kinds)


def _window(f: _Fields) -> int | None:
    return f.int("sliding_window", default=None, hi=LIMITS["sliding_window"])


def _all_or_none(n: int, window: int | None) -> tuple[str, ...]:
    return (SLIDING,) * n if window else ()


def _common(f: _Fields, name: str, **kw) -> ModelSpec:
    """The model from the config's standard fields and a reader's own (`kw`). A reader that builds its layers
    (`layer_specs`) needs no attention fields; otherwise every attention layer shares the config's heads."""
    base = dict(
        name=name,
        vocab_size=f.int("vocab_size", hi=LIMITS["vocab_size"]),
        intermediate_size=f.int("intermediate_size", hi=LIMITS["intermediate_size"], default=0),
        max_position_embeddings=f.int("max_position_embeddings", "n_positions", default=0, lo=0,
                                      hi=LIMITS["max_position_embeddings"]),
        tie_word_embeddings=f.bool("tie_word_embeddings", False),
        default_dtype=_dtype(f),
    )
    base.update(kw)
    if "layer_specs" in base:
        base["hidden_size"] = f.int("hidden_size", "n_embd", "d_model", hi=LIMITS["hidden_size"])
        return ModelSpec(**base)
    hidden, heads, kv, hd = _heads(f)
    n = _layers(f)
    base.update(n_layers=n, hidden_size=hidden, n_heads=heads, n_kv_heads=kv, head_dim=hd)
    base.update(kw)
    layer_types = _explicit_layer_types(f, n)
    if layer_types is not None:
        base["layer_types"] = () if set(layer_types) == {FULL} else layer_types
    if base.get("layer_types") and SLIDING in base["layer_types"] and not base.get("sliding_window"):
        w = _window(f)
        if not w:
            raise KvdashError("config has sliding layers but no 'sliding_window'")
        base["sliding_window"] = w
    if not base.get("layer_types"):
        base.pop("sliding_window", None)
    return decoder(**base)


# ---- families ----------------------------------------------------------------------------------
def _llama(f: _Fields, name: str, mt: str) -> ModelSpec:
    n = _layers(f)
    w = _window(f) if mt in ("mistral", "phi3") else None
    return _common(
        f, name,
        layer_types=_all_or_none(n, w), sliding_window=w or 0,
        qkv_bias=f.bool("attention_bias", False), o_bias=f.bool("attention_bias", False),
        mlp_bias=f.bool("mlp_bias", False),
    )


def _mixtral(f: _Fields, name: str, mt: str) -> ModelSpec:
    n = _layers(f)
    w = _window(f)
    inter = f.int("intermediate_size", hi=LIMITS["intermediate_size"])
    return _common(
        f, name, layer_types=_all_or_none(n, w), sliding_window=w or 0,
        n_experts=f.int("num_local_experts", hi=LIMITS["n_experts"]),
        experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
        expert_intermediate_size=inter,
    )


def _qwen(f: _Fields, name: str, mt: str) -> ModelSpec:
    n = _layers(f)
    kw: dict = {}
    if f.bool("use_sliding_window", False) and f.has("sliding_window"):
        first = f.int("max_window_layers", default=n, lo=0, hi=LIMITS["n_layers"])
        kw["layer_types"] = tuple(SLIDING if i >= first else FULL for i in range(n))
        kw["sliding_window"] = _window(f)
        if set(kw["layer_types"]) == {FULL}:
            kw["layer_types"] = ()
    if mt in ("qwen2", "qwen2_moe"):
        kw["qkv_bias"] = True  # Qwen2 always has q/k/v biases (not on o_proj)
    else:
        kw["qk_norm"] = True
        kw["qkv_bias"] = kw["o_bias"] = f.bool("attention_bias", False)
    if mt in ("qwen2_moe", "qwen3_moe"):
        experts = f.int("num_experts", hi=LIMITS["n_experts"])
        step = f.int("decoder_sparse_step", default=1, hi=LIMITS["n_layers"])
        dense = f.list("mlp_only_layers") or []
        if any(type(i) is not int for i in dense):
            raise KvdashError("config field 'mlp_only_layers' must list layer indices")
        kw["moe_layers"] = tuple((i + 1) % step == 0 and i not in dense for i in range(n))
        kw.update(
            n_experts=experts,
            experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
            expert_intermediate_size=f.int("moe_intermediate_size", hi=LIMITS["expert_intermediate_size"]),
        )
        if all(kw["moe_layers"]):
            kw["moe_layers"] = ()
        if mt == "qwen2_moe":
            shared = f.int("shared_expert_intermediate_size", default=0, lo=0,
                           hi=LIMITS["shared_expert_intermediate_size"])
            if shared:
                kw.update(n_shared_experts=1, shared_expert_intermediate_size=shared, shared_expert_gate=True)
    return _common(f, name, **kw)


def _gemma(f: _Fields, name: str, mt: str) -> ModelSpec:
    n = _layers(f)
    kw: dict = dict(tie_word_embeddings=f.bool("tie_word_embeddings", True))
    if mt == "gemma":
        kw["norms_per_layer"] = 2
    else:
        kw["norms_per_layer"] = 4  # input, post-attention, pre- and post-feedforward
        w = f.int("sliding_window", default=4096, hi=LIMITS["sliding_window"])
        if mt == "gemma2":
            kw["layer_types"] = tuple(SLIDING if i % 2 == 0 else FULL for i in range(n))
        else:
            kw["qk_norm"] = True
            kw["layer_types"] = _sliding_pattern(f, n, default=6)
        kw["sliding_window"] = w
        if set(kw["layer_types"]) == {FULL}:
            kw["layer_types"] = ()
    if mt in ("gemma3", "gemma3_text") and not f.has("vocab_size"):
        f = _Fields(dict(f.cfg, vocab_size=262_208))  # Gemma3TextConfig's default; 27B omits it
    kw["qkv_bias"] = kw["o_bias"] = f.bool("attention_bias", False)
    return _common(f, name, **kw)


def _falcon(f: _Fields, name: str, mt: str) -> ModelSpec:
    hidden = f.int("hidden_size", "n_embed", hi=LIMITS["hidden_size"])
    heads = f.int("num_attention_heads", "n_head", hi=LIMITS["n_heads"])
    new_arch = f.bool("new_decoder_architecture", False)
    if new_arch:
        kv = f.int("num_kv_heads", "n_head_kv", hi=LIMITS["n_kv_heads"])
    elif f.bool("multi_query", True):
        kv = 1
    else:
        kv = heads
    if hidden % heads:
        raise KvdashError(f"hidden_size ({hidden}) must be divisible by num_attention_heads ({heads})")
    bias = f.bool("bias", False)
    if new_arch:  # separate norms before attention and MLP
        norms = f.int("num_ln_in_parallel_attn", default=2, hi=2)
    else:  # parallel attention shares one input norm
        norms = 1 if f.bool("parallel_attn", True) else 2
    cfg = dict(f.cfg, hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv,
               head_dim=hidden // heads,
               intermediate_size=f.int("ffn_hidden_size", default=4 * hidden, hi=LIMITS["intermediate_size"]),
               num_hidden_layers=f.int("num_hidden_layers", "n_layer", hi=LIMITS["n_layers"]))
    if heads % kv:
        raise KvdashError(f"num_attention_heads ({heads}) must be a multiple of num_kv_heads ({kv})")
    return _common(
        _Fields(cfg), name, gated_mlp=False, norm="layer", norms_per_layer=norms,
        tie_word_embeddings=f.bool("tie_word_embeddings", True), qkv_bias=bias, o_bias=bias, mlp_bias=bias,
    )


def _gpt2(f: _Fields, name: str, mt: str) -> ModelSpec:
    hidden = f.int("n_embd", "hidden_size", hi=LIMITS["hidden_size"])
    cfg = dict(f.cfg, hidden_size=hidden,
               intermediate_size=f.int("n_inner", default=4 * hidden, hi=LIMITS["intermediate_size"]))
    cfg.pop("head_dim", None)
    positions = f.int("n_positions", "max_position_embeddings", hi=LIMITS["learned_pos_embeddings"])
    return _common(
        _Fields(cfg), name, gated_mlp=False, norm="layer", learned_pos_embeddings=positions,
        tie_word_embeddings=f.bool("tie_word_embeddings", True), qkv_bias=True, o_bias=True, mlp_bias=True,
    )


def _gpt_neox(f: _Fields, name: str, mt: str) -> ModelSpec:
    bias = f.bool("attention_bias", True)
    return _common(f, name, gated_mlp=False, norm="layer", qkv_bias=bias, o_bias=bias, mlp_bias=True,
                   tie_word_embeddings=f.bool("tie_word_embeddings", False))


def _opt(f: _Fields, name: str, mt: str) -> ModelSpec:
    hidden = f.int("hidden_size", hi=LIMITS["hidden_size"])
    proj = f.int("word_embed_proj_dim", default=hidden, hi=LIMITS["hidden_size"])
    if proj != hidden:
        raise KvdashError(f"OPT with word_embed_proj_dim ({proj}) != hidden_size ({hidden}) is not supported")
    bias = f.bool("enable_bias", True)
    positions = f.int("max_position_embeddings", hi=LIMITS["learned_pos_embeddings"] - 2)
    cfg = dict(f.cfg, intermediate_size=f.int("ffn_dim", hi=LIMITS["intermediate_size"]))
    return _common(
        _Fields(cfg), name, gated_mlp=False, norm="layer", qkv_bias=bias, o_bias=bias, mlp_bias=bias,
        learned_pos_embeddings=positions + 2,  # OPT's learned positions are offset by 2 rows
        tie_word_embeddings=f.bool("tie_word_embeddings", True),
        final_norm=f.bool("do_layer_norm_before", True),  # post-LN OPT-350m has none
    )


def _deepseek(f: _Fields, name: str, mt: str) -> ModelSpec:
    """DeepSeek-V2/V3, Kimi-K2 (latent attention); DeepSeek-MoE v1 (`deepseek`: standard attention) shares
    the expert layout: the first `first_k_dense_replace` layers dense, then every `moe_layer_freq`-th MoE."""
    n = _layers(f)
    experts = f.int("n_routed_experts", default=0, lo=0, hi=LIMITS["n_experts"])
    latent = mt != "deepseek"
    kw: dict = dict(
        layer_types=(MLA,) * n,
        kv_lora_rank=f.int("kv_lora_rank", hi=LIMITS["kv_lora_rank"]),
        q_lora_rank=f.int("q_lora_rank", default=0, lo=0, hi=LIMITS["q_lora_rank"]),
        qk_rope_head_dim=f.int("qk_rope_head_dim", hi=LIMITS["qk_rope_head_dim"]),
        qk_nope_head_dim=f.int("qk_nope_head_dim", hi=LIMITS["qk_nope_head_dim"]),
        v_head_dim=f.int("v_head_dim", hi=LIMITS["v_head_dim"]),
    ) if latent else {}
    if experts:
        # DeepSeek-V3's noaux_tc router keeps a score-correction bias; the later families' always do
        bias = f.str("topk_method", "") == "noaux_tc" or mt in ("glm4_moe_lite", "deepseek_v32", "glm_moe_dsa")
        kw.update(_deepseek_moe(f, n, experts, router_bias=bias))
    if not latent:
        return _common(f, name, **kw)
    hidden = f.int("hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("num_attention_heads", hi=LIMITS["n_heads"])
    # MLA caches a latent, not per-head K/V: the kv-head count and head_dim only shape queries.
    cfg = dict(f.cfg, num_key_value_heads=heads, head_dim=kw["qk_nope_head_dim"] + kw["qk_rope_head_dim"],
               hidden_size=hidden)
    spec = _common(_Fields(cfg), name, **kw)
    return _with_indexer(f, spec, mt) if mt in DSA_INDEX_HEADS or f.has("index_topk") else spec


def _deepseek_moe(f: _Fields, n: int, experts: int, router_bias: bool, first_dense: int = 0) -> dict:
    """DeepSeek's expert layout, which GLM-4.5 and others share: the first `first_k_dense_replace` layers
    dense, then every `moe_layer_freq`-th routed, with `n_shared_experts` shared experts beside."""
    first_dense = f.int("first_k_dense_replace", default=first_dense, lo=0, hi=LIMITS["n_layers"])
    freq = f.int("moe_layer_freq", default=1, hi=LIMITS["n_layers"])
    moe_inter = f.int("moe_intermediate_size", hi=LIMITS["expert_intermediate_size"])
    shared = f.int("n_shared_experts", default=0, lo=0, hi=LIMITS["n_shared_experts"])
    return dict(n_experts=experts, experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
                expert_intermediate_size=moe_inter, n_shared_experts=shared,
                shared_expert_intermediate_size=shared * moe_inter, router_bias=router_bias,
                moe_layers=tuple(i >= first_dense and i % freq == 0 for i in range(n)))


def _glm4_moe(f: _Fields, name: str, mt: str) -> ModelSpec:
    """GLM-4.5 / 4.6 / 4.7 (modeling_glm4_moe.py): grouped-query attention with q/k/v biases (attention_bias)
    and optional per-head q/k norms (use_qk_norm), head_dim as stored (5120 / 96 is not an integer in
    GLM-4.7); DeepSeek's expert layout with a score-correction bias on the router (Glm4MoeTopkRouter),
    Glm4MoeConfig's defaults where a field is absent (first_k_dense_replace 1, one shared expert)."""
    n = _layers(f)
    bias = f.bool("attention_bias", False)
    moe = _deepseek_moe(f, n, f.int("n_routed_experts", default=128, hi=LIMITS["n_experts"]), router_bias=True,
                        first_dense=1)
    return _common(f, name, qkv_bias=bias, qk_norm=f.bool("use_qk_norm", False), **moe)


# DeepSeek Sparse Attention families and their config class's default indexer heads (DeepseekV32Config 64,
# GlmMoeDsaConfig 32); both default to index_head_dim 128 and index_topk 2,048
DSA_INDEX_HEADS = {"deepseek_v32": 64, "glm_moe_dsa": 32}


def _with_indexer(f: _Fields, spec: ModelSpec, mt: str) -> ModelSpec:
    """DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): every layer attends to the `index_topk` keys a
    lightning indexer selects; a layer whose indexer is "full" runs it and caches its key per token, a
    "shared" one reuses the previous full layer's selection and caches nothing more. Which is which:
    `indexer_types`, else `index_topk_pattern` (F / S), else full where max(i - offset + 1, 0) % freq == 0
    (`index_topk_freq` 1, `index_skip_topk_offset` 2 by default: every layer) — configuration_glm_moe_dsa.py,
    and vLLM's models/deepseek_v2.py, which builds an indexer (and its cache) only on those layers."""
    n = spec.n_layers
    head_dim = f.int("index_head_dim", default=128, hi=LIMITS["head_dim"])
    heads = f.int("index_n_heads", default=DSA_INDEX_HEADS.get(mt, 64), hi=LIMITS["n_heads"])
    topk = f.int("index_topk", default=2048, hi=LIMITS["max_position_embeddings"])
    kinds = _pattern_list(f, "indexer_types", n, {"full": True, "shared": False})
    pattern = f.cfg.get("index_topk_pattern")
    if kinds is None and pattern is not None:
        if not isinstance(pattern, str) or len(pattern) != n or set(pattern) - {"F", "S"}:
            raise KvdashError(f"config field 'index_topk_pattern' = {_show(pattern)} must be {n} letters F or S")
        kinds = [c == "F" for c in pattern]
    if kinds is None:
        freq = f.int("index_topk_freq", default=1, hi=LIMITS["n_layers"])
        offset = f.int("index_skip_topk_offset", default=2, lo=0, hi=LIMITS["n_layers"])
        kinds = [max(i - offset + 1, 0) % freq == 0 for i in range(n)]
    specs = tuple(replace(ls, index_head_dim=head_dim if full else 0, index_n_heads=heads if full else 0,
                          index_topk=topk) for ls, full in zip(spec.layer_specs, kinds, strict=True))
    warning = (f"DeepSeek Sparse Attention: vLLM also keeps a buffer of the top-{topk:,} indices of every token of a "
               f"step (max_num_batched_tokens x {topk:,} x 4 B, 64 MiB at 8,192 tokens), not counted")
    return replace(spec, layer_specs=specs, warnings=(*spec.warnings, warning))


def _generic(f: _Fields, name: str, mt: str) -> ModelSpec:
    """A decoder of an unknown family, from its standard fields. Which layers slide is never guessed: only
    `layer_types` or `sliding_window_pattern` make a layer slide; a bare `sliding_window` leaves every layer
    attending in full, the guess that errs towards more memory, and says so."""
    n = _layers(f)
    if f.has("kv_lora_rank"):
        return _deepseek(f, name, mt)
    w = _window(f) if f.bool("use_sliding_window", True) else None
    pattern = _sliding_pattern(f, n) if w else None
    warnings = []
    if w and pattern is None and not f.has("layer_types"):
        warnings.append(f"the config sets sliding_window = {w:,} but no per-layer pattern (layer_types or "
                        "sliding_window_pattern): every layer is sized attending in full, which errs towards more "
                        "cache than a model with sliding layers holds")
    kw: dict = dict(layer_types=pattern or (), sliding_window=w or 0,
                    qkv_bias=f.bool("attention_bias", False), o_bias=f.bool("attention_bias", False),
                    mlp_bias=f.bool("mlp_bias", False))
    experts = f.int("num_local_experts", "num_experts", "n_routed_experts", default=0, lo=0,
                    hi=LIMITS["n_experts"])
    if experts:
        kw.update(n_experts=experts,
                  experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
                  expert_intermediate_size=f.int("moe_intermediate_size", "intermediate_size",
                                                 hi=LIMITS["expert_intermediate_size"]))
    if not f.has("intermediate_size", "n_inner", "ffn_dim") and not experts:
        raise KvdashError("config is missing 'intermediate_size'")
    cfg = dict(f.cfg)
    if not f.has("intermediate_size"):
        cfg["intermediate_size"] = f.int("n_inner", "ffn_dim", default=0, lo=0)
    spec = _common(_Fields(cfg), name, **kw)
    return replace(spec, warnings=(*spec.warnings, *warnings)) if warnings else spec


BUILDERS = {
    "llama": _llama,
    "mistral": _llama,
    "phi3": _llama,
    "mixtral": _mixtral,
    "qwen2": _qwen,
    "qwen2_moe": _qwen,
    "qwen3": _qwen,
    "qwen3_moe": _qwen,
    "gemma": _gemma,
    "gemma2": _gemma,
    "gemma3": _gemma,
    "gemma3_text": _gemma,
    "falcon": _falcon,
    "refinedweb": _falcon,
    "refinedwebmodel": _falcon,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "deepseek_v32": _deepseek,
    "glm4_moe": _glm4_moe,
    "glm4_moe_lite": _deepseek,  # GLM-4.7-Flash: latent attention, DeepSeek's expert layout
    "glm_moe_dsa": _deepseek,
    # vision-language models whose language model is one of the above (read under its own name)
    "qwen2_vl": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen2_5_vl": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen2_5_vl_text": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen3_vl_text": lambda f, name, mt: _qwen(f, name, "qwen3"),
    "qwen3_vl_moe_text": lambda f, name, mt: _qwen(f, name, "qwen3_moe"),
    "qwen3_omni_moe_text": lambda f, name, mt: _qwen(f, name, "qwen3_moe"),
    "mistral3": lambda f, name, mt: _llama(f, name, "mistral"),
    "internlm2": _llama,
    "granite": _llama,
    "granitemoe": _mixtral,
    "deepseek": _deepseek,
    "ministral3": lambda f, name, mt: _llama(f, name, "mistral"),
}
