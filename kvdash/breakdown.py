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

from kvdash.dtypes import DTYPES, WEIGHT_GROUP, DType, get_dtype, high_precision
from kvdash.model import FULL, LINEAR, MLA, SLIDING, ModelSpec
from kvdash.params import embedding_params, kv_heads_per_gpu, layer_params
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import cdiv

LOGIT_BYTES = 4  # logits are upcast to fp32 before sampling
SCORE_EXTRA_BYTES = 4  # eager softmax runs in fp32 beside the scores in the activation dtype


# ---- per-token sizes -------------------------------------------------------------------------
def kv_bytes_per_token_layer(m: ModelSpec, kind: str, kv: DType, tp: int = 1) -> int:
    """Cache bytes one token adds to one layer on one GPU."""
    if kind in (FULL, SLIDING):
        heads = kv_heads_per_gpu(m, tp)
        return heads * (kv.nbytes(m.head_dim, m.head_dim) + kv.nbytes(m.v_dim, m.v_dim))
    if kind == MLA:  # latent + shared rope key, replicated on every GPU
        width = m.kv_lora_rank + m.qk_rope_head_dim
        return kv.nbytes(width, width)
    return 0


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
class Stage:
    """Everything about one GPU of one pipeline stage that does not depend on batch or length."""

    index: int
    layers: range
    counts: dict  # layer kind -> number of layers in this stage
    linear_params: int
    other_params: int  # norms, biases, routers, embeddings, LM head
    weight_bytes: int
    full_bpt: int  # cache bytes per token, summed over full and latent layers
    sliding_bpt: int  # cache bytes per token, summed over sliding layers
    state_bytes: int  # per sequence, linear/state-space layers
    act_bytes: int  # bytes per activation value (bf16, or fp32 for an fp32 model)
    hidden_pt: int  # activation bytes per token in flight: residual + normed copy
    attn_pt: int  # ... inside the widest attention block
    mlp_pt: int  # ... inside the widest MLP / expert block
    score_heads: int  # query heads whose T x T scores an eager kernel stores
    logits_per_seq: int


@lru_cache(maxsize=512)
def stages(m: ModelSpec, tp: int, pp: int, weights_dtype: str, kv_dtype: str) -> tuple[Stage, ...]:
    w, kv = get_dtype(weights_dtype), get_dtype(kv_dtype)
    hp, act = high_precision(w), activation_dtype(w)
    a = act.nbytes(1, 1)
    per_layer = layer_params(m, tp)
    emb = embedding_params(m, tp)
    nh = m.n_heads // tp
    kvh = kv_heads_per_gpu(m, tp)
    bpt = {k: kv_bytes_per_token_layer(m, k, kv, tp) if m.count(k) else 0 for k in (FULL, SLIDING, MLA)}
    attn_width = {
        FULL: nh * m.head_dim + kvh * (m.head_dim + m.v_dim) + nh * m.v_dim,
        MLA: nh * (m.qk_nope_head_dim + m.qk_rope_head_dim) * 2
        + (m.kv_lora_rank + m.qk_rope_head_dim)
        + 2 * nh * m.v_dim,
    }
    attn_width[SLIDING] = attn_width[FULL]
    mats = 3 if m.gated_mlp else 2
    dense_pt = mats * cdiv(m.intermediate_size, tp) * a
    moe_pt = (
        m.experts_per_token * mats * cdiv(m.expert_intermediate_size, tp) * a
        + mats * cdiv(m.shared_expert_intermediate_size, tp) * a
        + m.n_experts * LOGIT_BYTES  # router logits
    )
    out = []
    parts = pipeline_partition(m.n_layers, pp)
    for i, layers in enumerate(parts):
        kinds = [m.kinds[j] for j in layers]
        counts = {k: kinds.count(k) for k in (FULL, SLIDING, MLA, LINEAR) if k in kinds}
        linear = sum(per_layer[j].linear for j in layers)
        other = sum(per_layer[j].other for j in layers)
        first, last = i == 0, i == pp - 1
        if first:
            other += emb.embed + m.extra_params
        if last:
            other += emb.final_norm
            # A tied head shares the embedding's storage only when both sit on the same GPU.
            if not (m.tie_word_embeddings and first):
                other += emb.head
        attn_kinds = [k for k in counts if k != LINEAR]
        moe_here = [m.moe_mask[j] for j in layers]
        out.append(
            Stage(
                index=i,
                layers=layers,
                counts=counts,
                linear_params=linear,
                other_params=other,
                weight_bytes=w.nbytes(linear, WEIGHT_GROUP) + hp.nbytes(other, 1),
                full_bpt=bpt[FULL] * counts.get(FULL, 0) + bpt[MLA] * counts.get(MLA, 0),
                sliding_bpt=bpt[SLIDING] * counts.get(SLIDING, 0),
                state_bytes=counts.get(LINEAR, 0) * act.nbytes(cdiv(m.linear_state_elems, tp), 1),
                act_bytes=a,
                hidden_pt=2 * m.hidden_size * a,
                attn_pt=max((attn_width[k] * a for k in attn_kinds), default=0),
                mlp_pt=max(moe_pt if any(moe_here) else 0, dense_pt if not all(moe_here) else 0),
                score_heads=nh if attn_kinds else 0,
                logits_per_seq=cdiv(m.vocab_size, tp) * LOGIT_BYTES if last else 0,
            )
        )
    return tuple(out)


# ---- the formulas, for ints or numpy arrays ------------------------------------------------------
def held_full(B, T, S: int, bs: int):
    """Token slots per full/latent layer: a shared prefix once, the rest per sequence.

    Paged caches share only whole blocks of the prefix and round each sequence up to blocks.
    """
    if bs:
        shared = S // bs * bs
        return shared + B * cdiv(T - shared, bs) * bs
    return S + B * (T - S)


def held_sliding(B, T, S: int, W: int, bs: int, mn=min, mx=max):
    """Token slots per sliding layer at the peak of the sequences' life: each keeps its last min(t, W)
    tokens; prefix tokens still inside that window are stored once.

    Paged caches hold whole blocks: every block touching the window (an engine frees a block only once
    all its tokens have left the window, as vLLM's SlidingWindowManager does), the prefix's whole blocks
    once. The block count then depends on how the window straddles block edges, so it can shrink as t
    grows; the peak over t <= T is taken at one of three lengths (see _window_blocks_peak)."""
    if bs:
        return _window_blocks_peak(B, T, S // bs, W, bs, mn, mx) * bs
    overlap = mx(0, S - mx(0, T - W))  # unpaged, the count only grows with t: the peak is at T
    return overlap + B * (mn(T, W) - overlap)


def _window_blocks(B, t, n_shared: int, W: int, bs: int, mn, mx):
    """Blocks held by B sequences of t tokens: the blocks touching positions [t - W, t), with the
    first n_shared (prefix) blocks stored once."""
    first = mx(0, t - W) // bs
    count = (t - 1) // bs - first + 1
    shared = mn(count, mx(0, n_shared - first))
    return shared + B * (count - shared)


def _window_blocks_peak(B, T, n_shared: int, W: int, bs: int, mn, mx):
    """Peak of _window_blocks over t = 1..T. Up to t = W it only grows. Past W, with offset a = t - W,
    a sequence touches (a % bs + W - 1) // bs + 1 blocks, largest when a % bs = bs - 1, while the
    shared blocks only leave the window; so the peak is at t = min(T, W), at t = T, or at the last
    t <= T with a % bs = bs - 1 (clamped into 1..T when there is none)."""
    worst = mn(T, mx(1, W + (T - W + 1) // bs * bs - 1))
    peak = mx(_window_blocks(B, mn(T, W), n_shared, W, bs, mn, mx),
              _window_blocks(B, T, n_shared, W, bs, mn, mx))
    return mx(peak, _window_blocks(B, worst, n_shared, W, bs, mn, mx))


def kv_bytes(st: Stage, B, T, S: int, W: int, bs: int, mn=min, mx=max):
    out = st.full_bpt * held_full(B, T, S, bs) + B * st.state_bytes
    if st.sliding_bpt:
        out = out + st.sliding_bpt * held_sliding(B, T, S, W, bs, mn, mx)
    return out


def activation_phases(st: Stage, B, P, T, chunk: int, eager: bool, mn=min, mx=max):
    """Transient working set of one layer (activations are freed layer by layer in inference):
    (prefill of one chunk of the prompt, one decode step at the full context)."""
    c = mn(P, chunk) if chunk else P
    n = B * c
    scores = st.score_heads * (st.act_bytes + SCORE_EXTRA_BYTES) if eager else 0
    prefill = n * st.hidden_pt + mx(n * st.attn_pt + B * c * P * scores, n * st.mlp_pt)
    decode = B * st.hidden_pt + mx(B * st.attn_pt + B * T * scores, B * st.mlp_pt)
    return prefill, decode


def activation_bytes(st: Stage, B, P, T, chunk: int, eager: bool, mn=min, mx=max):
    """Peak activation bytes: the larger of the prefill chunk and a decode step."""
    return mx(*activation_phases(st, B, P, T, chunk, eager, mn, mx))


def stage_bytes(st: Stage, s: Scenario, W: int, B, P, mn=min, mx=max):
    """Everything one GPU of this stage holds for B sequences of P prompt tokens (plus the scenario's
    generated tokens), except the scenario's fixed overheads. B and P may be numpy arrays."""
    T = P + s.new_tokens
    eager = s.attention == "eager"
    return (st.weight_bytes + kv_bytes(st, B, T, s.shared_prefix_tokens, W, s.block_size, mn, mx)
            + activation_bytes(st, B, P, T, s.prefill_chunk, eager, mn, mx) + B * st.logits_per_seq)


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

    @property
    def kv_bytes_per_token(self) -> int:
        """Cache bytes per token of one sequence on this GPU, before any window saturates."""
        return self.stage.full_bpt + self.stage.sliding_bpt

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

    def to_dict(self) -> dict:
        out = {
            "model": self.model.name,
            "params": self.model.params,
            "active_params": self.model.active_params,
            "per_gpu": self.n_gpus > 1,
            "n_gpus": self.n_gpus,
            "pipeline_stage": self.stage.index,
            "kv_bytes_per_token": self.kv_bytes_per_token,
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


def _dtype_term(n: int, d: DType, group: int) -> str:
    if d.scale_bytes:
        return f"{n:,} × {d.bits}/8 B + ⌈{n:,}/{group}⌉ × {d.scale_bytes} B scales ({d.name})"
    return f"{n:,} × {d.bits // 8} B ({d.name})"


def _kv_per_token_text(m: ModelSpec, st: Stage, kv: DType, tp: int) -> str:
    parts = []
    heads = kv_heads_per_gpu(m, tp)
    b = f"{kv.bits // 8} B" if kv.bits % 8 == 0 else f"{kv.bits}/8 B"
    scale = f" + 2 × {heads} × {kv.scale_bytes} B scales" if kv.scale_bytes else ""
    for kind, name in ((FULL, "full"), (SLIDING, "sliding")):
        if st.counts.get(kind):
            parts.append(
                f"{st.counts[kind]} {name} layers × ({heads} KV heads × ({m.head_dim} + {m.v_dim}) × {b}{scale})"
            )
    if st.counts.get(MLA):
        s = f" + {kv.scale_bytes} B scale" if kv.scale_bytes else ""
        parts.append(
            f"{st.counts[MLA]} latent layers × (({m.kv_lora_rank} + {m.qk_rope_head_dim}) × {b}{s})"
        )
    return " + ".join(parts) or "no attention layers"


def breakdown(m: ModelSpec, s: Scenario, gpu=None) -> Breakdown:
    """The memory of scenario `s` for model `m`, per GPU, on the most loaded pipeline stage."""
    check_parallel(m, s)
    sts = stages(m, s.tp, s.pp, s.weights_dtype, s.kv_dtype)
    B, P, T, S, bs = s.batch, s.prompt_tokens, s.context, s.shared_prefix_tokens, s.block_size
    W, chunk, eager = m.sliding_window, s.prefill_chunk, s.attention == "eager"
    reserve = 0
    if gpu is not None and s.gpu_memory_utilization:
        reserve = gpu.usable_bytes - int(s.gpu_memory_utilization * gpu.usable_bytes)

    st = max(sts, key=lambda x: stage_bytes(x, s, W, B, P)) if len(sts) > 1 else sts[0]
    prefill, decode = activation_phases(st, B, P, T, chunk, eager)
    text = _Explainer(m, s, st, gpu, prefill >= decode)
    comps = (
        Component("weights", "Weights", st.weight_bytes, text.weights),
        Component("kv_cache", "KV cache", kv_bytes(st, B, T, S, W, bs), text.kv_cache),
        Component("activation", "Activation peak", max(prefill, decode), text.activation),
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
    prefill_peak: bool

    def weights(self) -> str:
        w = get_dtype(self.s.weights_dtype)
        return (f"{_dtype_term(self.st.linear_params, w, WEIGHT_GROUP)} + "
                f"{_dtype_term(self.st.other_params, high_precision(w), 1)} [embeddings, norms, biases, routers]")

    def kv_cache(self) -> str:
        m, s, st = self.m, self.s, self.st
        B, T, S, bs = s.batch, s.context, s.shared_prefix_tokens, s.block_size
        held = f"{B:,} seq × {T:,} tokens"
        if S or bs:
            held = f"{held_full(B, T, S, bs):,} token slots ({held}"
            held += f", prefix of {S:,} stored once" if S else ""
            held += f", blocks of {bs}" if bs else ""
            held += ")"
        per_token = _kv_per_token_text(m, st, get_dtype(s.kv_dtype), s.tp)
        out = f"{held} × {st.full_bpt:,} B/token [{per_token}]"
        if st.sliding_bpt:
            out = (f"{held} × {st.full_bpt:,} B/token (full/latent) + "
                   f"{held_sliding(B, T, S, m.sliding_window, bs):,} slots (each sequence's last min(T, "
                   f"{m.sliding_window:,}) tokens{', in the blocks they touch at the peak' if bs else ''}) × "
                   f"{st.sliding_bpt:,} B/token (sliding) [{per_token}]")
        if st.state_bytes:
            out += f" + {B:,} seq × {st.state_bytes:,} B of recurrent state"
        return out

    def activation(self) -> str:
        s, st = self.s, self.st
        B, P, T = s.batch, s.prompt_tokens, s.context
        c = min(P, s.prefill_chunk) if s.prefill_chunk else P
        n = f"{B:,} seq × {c:,} tokens" if self.prefill_peak else f"{B:,} seq × 1 token (decode at {T:,})"
        out = (f"{n} × ({st.hidden_pt:,} B residual + max({st.attn_pt:,} B attention, "
               f"{st.mlp_pt:,} B MLP)) per token, one layer at a time")
        if s.attention == "eager":
            keys = f"{c:,} × {P:,}" if self.prefill_peak else f"1 × {T:,}"
            out += f" + {B:,} × {st.score_heads} heads × {keys} scores × ({st.act_bytes} + 4) B"
        return out

    def logits(self) -> str:
        if not self.st.logits_per_seq:
            return "not on this pipeline stage"
        vocab = cdiv(self.m.vocab_size, self.s.tp)
        return f"{self.s.batch:,} seq × {vocab:,} vocab × {LOGIT_BYTES} B (fp32, last position)"

    def overhead(self) -> str:
        return (f"measured constant: {self.s.runtime_overhead_bytes:,} B "
                "(CUDA context and library workspaces)")

    def reserve(self) -> str:
        u = self.s.gpu_memory_utilization
        if not (u and self.gpu is not None):
            return "no engine memory-utilisation cap set"
        return f"(1 − {u}) × {self.gpu.usable_bytes:,} B usable, left free by the engine"
