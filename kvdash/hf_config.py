"""Build a ModelSpec from a Hugging Face `config.json` (a dict, JSON text or a file).

Input is treated as hostile: it is parsed as JSON only (never executed or unpickled), bounded in
size, and every field is type- and range-checked. Any problem raises KvdashError naming the field.

Which layers slide (the traps, see the module's tests):
- `layer_types` is authoritative whenever present.
- mistral / mixtral / phi3: a non-null `sliding_window` makes every layer slide.
- cohere2 / exaone4 / generic: without `layer_types`, the integer (or L/G string) `sliding_window_pattern`
  says which layers slide; an unknown family with a bare `sliding_window` is sized all-full, with a warning
  (the guess that errs towards more memory).
- qwen2 / qwen2_moe / qwen3 / qwen3_moe: `sliding_window` is ignored unless `use_sliding_window`
  is true; then layers from `max_window_layers` on slide (Qwen2.5 ships 131072 with it false).
- gemma2: even-indexed layers slide; gemma3: every `sliding_window_pattern`-th layer is global.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from kvdash.dtypes import with_group
from kvdash.errors import KvdashError
from kvdash.hf_families import BUILDERS as FAMILY_BUILDERS
from kvdash.hf_readers import BUILDERS, _Fields, _generic, _show
from kvdash.model import LIMITS, ModelSpec

MAX_CONFIG_BYTES = 1 << 20  # real config.json files are a few KiB
MAX_DEPTH = 32


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
# Encoder-only families (BERT and its descendants, used for embeddings and classification): one forward over
# the input, no generation, so no KV cache to size; kvdash sizes decoders and says so rather than charge them
# a cache.
ENCODER_ONLY = frozenset({"bert", "roberta", "xlm-roberta", "xlm_roberta", "distilbert", "deberta", "deberta-v2",
                          "electra", "albert", "mpnet", "camembert", "modernbert", "nomic_bert", "jina_bert", "ernie",
                          "megatron-bert", "rembert", "xlnet", "funnel", "layoutlm", "new"})
# Families whose memory kvdash knows it cannot size from standard fields (the generic reader would give them a
# KV cache they do not keep): refused by name rather than guessed.
NOT_MODELLED = {
    **{t: "RWKV-5/6/7 keep a per-head matrix state per layer and no KV cache, which kvdash does not model yet "
          "(RWKV-4, model_type rwkv, is)" for t in ("rwkv5", "rwkv6", "rwkv7", "rwkv_5", "rwkv_6", "rwkv_7")},
    # DeepSeek's reference inference/model.py, vLLM's deepseek_v4_attention.py, SGLang's deepseek_v4_memory_pool.py
    # (model_type deepseek_ref: SGLang's copy of the release config)
    **{t: "DeepSeek-V4's compressed sparse attention is not modelled yet: every layer keeps a 128-token window, "
          "layers with compress_ratios 4 or 128 one compressed entry per 4 or 128 tokens (the ratio-4 ones an "
          "indexer key too) and an fp32 compressor state per sequence, in a 584-byte fp8 row in vLLM and SGLang, "
          "with hyper-connections (hc_mult) in the weights" for t in ("deepseek_v4", "deepseek_ref")},
}
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
    "attention_chunk_size": ("llama4", "llama4_text", "mimo_v2_flash"),
    "cross_attention_layers": ("mllama", "mllama_text_model"),
    "num_decoder_layers": ("t5", "mt5", "umt5"),
    "decoder_layers": ("whisper", "bart", "mbart"),
    "is_encoder_decoder": ("t5", "mt5", "umt5", "whisper", "bart", "mbart"),
}


def _build(cfg: dict, name: str | None) -> ModelSpec:
    top = _Fields(cfg)
    model_type = (top.str("model_type") or "").lower()
    notes = []
    thinker = cfg.get("thinker_config")
    if thinker is not None and "text_config" not in cfg:
        # Qwen3-Omni (configuration_qwen3_omni_moe.py): the thinker (text model with its vision and audio
        # encoders) answers; the talker and the code-to-wave model only speak, and vLLM serves the thinker
        if not isinstance(thinker, dict):
            raise KvdashError(f"config field 'thinker_config' must be an object, not {_show(thinker)}")
        cfg = dict(thinker, _name_or_path=cfg.get("_name_or_path", thinker.get("_name_or_path")))
        notes.append("the talker and code-to-wave models (speech output) are not counted: the thinker is sized, as "
                     "vLLM serves it")
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
    unnamed = name is None and not f.str("_name_or_path")  # named below from its type and size
    if name is None:
        name = f.str("_name_or_path") or model_type or "custom"
        name = name[:200] or "custom"
    if model_type in NOT_MODELLED:
        raise KvdashError(f"model_type {model_type!r}: {NOT_MODELLED[model_type]}")
    if model_type in ENCODER_ONLY:
        raise KvdashError(f"model_type {model_type!r} is an encoder-only model (embeddings, classification): it runs "
                          "one forward over its input and keeps no KV cache, and kvdash sizes decoders that generate")
    builder = BUILDERS.get(model_type) or FAMILY_BUILDERS.get(model_type)
    for key, families in _FAMILY_FIELDS.items():
        if f.cfg.get(key) not in (None, False, [], "") and model_type not in families:
            raise KvdashError(f"config field {key!r} changes the memory of a {', '.join(families)} model, and "
                              f"kvdash does not model it for model_type {model_type or 'unset'!r}")
    warnings = notes
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
    weights, experts, mixer, mixer_tensors = _quantization(cfg.get("quantization_config"), warnings, spec.n_layers,
                                                           spec.default_dtype)
    # MiniMax-M3 declares its drafter's depth as num_mtp_modules (vLLM's minimax_m3 mtp.py builds that many)
    mtp = f.int("num_mtp_modules", "num_nextn_predict_layers", "mtp_num_hidden_layers", default=0, lo=0,
                hi=LIMITS["n_layers"])
    if mtp:
        warnings.append(f"{mtp} multi-token-prediction module(s): engines load them only for speculative decoding, "
                        "so they are counted only when the scenario speculates with them (--spec-tokens)")
    spec = replace(spec, encoder_params=spec.encoder_params + encoder, weights_format=weights,
                   experts_format=experts, mixer_format=mixer, mixer_tensors=mixer_tensors,
                   warnings=(*spec.warnings, *warnings), mtp_layers=mtp)
    # a Hub config.json rarely carries _name_or_path: its parameter count tells gpt-oss-20b from -120b
    return replace(spec, name=f"{spec.name}, {_count(spec.params)} parameters") if unnamed else spec


def _count(n: int) -> str:
    """A parameter count the way model cards round it: 116.8 B, 135.0 M."""
    return f"{n / 1e9:,.1f} B" if n >= 10**9 else f"{n / 1e6:,.1f} M"


# Module names a checkpoint may leave unquantized that kvdash keeps in 16-bit anyway (matched per
# dotted segment, so "mlp.gate_proj" is not mistaken for a router "gate").
_ALWAYS_16BIT_PREFIXES = ("lm_head", "embed", "router", "vision", "visual", "multi_modal", "mm_projector", "audio",
                          "e_score_correction_bias", "shared_expert_gate")


# a token mixer, or one of its matrices, left unquantized: "model.layers.12.self_attn*" (ModelOpt, one layer),
# "model.layers.3.self_attn.q_a_proj", "model.layers.*.self_attn" (gpt-oss, every layer), "re:.*\.self_attn\.q_proj$"
_MIXER_ENTRY = re.compile(r"(?:self_attn|linear_attn|attn|mixer)(?:\W*\*|\W+(\w*proj\w*)\$?)?\$?")
_LAYER_INDEX = re.compile(r"layers\.(\d{1,9})\.")  # bounded: a hostile index of thousands of digits is no int


def _mixer_exclusions(skipped: list[str], n_layers: int) -> tuple[set[str], frozenset[str] | None]:
    """(the entries this reads, the token-mixer matrices every layer leaves unquantized: None for none, an empty set
    for the whole mixer, else their names). An MTP layer past the last is read and ignored."""
    per_layer: dict[int, set[str]] = {}  # layer -> names left unquantized ("": its whole mixer)
    every: set[str] = set()
    entries: dict[str, str] = {}
    for x in skipped:
        hit, layer = _MIXER_ENTRY.search(x), _LAYER_INDEX.search(x)
        # the whole mixer or one of its matrices (not a norm or an indexer inside it), per layer or for every layer
        if not hit or hit.end() != len(x) or (not layer and any(seg.isdigit() for seg in x.split("."))):
            continue
        name = hit.group(1) or ""
        (per_layer.setdefault(int(layer.group(1)), set()) if layer else every).add(name)
        entries[x] = name if not layer or int(layer.group(1)) < n_layers else "mtp"
    if not n_layers or not entries:
        return set(), None
    held = [every | per_layer.get(i, set()) for i in range(n_layers)]
    if all("" in h for h in held):
        return set(entries), frozenset()
    names = frozenset(n for n in set().union(*held) - {""} if all(n in h or "" in h for h in held))
    return {x for x, n in entries.items() if n in names or n == "mtp"}, (names or None)


# a dense MLP's or a shared expert's projections (not a router's gate): "model.layers.0.mlp.gate_proj",
# "re:.*mlp\.(gate|up|gate_up|down)_proj.*", "re:.*shared_experts.*"
_DENSE_MLP = re.compile(r"shared_expert|mlp\W+\(?(?:gate|up|down|gate_up)(?:_proj|\|)")


def _kept_16bit(name: str) -> bool:
    return any(seg == "gate" or seg.endswith("norm") or seg.startswith(_ALWAYS_16BIT_PREFIXES)
               for seg in (part.strip("\\$*") for part in name.split(".")))


def _compressed_tensors(q: dict, g: _Fields) -> str | None:
    """A compressed-tensors checkpoint's weight format from its first config group's `weights` scheme
    (llm-compressor's presets): W4A16 (int, 4 bits, group or channel strategy; packed, a 16-bit scale per
    group, a packed zero when asymmetric), W8A8 (int, 8 bits, channel: an fp32 scale per output channel as
    vLLM keeps it), FP8 / FP8-dynamic (float, 8 bits: per tensor, per channel, or 128 x 128 blocks), NVFP4."""
    form = (g.str("format") or "").lower()
    if form == "nvfp4-pack-quantized":
        return "nvfp4"
    groups = q.get("config_groups")
    first = next(iter(groups.values()), None) if isinstance(groups, dict) and groups else None
    w = first.get("weights") if isinstance(first, dict) else None
    if not isinstance(w, dict):
        return "fp8" if form == "float-quantized" else None
    s = _Fields(w, "quantization_config.config_groups.weights.")
    bits, kind = s.int("num_bits", default=0, lo=0, hi=64), (s.str("type") or "").lower()
    strategy = (s.str("strategy") or "").lower()
    if kind == "float" and bits == 8:
        block = w.get("block_structure")
        return {"tensor": "fp8", "channel": "fp8-channel",
                "block": "fp8-block" if block == [128, 128] else None}.get(strategy)
    if kind == "int" and bits == 8 and strategy == "channel":
        return "int8-channel"
    if kind == "int" and bits == 4 and strategy in ("group", "channel"):
        size = s.int("group_size", default=128, lo=-1, hi=1 << 20) if strategy == "group" else -1
        return with_group("int4" if s.bool("symmetric", True) else "int4-asym", size if size > 0 else 1 << 20)
    return None


def _quantization(q, warnings: list, n_layers: int, sixteen: str) -> tuple[str, str, str, tuple[str, ...]]:
    """(matrices' format, routed experts' format, token mixers' format where it differs, which of their matrices:
    () for all) of a checkpoint from its quantization_config.

    gpt-oss (mxfp4) quantizes only the experts (its modules_to_not_convert lists the attention);
    DeepSeek's fp8 has 128 x 128 block scales (weight_block_size); AWQ and GPTQ store int4 with fp16
    scales and packed zeros per group_size inputs; NVFP4 (modelopt, compressed-tensors); compressed-tensors
    W4A16, W8A8 and FP8 schemes (_compressed_tensors). A checkpoint that leaves every layer's attention
    unquantized beside quantized MLPs keeps those matrices in its 16-bit dtype (`sixteen`): ModelOpt's NVFP4
    exports list "model.layers.N.self_attn*" (or linear_attn*) for each layer N in exclude_modules
    (nvidia/DeepSeek-R1-0528-NVFP4, GLM-4.7-NVFP4, MiniMax-M2.5-NVFP4 hf_quant_config.json)."""
    if q is None:
        return "", "", "", ()
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
    elif method == "modelopt" or (not method and "quant_algo" in q):  # modelopt's hf_quant_config form
        fmt = {"nvfp4": "nvfp4", "fp8": "fp8"}.get((g.str("quant_algo") or "").lower())
    elif method == "compressed-tensors":
        fmt = _compressed_tensors(q, g)
    if fmt is None:
        warnings.append(f"quantization_config ({_show(q.get('quant_method', 'unknown'))}, {_show(q.get('bits'))} bits) "
                        "is not modelled: weights are sized at the chosen weights dtype")
        return "", "", "", ()
    skipped = [x for x in (g.list("modules_to_not_convert") or g.list("ignore") or g.list("exclude_modules") or [])
               if isinstance(x, str)]
    # the attention of every layer left unquantized beside quantized MLPs (ModelOpt's NVFP4 exports), whole or some
    # of its matrices (DeepSeek's FP4-v2: all but o_proj)
    covered, mixer = _mixer_exclusions(skipped, n_layers)
    # ... and the dense MLPs' or shared experts' too (Kimi-K2's ignore list): only the routed experts are quantized;
    # MXFP4 (gpt-oss) quantizes experts only by itself
    experts_only = mixer is not None and (method == "mxfp4" or any(_DENSE_MLP.search(x) for x in skipped))
    if experts_only:
        covered |= {x for x in skipped if _DENSE_MLP.search(x)}
    unknown = [x for x in skipped if not _kept_16bit(x) and x not in covered]
    if unknown:
        warnings.append(f"quantization_config leaves {', '.join(unknown[:3])} unquantized; kvdash sizes them as "
                        f"{fmt}")
    if mixer is None:
        return fmt, fmt, "", ()
    return ("", fmt, "", ()) if experts_only else (fmt, fmt, sixteen, tuple(sorted(mixer)))


# Sub-config defaults for vision towers saved sparsely (configuration_qwen2_vl.py, Qwen2VLVisionConfig).
_VISION_DEFAULTS = {"qwen2_vl": dict(depth=32, embed_dim=1280, mlp_ratio=4, patch_size=14)}


def supported_types() -> tuple[str, ...]:
    """Every model_type with a reader of its own (the rest are read as generic decoders, with a warning)."""
    return (*BUILDERS, *FAMILY_BUILDERS)


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

