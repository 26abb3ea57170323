"""One forward step on one GPU: its work and its time. The one place a step's time is computed.

The serving model (kvdash.serving), the static batch (kvdash.speed), the live run's floors and the
calibration all call `step_work` and `step_time`. A step carries `decode` tokens (one per running
sequence, each attending to its `decode_ctx` tokens) and `prefill` prompt tokens (chunks of prompts of
`prompt` tokens).

`step_work` counts per GPU its FLOPs (2 per matrix weight per token, routed experts: the k a token uses;
the LM head for every sampled position; attention per layer kind: windows stop early, latent attention
decodes with absorbed weights), its bytes (weights once, only the touched routed experts, every decode's
cache at its length, a prompt token's K/V written and read back about once) and the hidden states of an
all-reduce: the roofline's inputs, which the static batch's floors print.

`step_time` times the step as its kernels run, one after another:

    time = sum over the layers' GEMMs (engines' fused q/k/v and gate/up) and the LM head of gemm_s(tokens, n, k)
         + per MoE layer moe_s(tokens, FLOPs of the (token, expert) pairs, the touched experts' bytes and size)
         + per attention layer decode_attention_s(cache bytes its decodes read) + prefill_attention_s(prompt FLOPs)
           (a recurrent state layer: its state read and written per decode, at the spec sheet's bandwidth share)
         + 2 all-reduces per layer under tensor parallelism (the engine's measured all-reduce)
         + step overhead + layers x (layer overhead + decodes x sequence overhead)

each kernel at the ceilings of kvdash.kernels: the GPU's measured share of peak for that kernel and size where
kernel measurements of the engine on that GPU exist, else the spec sheet at the profile's stated shares. The
overheads are an engine's (fitted in data/engines/) or a static runtime's (RUNTIMES below).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache

from kvdash.breakdown import activation_dtype, scenario_stages
from kvdash.dtypes import get_dtype, high_precision
from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.kernels import Ceilings, ceilings, spec_sheet, touched_experts
from kvdash.model import ModelSpec
from kvdash.params import layer_tensors, matrix_params
from kvdash.runtimes import get_runtime
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import cdiv
from kvdash.weights import formats, model_formats, tensor_bytes


@dataclass(frozen=True)
class StepCosts:
    """What a step costs beyond its work: the share of the GPU's peaks its kernels reach, and the time
    between them (the CPU's scheduling and sampling per step, the gaps between a layer's kernels, a cost
    per running sequence in each layer, a fixed latency per all-reduce)."""

    name: str
    # the spec sheet's shares of peak, where no kernel measurements answer (kvdash.kernels): stated, not fitted
    memory_eff: float = 0.8  # fraction of peak bandwidth reached reading weights
    cache_eff: float = 0.8  # ... and reading the KV cache (paged kernels gather scattered blocks)
    compute_eff: float = 0.7  # fraction of peak dense FLOP/s reached
    step_overhead_s: float = 0.0  # per step
    layer_overhead_s: float = 10e-6  # per layer per step
    seq_overhead_s: float = 0.0  # per running sequence per layer per step
    allreduce_latency_s: float = 10e-6
    source: str = "defaults, not fitted"

    def __post_init__(self):
        for f in ("memory_eff", "cache_eff", "compute_eff"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.01 <= v <= 1.0:
                raise KvdashError(f"{f} must be between 0.01 and 1, not {v!r}")
        for f in ("step_overhead_s", "layer_overhead_s", "seq_overhead_s", "allreduce_latency_s"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 100:
                raise KvdashError(f"{f} must be between 0 and 100 seconds, not {v!r}")

    def formula(self, gpu, s: Scenario) -> str:
        """The step-time formula of `step_time` with these costs, the scenario's ceilings on `gpu` and its peaks
        filled in."""
        c = step_ceilings(s, gpu, self)
        share = (f"the share of peak its kernels reach at that size ({c.source})" if c.measured else
                 f"{self.compute_eff:.2f} of FLOP/s or {self.memory_eff:.2f} of bandwidth ({self.cache_eff:.2f} for "
                 "the cache; spec sheet)")
        text = (f"Σ over the step's kernels (each GEMM and the LM head, the touched experts, attention) of "
                f"max(FLOPs / {c.rate(s.weights_dtype) / 1e12:,.1f} TFLOP/s for {s.weights_dtype}, bytes / "
                f"{c.peaks['bandwidth'] / 1e9:,.0f} GB/s) ÷ {share} + {self.step_overhead_s * 1e3:.3f} ms + layers × "
                f"({self.layer_overhead_s * 1e6:.1f} µs + decodes × {self.seq_overhead_s * 1e6:.2f} µs)")
        if s.tp > 1:
            text += (" + 2 all-reduces per layer (the engine's measured all-reduce)" if c.tables.get("allreduce") else
                     f" + 2 all-reduces per layer ({self.allreduce_latency_s * 1e6:.0f} µs + 2 ({s.tp} − 1) / {s.tp} × "
                     f"hidden bytes / {gpu.link_gbps:,.0f} GB/s one way)")
        return text


#: Static-batch costs for kvdash's own PyTorch decoder (the Live run), chosen from first principles, not
#: fitted: 80 % of peak bandwidth and 70 % of dense FLOP/s, which tuned kernels reach on large operands;
#: 30 µs per layer when CUDA graphs replay the step (about 15 kernels of a few µs), 500 µs per layer when
#: PyTorch launches each kernel (about 50 launches of ~10 µs). The Live run page fits them to stored runs.
RUNTIMES = {
    "torch-graphs": StepCosts("torch-graphs", 0.8, 0.8, 0.7, 0.0, 30e-6,
                              source="kvdash's decoder with CUDA graphs: first-principles defaults, not fitted"),
    "torch-eager": StepCosts("torch-eager", 0.8, 0.8, 0.7, 0.0, 500e-6,
                             source="kvdash's decoder, eager PyTorch: first-principles defaults, not fitted"),
}
IDEAL = StepCosts("peak", 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, source="the GPU's peaks, no overheads")


def link_bytes_per_s(gpu) -> float:
    """Bytes/s one way to another GPU of the tensor-parallel group (the catalog's `link_gbps_one_way`:
    NVLink's quoted two-way totals halved, else PCIe per direction)."""
    if not gpu.link_gbps:
        raise KvdashError(f"the catalog has no GPU-to-GPU link for {gpu.name}, so tensor parallelism "
                          "cannot be timed on it; use tp = 1")
    return gpu.link_gbps * 1e9


def matrix_rate(gpu, weights_dtype: str) -> float:
    """Peak dense FLOP/s the matrix products of a weight format run at on `gpu` (kvdash.kernels' rule)."""
    return spec_sheet(gpu).rate(weights_dtype)


def refuse_pipeline(s: Scenario) -> None:
    """Step times are for one GPU holding every layer's share: pipeline stages are not modelled yet."""
    if s.pp > 1:
        raise KvdashError(f"the speed model does not model pipeline parallelism (pp = {s.pp}); use tensor "
                          "parallelism, or pp = 1")


@dataclass(frozen=True)
class StepWork:
    flops: float
    bytes: float
    cache_bytes: float  # of `bytes`, the KV cache and state read and written
    allreduce_bytes: float  # per all-reduce, per GPU

    @property
    def weight_bytes(self) -> float:
        return self.bytes - self.cache_bytes


def weights_read(m: ModelSpec, s: Scenario, st, tokens: float) -> float:
    """Weight bytes one step reads on this GPU for `tokens` tokens: every matrix once, but of the routed
    experts only those the tokens hit (uniform routing), and of an untied input embedding only the
    tokens' rows (the LM head, or a tied embedding, is read whole)."""
    out = st.weight_bytes
    if m.n_experts:
        untouched = m.n_experts * (1 - m.experts_per_token / m.n_experts) ** tokens
        out -= st.expert_bytes * untouched / m.n_experts
    if st.index == 0 and not m.tie_word_embeddings:
        table = cdiv(m.vocab_size, s.tp) * m.hidden_size
        rows = min(tokens, cdiv(m.vocab_size, s.tp)) * m.hidden_size
        out -= (table - rows) * high_precision(get_dtype(s.weights_dtype)).nbytes(1, 1)
    return out


def prompt_shape(prefill: float, prompt: int, computed: int = 0) -> tuple[float, int]:
    """(prompts' worth of prompt tokens in the step, queries each prompt computes): a prompt whose first tokens
    are cached (a prefix-cache hit) computes only its last `computed` tokens, which still attend to all
    `prompt` tokens; 0 or `prompt`: the whole prompt."""
    if prefill and prompt < 1:
        raise KvdashError("a step with prompt tokens needs the prompt length")
    queries = computed or prompt
    if not 0 < queries <= prompt and prefill:
        raise KvdashError(f"a prompt of {prompt:,} tokens computes 1 to {prompt:,} of them, not {computed!r}")
    return (prefill / queries if prefill else 0.0), queries


@dataclass(frozen=True)
class _Terms:
    """What a step's work and time take from the model, the scenario and the decodes' context, whatever the step:
    computed once (`_terms`), as every step of a search asks for them again."""

    st: object  # the scenario's first stage (kvdash.breakdown)
    matrix_flops: int  # 2 x the matrix parameters a token uses (shared + its k experts)
    head_flops: int  # 2 x vocab x hidden: the LM head per sampled position
    decode_flops: tuple[tuple[int, float], ...]  # per layer group: (layers, attention FLOPs of one decode query)
    cache_reads: tuple[tuple[int, int, float], ...]  # per kept cache: (layers x bytes/token, layers, a decode's read)
    kernels: tuple[tuple[int, str, float, int, int], ...]  # per layer group: (layers, kernel, cache a decode reads,
    # state, query heads per cached vector)
    head: object  # the LM head's format
    vocab: int  # its rows on this GPU
    head_bytes: int


@lru_cache(maxsize=4096)
def _terms(m: ModelSpec, s: Scenario, dc: int) -> _Terms:
    check_parallel(m, s)
    refuse_pipeline(s)
    st, tp = scenario_stages(m, s)[0], s.tp
    rt = get_runtime(s.runtime)
    absorbed = rt.engine and engine_facts(rt.engine).mla_absorbed_decode
    shared, one_expert = matrix_params(m)
    kv = get_dtype(s.kv_dtype)
    act = activation_dtype(get_dtype(s.weights_dtype))
    kernels = []
    for spec, n in m.layer_groups:
        kept = spec.cache_spec(rt)
        kernels.append((n, spec.kernel, kept.read_bytes(kv, tp, dc) if spec.kernel else 0.0,
                        0 if spec.kernel else kept.bytes_per_seq(kv, act, tp), spec.query_group(tp)))
    head = formats(s.weights_dtype, s.experts_dtype)["embed"]
    vocab = cdiv(m.vocab_size, tp)
    return _Terms(st, 2 * (shared + m.experts_per_token * one_expert), 2 * m.vocab_size * m.hidden_size,
                  tuple((n, spec.attention_flops(1, dc, tp, decode=absorbed)) for spec, n in m.layer_groups),
                  tuple((bpt, bpt // spec.bytes_per_token(kv, tp), spec.read_bytes(kv, tp, dc))
                        for spec, bpt in st.caches),
                  tuple(kernels), head, vocab, head.matrix_bytes(vocab, m.hidden_size))


@lru_cache(maxsize=65536)
def _prompt_flops(m: ModelSpec, tp: int, queries: int, prompt: int) -> tuple[float, ...]:
    """Per layer group: attention FLOPs of one prompt's `queries` last tokens over its `prompt` tokens."""
    return tuple(spec.attention_flops(queries, prompt, tp) for spec, _ in m.layer_groups)


def step_work(m: ModelSpec, s: Scenario, decode: float, decode_ctx: float, prefill: float = 0.0,
              prompt: int = 0, computed: int = 0, width: int = 1) -> StepWork:
    """FLOPs and bytes on one GPU of a step with `decode` decode tokens (each at context `decode_ctx`) and
    `prefill` prompt tokens of prompts of `prompt` tokens, each computing its last `computed` (all, by default;
    fewer after a prefix-cache hit). Prompt tokens sit anywhere in what their prompt computes, so on average
    they attend as those queries do together: prefill / computed prompts' worth of their pairs (exact for a
    whole prefill, and for windows). `width`: query tokens each decode carries (k + 1 when it verifies k drafted
    tokens): every one through the matrices and the LM head, attending to the cache its sequence reads once."""
    prompts, queries = prompt_shape(prefill, prompt, computed)
    t, tp = _terms(m, s, max(1, round(decode_ctx))), s.tp
    tokens = decode * width + prefill
    flops = t.matrix_flops * tokens / tp
    flops += t.head_flops * (decode * width + prompts) / tp  # the LM head: sampled positions
    # attention: each kind's FLOPs over the keys its queries see
    for (n, one), whole in zip(t.decode_flops, _prompt_flops(m, tp, queries, prompt), strict=True):
        flops += n * (decode * width * one + prompts * whole)
    # st.caches holds (the kept spec, layers x bytes per token): a decode reads what the layer selects
    cache = sum(bpt * 2 * (prefill + decode * (width - 1)) + layers * decode * read
                for bpt, layers, read in t.cache_reads)
    cache += t.st.state_bytes * decode
    return StepWork(flops=flops, bytes=weights_read(m, s, t.st, tokens) + cache, cache_bytes=cache,
                    allreduce_bytes=tokens * m.hidden_size * t.st.act_bytes)


@dataclass(frozen=True)
class LayerOps:
    """One layer's kernels that do not depend on the step: its GEMMs (the engine's fused projections:
    q/k/v in one, gate/up in one) as (n, k, weight bytes, format), and its routed experts."""

    gemms: tuple[tuple[int, int, int, str], ...]
    experts: int  # routed experts on this GPU (0: no MoE block)
    expert_numel: int  # parameters of one local expert on this GPU (its shard)
    expert_bytes: int  # bytes of one local expert on this GPU, scales included


@lru_cache(maxsize=256)
def layer_ops(m: ModelSpec, tp: int, ep: int, weights_dtype: str, experts_dtype: str) -> tuple[LayerOps, ...]:
    """Every layer's kernels, from the per-tensor table: matrices that read the same input in the same block
    (a split by rows, one input width) run as one GEMM, as engines fuse them."""
    fmt = model_formats(m, weights_dtype, experts_dtype)
    out = []
    for i in range(m.n_layers):
        fused: dict[tuple, list] = {}
        experts = numel = nbytes = 0
        for t, n in layer_tensors(m, i, ep=ep):
            if t.role == "expert":
                experts, numel, nbytes = n, numel + t.numel(tp), nbytes + tensor_bytes(t, tp, fmt)
                continue
            if not t.matrix:
                continue
            block = t.name.split(".")[0] if "." in t.name else "mixer"
            rows, cols = t.shard(tp)
            key = (block, cols, t.split) if t.split == "rows" else (t.name,)
            g = fused.setdefault(key, [0, cols, 0, fmt[t.role].name])  # a speculative head's: 16-bit
            g[0], g[2] = g[0] + n * rows, g[2] + n * tensor_bytes(t, tp, fmt)
        out.append(LayerOps(tuple((r, c, b, f) for r, c, b, f in fused.values()), experts, numel, nbytes))
    return tuple(out)


@dataclass(frozen=True)
class Step:
    seconds: float
    gemm_s: float  # the layers' matrices and the LM head
    experts_s: float  # routed experts (fused MoE)
    attention_s: float  # attention over the cache and the prompt, and state layers
    comm_s: float  # tensor-parallel all-reduces
    overhead_s: float  # the engine's host time: per step, per layer, per running sequence
    compute_s: float  # the step's FLOPs at the ceilings' peak rate (what a perfect kernel would take)
    memory_s: float  # ... and its bytes at the peak bandwidth
    work: StepWork
    ceilings: Ceilings

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"

    @property
    def flops(self) -> float:
        return self.work.flops

    @property
    def bytes(self) -> float:
        return self.work.bytes


def roofline(w: StepWork, bytes_per_s: float, flops_per_s: float) -> tuple[float, float]:
    """(memory floor, compute floor) in seconds of a step's work at these rates (measured or peak)."""
    return w.bytes / bytes_per_s, w.flops / flops_per_s


@lru_cache(maxsize=256)
def distinct_layer_ops(m: ModelSpec, tp: int, ep: int, weights_dtype: str, experts_dtype: str) -> tuple:
    """(layer kernels, how many layers run them): each distinct layer is timed once (counting them is a fifth of
    a planner's search when done per step)."""
    return tuple(Counter(layer_ops(m, tp, ep, weights_dtype, experts_dtype)).items())


def step_ceilings(s: Scenario, gpu, p: StepCosts) -> Ceilings:
    """The engine's measured kernels on this GPU where they exist (kvdash.kernels), else the spec sheet at the
    profile's efficiencies."""
    return ceilings(gpu, s.engine, p.memory_eff, p.compute_eff, p.cache_eff)


def step_time(m: ModelSpec, s: Scenario, gpu, p: StepCosts, decode: float, decode_ctx: float, prefill: float = 0.0,
              prompt: int = 0, computed: int = 0, width: int = 1) -> Step:
    """The step's time on one GPU of `gpu` at costs `p`: every kernel's time at the ceilings (module docstring),
    added up, and the engine's host overheads."""
    w = step_work(m, s, decode, decode_ctx, prefill, prompt, computed, width)
    c = step_ceilings(s, gpu, p)
    tp, tokens = s.tp, decode * width + prefill
    prompts, queries = prompt_shape(prefill, prompt, computed)
    terms = _terms(m, s, max(1, round(decode_ctx)))
    a = terms.st.act_bytes
    gemm = experts = 0.0
    for lo, n_layers in distinct_layer_ops(m, tp, s.ep, s.weights_dtype, s.experts_dtype):
        t = sum(c.gemm_s(tokens, n, k, f, wb, a) for n, k, wb, f in lo.gemms)
        if lo.experts:
            pairs = tokens * m.experts_per_token / s.ep  # (token, expert) pairs on this GPU, uniform routing
            touched = touched_experts(lo.experts, pairs)
            experts += n_layers * c.moe_s(tokens, 2.0 * pairs * lo.expert_numel, touched * lo.expert_bytes,
                                          touched * lo.expert_numel, s.experts_dtype)
        gemm += n_layers * t
    gemm += c.gemm_s(decode * width + prompts, terms.vocab, m.hidden_size, terms.head.name, terms.head_bytes, a)
    attention = 0.0
    for (n, kernel, read, state, group), whole in zip(terms.kernels, _prompt_flops(m, tp, queries, prompt),
                                                     strict=True):
        if kernel:  # attention: the decodes' cache, the prompt tokens' pairs
            attention += n * (c.decode_attention_s(decode * read, s.kv_dtype, kernel == "latent", group)
                              + c.prefill_attention_s(prompts * whole, kernel == "latent"))
        else:  # a recurrent state read and written by each decode (no kernel table: the spec-sheet share)
            attention += n * (2 * decode * state) / (c.peaks["bandwidth"] * c.memory_eff)
    overhead = p.step_overhead_s + m.n_layers * (p.layer_overhead_s + decode * p.seq_overhead_s)
    comm = 0.0
    if tp > 1:  # two all-reduces of the step's hidden states per layer
        link = link_bytes_per_s(gpu)
        one = c.allreduce_s(w.allreduce_bytes, tp, link, p.allreduce_latency_s)
        if one is None:
            one = p.allreduce_latency_s + 2 * (tp - 1) / tp * w.allreduce_bytes / link
        comm = 2 * m.n_layers * one
    return Step(gemm + experts + attention + overhead + comm, gemm, experts, attention, comm, overhead,
                w.flops / c.rate(s.weights_dtype), w.bytes / c.peaks["bandwidth"], w, c)


#: A fitted bandwidth efficiency below this is not physical for tuned kernels: it means the runs are
#: dominated by overhead, so the fit holds the efficiency here and explains the rest as overhead.
MIN_FITTED_EFF = 0.3


# ---- calibration ---------------------------------------------------------------------------------
def calibrate(samples: list[tuple[float, float, int]], base: StepCosts = RUNTIMES["torch-graphs"]) -> StepCosts:
    """Fit bandwidth efficiency (weights and cache alike) and per-layer overhead to measured decode steps.

    samples: (measured seconds, seconds at 100 % of peak bandwidth, layers). The model
    t = floor / eff + n x overhead is linear in (1 / eff, overhead): least squares, clamped to the
    physical range. With one sample only the overhead is fitted.
    """
    if not samples:
        raise KvdashError("no measured runs to calibrate against")
    if len(samples) == 1:
        t, floor, n = samples[0]
        overhead = max(0.0, (t - floor / base.memory_eff) / n)
        return replace(base, layer_overhead_s=min(overhead, 1.0), source=f"{base.name}, calibrated on 1 run")
    # normal equations for [a, o] in t = a * floor + o * n
    sff = sum(f * f for _, f, _ in samples)
    sfn = sum(f * n for _, f, n in samples)
    snn = sum(n * n for _, _, n in samples)
    stf = sum(t * f for t, f, _ in samples)
    stn = sum(t * n for t, _, n in samples)
    det = sff * snn - sfn * sfn
    if det <= 0:
        raise KvdashError("the runs do not separate bandwidth from overhead (vary the shapes)")
    a = (stf * snn - stn * sfn) / det
    o = (sff * stn - sfn * stf) / det
    eff = 1 / a if a > 0 else 1.0
    if not MIN_FITTED_EFF <= eff <= 1.0 or o < 0:
        # Outside the physical range (overhead-dominated runs cannot pin the bandwidth down):
        # hold the efficiency at its nearest bound and fit the overhead alone.
        eff = min(1.0, max(MIN_FITTED_EFF, eff))
        o = max(0.0, sum(n * (t - f / eff) for t, f, n in samples) / snn)
    return replace(base, memory_eff=eff, cache_eff=eff, layer_overhead_s=min(o, 1.0),
                   source=f"{base.name}, calibrated on {len(samples)} runs")
