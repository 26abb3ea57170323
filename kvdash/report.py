"""The breakdown in words: each component's formula with the scenario's numbers filled in, the activation
peak split term by term, and the JSON the CLI prints. kvdash.breakdown computes; this module only writes."""

from __future__ import annotations

from kvdash.breakdown import INNER, Breakdown, activation_dtype, phase_shape, phase_terms, sampler_terms
from kvdash.dtypes import get_dtype, high_precision
from kvdash.engines import SAMPLER_BYTES_PER_LOGIT, engine_facts, non_torch_bytes
from kvdash.runtimes import FP32
from kvdash.units import cdiv

Term = tuple[str, int, bool, str]  # (term, bytes, counted in the peak, formula)


def activation_split(b: Breakdown) -> tuple[str, list[Term]]:
    """The terms of the activation peak at its phase, for the breakdown table and the Memory page:
    (phase, [(term, bytes, counted in the peak, formula)]). Of a forward's INNER terms only the largest counts."""
    s, st = b.scenario, b.stage
    B, P, T, limits = s.batch, s.prompt_tokens, s.context, s.step_limits()
    phases = b.phases()
    phase = max(("prefill", "decode", "sampler"), key=lambda k: phases[k])  # ties: the prefill
    if phase == "sampler":
        return _sampler_split(b)
    decoding = phase == "decode"
    terms = phase_terms(st, B, P, T, limits, decoding)
    n, seqs, keys, c = phase_shape(st, B, P, T, limits, decoding)
    if decoding:
        name = f"decode step of {n:,} seq at {T:,} tokens"
    elif limits[0] and n < B * P:
        name = f"prefill step of {n:,} tokens ({seqs:,} seq × up to {c:,}; at most {limits[0]:,} a step)"
    else:
        name = f"prefill of {seqs:,} seq × {c:,} tokens"
    rt = st.runtime
    widest = max(st.mixers, key=lambda x: x.bytes(n, seqs, keys, decoding))
    k = widest.keys(keys, decoding)
    mixer_how = (f"{widest.spec.short} layers: {n:,} tokens × {widest.per_token:,} B (queries, new keys and "
                 "values, output)")
    if per_key := (widest.per_key_decode if decoding else widest.per_key):
        mixer_how += f" + {seqs:,} seq × {k:,} keys × {per_key:,} B (K/V repeated to every query head)"
    if widest.score_bytes:
        mixer_how += (f" + {n:,} × {k:,} scores × {widest.score_heads} heads × {widest.score_bytes} B "
                      "(masked scores + fp32 softmax)")
    if widest.call_mask and not decoding:
        mixer_how += f" + {n:,} × {k:,} × {widest.call_mask} B (SDPA's float copy of a window mask)"
    mlp_pt = st.mlp_decode_pt if decoding else st.mlp_pt
    regrow_how = ""
    if terms["cache regrowth"]:
        spec, bpt = max(st.regrow, key=lambda r: r[1] * r[0].held(B, T - 1, 0, 0))
        regrow_how = (f"{spec.held(B, T - 1, 0, 0):,} held tokens × {bpt:,} B (one layer's {spec.short} K or V, "
                      "copied by torch.cat as the cache grows)")
    how = {
        "residual stream": f"{n:,} tokens × {rt.hidden_copies} copies × {st.hidden_pt // rt.hidden_copies:,} B",
        "positions": f"{n:,} tokens × {st.position_pt:,} B (int64 position id + rotary cos and sin)",
        "mixer": mixer_how,
        "MLP": f"{n:,} tokens × {mlp_pt:,} B (MLP or experts' intermediates, routing"
               + (", each routed expert's weights copied" if mlp_pt > st.mlp_pt else "") + ")",
        "fp32 norm": f"{n:,} tokens × {st.norm_pt:,} B (RMSNorm upcast to fp32)",
        "masks": (f"{n:,} × {keys:,} positions × {st.mask_bytes} B per sequence (additive float masks)"
                  if st.mask_bytes else f"{c:,} × {keys:,} positions × {st.shared_mask_bytes} B for the batch "
                  "(bool window masks + SDPA's float copy)"),
        "cache regrowth": regrow_how,
    }
    top = max(INNER, key=lambda label: terms[label])
    return name, [(label, v, label not in INNER or label == top, how[label]) for label, v in terms.items()]


def _sampler_split(b: Breakdown) -> tuple[str, list[Term]]:
    s, st = b.scenario, b.stage
    limits = s.step_limits()
    terms = sampler_terms(st, s.batch, s.prompt_tokens, limits)
    n = phase_shape(st, s.batch, s.prompt_tokens, s.prompt_tokens, limits, False)[0]
    r = min(s.batch, limits[1], n)
    moe = st.sampler_per_token - b.model.hidden_size * st.act_bytes
    how = {"hidden states and MoE workspace": f"{n:,} tokens × {st.sampler_per_token:,} B (the step's hidden states"
                                              + (", the fused-MoE workspace vLLM keeps" if moe else "") + ")",
           "logits and sort buffers": f"{r:,} requests × {b.model.vocab_size:,} vocab × {SAMPLER_BYTES_PER_LOGIT} B "
                                      "(fp32 logits of the whole vocabulary on every GPU, top-k / top-p sort buffers; "
                                      "measured on vLLM 0.19)"}
    return (f"sampler after a step of {n:,} tokens ({r:,} requests)",
            [(label, v, True, how[label]) for label, v in terms.items()])


def formulas(b: Breakdown) -> dict[str, str]:
    """Each component's formula with the scenario's numbers filled in, by component key."""
    m, s, st, gpu = b.model, b.scenario, b.stage, b.gpu
    out = {"weights": _weights(b), "encoder": _encoder(b), "kv_cache": _kv_cache(b)}
    phase, terms = activation_split(b)
    inner = [f"{label} {v:,} B" for label, v, _, _ in terms if label in INNER]
    outer = [f"{label} {v:,} B" for label, v, _, _ in terms if label not in INNER and v]
    body = " + ".join([*outer[:1], f"max({', '.join(inner)})", *outer[1:]]) if inner else " + ".join(outer)
    out["activation"] = (f"{phase}, {st.runtime.label}: {body} (each term: "
                         + "; ".join(f"{label}: {how}" for label, v, _, how in terms if v) + ")")
    if s.engine:
        budget, seqs = s.step_limits()
        out["activation"] += (f"; the largest of the prefill step, a decode step and the sampler, at most {budget:,} "
                              f"tokens and {seqs:,} sequences a step ({engine_facts(s.engine).limits_basis(gpu)})")
    if st.logits_per_seq:
        vocab = cdiv(m.vocab_size, s.tp)
        per = st.logits_per_seq // vocab
        copy = f" + {FP32} B fp32 copy for sampling" if per > st.act_bytes else ""
        out["logits"] = f"{s.batch:,} seq × {vocab:,} vocab × ({st.act_bytes} B LM-head output{copy}), last position"
    elif s.engine:
        out["logits"] = "in the activation peak: the engine samples after the forward has freed its layers"
    else:
        out["logits"] = "not on this pipeline stage"
    out["overhead"] = f"measured constant: {s.runtime_overhead_bytes:,} B (CUDA context and library workspaces)"
    if s.engine:
        out["overhead"] += (f" + {non_torch_bytes(s.tp, s.pp):,} B outside torch (NCCL and custom all-reduce buffers, "
                            "cuBLAS and Triton; measured on vLLM 0.19, H100)")
    u = s.gpu_memory_utilization
    out["engine_reserve"] = (f"(1 − {u}) × {gpu.usable_bytes:,} B usable, less the {s.runtime_overhead_bytes:,} B "
                             "CUDA context that lives in it, left free by the engine" if u and gpu is not None
                             else "no engine memory-utilisation cap set")
    return out


def _weights(b: Breakdown) -> str:
    st, s = b.stage, b.scenario
    w, e = get_dtype(s.weights_dtype), get_dtype(s.experts_dtype)
    hp, x = high_precision(w), get_dtype(b.model.mixer_dtype(s.weights_dtype))
    terms = [(st.linear_params - st.expert_params - st.mixer_params, w, ""),
             (st.mixer_params, x, " [attention, unquantized in the checkpoint]"),
             (st.expert_params, e, " [routed experts]"), (st.other_params, hp, " [embeddings, norms, biases, routers]")]
    parts = [f"{n:,} × {d.bits // 8 if d.bits % 8 == 0 else f'{d.bits}/8'} B ({d.name}){label}"
             for n, d, label in terms if n]
    scales = st.weight_bytes - sum(-(-n * d.bits // 8) for n, d, _ in terms)
    if scales:
        how = "; ".join(sorted({f"{d.name}: {d.formula()}" for n, d, _ in terms if n and d.scale_bytes}))
        parts.append(f"{scales:,} B of scales, zeros and indices, matrix by matrix [{how}]")
    return " + ".join(parts)


def _encoder(b: Breakdown) -> str:
    if not b.stage.encoder_bytes:
        return "no vision or audio encoder" + (" on this pipeline stage" if b.model.encoder_params else "")
    hp = high_precision(get_dtype(b.scenario.weights_dtype))
    return (f"{b.stage.encoder_params:,} × {hp.bits // 8} B ({hp.name}) "
            "[vision tower / audio encoder and projector, replicated, kept in 16-bit]")


def _kv_cache(b: Breakdown) -> str:
    s, st = b.scenario, b.stage
    B, T, S, bs, tp = s.batch, s.context, s.shared_prefix_tokens, s.block_size, s.tp
    kv = get_dtype(s.kv_dtype)
    parts = []
    for spec, bpt in st.caches:  # a draft model's layers follow the target's (kvdash.speculative)
        held = spec.held(B, T, S, bs)
        slots = (f"{B:,} seq × {T:,} tokens" if held == B * T and not S else
                 f"{held:,} slots ({spec.held_rule(bs)}; {B:,} seq × {T:,} tokens"
                 + (f", prefix of {S:,} stored once" if S else "") + (f", blocks of {bs}" if bs else "") + ")")
        parts.append(f"{slots} × {bpt:,} B/token [{bpt // spec.bytes_per_token(kv, tp)} {spec.short} layers × "
                     f"{spec.describe(kv, tp)}]")
    if st.state_bytes:
        act = activation_dtype(get_dtype(s.weights_dtype))
        fixed = [f"{n} {spec.short} layers × {spec.describe(kv, tp)}" for spec, n in st.cache_groups
                 if spec.bytes_per_seq(kv, act, tp, bs)]
        parts.append(f"{B:,} seq × {st.state_bytes:,} B fixed per sequence [{'; '.join(fixed)}]")
    return " + ".join(parts) or "no layer holds a cache"


def breakdown_dict(b: Breakdown) -> dict:
    """The breakdown as one JSON-ready object (the CLI's `size --json`)."""
    phase, terms = activation_split(b)
    text = formulas(b)
    s = b.scenario
    out = {
        "model": b.model.name,
        "params": b.model.params,
        "active_params": b.model.active_params,
        "per_gpu": b.n_gpus > 1,
        "n_gpus": b.n_gpus,
        "pipeline_stage": b.stage.index,
        "kv_bytes_per_token": b.kv_bytes_per_token,
        "state_bytes_per_seq": b.state_bytes_per_seq,
        "runtime": s.runtime,
        "max_num_batched_tokens": s.max_num_batched_tokens,
        "max_num_seqs": s.max_num_seqs,
        "activation_phase": phase,
        "activation_terms": [{"term": t, "bytes": v, "in_peak": used, "formula": how}
                             for t, v, used, how in terms if v],
        "weights_dtype": s.weights_dtype,
        "experts_dtype": s.experts_dtype,
        "expert_parallel": s.expert_parallel,
        "layers": b.layer_summary(),
        "warnings": b.warnings,
        "total_bytes": b.total,
        "components": [{"key": c.key, "label": c.label, "bytes": c.bytes, "formula": text[c.key], "basis": c.basis}
                       for c in b.components],
    }
    for c in b.components:
        out[f"{c.key}_bytes"] = c.bytes
    if b.gpu is not None:
        out.update(gpu=b.gpu.id, gpu_usable_bytes=b.gpu.usable_bytes, fits=b.fits, headroom_bytes=b.headroom)
    return out

