"""Build a ModelSpec from a Hugging Face `config.json` (a dict, JSON text or a file).

Input is treated as hostile: it is parsed as JSON only (never executed or unpickled), bounded in
size, and every field is type- and range-checked. Any problem raises KvdashError naming the field.

Which layers slide (the traps, see the module's tests):
- `layer_types` is authoritative whenever present.
- mistral / mixtral / phi3 / generic: a non-null `sliding_window` makes every layer slide.
- qwen2 / qwen2_moe / qwen3 / qwen3_moe: `sliding_window` is ignored unless `use_sliding_window`
  is true; then layers from `max_window_layers` on slide (Qwen2.5 ships 131072 with it false).
- gemma2: even-indexed layers slide; gemma3: every `sliding_window_pattern`-th layer is global.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from kvdash.dtypes import with_group
from kvdash.errors import KvdashError
from kvdash.model import FULL, LIMITS, LINEAR, MLA, SLIDING, ModelSpec

MAX_CONFIG_BYTES = 1 << 20  # real config.json files are a few KiB
MAX_DEPTH = 32
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
def parse_config_text(text: str | bytes) -> dict:
    """Parse untrusted JSON text into a dict (size- and depth-bounded)."""
    if isinstance(text, bytes):
        if len(text) > MAX_CONFIG_BYTES:
            raise KvdashError(f"config is {len(text):,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
        try:
            text = text.decode("utf-8-sig")  # a UTF-8 byte-order mark (some Windows editors write one) is fine
        except UnicodeDecodeError as e:
            raise KvdashError(f"config is not UTF-8 text (byte {e.start})") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise KvdashError(f"config is {len(text):,} characters; the limit is {MAX_CONFIG_BYTES:,}")
    text = text.removeprefix("\ufeff")
    if _nesting(text) > MAX_DEPTH:
        raise KvdashError(f"config nests deeper than {MAX_DEPTH} levels")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise KvdashError(f"config is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(cfg, dict):
        raise KvdashError(f"config must be a JSON object, not a {type(cfg).__name__}")
    return cfg


def _nesting(text: str) -> int:
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def load_config_file(path: str | Path) -> dict:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise KvdashError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    if not p.is_file():
        raise KvdashError(f"config path {str(path)!r} is not a file")
    if size > MAX_CONFIG_BYTES:
        raise KvdashError(f"config file is {size:,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KvdashError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    return parse_config_text(data)


def model_from_config(cfg: dict | str | bytes, name: str | None = None) -> ModelSpec:
    """The entry point: a config.json as a dict, JSON text/bytes, or a path-like to a file."""
    if isinstance(cfg, Path):
        cfg = load_config_file(cfg)
    elif isinstance(cfg, (str, bytes)):
        cfg = parse_config_text(cfg)
    if not isinstance(cfg, dict):
        raise KvdashError(f"config must be a JSON object, not a {type(cfg).__name__}")
    try:
        return _build(cfg, name)
    except KvdashError:
        raise
    except RecursionError:
        raise KvdashError("config nests too deeply") from None


_NESTED = ("text_config", "llm_config", "language_config")

# transformers saves a composite config's sub-configs as their difference from the class defaults
# (llava-1.5's text_config names only vocab_size and the context length), so a nested reader starts
# from the defaults of configuration_llama.py and configuration_mistral.py.
_NESTED_DEFAULTS = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, max_position_embeddings=2048),
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096 * 32,
                    sliding_window=4096),
    # configuration_gemma3.py (Gemma3TextConfig): the sparse Gemma-3 4B/12B/27B text_config relies on these
    "gemma3_text": dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131_072,
                        sliding_window=4096, sliding_window_pattern=6),
}

# Fields that change memory, and the model types whose reader models them. Anywhere else they are
# refused by name: sizing such a config as a plain decoder would be silently wrong.
_FAMILY_FIELDS = {
    "hybrid_override_pattern": ("nemotron_h",),
    "attn_layer_period": ("jamba",),
    "block_types": ("recurrent_gemma",),
    "_block_types": ("recurrent_gemma",),
    "linear_num_value_heads": ("qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"),
    "conv_L_cache": ("lfm2",),
    "mamba_d_state": ("jamba", "granitemoehybrid", "bamba"),
    "layers_block_type": ("nemotron_h",),
    "attn_layer_indices": ("bamba",),
    "ssm_state_size": ("nemotron_h",),
    "attention_chunk_size": ("llama4", "llama4_text"),
    "cross_attention_layers": ("mllama", "mllama_text_model"),
    "num_decoder_layers": ("t5", "mt5", "umt5"),
    "decoder_layers": ("whisper", "bart", "mbart"),
    "is_encoder_decoder": ("t5", "mt5", "umt5", "whisper", "bart", "mbart"),
}


def _build(cfg: dict, name: str | None) -> ModelSpec:
    top = _Fields(cfg)
    model_type = (top.str("model_type") or "").lower()
    vision = cfg.get("vision_config")
    for key in _NESTED:
        inner_cfg = cfg.get(key)
        if inner_cfg is None:
            continue
        if not isinstance(inner_cfg, dict):
            raise KvdashError(f"config field {key!r} must be an object, not {_show(inner_cfg)}")
        # Multimodal wrappers keep the language model under text_config (or llm_config,
        # language_config); its fields win. The vision config rides along for readers that need it.
        model_type = (_Fields(inner_cfg, f"{key}.").str("model_type") or "").lower() or model_type
        merged = {k: v for k, v in cfg.items() if k not in (*_NESTED, "vision_config")}
        merged.update(_NESTED_DEFAULTS.get(model_type, {}))
        merged.update(inner_cfg)
        merged["_vision_config"] = vision
        cfg = merged
        break
    f = _Fields(cfg)
    if name is None:
        name = f.str("_name_or_path") or model_type or "custom"
        name = name[:200] or "custom"
    from kvdash.hf_families import BUILDERS  # here, not at the top: it imports this module's helpers

    builder = _BUILDERS.get(model_type) or BUILDERS.get(model_type)
    for key, families in _FAMILY_FIELDS.items():
        if f.cfg.get(key) not in (None, False, [], "") and model_type not in families:
            raise KvdashError(f"config field {key!r} changes the memory of a {', '.join(families)} model, and "
                              f"kvdash does not model it for model_type {model_type or 'unset'!r}")
    warnings = []
    if builder is None:
        builder = _generic
        warnings.append(f"model_type {model_type or 'unset'!r} is not a family kvdash knows: sized as a generic "
                        "decoder from its standard fields")
    spec = builder(f, name, model_type)
    encoder, note = _vision_tower(vision, spec.hidden_size) if isinstance(vision, dict) else (0, None)
    if note:
        warnings.append(note)
    if isinstance(cfg.get("audio_config"), dict):
        warnings.append("the audio encoder (audio_config) is not counted in the weights")
    weights, experts = _quantization(cfg.get("quantization_config"), warnings)
    mtp = f.int("num_nextn_predict_layers", "mtp_num_hidden_layers", default=0, lo=0, hi=LIMITS["n_layers"])
    if mtp:
        warnings.append(f"{mtp} multi-token-prediction layer(s) are not counted (engines load them only for "
                        "speculative decoding)")
    return replace(spec, encoder_params=spec.encoder_params + encoder, weights_format=weights,
                   experts_format=experts, warnings=(*spec.warnings, *warnings))


# Module names a checkpoint may leave unquantized that kvdash keeps in 16-bit anyway (matched per
# dotted segment, so "mlp.gate_proj" is not mistaken for a router "gate").
_ALWAYS_16BIT_PREFIXES = ("lm_head", "embed", "router", "vision", "visual", "multi_modal", "mm_projector", "audio",
                          "e_score_correction_bias", "shared_expert_gate")


def _kept_16bit(name: str) -> bool:
    return any(seg == "gate" or seg.endswith("norm") or seg.startswith(_ALWAYS_16BIT_PREFIXES)
               for seg in name.split("."))


def _quantization(q, warnings: list) -> tuple[str, str]:
    """(matrices' format, routed experts' format) of a checkpoint from its quantization_config.

    gpt-oss (mxfp4) quantizes only the experts (its modules_to_not_convert lists the attention);
    DeepSeek's fp8 has 128 x 128 block scales (weight_block_size); AWQ and GPTQ store int4 with fp16
    scales and packed zeros per group_size inputs; NVFP4 (modelopt, compressed-tensors)."""
    if q is None:
        return "", ""
    if not isinstance(q, dict):
        raise KvdashError(f"config field 'quantization_config' must be an object, not {_show(q)}")
    g = _Fields(q, "quantization_config.")
    method = (g.str("quant_method") or "").lower()
    fmt = None
    if method == "mxfp4":
        fmt = "mxfp4"
    elif method == "fp8":
        block = g.list("weight_block_size")
        fmt = "fp8-block" if block == [128, 128] else "fp8" if block is None else None
    elif method in ("awq", "gptq"):
        bits, group = g.int("bits", default=4), g.int("group_size", default=128, lo=-1)
        if bits == 4 and (method == "gptq" or g.bool("zero_point", True)):
            fmt = with_group(f"{method}-int4", group if group > 0 else 1 << 20)
    elif method == "modelopt":
        fmt = {"nvfp4": "nvfp4", "fp8": "fp8"}.get((g.str("quant_algo") or "").lower())
    elif method == "compressed-tensors":
        fmt = {"nvfp4-pack-quantized": "nvfp4", "float-quantized": "fp8"}.get((g.str("format") or "").lower())
    if fmt is None:
        warnings.append(f"quantization_config ({_show(q.get('quant_method', 'unknown'))}, {_show(q.get('bits'))} bits) "
                        "is not modelled: weights are sized at the chosen weights dtype")
        return "", ""
    skipped = [x for x in (g.list("modules_to_not_convert") or g.list("ignore") or []) if isinstance(x, str)]
    # the attention of every layer left unquantized (gpt-oss: "model.layers.*.self_attn"): matrices in 16-bit
    every_layer = [x for x in skipped if not any(seg.isdigit() for seg in x.split("."))]
    dense_skipped = any("attn" in x for x in every_layer)
    unknown = [x for x in skipped if not _kept_16bit(x) and not ("attn" in x and x in every_layer)]
    if unknown:
        warnings.append(f"quantization_config leaves {', '.join(unknown[:3])} unquantized; kvdash sizes them as "
                        f"{fmt}")
    return ("" if dense_skipped else fmt), fmt



# Sub-config defaults for vision towers saved sparsely (configuration_qwen2_vl.py, Qwen2VLVisionConfig).
_VISION_DEFAULTS = {"qwen2_vl": dict(depth=32, embed_dim=1280, mlp_ratio=4, patch_size=14)}


def supported_types() -> tuple[str, ...]:
    """Every model_type with a reader of its own (the rest are read as generic decoders, with a warning)."""
    from kvdash.hf_families import BUILDERS  # here, not at the top: it imports this module's helpers

    return (*_BUILDERS, *BUILDERS)


def _vision_tower(v: dict, text_hidden: int) -> tuple[int, str | None]:
    """Parameters of a vision tower and its projector, counted as a standard ViT (patch embedding,
    positions, pre-norm blocks with biased attention and MLP, final norm) plus a two-layer projector.
    Families differ in details (merger layers, tile embeddings), so the count is labelled an estimate."""
    kind = v.get("model_type")
    g = _Fields({**_VISION_DEFAULTS.get(kind if isinstance(kind, str) else "", {}), **v}, "vision_config.")
    try:
        # embed_dim first: Qwen2-VL's vision hidden_size is the language model's width after the merger
        h = g.int("embed_dim", "hidden_size", "width", hi=LIMITS["hidden_size"])
        layers = g.int("num_hidden_layers", "depth", "num_layers", hi=LIMITS["n_layers"])
        ratio = g.int("mlp_ratio", default=4, hi=64)
        inter = g.int("intermediate_size", default=ratio * h, hi=LIMITS["intermediate_size"])
        patch = g.int("patch_size", default=14, hi=1 << 12)
        side = g.int("image_size", default=224, hi=1 << 16) // patch
    except KvdashError as e:
        return 0, f"vision tower not counted ({e})"
    block = 4 * h * h + 4 * h + 2 * h * inter + inter + h + 4 * h
    tower = 3 * patch * patch * h + h + (side * side + 1) * h + layers * block + 2 * h
    projector = h * text_hidden + text_hidden + text_hidden * text_hidden + text_hidden
    return tower + projector, (f"vision tower ({tower + projector:,} parameters) estimated as a standard ViT from "
                               "vision_config; the family's exact layout is not modelled")


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


def _window(f: _Fields) -> int | None:
    return f.int("sliding_window", default=None, hi=LIMITS["sliding_window"])


def _all_or_none(n: int, window: int | None) -> tuple[str, ...]:
    return (SLIDING,) * n if window else ()


def _common(f: _Fields, name: str, **kw) -> ModelSpec:
    hidden, heads, kv, hd = _heads(f)
    n = _layers(f)
    base = dict(
        name=name,
        n_layers=n,
        hidden_size=hidden,
        n_heads=heads,
        n_kv_heads=kv,
        head_dim=hd,
        vocab_size=f.int("vocab_size", hi=LIMITS["vocab_size"]),
        intermediate_size=f.int("intermediate_size", hi=LIMITS["intermediate_size"], default=0),
        max_position_embeddings=f.int("max_position_embeddings", "n_positions", default=0, lo=0,
                                      hi=LIMITS["max_position_embeddings"]),
        tie_word_embeddings=f.bool("tie_word_embeddings", False),
        default_dtype=_dtype(f),
    )
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
    return ModelSpec(**base)


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
            pattern = f.int("sliding_window_pattern", default=6, hi=LIMITS["n_layers"])
            kw["layer_types"] = tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(n))
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
        first_dense = f.int("first_k_dense_replace", default=0, lo=0, hi=LIMITS["n_layers"])
        freq = f.int("moe_layer_freq", default=1, hi=LIMITS["n_layers"])
        moe_inter = f.int("moe_intermediate_size", hi=LIMITS["expert_intermediate_size"])
        shared = f.int("n_shared_experts", default=0, lo=0, hi=LIMITS["n_shared_experts"])
        kw.update(
            n_experts=experts,
            experts_per_token=f.int("num_experts_per_tok", hi=LIMITS["experts_per_token"]),
            expert_intermediate_size=moe_inter,
            n_shared_experts=shared,
            shared_expert_intermediate_size=shared * moe_inter,
            router_bias=f.str("topk_method", "") == "noaux_tc",
            moe_layers=tuple(i >= first_dense and i % freq == 0 for i in range(n)),
        )
    if not latent:
        return _common(f, name, **kw)
    hidden = f.int("hidden_size", hi=LIMITS["hidden_size"])
    heads = f.int("num_attention_heads", hi=LIMITS["n_heads"])
    # MLA caches a latent, not per-head K/V: the kv-head count and head_dim only shape queries.
    cfg = dict(f.cfg, num_key_value_heads=heads, head_dim=kw["qk_nope_head_dim"] + kw["qk_rope_head_dim"],
               hidden_size=hidden)
    return _common(_Fields(cfg), name, **kw)


def _generic(f: _Fields, name: str, mt: str) -> ModelSpec:
    n = _layers(f)
    w = _window(f) if f.bool("use_sliding_window", True) else None
    if f.has("kv_lora_rank"):
        return _deepseek(f, name, mt)
    kw: dict = dict(layer_types=_all_or_none(n, w), sliding_window=w or 0,
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
    return _common(_Fields(cfg), name, **kw)


_BUILDERS = {
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
    # vision-language models whose language model is one of the above (read under its own name)
    "qwen2_vl": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen2_5_vl": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen2_5_vl_text": lambda f, name, mt: _qwen(f, name, "qwen2"),
    "qwen3_vl_text": lambda f, name, mt: _qwen(f, name, "qwen3"),
    "qwen3_vl_moe_text": lambda f, name, mt: _qwen(f, name, "qwen3_moe"),
    "mistral3": lambda f, name, mt: _llama(f, name, "mistral"),
    "internlm2": _llama,
    "granite": _llama,
    "granitemoe": _mixtral,
    "deepseek": _deepseek,
    "ministral3": lambda f, name, mt: _llama(f, name, "mistral"),
}
