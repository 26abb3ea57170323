"""The breakdown: one table of named memory components, exact integer bytes, each with its formula.

Every chart, table, CLI line and test reads this table. Figures are per GPU: with tensor
parallelism each GPU holds its shard; with pipeline parallelism the table describes the most
loaded stage (the one that decides whether the scenario fits).

The arithmetic is written once, in functions that take plain integers or numpy arrays, so the
vectorised sweeps (`kvdash.sweep`) evaluate exactly the same formulas as a single scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from kvdash.dtypes import DTYPES, DType, get_dtype, high_precision
from kvdash.layers import LayerSpec, held_full, held_sliding  # noqa: F401  (held_*: the public formulas)
from kvdash.model import ModelSpec
from kvdash.params import embedding_params, embedding_tensors, layer_params, layer_tensors
from kvdash.runtimes import Runtime, get_runtime
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import GiB, cdiv
from kvdash.weights import formats, layer_weight_bytes, table_bytes

LOGIT_BYTES = 4  # logits are upcast to fp32 before sampling
NORM_BYTES = 2 * 4  # an RMSNorm in fp32: the upcast copy and its square / normalised copy, per value
POSITION_ID_BYTES = 8  # int64 position ids per token (generate() builds them for the batch)
INDEX_BYTES = 8  # int64 expert indices (top-k ids; Hugging Face's sort of the (token, expert) pairs)


# ---- per-token sizes -------------------------------------------------------------------------
def kv_bytes_per_token_layer(m: ModelSpec, kind: str, kv: DType, tp: int = 1) -> int:
    """Cache bytes one token adds to one layer of the given kind on one GPU (the first such layer)."""
    return {spec.kind: spec for spec in reversed(m.layers)}[kind].bytes_per_token(kv, tp)


def activation_dtype(weights: DType) -> DType:
    return DTYPES["fp32"] if weights.name == "fp32" else DTYPES["bf16"]


def pipeline_partition(n_layers: int, pp: int) -> list[range]:
    """Contiguous layer ranges per stage. Leftover layers go one each to the stages just before the
    last (which also carries the LM head), as vLLM's get_pp_indices does: 32 layers / 3 -> 11, 11, 10."""
    sizes = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        sizes[-i] += 1
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


@dataclass(frozen=True)
class Mixer:
    """One layer kind's token mixer while it runs, in bytes: per query token in flight, per key of one
    sequence it attends to (copies of the cached K/V), and per (query, key) pair (an eager kernel's scores,
    SDPA's float copy of a window mask)."""

    spec: LayerSpec
    per_token: int
    per_key: int  # in a prefill
    per_key_decode: int  # in a decode step
    score_heads: int  # query heads whose scores an eager kernel stores
    score_bytes: int  # bytes per score while an eager softmax runs (0: fused kernel)
    call_mask: int  # bytes per pair of SDPA's float copy of a window mask in a prefill's call (none in decode)

    def keys(self, T, decode: bool, mn=min, mx=max):
        """Keys a query attends to: the whole context in a prefill (masks and scores span it even where a
        window limits what counts); in a decode step, the tokens the layer holds (a window's last W)."""
        return self.spec.held(1, T, 0, 0, mn, mx) if decode and self.spec.grows else T

    def bytes(self, tokens, B, T, decode: bool, mn=min, mx=max):
        k = self.keys(T, decode, mn, mx)
        per_key = self.per_key_decode if decode else self.per_key
        per_pair = self.score_heads * self.score_bytes + (0 if decode else self.call_mask)
        return tokens * self.per_token + B * k * per_key + tokens * k * per_pair


@dataclass(frozen=True)
class Stage:
    """Everything about one GPU of one pipeline stage that does not depend on batch or length."""

    index: int
    layers: range
    groups: tuple[tuple[LayerSpec, int], ...]  # (layer spec, number of layers) in this stage
    cache_groups: tuple[tuple[LayerSpec, int], ...]  # the same, as the cache the runtime keeps (cache_spec)
    linear_params: int  # matrices, routed experts included
    other_params: int  # norms, biases, routers, embeddings, LM head
    encoder_params: int  # vision tower / audio encoder (first stage)
    weight_bytes: int  # the language model's weights on this GPU
    expert_bytes: int  # of which routed experts (the speed model reads only the experts a step touches)
    expert_params: int
    encoder_bytes: int  # the encoder's weights, kept in 16-bit
    caches: tuple[tuple[LayerSpec, int], ...]  # (spec, cache bytes per held token, all its layers)
    state_bytes: int  # fixed bytes per sequence: recurrent state, cross-attention K/V
    act_bytes: int  # bytes per activation value (bf16, or fp32 for an fp32 model)
    runtime: Runtime  # what runs the model: decides the activation terms below
    hidden_pt: int  # activation bytes per token in flight: the residual-stream tensors the runtime keeps
    position_pt: int  # ... for the whole forward: position ids and the rotary cos/sin tables (Hugging Face)
    mixers: tuple[Mixer, ...]  # each layer kind's working set while it runs (the largest counts)
    mlp_pt: int  # ... inside the widest MLP / expert block (routing buffers included)
    mlp_decode_pt: int  # ... in a decode step (Hugging Face on a GPU gathers each routed expert's weights)
    norm_pt: int  # ... inside an RMSNorm computed in fp32 (Hugging Face)
    mask_bytes: int  # bytes per (query, key) pair of one sequence for the forward's attention masks
    shared_mask_bytes: int  # ... of masks built once for the whole batch (SDPA's bool masks)
    regrow: tuple[tuple[LayerSpec, int], ...]  # (cache spec, bytes per held token of its larger K/V) for torch.cat
    logits_per_seq: int  # LM-head output of the last position in the activation dtype + its fp32 copy

    @property
    def kv_bpt(self) -> int:
        """Cache bytes per token of one sequence, summed over the layers whose cache grows."""
        return sum(b for _, b in self.caches)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for spec, n in self.groups:
            out[spec.short] = out.get(spec.short, 0) + n
        return out


def scenario_stages(m: ModelSpec, s: Scenario) -> tuple[Stage, ...]:
    return stages(m, s.tp, s.pp, s.weights_dtype, s.kv_dtype, s.block_size, s.experts_dtype, s.ep, s.runtime)


@lru_cache(maxsize=512)
def stages(m: ModelSpec, tp: int, pp: int, weights_dtype: str, kv_dtype: str, block_size: int = 0,
           experts_dtype: str = "", ep: int = 1, runtime: str = "engine") -> tuple[Stage, ...]:
    w, kv = get_dtype(weights_dtype), get_dtype(kv_dtype)
    hp, act = high_precision(w), activation_dtype(w)
    rt = get_runtime(runtime)
    experts_dtype = experts_dtype or weights_dtype
    a = act.nbytes(1, 1)
    per_layer = layer_params(m, tp, ep=ep)
    emb = embedding_params(m, tp)
    table, fmt = embedding_tensors(m), formats(weights_dtype, experts_dtype)
    mats = 3 if m.gated_mlp else 2
    dense_pt = mats * cdiv(m.intermediate_size, tp) * a
    k, e, h = m.experts_per_token, cdiv(m.expert_intermediate_size, tp), m.hidden_size
    routing = m.n_experts * LOGIT_BYTES + k * (INDEX_BYTES + LOGIT_BYTES)  # router logits, top-k ids and weights
    if rt.hf:
        # transformers 5's grouped_mm experts, per routed token: the gathered input (h) beside the gate-up
        # output (2e), its activation and the product (e each); then the input, the down output and two
        # fp32 weighted copies (routing weights are fp32; the second copy restores the token order).
        # Sorting the (token, expert) pairs adds int64 values and a permutation and the permuted weights.
        routed = max((h + 4 * e) * a, h * (2 * a + 2 * LOGIT_BYTES))
        routing += k * (2 * INDEX_BYTES + LOGIT_BYTES)
    else:  # fused-MoE kernels: the experts' gate-up and activated intermediates
        routed = mats * e * a
    moe_pt = k * routed + mats * cdiv(m.shared_expert_intermediate_size, tp) * a + routing
    moe_decode_pt = moe_pt
    if rt.hf:
        # generate() on a GPU decodes with batched_mm: per routed token it copies that expert's gate-up and
        # down matrices (gate_up_proj[expert_ids], then down_proj[...] while the first is still referenced)
        moe_decode_pt += k * get_dtype(experts_dtype).matrix_bytes(3 * e, h)
    # per sequence for the forward, once for the batch, and SDPA's per-sequence float copy in a masked layer's call
    mask_bytes, shared_mask_bytes, call_mask = rt.mask_bytes_per_pair({sp.mask for sp in m.layers if sp.mask}, a)
    out = []
    for i, layers in enumerate(pipeline_partition(m.n_layers, pp)):
        counts: dict[LayerSpec, int] = {}
        for j in layers:
            counts[m.layers[j]] = counts.get(m.layers[j], 0) + 1
        groups = tuple(counts.items())
        linear = sum(per_layer[j].linear for j in layers)
        other = sum(per_layer[j].other for j in layers)
        layer_bytes = [layer_weight_bytes(m, j, tp, weights_dtype, experts_dtype, ep) for j in layers]
        weight_bytes = sum(b for b, _ in layer_bytes)
        first, last = i == 0, i == pp - 1
        outside = []  # embedding, LM head, final norm: where the pipeline puts them
        if first:
            other += emb.embed + m.extra_params
            outside += table["first"]
        if last:
            other += emb.final_norm
            outside += table["final_norm"]
            # A tied head shares the embedding's storage only when both sit on the same GPU.
            if not (m.tie_word_embeddings and first):
                other += emb.head
                outside += table["head"]
        encoder = m.encoder_params if first else 0
        ffn = [(m.mlp_mask[j], m.moe_mask[j]) for j in layers]
        moe_here = any(mlp and moe for mlp, moe in ffn)  # the stage's widest MLP: experts, a dense MLP or none
        dense_here = dense_pt if any(mlp and not moe for mlp, moe in ffn) else 0
        kept = tuple((spec.cache_spec(rt), n) for spec, n in groups)  # the cache this runtime keeps
        out.append(
            Stage(
                index=i,
                layers=layers,
                groups=groups,
                cache_groups=kept,
                linear_params=linear,
                other_params=other,
                encoder_params=encoder,
                weight_bytes=weight_bytes + table_bytes(outside, tp, fmt),
                expert_bytes=sum(e for _, e in layer_bytes),
                expert_params=sum(n * t.numel(tp) for j in layers for t, n in layer_tensors(m, j, ep=ep)
                                  if t.role == "expert"),
                encoder_bytes=hp.nbytes(encoder, 1),
                caches=tuple((spec, n * spec.bytes_per_token(kv, tp)) for spec, n in kept
                             if spec.grows and spec.bytes_per_token(kv, tp)),
                state_bytes=sum(n * spec.bytes_per_seq(kv, act, tp, block_size) for spec, n in kept),
                act_bytes=a,
                runtime=rt,
                hidden_pt=rt.hidden_copies * m.hidden_size * a,
                position_pt=(POSITION_ID_BYTES + 2 * max((sp.rotary_dim for sp in m.layers), default=0) * a
                             if rt.hf else 0),
                mixers=tuple(Mixer(spec, spec.act_bytes(tp, a, rt), spec.key_bytes(tp, a, rt),
                                   spec.key_bytes(tp, a, rt, decode=True), spec.score_heads(tp), rt.score_bytes(a),
                                   call_mask if spec.mask not in ("", "causal") else 0) for spec, _ in groups),
                mlp_pt=max(moe_pt if moe_here else 0, dense_here),
                mlp_decode_pt=max(moe_decode_pt if moe_here else 0, dense_here),
                norm_pt=NORM_BYTES * m.hidden_size if rt.hf else 0,
                mask_bytes=mask_bytes,
                shared_mask_bytes=shared_mask_bytes,
                regrow=tuple((spec, b) for spec, _ in kept if rt.hf and (b := spec.regrow_bytes_per_token(kv, tp))),
                # the LM head's output of the last position, and its fp32 copy for sampling (an engine's
                # .float() is a no-op on fp32 logits; generate() copies them regardless)
                logits_per_seq=cdiv(m.vocab_size, tp) * (a + LOGIT_BYTES if rt.hf or a < LOGIT_BYTES else a)
                if last else 0,
            )
        )
    return tuple(out)


# ---- the formulas, for ints or numpy arrays ------------------------------------------------------
def kv_bytes(st: Stage, B, T, S: int, bs: int, mn=min, mx=max):
    """Cache bytes of the stage: each kind's held token slots x its bytes per token, plus the fixed
    per-sequence state (the stage was built for the same block size)."""
    out = B * st.state_bytes
    for spec, bpt in st.caches:
        out = out + bpt * spec.held(B, T, S, bs, mn, mx)
    return out


INNER = ("mixer", "MLP", "fp32 norm", "cache regrowth")  # the per-layer peaks of which only the largest counts


def _phase_shape(st: Stage, B, P, T, chunk: int, decode: bool, mn=min):
    """(tokens in flight, keys each attends to, prompt tokens per sequence in the step) of a phase."""
    if decode:
        return B, T, 1
    c = mn(P, chunk) if chunk and not st.runtime.hf else P  # Hugging Face prefills the whole prompt
    return B * c, P, c


def phase_terms(st: Stage, B, P, T, chunk: int, decode: bool, mn=min, mx=max) -> dict:
    """The activation terms of one phase (a prefill chunk, or one decode step at the full context), for ints
    or numpy arrays: the runtime's residual-stream tensors and positions for the tokens in flight, the
    forward's attention masks, and the INNER candidates: the widest kind's mixer (with an eager kernel's
    scores and any copies of the keys it attends to), the MLP, an fp32 norm, and in a decode step a growing
    cache's torch.cat (old and new copy of one layer's K or V)."""
    tokens, keys, c = _phase_shape(st, B, P, T, chunk, decode, mn)
    mixer = 0
    for m in st.mixers:
        mixer = mx(mixer, m.bytes(tokens, B, keys, decode, mn, mx))
    regrow = 0
    if decode:
        for spec, bpt in st.regrow:
            regrow = mx(regrow, bpt * spec.held(B, T - 1, 0, 0, mn, mx))
    return {"residual stream": tokens * st.hidden_pt, "positions": tokens * st.position_pt,
            "mixer": mixer, "MLP": tokens * (st.mlp_decode_pt if decode else st.mlp_pt),
            "fp32 norm": tokens * st.norm_pt,
            "masks": tokens * keys * st.mask_bytes + c * keys * st.shared_mask_bytes, "cache regrowth": regrow}


def _peak(terms: dict, mx=max):
    """The terms alive together: every outer term plus the largest inner one."""
    inner = 0
    for label in INNER:
        inner = mx(inner, terms[label])
    return sum(v for label, v in terms.items() if label not in INNER) + inner


def activation_phases(st: Stage, B, P, T, chunk: int, mn=min, mx=max):
    """Transient working set of one layer (activations are freed layer by layer in inference):
    (prefill of one chunk of the prompt, one decode step at the full context); see phase_terms. With fewer
    than two generated tokens no decode step runs: its phase is 0."""
    prefill = _peak(phase_terms(st, B, P, T, chunk, False, mn, mx), mx)
    decode = _peak(phase_terms(st, B, P, T, chunk, True, mn, mx), mx)
    return prefill, decode * (T - P >= 2)


def activation_bytes(st: Stage, B, P, T, chunk: int, mn=min, mx=max):
    """Peak activation bytes: the larger of the prefill chunk and a decode step."""
    return mx(*activation_phases(st, B, P, T, chunk, mn, mx))


def activation_split(st: Stage, B: int, P: int, T: int, chunk: int) -> tuple[str, list[tuple[str, int, bool, str]]]:
    """The terms of the activation peak at its phase, for the breakdown table and the Memory page:
    (phase, [(term, bytes, counted in the peak, formula)]). Of the INNER terms only the largest counts."""
    prefill, decode = activation_phases(st, B, P, T, chunk)
    decoding = decode > prefill
    terms = phase_terms(st, B, P, T, chunk, decoding)
    n, keys, c = _phase_shape(st, B, P, T, chunk, decoding)
    phase = f"decode step of {B:,} seq at {T:,} tokens" if decoding else f"prefill of {B:,} seq × {c:,} tokens"
    rt = st.runtime
    widest = max(st.mixers, key=lambda x: x.bytes(n, B, keys, decoding))
    k = widest.keys(keys, decoding)
    mixer_how = (f"{widest.spec.short} layers: {n:,} tokens × {widest.per_token:,} B (queries, new keys and "
                 "values, output)")
    if per_key := (widest.per_key_decode if decoding else widest.per_key):
        mixer_how += f" + {B:,} seq × {k:,} keys × {per_key:,} B (K/V repeated to every query head)"
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
                  if st.mask_bytes else f"{n // B:,} × {keys:,} positions × {st.shared_mask_bytes} B for the batch "
                  "(bool window masks + SDPA's float copy)"),
        "cache regrowth": regrow_how,
    }
    top = max(INNER, key=lambda label: terms[label])
    return phase, [(label, b, label not in INNER or label == top, how[label]) for label, b in terms.items()]


def stage_bytes(st: Stage, s: Scenario, B, P, mn=min, mx=max):
    """Everything one GPU of this stage holds for B sequences of P prompt tokens (plus the scenario's
    generated tokens), except the scenario's fixed overheads. B and P may be numpy arrays."""
    T = P + s.new_tokens
    return (st.weight_bytes + st.encoder_bytes + kv_bytes(st, B, T, s.shared_prefix_tokens, s.block_size, mn, mx)
            + activation_bytes(st, B, P, T, s.prefill_chunk, mn, mx) + B * st.logits_per_seq)


# ---- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    key: str
    label: str
    bytes: int
    explain: Callable[[], str] = field(repr=False, compare=False)  # the formula, built on demand
    basis: str = "formula"  # "formula": computed from the architecture; "measured": a constant

    @property
    def formula(self) -> str:
        """The formula with this scenario's numbers filled in (text is built only when shown)."""
        return self.explain()


@dataclass(frozen=True)
class Breakdown:
    model: ModelSpec
    scenario: Scenario
    stage: Stage
    components: tuple[Component, ...]
    gpu: object | None = None  # kvdash.gpus.Gpu

    @property
    def total(self) -> int:
        return sum(c.bytes for c in self.components)

    def __getitem__(self, key: str) -> int:
        for c in self.components:
            if c.key == key:
                return c.bytes
        raise KeyError(key)

    def activation_split(self) -> tuple[str, list[tuple[str, int, bool, str]]]:
        """The activation peak's phase and terms (see activation_split)."""
        s = self.scenario
        return activation_split(self.stage, s.batch, s.prompt_tokens, s.context, s.prefill_chunk)

    @property
    def kv_bytes_per_token(self) -> int:
        """Cache bytes per token of one sequence on this GPU, before any window saturates."""
        return self.stage.kv_bpt

    @property
    def state_bytes_per_seq(self) -> int:
        """The fixed part of the cache per sequence on this GPU: recurrent state, cross-attention K/V."""
        return self.stage.state_bytes

    def layer_summary(self) -> list[dict]:
        """One row per distinct layer spec of this GPU's stage: kind, count, bytes per token and per sequence."""
        kv, act = get_dtype(self.scenario.kv_dtype), activation_dtype(get_dtype(self.scenario.weights_dtype))
        tp, bs = self.scenario.tp, self.scenario.block_size
        return [{"kind": spec.kind, "label": spec.short, "layers": n,
                 "kv_bytes_per_token": n * spec.bytes_per_token(kv, tp),
                 "state_bytes_per_seq": n * spec.bytes_per_seq(kv, act, tp, bs),
                 "formula": spec.describe(kv, tp)} for spec, n in self.stage.cache_groups]

    @property
    def n_gpus(self) -> int:
        return self.scenario.tp * self.scenario.pp

    @property
    def usable_bytes(self) -> int | None:
        return self.gpu.usable_bytes if self.gpu is not None else None

    @property
    def headroom(self) -> int | None:
        """Usable bytes left on the GPU (negative when the scenario does not fit)."""
        return None if self.gpu is None else self.gpu.usable_bytes - self.total

    @property
    def fits(self) -> bool | None:
        return None if self.gpu is None else self.headroom >= 0

    @property
    def warnings(self) -> list[str]:
        """Where these numbers stop holding, or hold only with care: the importer's notes on the model,
        a context beyond what the model was trained for, caches copied by tensor parallelism, a fit
        without room for what kvdash does not model."""
        m, s = self.model, self.scenario
        out = list(m.warnings)
        if not m.max_position_embeddings:
            out.append("the config does not say how long a context the model was trained for "
                       "(no max_position_embeddings): whether it works at this length is unknown")
        elif s.context > m.max_position_embeddings:
            out.append(f"{s.context:,} tokens per sequence exceed the {m.max_position_embeddings:,} the model "
                       "was trained for: the memory is as computed, but the model may not work that far")
        out += dict.fromkeys(note for spec, _ in self.stage.groups if (note := spec.tp_note(s.tp)))
        if self.stage.runtime.hf:
            unread = sorted({spec.label for spec, _ in self.stage.groups if not spec.hf_read})
            if unread:
                out.append(f"Hugging Face's own allocations for {', '.join(unread)} layers were not read or measured: "
                           "their activations are counted as an engine's")
        if self.fits and self.headroom < max(GiB, self.gpu.usable_bytes // 20):
            out.append(f"it fits with {self.headroom / GiB:.2f} GiB to spare: CUDA-graph capture and allocator "
                       "fragmentation, which kvdash does not model, commonly take about that much")
        return out

    def to_dict(self) -> dict:
        phase, terms = self.activation_split()
        out = {
            "model": self.model.name,
            "params": self.model.params,
            "active_params": self.model.active_params,
            "per_gpu": self.n_gpus > 1,
            "n_gpus": self.n_gpus,
            "pipeline_stage": self.stage.index,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "state_bytes_per_seq": self.state_bytes_per_seq,
            "runtime": self.scenario.runtime,
            "activation_phase": phase,
            "activation_terms": [{"term": t, "bytes": b, "in_peak": used, "formula": how}
                                 for t, b, used, how in terms if b],
            "weights_dtype": self.scenario.weights_dtype,
            "experts_dtype": self.scenario.experts_dtype,
            "expert_parallel": self.scenario.expert_parallel,
            "layers": self.layer_summary(),
            "warnings": self.warnings,
            "total_bytes": self.total,
            "components": [
                {"key": c.key, "label": c.label, "bytes": c.bytes, "formula": c.formula, "basis": c.basis}
                for c in self.components
            ],
        }
        for c in self.components:
            out[f"{c.key}_bytes"] = c.bytes
        if self.gpu is not None:
            out.update(gpu=self.gpu.id, gpu_usable_bytes=self.gpu.usable_bytes, fits=self.fits,
                       headroom_bytes=self.headroom)
        return out


def breakdown(m: ModelSpec, s: Scenario, gpu=None) -> Breakdown:
    """The memory of scenario `s` for model `m`, per GPU, on the most loaded pipeline stage."""
    check_parallel(m, s)
    sts = scenario_stages(m, s)
    B, P, T, S, bs = s.batch, s.prompt_tokens, s.context, s.shared_prefix_tokens, s.block_size
    chunk = s.prefill_chunk
    reserve = 0
    if gpu is not None and s.gpu_memory_utilization:
        reserve = gpu.usable_bytes - int(s.gpu_memory_utilization * gpu.usable_bytes)

    st = max(sts, key=lambda x: stage_bytes(x, s, B, P)) if len(sts) > 1 else sts[0]
    text = _Explainer(m, s, st, gpu)
    comps = (
        Component("weights", "Weights", st.weight_bytes, text.weights),
        Component("encoder", "Encoder weights", st.encoder_bytes, text.encoder),
        Component("kv_cache", "KV cache", kv_bytes(st, B, T, S, bs), text.kv_cache),
        Component("activation", "Activation peak", activation_bytes(st, B, P, T, chunk), text.activation),
        Component("logits", "Logits", B * st.logits_per_seq, text.logits),
        Component("overhead", "CUDA context & runtime", s.runtime_overhead_bytes, text.overhead, basis="measured"),
        Component("engine_reserve", "Engine reserve", reserve, text.reserve),
    )
    return Breakdown(m, s, st, comps, gpu)


@dataclass(frozen=True)
class _Explainer:
    """Builds each component's formula text, with the scenario's numbers filled in."""

    m: ModelSpec
    s: Scenario
    st: Stage
    gpu: object | None

    def weights(self) -> str:
        st = self.st
        w, e = get_dtype(self.s.weights_dtype), get_dtype(self.s.experts_dtype)
        hp = high_precision(w)
        terms = [(st.linear_params - st.expert_params, w, ""), (st.expert_params, e, " [routed experts]"),
                 (st.other_params, hp, " [embeddings, norms, biases, routers]")]
        parts = [f"{n:,} × {d.bits // 8 if d.bits % 8 == 0 else f'{d.bits}/8'} B ({d.name}){label}"
                 for n, d, label in terms if n]
        scales = st.weight_bytes - sum(-(-n * d.bits // 8) for n, d, _ in terms)
        if scales:
            how = "; ".join(sorted({f"{d.name}: {d.formula()}" for n, d, _ in terms if n and d.scale_bytes}))
            parts.append(f"{scales:,} B of scales, zeros and indices, matrix by matrix [{how}]")
        return " + ".join(parts)

    def encoder(self) -> str:
        if not self.st.encoder_bytes:
            return "no vision or audio encoder" + (" on this pipeline stage" if self.m.encoder_params else "")
        hp = high_precision(get_dtype(self.s.weights_dtype))
        return (f"{self.st.encoder_params:,} × {hp.bits // 8} B ({hp.name}) "
                "[vision tower / audio encoder and projector, replicated, kept in 16-bit]")

    def kv_cache(self) -> str:
        s, st = self.s, self.st
        B, T, S, bs, tp = s.batch, s.context, s.shared_prefix_tokens, s.block_size, s.tp
        kv = get_dtype(s.kv_dtype)
        counts = dict(st.cache_groups)
        parts = []
        for spec, bpt in st.caches:
            held = spec.held(B, T, S, bs)
            slots = (f"{B:,} seq × {T:,} tokens" if held == B * T and not S else
                     f"{held:,} slots ({spec.held_rule(bs)}; {B:,} seq × {T:,} tokens"
                     + (f", prefix of {S:,} stored once" if S else "") + (f", blocks of {bs}" if bs else "") + ")")
            parts.append(f"{slots} × {bpt:,} B/token [{counts[spec]} {spec.short} layers × {spec.describe(kv, tp)}]")
        if st.state_bytes:
            act = activation_dtype(get_dtype(s.weights_dtype))
            fixed = [f"{n} {spec.short} layers × {spec.describe(kv, tp)}" for spec, n in st.cache_groups
                     if spec.bytes_per_seq(kv, act, tp, bs)]
            parts.append(f"{B:,} seq × {st.state_bytes:,} B fixed per sequence [{'; '.join(fixed)}]")
        return " + ".join(parts) or "no layer holds a cache"

    def activation(self) -> str:
        s, st = self.s, self.st
        phase, terms = activation_split(st, s.batch, s.prompt_tokens, s.context, s.prefill_chunk)
        inner = [f"{label} {b:,} B" for label, b, counted, _ in terms if label in INNER]
        outer = [f"{label} {b:,} B" for label, b, counted, _ in terms if label not in INNER and b]
        return (f"{phase}, {st.runtime.label}: " + " + ".join(
            [*outer[:1], f"max({', '.join(inner)})", *outer[1:]]) + " (each term: " +
            "; ".join(f"{label}: {how}" for label, b, _, how in terms if b) + ")")

    def logits(self) -> str:
        if not self.st.logits_per_seq:
            return "not on this pipeline stage"
        vocab = cdiv(self.m.vocab_size, self.s.tp)
        per = self.st.logits_per_seq // vocab
        copy = f" + {LOGIT_BYTES} B fp32 copy for sampling" if per > self.st.act_bytes else ""
        return f"{self.s.batch:,} seq × {vocab:,} vocab × ({self.st.act_bytes} B LM-head output{copy}), last position"

    def overhead(self) -> str:
        return (f"measured constant: {self.s.runtime_overhead_bytes:,} B "
                "(CUDA context and library workspaces)")

    def reserve(self) -> str:
        u = self.s.gpu_memory_utilization
        if not (u and self.gpu is not None):
            return "no engine memory-utilisation cap set"
        return f"(1 − {u}) × {self.gpu.usable_bytes:,} B usable, left free by the engine"
