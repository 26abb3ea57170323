"""How fast will it run? A roofline model of prefill and decode, per GPU, with calibration.

Per step kvdash counts the FLOPs and the bytes moved:
- prefill: every weight read once; 2 FLOPs per active parameter per token; attention scores and
  values over the prompt (the quadratic term: 4 x heads x head_dim per query-key pair);
- decode: every weight read once per step (for MoE only the experts the batch touches), the whole
  KV cache of every sequence read, 2 FLOPs per active parameter per sequence plus attention;
- without a KV cache, every new token is a prefill of the whole prefix.

    time(step) = max(FLOPs / (rate x compute_eff), bytes / (bandwidth x memory_eff))
                 + (layers + 1) x layer_overhead  + tensor-parallel all-reduces

The efficiencies and the per-layer overhead (kernel launches, framework) have defaults chosen from
first principles, not fitted: 80 % of peak bandwidth and 70 % of peak dense FLOP/s, which tuned
kernels reach on large operands, and 30 µs per layer for an engine that replays CUDA graphs
(about 15 kernels of a few µs each); `RUNTIMES` gives an eager-PyTorch alternative (about 50
kernel launches of ~10 µs). `calibrate()` fits them to measured runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype, high_precision
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.params import embedding_params
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import cdiv


@dataclass(frozen=True)
class SpeedParams:
    memory_eff: float = 0.8  # fraction of peak bandwidth reached
    compute_eff: float = 0.7  # fraction of peak dense FLOP/s reached
    layer_overhead_s: float = 30e-6  # launch and framework time per layer per step
    allreduce_latency_s: float = 10e-6  # fixed cost of one tensor-parallel all-reduce
    name: str = "serving engine (CUDA graphs)"

    def __post_init__(self):
        for field, lo, hi in (("memory_eff", 0.01, 1.0), ("compute_eff", 0.01, 1.0),
                              ("layer_overhead_s", 0.0, 1.0), ("allreduce_latency_s", 0.0, 1.0)):
            v = getattr(self, field)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise KvdashError(f"{field} must be between {lo} and {hi}, not {v!r}")


#: A fitted bandwidth efficiency below this is not physical for tuned kernels: it means the runs are
#: dominated by overhead, so the fit holds the efficiency here and explains the rest as overhead.
MIN_FITTED_EFF = 0.3

RUNTIMES = {
    "engine": SpeedParams(),
    "eager": SpeedParams(layer_overhead_s=500e-6, name="PyTorch eager (no graphs)"),
}


def link_bytes_per_s(gpu) -> float:
    """Bytes/s one way to another GPU of the tensor-parallel group (the catalog's `link_gbps_one_way`:
    NVLink's quoted two-way totals halved, else PCIe per direction)."""
    if not gpu.link_gbps:
        raise KvdashError(f"the catalog has no GPU-to-GPU link for {gpu.name}, so tensor parallelism "
                          "cannot be timed on it; use tp = 1")
    return gpu.link_gbps * 1e9


def matrix_rate(gpu, weights_dtype: str) -> float:
    """Peak dense FLOP/s the matrix products run at: fp8 formats (per-tensor or block-scaled) on fp8
    tensor cores; NVFP4/MXFP4 on fp4 tensor cores where the GPU has them (Blackwell); fp32 at fp32; the
    rest in bf16 (weight-only int formats, and fp4 on GPUs without an fp4 path such as Hopper, dequantize
    to bf16 in the kernel)."""
    if weights_dtype == "fp32":
        rate = gpu.fp32_tflops
    elif weights_dtype.startswith("fp8"):
        rate = gpu.fp8_tflops or gpu.bf16_tflops
    elif weights_dtype in ("nvfp4", "mxfp4"):
        rate = gpu.fp4_tflops or gpu.bf16_tflops
    else:
        rate = gpu.bf16_tflops
    if not rate:
        raise KvdashError(f"the catalog has no {weights_dtype} matrix rate for {gpu.name}")
    return rate * 1e12


@dataclass(frozen=True)
class Step:
    """One forward step on one GPU: work, time, and which roof bounds it."""

    flops: int
    bytes: int
    seconds: float
    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


def _attention_pairs(m: ModelSpec, queries: int, context: int) -> int:
    """Query-key pairs all layers score when `queries` new tokens end at position `context`."""
    return sum(n * spec.attention_pairs(queries, context) for spec, n in m.layer_groups)


def refuse_pipeline(s: Scenario) -> None:
    """Step times are for one GPU holding every layer's share: pipeline stages are not modelled yet."""
    if s.pp > 1:
        raise KvdashError(f"the speed model does not model pipeline parallelism (pp = {s.pp}); use tensor "
                          "parallelism, or pp = 1")


def _score_flops(m: ModelSpec, queries: int, context: int, tp: int) -> int:
    """FLOPs of QK^T and PV per sequence when `queries` new tokens end at position `context`, summed
    over the layers (each kind says how many keys a query sees)."""
    return sum(n * spec.flops_per_pair(tp) * spec.attention_pairs(queries, context) for spec, n in m.layer_groups)


def _matrix_params(m: ModelSpec) -> tuple[int, int]:
    """(parameters every token multiplies by, excluding routed experts and the LM head;
    parameters of one routed expert summed over the MoE layers)."""
    e = embedding_params(m)
    untied_head = 0 if m.tie_word_embeddings else e.head
    body = m.params - e.embed - untied_head - e.final_norm - m.extra_params - m.encoder_params
    one_expert = (3 if m.gated_mlp else 2) * m.hidden_size * m.expert_intermediate_size * sum(m.moe_mask)
    return body - m.n_experts * one_expert, one_expert


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


def step_work(m: ModelSpec, s: Scenario, queries: int, context: int) -> tuple[int, int]:
    """(FLOPs, bytes moved) on one GPU for a step in which each of `s.batch` sequences adds `queries`
    tokens ending at position `context`: a prefill has queries == context, a decode step queries == 1."""
    check_parallel(m, s)
    refuse_pipeline(s)
    B, tp = s.batch, s.tp
    b = breakdown(m, s.with_(prompt_tokens=max(context, s.shared_prefix_tokens, 1), new_tokens=0))
    tokens = B * queries
    shared, one_expert = _matrix_params(m)
    weights = round(weights_read(m, s, b.stage, tokens))
    flops = (2 * (shared + m.experts_per_token * one_expert) * tokens // tp  # the layers' matrices
             + 2 * m.vocab_size * m.hidden_size * B // tp  # LM head, last position only
             + B * _score_flops(m, queries, context, tp))  # QK^T and PV
    return flops, weights + b["kv_cache"]


def _step(m: ModelSpec, s: Scenario, gpu, p: SpeedParams, queries: int, context: int) -> Step:
    flops, moved = step_work(m, s, queries, context)
    compute_s = flops / (matrix_rate(gpu, s.weights_dtype) * p.compute_eff)
    memory_s = moved / (gpu.bandwidth_gbps * 1e9 * p.memory_eff)
    overhead = (m.n_layers + 1) * p.layer_overhead_s
    if s.tp > 1:  # two all-reduces of the hidden state per layer; a ring moves 2 (t-1)/t of it
        per = s.batch * queries * m.hidden_size * 2 * 2 * (s.tp - 1) / s.tp
        overhead += 2 * m.n_layers * (p.allreduce_latency_s + per / link_bytes_per_s(gpu))
    return Step(flops, moved, max(compute_s, memory_s) + overhead, compute_s, memory_s, overhead)


@dataclass(frozen=True)
class SpeedReport:
    prefill: Step
    decode: Step  # at the middle of generation (decode time is linear in context)
    new_tokens: int
    batch: int
    compute_bound_batch: int | None  # smallest batch at which decode turns compute-bound

    @property
    def ttft_s(self) -> float:
        return self.prefill.seconds

    @property
    def tpot_s(self) -> float:
        return self.decode.seconds

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + max(0, self.new_tokens - 1) * self.tpot_s

    @property
    def tokens_per_s(self) -> float:
        """Aggregate decode throughput of the batch."""
        return self.batch / self.tpot_s

    def to_dict(self) -> dict:
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
            "tokens_per_s": self.tokens_per_s, "tokens_per_s_per_seq": 1 / self.tpot_s,
            "prefill_bound": self.prefill.bound, "decode_bound": self.decode.bound,
            "prefill_flops": self.prefill.flops, "prefill_bytes": self.prefill.bytes,
            "decode_flops": self.decode.flops, "decode_bytes": self.decode.bytes,
            "compute_bound_batch": self.compute_bound_batch,
        }


def decode_step(m: ModelSpec, s: Scenario, gpu, p: SpeedParams = SpeedParams(), context: int | None = None) -> Step:
    """One decode step of the batch at `context` tokens (default: the scenario's full context)."""
    return _step(m, s, gpu, p, 1, context or s.context)


def prefill_step(m: ModelSpec, s: Scenario, gpu, p: SpeedParams = SpeedParams(), tokens: int | None = None) -> Step:
    t = tokens or s.prompt_tokens
    return _step(m, s, gpu, p, t, t)


def compute_bound_batch(m: ModelSpec, s: Scenario, gpu, p: SpeedParams = SpeedParams(), limit: int = 1 << 16):
    """Smallest batch at which a decode step at the scenario's context is compute-bound (None if
    not even at `limit`)."""
    def bound(b: int) -> bool:
        return decode_step(m, s.with_(batch=b), gpu, p).bound == "compute"

    if not bound(limit):
        return None
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bound(mid) else (mid + 1, hi)
    return lo


def speed(m: ModelSpec, s: Scenario, gpu, p: SpeedParams = SpeedParams(), knee: bool = True) -> SpeedReport:
    mid = s.prompt_tokens + max(0, s.new_tokens - 1) // 2 + 1
    return SpeedReport(
        prefill=prefill_step(m, s, gpu, p),
        decode=decode_step(m, s, gpu, p, context=mid),
        new_tokens=s.new_tokens,
        batch=s.batch,
        compute_bound_batch=compute_bound_batch(m, s, gpu, p) if knee else None,
    )


def generation_seconds(m: ModelSpec, s: Scenario, gpu, p: SpeedParams = SpeedParams(), cache: bool = True,
                       samples: int = 256) -> float:
    """Time to generate s.new_tokens after the prompt: with a KV cache (a prefill, then one decode
    step per further token) or without (every token re-runs the whole prefix as a prefill).

    Step times change smoothly with the context, so long generations are integrated from `samples`
    evenly spaced steps (trapezoid rule; exact while the time is linear in the context).
    """
    P, G = s.prompt_tokens, s.new_tokens
    if cache:
        def step(i):
            return decode_step(m, s, gpu, p, context=P + i).seconds
        first, lo = prefill_step(m, s, gpu, p).seconds, 1  # decode steps 1 .. G-1
    else:
        def step(i):
            return prefill_step(m, s, gpu, p, tokens=P + i).seconds
        first, lo = 0.0, 0  # prefills of P .. P+G-1 tokens
    n = G - lo
    if n <= 0:
        return first
    if n <= samples:
        return first + sum(step(i) for i in range(lo, G))
    xs = [lo + (G - 1 - lo) * k / (samples - 1) for k in range(samples)]
    ys = [step(round(x)) for x in xs]
    width = (G - 1 - lo) / (samples - 1)
    return first + (sum(ys) - (ys[0] + ys[-1]) / 2) * width + (ys[0] + ys[-1]) / 2


# ---- calibration ---------------------------------------------------------------------------------
def calibrate(samples: list[tuple[float, float, int]], base: SpeedParams = SpeedParams()) -> SpeedParams:
    """Fit memory efficiency and per-layer overhead to measured decode steps.

    samples: (measured seconds, seconds at 100 % of peak bandwidth, layers + 1). The model
    t = floor / eff + n x overhead is linear in (1 / eff, overhead): least squares, clamped to the
    physical range. With one sample only the overhead is fitted.
    """
    if not samples:
        raise KvdashError("no measured runs to calibrate against")
    if len(samples) == 1:
        t, floor, n = samples[0]
        overhead = max(0.0, (t - floor / base.memory_eff) / n)
        return replace(base, layer_overhead_s=min(overhead, 1.0), name=f"{base.name}, calibrated on 1 run")
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
    return replace(base, memory_eff=eff, layer_overhead_s=min(o, 1.0),
                   name=f"{base.name}, calibrated on {len(samples)} runs")
