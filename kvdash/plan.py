"""Plan a deployment (issue #22): from a model, a steady request rate and latency targets to the configurations
that meet them, cheapest first: aggregated replicas (each prefills and decodes) and disaggregated prefill and
decode pools.

For each GPU x engine x tensor-parallel degree (and, for a mixture of experts, expert parallelism) x weight format
x KV-cache format, the serving model (kvdash.serving, the Speed page's numbers) answers: the most requests in
flight a replica holds while its TTFT and TPOT stay within the targets (both grow with the requests in flight, so
a search finds it: kvdash.traffic.first_true), hence the rate one replica serves within them (Little's law: in
flight / time in the system); the replicas the rate needs; and, at the rate each replica then receives, its
steady state (kvdash.traffic.at_rate), checked against the targets (the serving model is not quite monotone in
the requests in flight: SGLang's waves make TTFT a saw-tooth), with one more replica where it misses them. A
configuration whose memory cannot hold one request, or whose targets no concurrency meets, is left out with its
reason. A fixed concurrency (`users`) instead of a rate is planned the same way at ceil(users / replicas) each.

Weight formats: the checkpoint's, and the lighter formats an engine quantizes to or a published checkpoint
ships (fp8 where the GPU has fp8 tensor cores; NVFP4 where it has fp4 ones), unless one format is asked for.
A format other than the checkpoint's means quantizing it (the launch command says how) and its quality is
the user's call: kvdash sizes and times it, it does not judge it.

Prefix caching: `prefix_tokens` of every prompt are in the engine's prefix cache (a system prompt, say): the
serving model holds their whole blocks once and prefills only the rest (kvdash.serving).

Cost: the GPUs' hourly bill (a price per GPU-hour: the user's, else the lowest dated on-demand price kvdash lists,
kvdash.prices) over the tokens the rate brings in an hour, per million output tokens and per million tokens in
and out. Options are ranked by the cost per million output tokens (unknown prices last), or by GPUs.

Speculative decoding with the model's MTP modules, an EAGLE head or a draft model (`spec_tokens`, `spec_method`,
kvdash.speculative): every configuration speculates as asked, its memory and steps as the serving model has them.

Disaggregated pools (kvdash.disagg): for each prefill tp x decode tp of the same engine and formats, the decode
workers the rate needs at the most requests in flight a worker holds within the TPOT target, then the fewest
prefill workers whose queueing fits what the TTFT target leaves after the prefill, the cache's transfer over the
link and the decode worker's join.

Traffic (kvdash.traffic): lengths that vary are planned at their means, with the longest request fitting every
pool (`longest`); a burst factor sizes the pools for the rate times it, the cost staying per the rate's tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import product

from kvdash.disagg import (
    DEFAULT_LINK_GBPS,
    DecodeWorker,
    Disaggregated,
    decode_steady,
    decode_worker,
    md1_max_load,
    model_has_state,
    prefill_worker,
)
from kvdash.dtypes import get_dtype
from kvdash.engines import ENGINES
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu, get_gpu
from kvdash.kernels import measured_gpus
from kvdash.model import ModelSpec
from kvdash.prices import usd_per_gpu_hour, usd_per_million
from kvdash.scenario import Scenario
from kvdash.serving import engine_profile, engine_setup, requests_held, serving
from kvdash.traffic import at_rate, first_true, kv_transfer_s

TP_DEGREES = (1, 2, 4, 8)
MAX_IN_FLIGHT = 4096  # a replica's requests in flight searched up to this
MODES = ("aggregated", "disaggregated")


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
    spec_tokens: int = 0  # tokens drafted a step (0: no speculation)
    spec_accepted: float = 0.0  # tokens a speculative step yields (0: the default for spec_tokens)
    spec_method: str = ""  # the drafter ("": the model's MTP modules; "eagle", "eagle3": an EAGLE head; "draft")
    spec_draft_vocab: int = 0  # an EAGLE-3 head's draft vocabulary (0: the default)
    spec_draft: str = ""  # a draft model's preset id (spec_method "draft")
    usd_per_gpu_hour: float | None = None  # the price used (None: no price known for this GPU)
    usd_per_m_output: float | None = None  # the GPUs' bill per million output tokens at the rate
    usd_per_m_tokens: float | None = None  # ... per million tokens, prompt and output together
    # disaggregated (kvdash.disagg): `tp`, `replicas` and `concurrency` are the decode pool's, these the prefill's
    prefill_tp: int = 0  # 0: aggregated (each replica prefills and decodes)
    prefill_replicas: int = 0
    expert_parallel: bool = False  # the routed experts split whole across the tp GPUs (the decode pool's, if two)
    prefill_expert_parallel: bool = False
    transfer_s: float = 0.0  # one request's prompt cache from its prefill to its decode worker
    link_gbps: float = 0.0  # the link it crosses, GB/s one way
    served_rate: float = 0.0  # requests/s served at a fixed concurrency (Little's law over the busiest replica)

    @property
    def gpus(self) -> int:
        return self.replicas * self.tp + self.prefill_replicas * self.prefill_tp

    @property
    def disaggregated(self) -> bool:
        return bool(self.prefill_replicas)

    @property
    def layout(self) -> str:
        """The pools in words: '3 x tp2' or 'prefill 2 x tp1 + decode 1 x tp4'."""
        def pool(n: int, tp: int, ep: bool) -> str:
            return f"{n} x tp{tp}" + (" ep" if ep else "")

        if self.disaggregated:
            return (f"prefill {pool(self.prefill_replicas, self.prefill_tp, self.prefill_expert_parallel)} + decode "
                    f"{pool(self.replicas, self.tp, self.expert_parallel)}")
        return pool(self.replicas, self.tp, self.expert_parallel)

    def scenario(self, isl: int, osl: int) -> Scenario:
        """The scenario `serving` answers for this option (the check that a plan is the Speed page's number)."""
        return Scenario(prompt_tokens=isl, new_tokens=osl, tp=self.tp, expert_parallel=self.expert_parallel,
                        kv_dtype=self.kv_dtype,
                        weights_dtype=self.weights_dtype, moe_weights_dtype=self.experts_dtype, runtime=self.engine,
                        shared_prefix_tokens=self.prefix_tokens, **{f: getattr(self, f) for f in SPECULATION})

    def prefill_scenario(self, isl: int, osl: int) -> Scenario:
        """A disaggregated option's prefill pool scenario (its own tensor-parallel degree)."""
        return replace(self.scenario(isl, osl), tp=self.prefill_tp, expert_parallel=self.prefill_expert_parallel)


def plan(model: ModelSpec, rate: float, isl: int, osl: int, ttft_s: float, tpot_s: float, gpus: list[Gpu],
         engines=tuple(ENGINES), kv_dtypes=("bf16", "fp8"), weights_dtype: str | None = None,
         max_gpus: int = 64, prefix_tokens: int = 0, prices: dict[str, float] | None = None,
         rank: str = "cost", spec_tokens: int = 0, spec_accepted: float = 0.0, modes=MODES,
         link_gbps: float = DEFAULT_LINK_GBPS, spec_method: str = "", spec_draft_vocab: int = 0,
         spec_draft: str = "", burst: float = 1.0, longest: tuple[int, int] = (0, 0), users: int = 0
         ) -> tuple[list[Option], dict[str, str]]:
    """The options that serve `rate` requests/s of isl + osl tokens, the first `prefix_tokens` of each prompt
    in the prefix cache, within the TTFT and TPOT targets on at most `max_gpus` GPUs, cheapest per million output
    tokens first (`rank="gpus"`: fewest GPUs first), then the lower TPOT; and why each other configuration was
    left out. `prices`: the user's dollars per GPU-hour by GPU id, over kvdash's reference prices. `modes`:
    aggregated replicas, disaggregated prefill and decode pools (their cache crossing a link of `link_gbps` GB/s
    one way), or both. `burst`: the pools are sized for rate x burst, the cost is the bill over the rate's tokens
    (kvdash.traffic). `longest`: the longest request's (prompt, output) tokens where lengths vary (isl and osl are
    then their means): one of it must fit a replica's, or a decode worker's, KV pool. `users`: a fixed concurrency
    instead of a rate (rate 0): users each sending their next request when the last ends, planned as aggregated
    replicas (disaggregated pools are planned for a rate), each option's cost over the rate it then serves."""
    if rank not in RANKS:
        raise KvdashError(f"rank by one of {', '.join(RANKS)}, not {rank!r}")
    if not (ttft_s > 0 and tpot_s > 0):
        raise KvdashError("the TTFT and TPOT targets must be positive")
    if users and (type(users) is not int or not 1 <= users <= 1 << 20 or rate):
        raise KvdashError(f"a fixed concurrency is 1 to 1,048,576 users instead of a rate, not {users!r}")
    if not users and not 0 < rate < 1e9:
        raise KvdashError(f"the request rate must be a positive number of requests per second, not {rate!r}")
    if not isinstance(burst, int | float) or not 1 <= burst <= 100:
        raise KvdashError(f"a burst factor is 1 (steady) to 100 times the rate, not {burst!r}")
    peak = rate * burst  # what the pools must serve within the targets
    if isl < 1 or osl < 1:
        raise KvdashError("prompts and outputs of at least one token")
    if not 0 <= prefix_tokens <= isl:
        raise KvdashError(f"the cached prefix is 0 to {isl:,} prompt tokens, not {prefix_tokens!r}")
    if not modes or set(modes) - set(MODES):
        raise KvdashError(f"serve {' or '.join(MODES)}, not {modes!r}")
    if "disaggregated" in modes and not 0 < link_gbps < 1e5:
        raise KvdashError(f"the link between prefill and decode pools must be a positive GB/s, not {link_gbps!r}")
    options, left_out = [], {}
    for gpu, engine in product(gpus, engines):
        price = usd_per_gpu_hour(gpu.id, prices)
        for weights, kv in product(weight_formats(model, gpu, weights_dtype), kv_dtypes):
            base = Scenario(prompt_tokens=isl, new_tokens=osl, kv_dtype=kv, weights_dtype=weights,
                            moe_weights_dtype=experts_format(model, weights), runtime=engine,
                            shared_prefix_tokens=prefix_tokens, spec_tokens=spec_tokens, spec_accepted=spec_accepted,
                            spec_method=spec_method, spec_draft_vocab=spec_draft_vocab, spec_draft=spec_draft)
            found = []
            if "aggregated" in modes:
                for tp, ep in parallel_layouts(model, max_gpus):
                    try:
                        found.append(_option(model, replace(base, tp=tp, expert_parallel=ep), gpu, peak, isl, osl,
                                             ttft_s, tpot_s, max_gpus, longest, users))
                    except KvdashError as e:
                        left_out[f"{gpu.id} {engine} tp{tp}{' ep' * ep} weights {weights} kv {kv}"] = str(e)
            if "disaggregated" in modes and users:
                left_out[f"{gpu.id} {engine} disaggregated weights {weights} kv {kv}"] = (
                    "a fixed concurrency is planned as aggregated replicas; disaggregated pools are planned for a rate")
            elif "disaggregated" in modes:
                found += _disaggregated_options(model, base, gpu, peak, isl, osl, ttft_s, tpot_s, max_gpus,
                                                link_gbps, left_out, f"{gpu.id} {engine} weights {weights} kv {kv}",
                                                longest)
            options += [_priced(o, price, o.served_rate or rate, isl, osl) for o in found]
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
            max_gpus: int, longest: tuple[int, int] = (0, 0), users: int = 0) -> Option:
    """The fewest replicas of scenario `s` that serve `rate` requests/s within the targets, or, given `users` (a
    fixed concurrency: each user sends its next request when the last one ends), that hold them all in flight
    within the targets, each replica at ceil(users / replicas)."""
    fits_longest(model, s, gpu, longest)
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
    else:  # the first beyond them, guessed from how far past the targets each end is
        lo = first_true(lambda c: not within(c), lambda c: max(at(c).ttft_s / ttft_s, at(c).tpot_s / tpot_s) - 1,
                        lo, hi) - 1
    capacity = lo / at(lo).request_latency_s
    if users:
        return _closed_loop(s, gpu, users, lo, capacity, within, at, max_gpus)
    replicas = math.ceil(rate / capacity)
    while True:
        _check_gpus(replicas, s.tp, max_gpus)
        steady, report = at_rate(model, s, gpu, rate / replicas, isl, osl, max_concurrency=lo, reports=reports)
        if within(steady.concurrency):
            break
        # the serving model is not monotone in the requests in flight (SGLang's waves prefill ceil(C isl / budget)
        # steps): a steady state below the most within the targets can miss them; one more replica lightens it
        replicas += 1
    return Option(gpu.id, s.runtime, s.tp, s.kv_dtype, s.weights_dtype, replicas, steady.concurrency, report.ttft_s,
                  report.tpot_s, capacity, lo, s.shared_prefix_tokens, s.moe_weights_dtype, **_speculation(s),
                  expert_parallel=s.expert_parallel)


def _check_gpus(replicas: int, tp: int, max_gpus: int) -> None:
    if replicas * tp > max_gpus:
        raise KvdashError(f"needs {replicas * tp:,} GPUs ({replicas:,} replicas of {tp}), more than {max_gpus:,}")


def _closed_loop(s: Scenario, gpu: Gpu, users: int, most: int, capacity: float, within, at, max_gpus: int
                 ) -> Option:
    replicas = math.ceil(users / most)
    while True:
        _check_gpus(replicas, s.tp, max_gpus)
        if within(c := math.ceil(users / replicas)):
            break
        replicas += 1  # not monotone in the requests in flight (see _option)
    r = at(c)
    return Option(gpu.id, s.runtime, s.tp, s.kv_dtype, s.weights_dtype, replicas, c, r.ttft_s, r.tpot_s, capacity,
                  most, s.shared_prefix_tokens, s.moe_weights_dtype, **_speculation(s),
                  expert_parallel=s.expert_parallel, served_rate=users / r.request_latency_s)


def _disaggregated_options(model, base: Scenario, gpu: Gpu, rate: float, isl: int, osl: int, ttft_s: float,
                           tpot_s: float, max_gpus: int, link_gbps: float, left_out: dict, name: str,
                           longest: tuple[int, int] = (0, 0)) -> list[Option]:
    """Every prefill tp x decode tp of the scenario's engine and formats (kvdash.disagg), each pool as small as
    the targets allow: the decode workers the rate needs at the most requests in flight within the TPOT target,
    then the prefill workers whose M/D/1 wait fits what the TTFT target leaves after the prefill, the transfer
    and the decode worker's join."""
    prefill, decode = {}, {}
    formats = name.split(" ", 2)[2]
    for tp, ep in parallel_layouts(model, max_gpus):
        s = replace(base, tp=tp, expert_parallel=ep)
        try:
            prefill[tp, ep] = prefill_worker(model, s, gpu, isl)
        except KvdashError as e:
            left_out[f"{gpu.id} {base.runtime} disaggregated prefill tp{tp}{' ep' * ep} {formats}"] = str(e)
        try:
            fits_longest(model, s, gpu, longest)
            decode[tp, ep] = _decode_pool(model, s, gpu, rate, isl, osl, tpot_s)
        except KvdashError as e:
            left_out[f"{gpu.id} {base.runtime} disaggregated decode tp{tp}{' ep' * ep} {formats}"] = str(e)
    overhead = engine_profile(base.runtime).request_overhead_s
    out = []
    for ((ptp, pep), p), ((dtp, dep), (workers, steady, worker, most, capacity)) in product(prefill.items(),
                                                                                          decode.items()):
        key = f"{name} prefill tp{ptp}{' ep' * pep} decode tp{dtp}{' ep' * dep}"
        if ptp != dtp and model_has_state(model):
            left_out[key] = "a model with recurrent state layers needs the same tp in both pools (vLLM's NIXL)"
            continue
        budget = ttft_s - (overhead + p.service_s + kv_transfer_s(p.cache_bytes, link_gbps) + worker.first_token_s)
        load = md1_max_load(budget, p.service_s)
        if load <= 0:
            left_out[key] = (f"the TTFT target leaves no time to queue for a prefill worker (prefill "
                             f"{p.service_s * 1e3:,.0f} ms, the transfer and the decode worker's join)")
            continue
        pw = max(1, math.ceil(rate * p.service_s / load * (1 - 1e-12)))
        d = Disaggregated(rate, p, pw, worker, workers, steady, overhead, link_gbps, dtp)
        if d.gpus > max_gpus:
            left_out[key] = f"needs {d.gpus:,} GPUs ({pw:,} prefill x {ptp} + {workers:,} decode x {dtp}), more than " \
                            f"{max_gpus:,}"
            continue
        out.append(Option(gpu.id, base.runtime, dtp, base.kv_dtype, base.weights_dtype, workers, steady.concurrency,
                          d.ttft_s, d.tpot_s, capacity, most, base.shared_prefix_tokens, base.moe_weights_dtype,
                          **_speculation(base), prefill_tp=ptp, prefill_replicas=pw,
                          expert_parallel=dep, prefill_expert_parallel=pep,
                          transfer_s=d.transfer_s, link_gbps=link_gbps))
    return out


def parallel_layouts(model: ModelSpec, max_gpus: int) -> list[tuple[int, bool]]:
    """(tp, expert parallel) searched: each tensor-parallel degree up to `max_gpus`, and for a mixture-of-experts
    model whose expert count it divides, the same GPUs with the routed experts split whole across them (vLLM's
    --enable-expert-parallel, SGLang's --ep-size)."""
    tps = [tp for tp in TP_DEGREES if tp <= max_gpus]
    return [(tp, False) for tp in tps] + [(tp, True) for tp in tps
                                          if tp > 1 and model.n_experts and model.n_experts % tp == 0]


def fits_longest(model, s: Scenario, gpu: Gpu, longest: tuple[int, int]) -> None:
    """Refuse a configuration whose KV pool cannot hold one of the longest requests (lengths that vary)."""
    if not longest[0]:
        return
    _, held, s, _ = engine_setup(model, s, gpu, *longest)
    if requests_held(held, s, gpu, *longest)[0] < 1:
        raise KvdashError(f"the longest request ({longest[0]:,} + {longest[1]:,} tokens) does not fit its KV pool")


def _decode_pool(model, s: Scenario, gpu: Gpu, rate: float, isl: int, osl: int, tpot_s: float):
    """(decode workers, a worker's steady state and its answer there, the most requests in flight within the
    TPOT target, the rate one worker serves there) for the rate."""
    workers: dict = {}

    def at(c: int) -> DecodeWorker:
        if c not in workers:
            workers[c] = decode_worker(model, s, gpu, c, isl, osl)
        return workers[c]

    if at(1).tpot_s > tpot_s:
        raise KvdashError(f"even one request decodes slower than the target (TPOT {at(1).tpot_s * 1e3:,.1f} ms)")
    lo, hi = 1, at(1).running_max
    if at(hi).tpot_s <= tpot_s:
        lo = hi
    else:
        lo = first_true(lambda c: at(c).tpot_s > tpot_s, lambda c: at(c).tpot_s - tpot_s, lo, hi) - 1
    capacity = lo / at(lo).latency_s
    n = math.ceil(rate / capacity)
    steady, worker = decode_steady(model, s, gpu, rate / n, isl, osl, lo, workers)
    return n, steady, worker, lo, capacity


SPECULATION = ("spec_tokens", "spec_accepted", "spec_method", "spec_draft_vocab", "spec_draft")


def _speculation(s: Scenario) -> dict:
    """The scenario's speculative-decoding fields, as an Option keeps them."""
    return {f: getattr(s, f) for f in SPECULATION}


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
             spec_accepted: float = 0.0, modes: tuple[str, ...] = MODES,
             link_gbps: float = DEFAULT_LINK_GBPS, spec_method: str = "",
             spec_draft_vocab: int = 0, spec_draft: str = "", burst: float = 1.0,
             longest: tuple[int, int] = (0, 0), users: int = 0) -> tuple[tuple[Option, ...], tuple]:
    """plan() with the GPUs by id and the user's prices as (GPU id, dollars) pairs, kept per process (the Plan
    page's reruns reuse it): (options, the left-out configurations as (name, why) pairs), both read-only."""
    options, left_out = plan(model, rate, isl, osl, ttft_s, tpot_s, [get_gpu(g) for g in gpu_ids],
                             weights_dtype=weights_dtype, prefix_tokens=prefix_tokens, prices=dict(prices),
                             rank=rank, spec_tokens=spec_tokens, spec_accepted=spec_accepted, modes=modes,
                             link_gbps=link_gbps, spec_method=spec_method, spec_draft_vocab=spec_draft_vocab,
                             spec_draft=spec_draft, burst=burst, longest=longest, users=users)
    return tuple(options), tuple(left_out.items())
