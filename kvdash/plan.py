"""Plan a deployment (issue #22): from a model, a steady request rate and latency targets to the configurations
that meet them, cheapest first, aggregated serving only (each replica prefills and decodes).

For each GPU x engine x tensor-parallel degree x weight format x KV-cache format, the serving model
(kvdash.serving, the Speed page's numbers) answers: the most requests in flight a replica holds while its TTFT and
TPOT stay within the targets (both grow with the requests in flight, so a bisection finds it), hence the rate one
replica serves within them (Little's law: in flight / time in the system); the replicas the rate needs; and, at the
rate each replica then receives, its steady state (kvdash.traffic.at_rate). A configuration whose memory cannot
hold one request, or whose targets no concurrency meets, is left out with its reason.

Weight formats: the checkpoint's, and the lighter formats an engine quantizes to or a published checkpoint
ships (fp8 where the GPU has fp8 tensor cores; NVFP4 where it has fp4 ones), unless one format is asked for.
A format other than the checkpoint's means quantizing it (the launch command says how) and its quality is
the user's call: kvdash sizes and times it, it does not judge it.

Prefix caching: `prefix_tokens` of every prompt are in the engine's prefix cache (a system prompt, say): the
serving model holds their whole blocks once and prefills only the rest (kvdash.serving).

Cost: the GPUs' hourly bill (a price per GPU-hour: the user's, else the lowest dated on-demand price kvdash lists,
kvdash.prices) over the tokens the rate brings in an hour, per million output tokens and per million tokens in
and out. Options are ranked by the cost per million output tokens (unknown prices last), or by GPUs.

Speculative decoding with the model's MTP modules (`spec_tokens`, kvdash.speculative): every configuration
speculates as asked, its memory and steps as the serving model has them.

Not yet here (the issue's later steps): disaggregated prefill and decode pools, draft-model and EAGLE
speculation, and a vectorised search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import product

from kvdash.dtypes import get_dtype
from kvdash.engines import ENGINES
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu, get_gpu
from kvdash.kernels import measured_gpus
from kvdash.model import ModelSpec
from kvdash.prices import usd_per_gpu_hour, usd_per_million
from kvdash.scenario import Scenario
from kvdash.serving import serving
from kvdash.traffic import at_rate

TP_DEGREES = (1, 2, 4, 8)
MAX_IN_FLIGHT = 4096  # a replica's requests in flight searched up to this


@dataclass(frozen=True)
class Option:
    """One configuration that meets the targets at the rate."""

    gpu: str
    engine: str
    tp: int
    kv_dtype: str
    weights_dtype: str
    replicas: int
    concurrency: int  # requests in flight per replica at the planned rate
    ttft_s: float
    tpot_s: float
    capacity_rate: float  # requests/s one replica serves within the targets
    max_in_flight: int  # the most requests in flight a replica holds within the targets
    prefix_tokens: int = 0  # prompt tokens each request finds in the prefix cache
    experts_dtype: str = ""  # the routed experts' format where it differs from the weights' (gpt-oss: mxfp4)
    spec_tokens: int = 0  # tokens drafted a step with the model's MTP modules (0: no speculation)
    spec_accepted: float = 0.0  # tokens a speculative step yields (0: the default for spec_tokens)
    usd_per_gpu_hour: float | None = None  # the price used (None: no price known for this GPU)
    usd_per_m_output: float | None = None  # the GPUs' bill per million output tokens at the rate
    usd_per_m_tokens: float | None = None  # ... per million tokens, prompt and output together

    @property
    def gpus(self) -> int:
        return self.replicas * self.tp

    def scenario(self, isl: int, osl: int) -> Scenario:
        """The scenario `serving` answers for this option (the check that a plan is the Speed page's number)."""
        return Scenario(prompt_tokens=isl, new_tokens=osl, tp=self.tp, kv_dtype=self.kv_dtype,
                        weights_dtype=self.weights_dtype, moe_weights_dtype=self.experts_dtype, runtime=self.engine,
                        shared_prefix_tokens=self.prefix_tokens, spec_tokens=self.spec_tokens,
                        spec_accepted=self.spec_accepted)


def plan(model: ModelSpec, rate: float, isl: int, osl: int, ttft_s: float, tpot_s: float, gpus: list[Gpu],
         engines=tuple(ENGINES), kv_dtypes=("bf16", "fp8"), weights_dtype: str | None = None,
         max_gpus: int = 64, prefix_tokens: int = 0, prices: dict[str, float] | None = None,
         rank: str = "cost", spec_tokens: int = 0, spec_accepted: float = 0.0) -> tuple[list[Option], dict[str, str]]:
    """The options that serve `rate` requests/s of isl + osl tokens, the first `prefix_tokens` of each prompt
    in the prefix cache, within the TTFT and TPOT targets on at most `max_gpus` GPUs, cheapest per million output
    tokens first (`rank="gpus"`: fewest GPUs first), then the lower TPOT; and why each other configuration was
    left out. `prices`: the user's dollars per GPU-hour by GPU id, over kvdash's reference prices."""
    if rank not in RANKS:
        raise KvdashError(f"rank by one of {', '.join(RANKS)}, not {rank!r}")
    if not (ttft_s > 0 and tpot_s > 0):
        raise KvdashError("the TTFT and TPOT targets must be positive")
    if not 0 < rate < 1e9:
        raise KvdashError(f"the request rate must be a positive number of requests per second, not {rate!r}")
    if isl < 1 or osl < 1:
        raise KvdashError("prompts and outputs of at least one token")
    if not 0 <= prefix_tokens <= isl:
        raise KvdashError(f"the cached prefix is 0 to {isl:,} prompt tokens, not {prefix_tokens!r}")
    options, left_out = [], {}
    for gpu in gpus:
        for engine in engines:
            for tp in TP_DEGREES:
                if tp > max_gpus:
                    continue
                for weights, kv in product(weight_formats(model, gpu, weights_dtype), kv_dtypes):
                    key = f"{gpu.id} {engine} tp{tp} weights {weights} kv {kv}"
                    s = Scenario(prompt_tokens=isl, new_tokens=osl, tp=tp, kv_dtype=kv, weights_dtype=weights,
                                 moe_weights_dtype=experts_format(model, weights), runtime=engine,
                                 shared_prefix_tokens=prefix_tokens, spec_tokens=spec_tokens,
                                 spec_accepted=spec_accepted)
                    try:
                        option = _option(model, s, gpu, rate, isl, osl, ttft_s, tpot_s, max_gpus)
                    except KvdashError as e:
                        left_out[key] = str(e)
                        continue
                    options.append(_priced(option, usd_per_gpu_hour(gpu.id, prices), rate, isl, osl))
    options.sort(key=RANKS[rank])
    return options, left_out


RANKS = {  # an option's sort key; unknown prices rank after known ones
    "cost": lambda o: (o.usd_per_m_output is None, o.usd_per_m_output or 0.0, o.gpus, o.tpot_s, o.ttft_s),
    "gpus": lambda o: (o.gpus, o.tpot_s, o.ttft_s),
}


def _priced(o: Option, price: float | None, rate: float, isl: int, osl: int) -> Option:
    """The option with its bill: gpus x price per hour over the tokens the rate brings in an hour."""
    if price is None:
        return o
    bill = o.gpus * price
    return replace(o, usd_per_gpu_hour=price, usd_per_m_output=usd_per_million(bill, rate * osl),
                   usd_per_m_tokens=usd_per_million(bill, rate * (isl + osl)))


def _option(model, s: Scenario, gpu: Gpu, rate: float, isl: int, osl: int, ttft_s: float, tpot_s: float,
            max_gpus: int) -> Option:
    reports: dict = {}

    def at(c: int):  # the serving model at c in flight, each concurrency asked once
        if c not in reports:
            reports[c] = serving(model, s, gpu, c, isl, osl)
        return reports[c]

    def within(c: int) -> bool:
        return at(c).ttft_s <= ttft_s and at(c).tpot_s <= tpot_s

    if not within(1):
        raise KvdashError(f"even one request misses the targets (TTFT {at(1).ttft_s * 1e3:,.0f} ms, TPOT "
                          f"{at(1).tpot_s * 1e3:,.1f} ms)")
    lo, hi = 1, MAX_IN_FLIGHT  # the most requests in flight within the targets
    if within(hi):
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if within(mid) else (lo, mid)
    capacity = lo / at(lo).request_latency_s
    replicas = math.ceil(rate / capacity)
    if replicas * s.tp > max_gpus:
        raise KvdashError(f"needs {replicas * s.tp:,} GPUs ({replicas:,} replicas of {s.tp}), more than {max_gpus:,}")
    steady, report = at_rate(model, s, gpu, rate / replicas, isl, osl, max_concurrency=lo, reports=reports)
    return Option(gpu.id, s.runtime, s.tp, s.kv_dtype, s.weights_dtype, replicas, steady.concurrency, report.ttft_s,
                  report.tpot_s, capacity, lo, s.shared_prefix_tokens, s.moe_weights_dtype, s.spec_tokens,
                  s.spec_accepted)


LIGHTER = ("fp8", "nvfp4")  # the formats a search tries beside the checkpoint's


def weight_formats(model: ModelSpec, gpu: Gpu, asked: str | None = None) -> tuple[str, ...]:
    """The weight formats searched on `gpu`: the one asked for, else the checkpoint's and each lighter format
    whose tensor cores the GPU has (fp8: Hopper, Ada, Blackwell; NVFP4: Blackwell) and that stores a matrix in
    at most three quarters of the checkpoint's bytes (an fp8-block checkpoint is not re-quantized to fp8)."""
    if asked:
        return (asked,)
    own = model.weights_format or "bf16"
    cores = {"fp8": gpu.fp8_tflops, "nvfp4": gpu.fp4_tflops}
    size = get_dtype(own).matrix_bytes(4096, 4096)
    return (own, *(f for f in LIGHTER if cores[f] and get_dtype(f).matrix_bytes(4096, 4096) <= 0.75 * size))


def experts_format(model: ModelSpec, weights: str) -> str:
    """The routed experts' format beside `weights` ("": the same): the checkpoint's own where it stores them in a
    lighter format than `weights` (gpt-oss's mxfp4 experts stay mxfp4 under bf16 or fp8 weights)."""
    own = model.experts_format
    if not own or own == weights:
        return ""
    return own if get_dtype(own).matrix_bytes(4096, 4096) < get_dtype(weights).matrix_bytes(4096, 4096) else ""


def pareto_front(options) -> list[Option]:
    """The options no other beats on both GPUs needed and TPOT (tokens/s per GPU against tokens/s per user at
    the rate): fewest GPUs first, each next one faster per user than every option before it."""
    front: list[Option] = []
    for o in sorted(options, key=lambda o: (o.gpus, o.tpot_s)):
        if not front or o.tpot_s < front[-1].tpot_s:
            front.append(o)
    return front


def default_gpus(catalog: dict[str, Gpu]) -> list[Gpu]:
    """The GPUs whose kernels kvdash has measured (its serving model's best-founded numbers)."""
    return [catalog[g] for g in measured_gpus() if g in catalog]


@lru_cache(maxsize=64)
def plan_for(model: ModelSpec, rate: float, isl: int, osl: int, ttft_s: float, tpot_s: float,
             gpu_ids: tuple[str, ...], weights_dtype: str | None = None, prefix_tokens: int = 0,
             prices: tuple[tuple[str, float], ...] = (), rank: str = "cost", spec_tokens: int = 0,
             spec_accepted: float = 0.0) -> tuple[tuple[Option, ...], tuple]:
    """plan() with the GPUs by id and the user's prices as (GPU id, dollars) pairs, kept per process (the Plan
    page's reruns reuse it): (options, the left-out configurations as (name, why) pairs), both read-only."""
    options, left_out = plan(model, rate, isl, osl, ttft_s, tpot_s, [get_gpu(g) for g in gpu_ids],
                             weights_dtype=weights_dtype, prefix_tokens=prefix_tokens, prices=dict(prices),
                             rank=rank, spec_tokens=spec_tokens, spec_accepted=spec_accepted)
    return tuple(options), tuple(left_out.items())
