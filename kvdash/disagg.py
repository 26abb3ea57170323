"""Disaggregated prefill and decode (issue #22, item 3): a prefill pool and a decode pool of the same engine, GPU,
weights and KV-cache format, each with its own tensor-parallel degree and number of workers; each request's
prompt cache moves from its prefill worker to its decode worker once. Every step is timed by the one step cost
(kvdash.step.step_time; the decode pool's steps are the serving model's decode step, kvdash.serving.decode_step)
and every pool is sized by the engine's own start-up (kvdash.serving.requests_held).

- A prefill worker runs one prompt at a time, nothing beside it: the prompt's computed tokens (after any
  prefix-cache hit) in ceil(computed / budget) steps, as the aggregated model chunks them; that is its service
  time S. Requests reach each of P workers as a Poisson stream of rate R / P, so a worker is an M/D/1 queue:
  its load rho = (R / P) S must stay below 1 and a request waits rho S / (2 (1 - rho)) on average
  (Pollaczek-Khinchine). Batching several short prompts into one step would serve more; kvdash does not count
  it, so a prefill pool errs towards more GPUs.
- The transfer: the request's prompt cache on one prefill GPU (its exact bytes, kvdash.breakdown.kv_bytes) over
  that GPU's link at its one-way bandwidth; each GPU of the group sends its shard at once. The whole prompt's
  cache is sent (an engine that skips blocks the decode side already caches sends less).
- A decode worker runs decode-only steps of its C running requests at the mean context isl + osl / 2; a new
  request waits on average half the step in progress; then its first token: SGLang's prefill worker sampled it
  and it came with the cache, vLLM's decode worker computes it in its first step (kvdash.engines,
  prefill_first_token); and the request stays (osl - 1) / accepted steps more. C follows from Little's law at
  the rate R / D each worker receives (kvdash.traffic.steady_state), and must fit the worker's KV pool and
  max_num_seqs.

TTFT = the engine's per-request overhead + the prefill wait + S + the transfer + half a decode step (+ one decode
step where the decode worker computes the first token). TPOT = a decode step (with its drafting when it
speculates) / the tokens it yields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kvdash.breakdown import kv_bytes, scenario_stages
from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario
from kvdash.serving import (
    EngineProfile,
    computed_tokens,
    decode_context,
    decode_step,
    engine_profile,
    engine_setup,
    requests_held,
)
from kvdash.speculative import accepted_tokens, draft_module
from kvdash.step import Step, step_time
from kvdash.traffic import Steady, kv_transfer_s, steady_state

#: The link a prompt's cache crosses between pools when the user states none: one 400 Gb/s network port per
#: GPU, 50 GB/s one way, as NVIDIA's HGX/DGX H100, H200 and B200 systems pair each GPU with a ConnectX-7
#: 400 Gb/s adapter. An assumption, stated wherever it is used; pools inside one NVLink domain move it faster.
DEFAULT_LINK_GBPS = 50.0


def md1_wait_s(load: float, service_s: float) -> float:
    """Mean wait in an M/D/1 queue (Poisson arrivals, one server, a fixed service time): rho S / (2 (1 - rho))."""
    if not 0 <= load < 1:
        raise KvdashError(f"a prefill worker loaded at {load:.0%} of what it serves cannot keep up; add workers")
    return load * service_s / (2 * (1 - load))


def md1_max_load(wait_s: float, service_s: float) -> float:
    """The largest load rho whose mean M/D/1 wait is at most `wait_s` (the inverse of md1_wait_s): 2W / (S + 2W)."""
    if wait_s < 0:
        return 0.0
    return 2 * wait_s / (service_s + 2 * wait_s)


@dataclass(frozen=True)
class PrefillWorker:
    """One prefill worker's answer for one prompt."""

    service_s: float  # the prompt's steps, one after another
    steps: int  # steps its computed tokens take
    step: Step  # one of them (the mean chunk)
    draft_s: float  # of a step: the drafter's pass over the chunk (its cache) when the scenario speculates
    computed: int  # prompt tokens computed (fewer than the prompt after a prefix-cache hit)
    cache_bytes: int  # the prompt's cache on one of the worker's GPUs: what each of them sends
    pool_bytes: int  # the worker's KV pool per GPU
    tp: int


def prefill_worker(m: ModelSpec, s: Scenario, gpu: Gpu, isl: int, profile: EngineProfile | None = None
                   ) -> PrefillWorker:
    """A prefill worker of the scenario's engine, parallelism and formats on `gpu` computing one prompt."""
    target, held, s, profile = engine_setup(m, s, gpu, isl, 1, profile)
    budget, _ = s.step_limits()
    cap, pool, _ = requests_held(held, s, gpu, isl, 1)
    if cap < 1:
        raise KvdashError(f"a prompt of {isl:,} tokens does not fit the KV pool a prefill worker of {s.tp} x "
                          f"{gpu.name} has ({pool:,} B a GPU)")
    computed = computed_tokens(isl, s.shared_prefix_tokens, s.block_size)
    n = math.ceil(computed / budget) if engine_facts(s.engine).chunked_prefill else 1  # else the prompt whole
    chunk = computed / n
    step = step_time(target, s, gpu, profile, 0, isl, prefill=chunk, prompt=isl, computed=computed)
    drafter, ds = draft_module(target, s) if s.spec_tokens else (None, s)
    draft = (step_time(drafter, ds, gpu, replace(profile, step_overhead_s=0.0), 0, isl, prefill=chunk, prompt=isl,
                       computed=computed).seconds if s.spec_tokens else 0.0)
    st = scenario_stages(held, s)[0]
    return PrefillWorker(n * (step.seconds + draft), n, step, draft, computed, kv_bytes(st, 1, isl, 0, s.block_size),
                         pool, s.tp)


@dataclass(frozen=True)
class DecodeWorker:
    """One decode worker at C requests in flight."""

    concurrency: int
    step: Step  # a decode-only step of the C requests
    draft_s: float  # of it, drafting
    accepted: float  # tokens a step yields
    osl: int
    running_max: int  # the most requests its pool and max_num_seqs run at once
    pool_bytes: int
    request_bytes: int
    prefill_first_token: bool  # the prefill worker sampled the first token (kvdash.engines)

    @property
    def step_s(self) -> float:
        return self.step.seconds + self.draft_s

    @property
    def tpot_s(self) -> float:
        return self.step_s / self.accepted

    @property
    def first_token_s(self) -> float:
        """A new request's wait for the step in progress (half of one on average), and its own first step where
        the decode worker computes the first token (kvdash.engines: prefill_first_token)."""
        return (0.5 if self.prefill_first_token else 1.5) * self.step_s

    @property
    def latency_s(self) -> float:
        """A request's time on the worker: to its first token, then its other output tokens."""
        return self.first_token_s + (self.osl - 1) * self.tpot_s


def decode_worker(m: ModelSpec, s: Scenario, gpu: Gpu, concurrency: int, isl: int, osl: int,
                  profile: EngineProfile | None = None) -> DecodeWorker:
    """A decode worker of the scenario's engine, parallelism and formats on `gpu` with `concurrency` requests of
    isl + osl tokens decoding; refused where its KV pool or max_num_seqs cannot run them all."""
    target, held, s, profile = engine_setup(m, s, gpu, isl, osl, profile)
    budget, max_seqs = s.step_limits()
    cap, pool, one = requests_held(held, s, gpu, isl, osl)
    most = min(cap, max_seqs, (budget - 1) // (s.spec_tokens + 1))
    if most < 1:
        raise KvdashError(f"one request of {isl:,} + {osl:,} tokens holds {one:,} B of cache per GPU, more than "
                          f"the {pool:,} B the engine leaves for its KV pool on {gpu.name}")
    if type(concurrency) is not int or not 1 <= concurrency <= most:
        raise KvdashError(f"a decode worker of {s.tp} x {gpu.name} runs 1 to {most:,} requests at once, not "
                          f"{concurrency!r}")
    step, draft = decode_step(target, s, gpu, profile, concurrency, decode_context(isl, osl))
    return DecodeWorker(concurrency, step, draft, accepted_tokens(s) if s.spec_tokens else 1.0, osl, most, pool, one,
                        engine_facts(s.engine).prefill_first_token)


@dataclass(frozen=True)
class Disaggregated:
    """Serving a steady rate with P prefill and D decode workers."""

    rate: float
    prefill: PrefillWorker
    prefill_workers: int
    decode: DecodeWorker  # at the steady state of its share of the rate
    decode_workers: int
    steady: Steady  # a decode worker's steady state
    request_overhead_s: float
    link_gbps: float
    decode_tp: int

    @property
    def prefill_load(self) -> float:
        return self.rate / self.prefill_workers * self.prefill.service_s

    @property
    def prefill_wait_s(self) -> float:
        return md1_wait_s(self.prefill_load, self.prefill.service_s)

    @property
    def transfer_s(self) -> float:
        return kv_transfer_s(self.prefill.cache_bytes, self.link_gbps)

    @property
    def ttft_s(self) -> float:
        return (self.request_overhead_s + self.prefill_wait_s + self.prefill.service_s + self.transfer_s
                + self.decode.first_token_s)

    @property
    def tpot_s(self) -> float:
        return self.decode.tpot_s

    @property
    def gpus(self) -> int:
        return self.prefill_workers * self.prefill.tp + self.decode_workers * self.decode_tp

    def terms(self) -> list[tuple[str, float, str]]:
        """(part of the TTFT, seconds, formula)."""
        p = self.prefill
        return [
            ("request overhead", self.request_overhead_s, "the engine's per-request time (fitted)"),
            ("prefill wait", self.prefill_wait_s, f"M/D/1: rho S / (2 (1 - rho)), rho = {self.prefill_load:.2f}"),
            ("prefill", p.service_s, f"{p.steps:,} step{'s' if p.steps > 1 else ''} of {p.computed / p.steps:,.0f} "
                                     "prompt tokens"),
            ("KV transfer", self.transfer_s, f"{p.cache_bytes:,} B a GPU / {self.link_gbps:g} GB/s one way"),
            ("decode join", self.decode.first_token_s, "half the step in progress" + (
                "" if self.decode.prefill_first_token else " + the first decode step (it computes the first token)")),
        ]


def disaggregated(m: ModelSpec, prefill_s: Scenario, decode_s: Scenario, gpu: Gpu, rate: float, isl: int, osl: int,
                  prefill_workers: int, decode_workers: int, link_gbps: float = DEFAULT_LINK_GBPS) -> Disaggregated:
    """`rate` requests/s of isl + osl tokens served by `prefill_workers` workers of `prefill_s` and
    `decode_workers` of `decode_s` (the same engine and formats) on `gpu` (module docstring)."""
    check_pools(m, prefill_s, decode_s)
    for name, n in (("prefill", prefill_workers), ("decode", decode_workers)):
        if type(n) is not int or not 1 <= n <= 4096:
            raise KvdashError(f"{name} workers must be a whole number from 1 to 4,096, not {n!r}")
    p = prefill_worker(m, prefill_s, gpu, isl)
    most = decode_worker(m, decode_s, gpu, 1, isl, osl).running_max
    steady, worker = decode_steady(m, decode_s, gpu, rate / decode_workers, isl, osl, most)
    md1_wait_s(rate / prefill_workers * p.service_s, p.service_s)  # refuses an overloaded prefill pool
    kv_transfer_s(p.cache_bytes, link_gbps)  # ... and a missing link
    return Disaggregated(rate, p, prefill_workers, worker, decode_workers, steady,
                         engine_profile(decode_s.engine).request_overhead_s, link_gbps, decode_s.tp)


def decode_steady(m: ModelSpec, s: Scenario, gpu: Gpu, rate: float, isl: int, osl: int, most: int,
                  workers: dict | None = None) -> tuple[Steady, DecodeWorker]:
    """A decode worker's steady state at `rate` requests/s (Little's law over its time on the worker), with at
    most `most` in flight (and no more than its pool runs); `workers`: answers already computed, by concurrency,
    reused and added to."""
    workers = {} if workers is None else workers

    def at(c: int) -> DecodeWorker:
        if c not in workers:
            workers[c] = decode_worker(m, s, gpu, c, isl, osl)
        return workers[c]

    most = min(most, at(1).running_max)
    try:
        steady = steady_state(rate, lambda c: at(c).latency_s, most, tried=sorted(workers))
    except KvdashError as e:
        raise KvdashError(f"a decode worker cannot keep up: {e}") from None
    return steady, at(steady.concurrency)


def model_has_state(m: ModelSpec) -> bool:
    """Whether the model has recurrent state layers (Mamba, linear attention): vLLM's NIXL moves their cache
    between pools of one tensor-parallel degree only (docs/features/nixl_connector_compatibility.md)."""
    return any(not spec.kernel for spec, _ in m.layer_groups)


def check_pools(m: ModelSpec, prefill_s: Scenario, decode_s: Scenario) -> None:
    """The two pools must run the same engine and formats (the cache crosses as it is); only parallelism differs."""
    same = ("runtime", "weights_dtype", "moe_weights_dtype", "kv_dtype", "block_size", "shared_prefix_tokens",
            "spec_tokens", "spec_accepted", "spec_method", "spec_draft_vocab", "spec_draft")
    differ = [f for f in same if getattr(prefill_s, f) != getattr(decode_s, f)]
    if differ:
        raise KvdashError(f"the prefill and decode pools must agree on {', '.join(differ)}")
    if prefill_s.tp != decode_s.tp and model_has_state(m):
        raise KvdashError("a model with recurrent state layers needs the same tp in both pools (vLLM's NIXL)")
