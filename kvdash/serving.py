"""Serving speed at a concurrency: TTFT, TPOT and throughput of an aggregated engine in steady state.

C requests of `isl` prompt and `osl` output tokens are in flight at all times (a finished request is
replaced at once), as in the measured benchmarks; at most as many run as the engine's KV pool holds,
the others wait for a slot (Little's law). A step processes at most `max_num_batched_tokens` tokens
(chunked prefill: a prompt chunk rides along with the running decodes). A request lives

    S = max(k + osl - 1, C (isl + osl - 1) / budget) steps     (its prompt in k chunks, then a step per token)

and the C requests' prompts, arriving spread over that cycle, ride in n = min(S, C k) of its steps. So a
cycle has two kinds of step, each on one GPU taking (every term printed by `ServingReport.terms`)

    max(FLOPs / (rate x compute_eff), weight bytes / (bandwidth x memory_eff)
                                      + cache bytes / (bandwidth x cache_eff))
      + step overhead + layers x (layer overhead + decodes x sequence overhead)
      + 2 all-reduces per layer (latency + 2 (tp - 1) / tp x bytes / one-way link)

with the FLOPs and bytes of the step's tokens: weights read once per step (routed experts: only those the
step's tokens hit, uniform routing), every decode's cache read at its mean length, a chunk attending to
its prefix. Averaging the chunks over every step would hide their compute under the decode steps' memory
time; keeping the two kinds apart is what makes TPOT right when prompts are long. TPOT is the request's
lifetime after its own chunks over its other output tokens; TTFT is `ServingReport.first_token_s` plus any
wait for a slot. The engine profile's efficiencies, overheads and queueing terms are fitted to measured
runs (benchmarks/fit_serving.py), not guessed; its numbers live in data/engines/.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from kvdash.breakdown import kv_bytes, scenario_stages
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario
from kvdash.startup import engine_startup
from kvdash.step import Step, StepCosts, refuse_pipeline, step_time

ENGINES_DIR = Path(__file__).resolve().parent.parent / "data" / "engines"
# vLLM's KV pool at the share the measured runs used: gpu_memory_utilization 0.9, the default of the releases
# they ran (0.11 to 0.18; kvdash.startup's family "0.8-0.19")
VLLM_FAMILY = "0.8-0.19"


@dataclass(frozen=True)
class EngineProfile(StepCosts):
    """An engine's fitted step costs (kvdash.step) and the queueing terms of its time to first token; its
    defaults (step limits, memory share, admission) are facts, in kvdash.engines."""

    queue_steps: float = 1.0  # steps a new request waits on average before its prompt runs
    queue_share: float = 0.0  # share of the other requests' prompts queued ahead of a new one (bursts)
    queue_prompts: float = 0.0  # ... plus this many of them, whatever the concurrency (at most all the others)
    request_overhead_s: float = 0.0  # per request, whatever the model: API server, tokenizer, streaming back

    def __post_init__(self):
        super().__post_init__()
        if engine_facts(self.name).overlap_scheduler and self.step_overhead_s:
            raise KvdashError("an engine that schedules the next step while the GPU runs this one has no per-step "
                              f"overhead; step_overhead_s must be 0, not {self.step_overhead_s!r}")
        for f in ("queue_steps", "queue_share", "queue_prompts", "request_overhead_s"):
            if not 0 <= getattr(self, f) <= 100:
                raise KvdashError(f"{f} must be between 0 and 100, not {getattr(self, f)!r}")


@lru_cache(maxsize=8)
def engine_profile(name: str) -> EngineProfile:
    """The fitted profile of an engine (data/engines/NAME.json), or its defaults when none is stored."""
    engine_facts(name)
    path = ENGINES_DIR / f"{name}.json"
    if not path.exists():
        return EngineProfile(name)
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(EngineProfile)}
    return EngineProfile(**{k: v for k, v in data.items() if k in known})


def kv_pool_bytes(m: ModelSpec, s: Scenario, gpu: Gpu) -> int:
    """Bytes of KV pool per GPU the scenario's engine is left with at its default share (kvdash.startup, the
    budget `kvdash capacity --gpu` prints; vLLM at 0.9)."""
    return engine_startup(m, s, gpu, family=VLLM_FAMILY).kv_budget_bytes


def requests_held(m: ModelSpec, s: Scenario, gpu: Gpu, isl: int, osl: int) -> tuple[int, int, int]:
    """(requests the KV pool holds at once, pool bytes, bytes one request holds): a request holds its
    prompt and, on average, half its output (all of it where the engine reserves the full length)."""
    pool = kv_pool_bytes(m, s, gpu)
    held = osl if engine_facts(s.engine).reserve_full_length else osl // 2
    st = scenario_stages(m, s)[0]
    one = kv_bytes(st, 1, isl + held, 0, s.block_size)
    return (pool // one if one else 1 << 30), pool, one


@dataclass(frozen=True)
class ServingReport:
    concurrency: int
    running: int  # requests running at once (the KV pool or max_num_seqs); the rest wait for a slot
    isl: int
    osl: int
    n_gpus: int
    steps_per_cycle: float  # engine steps in one request's lifetime
    mixed_steps_per_cycle: float  # of them, steps that carry a prompt chunk
    decode_tokens_per_step: float
    prompt_tokens_per_mixed_step: float
    step: Step  # a decode-only step
    mixed: Step  # a step with a prompt chunk beside the decodes
    prefill_steps: int  # chunks of one prompt
    tpot_s: float
    cycle_s: float  # one request's lifetime once it runs: every step of the cycle
    profile: EngineProfile
    pool_bytes: int
    request_bytes: int
    budget: int  # tokens per step (max_num_batched_tokens)
    max_seqs: int  # requests at once the engine allows (max_num_seqs)

    def warnings(self, gpu: Gpu) -> list[str]:
        """What the numbers rest on that was not measured here."""
        from kvdash.serving_runs import GPU

        if self.profile.source.startswith("fitted") and gpu.id != GPU:
            return [f"the {self.profile.name} profile was fitted on H100 SXM runs only; on {gpu.name} its "
                    "efficiencies and overheads are carried over, not checked against measurements"]
        return []

    @property
    def limited_by(self) -> str:
        """What keeps the other requests waiting: the KV pool, or the engine's max_num_seqs."""
        return "max_num_seqs" if self.running == self.max_seqs < self.concurrency else "the KV pool"

    def first_token_s(self, queue_steps: float, queue_share: float, request_overhead: float = 0.0,
                      queue_prompts: float = 0.0, mn=min) -> float:
        """Time to the first token once the request holds a slot in the KV pool (numpy arrays of the four
        fitted terms, with mn=np.minimum, give an array, which is how benchmarks/fit_serving.py searches them):
        - the engine's fixed per-request time (`request_overhead`: API server, tokenizing, streaming back);
        - the rest of the step in progress when it arrives: a random moment falls in a step with odds
          proportional to the step's length, so on average sum(t^2) / (2 sum(t)) over the cycle's steps;
        - `queue_steps` average steps of scheduling and output handling (fitted per engine);
        - the prompts queued ahead of it: `queue_share` of the others plus `queue_prompts` of them, at most
          all the others (a benchmark's burst start leaves requests arriving in groups; fitted), each its
          chunks' worth of steps with a chunk;
        - its own prompt's chunks."""
        n, S, mix, dec = self.mixed_steps_per_cycle, self.steps_per_cycle, self.mixed.seconds, self.step.seconds
        residual = (n * mix**2 + (S - n) * dec**2) / (2 * self.cycle_s)
        ahead = mn(queue_prompts + queue_share * (self.running - 1), self.running - 1)
        ahead = ahead * self.isl / self.prompt_tokens_per_mixed_step
        return request_overhead + residual + queue_steps * self.cycle_s / S + ahead * mix + self.prefill_steps * mix

    def wait_for_slot_s(self, first_token_s: float) -> float:
        """More requests than the pool holds: concurrency - C wait while slots free at C per request lifetime,
        so (Little's law) each waits (concurrency - C) / C lifetimes."""
        return (self.concurrency - self.running) / self.running * (first_token_s + (self.osl - 1) * self.tpot_s)

    def ttft_with(self, queue_steps: float, queue_share: float, request_overhead: float = 0.0,
                  queue_prompts: float = 0.0, mn=min) -> float:
        first = self.first_token_s(queue_steps, queue_share, request_overhead, queue_prompts, mn)
        return first + self.wait_for_slot_s(first)

    @property
    def ttft_s(self) -> float:
        p = self.profile
        return self.ttft_with(p.queue_steps, p.queue_share, p.request_overhead_s, p.queue_prompts)

    @property
    def wait_s(self) -> float:
        """Of ttft_s, the wait for a free slot in the KV pool."""
        p = self.profile
        return self.wait_for_slot_s(self.first_token_s(p.queue_steps, p.queue_share, p.request_overhead_s,
                                                       p.queue_prompts))

    @property
    def request_latency_s(self) -> float:
        return self.ttft_s + (self.osl - 1) * self.tpot_s

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1 / self.tpot_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.running * self.osl / self.cycle_s / self.n_gpus

    @property
    def fits(self) -> bool:
        return self.running >= self.concurrency

    def terms(self) -> list[tuple[str, float, float, str]]:
        """(term, seconds in a decode-only step, seconds in a step with a prompt chunk, formula)."""
        d, x, p = self.step, self.mixed, self.profile
        return [
            ("compute", d.compute_s, x.compute_s, f"{d.work.flops:,.0f} | {x.work.flops:,.0f} FLOP / (peak x "
                                                  f"{p.compute_eff:.2f})"),
            ("memory", d.memory_s, x.memory_s, f"weights {d.work.bytes - d.work.cache_bytes:,.0f} B / (bandwidth x "
                                               f"{p.memory_eff:.2f}) + cache {d.work.cache_bytes:,.0f} | "
                                               f"{x.work.cache_bytes:,.0f} B / (bandwidth x {p.cache_eff:.2f})"),
            ("overheads", d.overhead_s, x.overhead_s, f"{p.step_overhead_s * 1e3:.3f} ms per step + layers x "
                                                      f"({p.layer_overhead_s * 1e6:.1f} µs + decodes x "
                                                      f"{p.seq_overhead_s * 1e6:.2f} µs)"),
            ("all-reduces", d.comm_s, x.comm_s, "2 per layer: latency + 2 (tp - 1) / tp x hidden states / link"),
            ("step", d.seconds, x.seconds, "max(compute, memory) + overheads + all-reduces"),
        ]

    def to_dict(self) -> dict:
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "request_latency_s": self.request_latency_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu, "tokens_per_s_per_user": self.tokens_per_s_per_user,
            "decode_step_s": self.step.seconds, "mixed_step_s": self.mixed.seconds,
            "steps_per_cycle": self.steps_per_cycle, "mixed_steps_per_cycle": self.mixed_steps_per_cycle,
            "decode_tokens_per_step": self.decode_tokens_per_step,
            "prompt_tokens_per_mixed_step": self.prompt_tokens_per_mixed_step, "prefill_steps": self.prefill_steps,
            "bound": self.step.bound, "engine": self.profile.name, "running": self.running,
            "wait_s": self.wait_s, "kv_pool_bytes": self.pool_bytes, "request_kv_bytes": self.request_bytes,
            "max_num_batched_tokens": self.budget, "max_num_seqs": self.max_seqs,
            "terms": {name: {"decode_step_s": sec, "mixed_step_s": mix, "formula": text}
                      for name, sec, mix, text in self.terms()},
        }


def serving(m: ModelSpec, s: Scenario, gpu: Gpu, concurrency: int, isl: int, osl: int,
            profile: EngineProfile | None = None) -> ServingReport:
    """Steady-state serving of `concurrency` requests of isl prompt and osl output tokens by the scenario's
    engine (s.runtime; its step limits as set, else its defaults on `gpu`) at its fitted profile, or at
    `profile` (module docstring)."""
    refuse_pipeline(s)
    if not s.engine:
        raise KvdashError(f"serving needs a serving engine ({', '.join(ENGINES)}), not the {s.runtime} runtime")
    for name, v, hi in (("concurrency", concurrency, 1 << 20), ("isl", isl, 1 << 30), ("osl", osl, 1 << 30)):
        if type(v) is not int or not 1 <= v <= hi:
            raise KvdashError(f"{name} must be an integer from 1 to {hi:,}, not {v!r}")
    profile = profile or engine_profile(s.engine)
    if profile.name != s.engine:
        raise KvdashError(f"the {profile.name} profile cannot time the {s.engine} engine")
    s = s.resolved(gpu)
    budget, max_seqs = s.step_limits()
    cap, pool, one = requests_held(m, s, gpu, isl, osl)
    if cap < 1:
        raise KvdashError(f"one request of {isl:,} + {osl:,} tokens holds {one:,} B of cache per GPU, more than "
                          f"the {pool:,} B the engine leaves for its KV pool on {gpu.name}")
    C = min(concurrency, cap, max_seqs)  # the KV pool, or the engine's max_num_seqs, limits who runs
    if budget <= C:
        raise KvdashError(f"max_num_batched_tokens ({budget:,}) must exceed the requests running at once ({C:,})")
    # A request lives k + osl - 1 steps (its prompt in k chunks, the last of which yields the first token),
    # unless the token budget cannot carry all C requests' tokens in that many steps.
    k = math.ceil(isl / (budget - C))
    S = max(k + osl - 1, C * (isl + osl - 1) / budget)
    d = C * osl / S
    # Arrivals are spread over the cycle, so chunks ride in separate steps until every step carries one.
    n_mix = min(S, C * k)
    p = min(budget - d, C * isl / n_mix)
    ctx = isl + osl / 2  # decodes see the prompt plus half the output on average
    step = step_time(m, s, gpu, profile, d, ctx)
    mixed = step_time(m, s, gpu, profile, d, ctx, prefill=p, prompt=isl)
    cycle = n_mix * mixed.seconds + (S - n_mix) * step.seconds
    own = k * mixed.seconds  # the request's own chunks; its TPOT counts the rest of its lifetime
    tpot = (cycle - own) / (osl - 1) if osl > 1 else step.seconds
    return ServingReport(concurrency, C, isl, osl, s.tp * s.pp, S, n_mix, d, p, step, mixed, k, tpot, cycle, profile,
                         pool, one, budget, max_seqs)
