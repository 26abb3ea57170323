"""The breakdown: one table of named memory components, exact integer bytes (their formulas in words:
kvdash.report).

Every chart, table, CLI line and test reads this table. Figures are per GPU: with tensor
parallelism each GPU holds its shard; with pipeline parallelism the table describes the most
loaded stage (the one that decides whether the scenario fits).

The arithmetic is written once, in functions that take plain integers or numpy arrays, so the
vectorised sweeps (`kvdash.sweep`) evaluate exactly the same formulas as a single scenario.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from kvdash.dtypes import DTYPES, DType, get_dtype, high_precision
from kvdash.engines import NON_TORCH_GPU, SAMPLER_BYTES_PER_LOGIT, engine_facts, non_torch_bytes
from kvdash.layers import LayerSpec, held_full, held_sliding  # noqa: F401  (held_*: the public formulas)
from kvdash.model import ModelSpec
from kvdash.params import embedding_params, embedding_tensors, ffn_widths, layer_params, layer_tensors
from kvdash.runtimes import DEFAULT_RUNTIME, Runtime, get_runtime
from kvdash.scenario import Scenario, check_parallel
from kvdash.speculative import drafted
from kvdash.units import GiB, cdiv
from kvdash.weights import formats, layer_weight_bytes, table_bytes


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
    pair_bytes: int = 0  # bytes per pair of the mixer's own score tensors (a sparse-attention indexer's)

    def keys(self, T, decode: bool, mn=min, mx=max):
        """Keys a query attends to: the whole context in a prefill (masks and scores span it even where a
        window limits what counts); in a decode step, the tokens the layer holds (a window's last W)."""
        return self.spec.held(1, T, 0, 0, mn, mx) if decode and self.spec.grows else T

    def bytes(self, tokens, B, T, decode: bool, mn=min, mx=max):
        k = self.keys(T, decode, mn, mx)
        per_key = self.per_key_decode if decode else self.per_key
        per_pair = self.score_heads * self.score_bytes + self.pair_bytes + (0 if decode else self.call_mask)
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
    mixer_params: int  # of linear_params, the token mixers' matrices where they keep a format of their own (else 0)
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
    logits_per_seq: int  # static batch, Hugging Face: the LM-head output of the last position + its fp32 copy
    sampler_per_req: int  # engines, last stage: bytes per request of the sampler's logits and sort buffers
    sampler_per_token: int  # ... per token of the step: its hidden states and a mixture of experts' workspace

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


def draft_stage(m: ModelSpec, tp: int, kv_dtype: str, block_size: int, runtime: str) -> Stage | None:
    """The draft model's one stage at the target's tensor-parallel degree, in its own weight format (None: no draft
    model). Its activations run apart from the target's, and are not added."""
    if m.draft_model is None:
        return None
    d = m.draft_model
    return stages(d, tp, 1, d.weights_format or d.default_dtype, kv_dtype, block_size, "", 1, runtime)[0]


def scenario_stages(m: ModelSpec, s: Scenario) -> tuple[Stage, ...]:
    return stages(m, s.tp, s.pp, s.weights_dtype, s.kv_dtype, s.block_size, s.experts_dtype, s.ep, s.runtime)


@lru_cache(maxsize=512)
def stages(m: ModelSpec, tp: int, pp: int, weights_dtype: str, kv_dtype: str, block_size: int = 0,
           experts_dtype: str = "", ep: int = 1, runtime: str = DEFAULT_RUNTIME) -> tuple[Stage, ...]:
    w, kv = get_dtype(weights_dtype), get_dtype(kv_dtype)
    hp, act = high_precision(w), activation_dtype(w)
    rt = get_runtime(runtime)
    experts_dtype = experts_dtype or weights_dtype
    a = act.nbytes(1, 1)
    per_layer = layer_params(m, tp, ep=ep)
    emb = embedding_params(m, tp)
    table, fmt = embedding_tensors(m), formats(weights_dtype, experts_dtype)
    ffn, k, h = ffn_widths(m, tp, ep), m.experts_per_token, m.hidden_size
    dense_pt = ffn.matrices * ffn.dense * a
    # the runtime's mixture-of-experts buffers per token: routed pairs, the shared experts, the router
    moe_pt = (k * rt.routed_expert_bytes(h, ffn.expert, a, m.gated_mlp) + ffn.matrices * ffn.shared_expert * a
              + rt.routing_bytes(m.n_experts, k))
    moe_decode_pt = moe_pt + rt.decode_expert_copy_bytes(k, get_dtype(experts_dtype).matrix_bytes(3 * ffn.expert, h))
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
        by_role = Counter()  # the stage's parameters per tensor role, on this GPU
        for j in layers:
            for t, n in layer_tensors(m, j, ep=ep):
                by_role[t.role] += n * t.numel(tp)
        weight_bytes = sum(b for b, _ in layer_bytes)
        first, last = i == 0, i == pp - 1
        # a draft model the engine loads beside it: its weights in its own format, its cache in the same pool
        d = draft_stage(m, tp, kv_dtype, block_size, runtime) if first else None
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
        blocks = [(m.mlp_mask[j], m.moe_mask[j]) for j in layers]
        moe_here = any(mlp and moe for mlp, moe in blocks)  # the stage's widest MLP: experts, a dense MLP or none
        dense_here = dense_pt if any(mlp and not moe for mlp, moe in blocks) else 0
        kept = tuple((spec.cache_spec(rt), n) for spec, n in groups)  # the cache this runtime keeps
        engine_last = bool(rt.engine) and last
        out.append(
            Stage(
                index=i,
                layers=layers,
                groups=groups,
                cache_groups=kept + (d.cache_groups if d else ()),
                linear_params=linear + (d.linear_params if d else 0),
                other_params=other + (d.other_params if d else 0),
                encoder_params=encoder,
                weight_bytes=weight_bytes + table_bytes(outside, tp, fmt) + (d.weight_bytes if d else 0),
                expert_bytes=sum(e for _, e in layer_bytes),
                expert_params=by_role["expert"],
                mixer_params=by_role["mixer"] if m.mixer_dtype(weights_dtype) != weights_dtype else 0,
                encoder_bytes=hp.nbytes(encoder, 1),
                caches=tuple((spec, n * spec.bytes_per_token(kv, tp)) for spec, n in kept
                             if spec.grows and spec.bytes_per_token(kv, tp)) + (d.caches if d else ()),
                state_bytes=sum(n * spec.bytes_per_seq(kv, act, tp, block_size) for spec, n in kept)
                + (d.state_bytes if d else 0),
                act_bytes=a,
                runtime=rt,
                hidden_pt=rt.hidden_copies * m.hidden_size * a,
                position_pt=rt.position_bytes_per_token(max((sp.rotary_dim for sp in m.layers), default=0), a),
                mixers=tuple(Mixer(spec, spec.act_bytes(tp, a, rt), spec.key_bytes(tp, a, rt),
                                   spec.key_bytes(tp, a, rt, decode=True), spec.score_heads(tp), rt.score_bytes(a),
                                   call_mask if spec.mask not in ("", "causal") else 0, spec.pair_bytes(tp, a, rt))
                             for spec, _ in groups),
                mlp_pt=max(moe_pt if moe_here else 0, dense_here),
                mlp_decode_pt=max(moe_decode_pt if moe_here else 0, dense_here),
                norm_pt=rt.norm_bytes_per_token(m.hidden_size),
                mask_bytes=mask_bytes,
                shared_mask_bytes=shared_mask_bytes,
                regrow=tuple((spec, b) for spec, _ in kept
                             if rt.cache_regrows and (b := spec.regrow_bytes_per_token(kv, tp))),
                logits_per_seq=rt.logits_bytes_per_seq(cdiv(m.vocab_size, tp), a) if last else 0,
                # an engine's sampler (last stage): the whole vocabulary on every GPU (gathered across the
                # tensor-parallel group) per request, beside the step's hidden states and, for a mixture of
                # experts, the fused-MoE workspace that vLLM keeps between calls
                sampler_per_req=m.vocab_size * SAMPLER_BYTES_PER_LOGIT if engine_last else 0,
                sampler_per_token=(h * a + (k * rt.routed_expert_bytes(h, ffn.expert, a, m.gated_mlp) if moe_here
                                            else 0)) if engine_last else 0,
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
PHASES = ("prefill", "decode", "sampler")


def phase_shape(st: Stage, B, P, T, limits: tuple[int, int], decode: bool, mn=min, mx=max):
    """(tokens in flight, sequences in the step, keys each query attends to, prompt tokens per sequence in the
    step) of a phase. A static batch or Hugging Face runs every prompt of the batch in one forward (limits
    (0, 0)); an engine's step holds at most `budget` tokens and `seqs` sequences: min(B x P, budget) prompt
    tokens (whole prompts, or one prompt's chunk), or min(B, seqs, budget) decodes. An engine without
    chunked prefill (TensorRT-LLM's default) runs a prompt whole even past its budget."""
    budget, seqs = limits
    if decode:
        n = mn(mn(B, seqs), budget) if budget else B
        return n, n, T, 1
    if not budget:
        return B * P, B, P, P
    n = mn(B * P, budget)
    if not engine_facts(st.runtime.engine).chunked_prefill:
        n = mx(n, P)
    return n, mn(B, cdiv(n, P)), P, mn(P, n)


def phase_terms(st: Stage, B, P, T, limits: tuple[int, int], decode: bool, mn=min, mx=max) -> dict:
    """The activation terms of one phase (a prefill step, or one decode step at the full context), for ints
    or numpy arrays: the runtime's residual-stream tensors and positions for the tokens in flight, the
    forward's attention masks, and the INNER candidates: the widest kind's mixer (with an eager kernel's
    scores and any copies of the keys it attends to), the MLP, an fp32 norm, and in a decode step a growing
    cache's torch.cat (old and new copy of one layer's K or V)."""
    tokens, seqs, keys, c = phase_shape(st, B, P, T, limits, decode, mn, mx)
    mixer = 0
    for m in st.mixers:
        mixer = mx(mixer, m.bytes(tokens, seqs, keys, decode, mn, mx))
    regrow = 0
    if decode:
        for spec, bpt in st.regrow:
            regrow = mx(regrow, bpt * spec.held(B, T - 1, 0, 0, mn, mx))
    return {"residual stream": tokens * st.hidden_pt, "positions": tokens * st.position_pt,
            "mixer": mixer, "MLP": tokens * (st.mlp_decode_pt if decode else st.mlp_pt),
            "fp32 norm": tokens * st.norm_pt,
            "masks": tokens * keys * st.mask_bytes + c * keys * st.shared_mask_bytes, "cache regrowth": regrow}


def sampler_terms(st: Stage, B, P, limits: tuple[int, int], mn=min, mx=max) -> dict:
    """An engine's sampler after the forward of its largest step (vLLM's gpu_model_runner profile_run and
    _dummy_sampler_run): the step's hidden states and MoE workspace still held, and the fp32 logits and
    sort buffers of each request sampled (min(B, seqs) of them, at most one per token of the step)."""
    if not st.sampler_per_req:
        return {"hidden states and MoE workspace": 0, "logits and sort buffers": 0}
    tokens = phase_shape(st, B, P, P, limits, False, mn, mx)[0]
    return {"hidden states and MoE workspace": tokens * st.sampler_per_token,
            "logits and sort buffers": mn(mn(B, limits[1]), tokens) * st.sampler_per_req}


def _peak(terms: dict, mx=max):
    """The terms alive together: every outer term plus the largest inner one."""
    inner = 0
    for label in INNER:
        inner = mx(inner, terms[label])
    return sum(v for label, v in terms.items() if label not in INNER) + inner


def activation_phases(st: Stage, B, P, T, limits: tuple[int, int], mn=min, mx=max) -> dict:
    """Transient working set of one layer (activations are freed layer by layer in inference) in each phase:
    a prefill step, one decode step at the full context (0 with fewer than two generated tokens: the first
    comes from the prefill's logits), and an engine's sampler after its largest step (0 for the others)."""
    return {"prefill": _peak(phase_terms(st, B, P, T, limits, False, mn, mx), mx),
            "decode": _peak(phase_terms(st, B, P, T, limits, True, mn, mx), mx) * (T - P >= 2),
            "sampler": sum(sampler_terms(st, B, P, limits, mn, mx).values())}


def activation_bytes(st: Stage, B, P, T, limits: tuple[int, int], mn=min, mx=max):
    """Peak activation bytes: the largest phase."""
    phases = activation_phases(st, B, P, T, limits, mn, mx)
    return mx(mx(phases["prefill"], phases["decode"]), phases["sampler"])


def stage_bytes(st: Stage, s: Scenario, B, P, mn=min, mx=max):
    """Everything one GPU of this stage holds for B sequences of P prompt tokens (plus the scenario's
    generated tokens), except the scenario's fixed overheads. B and P may be numpy arrays."""
    T = P + s.new_tokens
    return (st.weight_bytes + st.encoder_bytes + kv_bytes(st, B, T, s.shared_prefix_tokens, s.block_size, mn, mx)
            + activation_bytes(st, B, P, T, s.step_limits(), mn, mx) + B * st.logits_per_seq)


def overhead_bytes(s: Scenario) -> int:
    """Memory per GPU outside the model's tensors: the CUDA context (a measured constant, the scenario's
    runtime_overhead_bytes) and, under a serving engine, what it holds outside torch (kvdash.engines)."""
    return s.runtime_overhead_bytes + (non_torch_bytes(s.tp, s.pp) if s.engine else 0)


def reserve_bytes(s: Scenario, gpu) -> int:
    """What a serving engine capped at `gpu_memory_utilization` leaves free: (1 - u) x usable, less the CUDA
    context, which lives in that share (vLLM sizes its share of the total after the context exists)."""
    if gpu is None or not s.gpu_memory_utilization:
        return 0
    return max(0, gpu.usable_bytes - int(s.gpu_memory_utilization * gpu.usable_bytes) - s.runtime_overhead_bytes)


def fixed_bytes(s: Scenario, gpu) -> int:
    return overhead_bytes(s) + reserve_bytes(s, gpu)


# ---- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    key: str
    label: str
    bytes: int
    basis: str = "formula"  # "formula": computed from the architecture; "measured": a constant


@dataclass(frozen=True)
class Breakdown:
    model: ModelSpec
    scenario: Scenario  # with the engine's step limits resolved for the GPU
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

    def phases(self) -> dict:
        """The activation peak's phases (activation_phases) for this scenario."""
        s = self.scenario
        return activation_phases(self.stage, s.batch, s.prompt_tokens, s.context, s.step_limits())

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
        a context beyond what the model was trained for, caches copied by tensor parallelism, more sequences
        than an engine runs at once, a fit without room for what kvdash does not model."""
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
        if s.engine:
            budget, seqs = s.step_limits()
            if s.batch > seqs:
                out.append(f"{self.stage.runtime.label} runs at most {seqs:,} sequences at once (max_num_seqs): the "
                           f"other {s.batch - seqs:,} wait for a slot, though their cache is counted here")
            if s.prompt_tokens > budget and not engine_facts(s.engine).chunked_prefill:
                out.append(f"{self.stage.runtime.label} prefills a prompt whole by default (no chunked prefill), so "
                           f"its {engine_facts(s.engine).budget_name} ({budget:,}) must cover the "
                           f"{s.prompt_tokens:,}-token prompt: counted as one step of the whole prompt")
            if s.tp > 1 and self.gpu is not None and self.gpu.id != NON_TORCH_GPU:
                out.append(f"the engine's {non_torch_bytes(s.tp, s.pp) / GiB:.2f} GiB per GPU outside torch (NCCL "
                           "and custom all-reduce buffers) was measured on H100 NVLink groups; other GPUs and "
                           "interconnects differ")
        if self.fits and self.headroom < max(GiB, self.gpu.usable_bytes // 20):
            out.append(f"it fits with {self.headroom / GiB:.2f} GiB to spare: CUDA-graph capture and allocator "
                       "fragmentation, which kvdash does not model, commonly take about that much")
        return out


def memory_stages(m: ModelSpec, s: Scenario, gpu=None) -> tuple[ModelSpec, Scenario, tuple[Stage, ...]]:
    """What every memory answer (breakdown, the solvers, the sweeps) starts from: the model as the scenario loads
    it (with its multi-token-prediction modules when it speculates with them), the scenario with its engine's
    step limits on `gpu`, and its pipeline stages."""
    check_parallel(m, s)
    m = drafted(m, s)
    s = s.resolved(gpu)
    return m, s, scenario_stages(m, s)


def breakdown(m: ModelSpec, s: Scenario, gpu=None) -> Breakdown:
    """The memory of scenario `s` for model `m`, per GPU, on the most loaded pipeline stage."""
    m, s, sts = memory_stages(m, s, gpu)
    B, P, T, S, bs = s.batch, s.prompt_tokens, s.context, s.shared_prefix_tokens, s.block_size
    st = max(sts, key=lambda x: stage_bytes(x, s, B, P)) if len(sts) > 1 else sts[0]
    comps = (
        Component("weights", "Weights", st.weight_bytes),
        Component("encoder", "Encoder weights", st.encoder_bytes),
        Component("kv_cache", "KV cache", kv_bytes(st, B, T, S, bs)),
        Component("activation", "Activation peak", activation_bytes(st, B, P, T, s.step_limits())),
        Component("logits", "Logits", B * st.logits_per_seq),
        Component("overhead", "CUDA context & runtime", overhead_bytes(s), basis="measured"),
        Component("engine_reserve", "Engine reserve", reserve_bytes(s, gpu)),
    )
    return Breakdown(m, s, st, comps, gpu)
