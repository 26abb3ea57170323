"""Serving speed at a concurrency: TTFT, TPOT and throughput of an aggregated engine in steady state.

C requests of `isl` prompt and `osl` output tokens are in flight at all times (a finished request is replaced at
once), as in the measured benchmarks; at most as many run as the engine's KV pool holds, the others wait for a slot
(Little's law). A step processes at most the engine's token budget (max_num_batched_tokens, chunked_prefill_size,
max_num_tokens). How a request's lifetime is made of steps follows the engine's scheduler (`arrivals`): an engine
that mixes prompt chunks into the decodes' steps (vLLM, TensorRT-LLM) takes each new prompt in steps of its own
beside the others' decodes, spread over the cycle (TensorRT-LLM, which does not chunk prompts by default, in one
step however long); SGLang, which prefills in batches of their own, runs waves (all prompts, then all decodes). So
a cycle has two kinds of step, each timed by kvdash.step from the GPU's measured kernel ceilings and the engine's
host overheads (every term printed by `ServingReport.terms`): decode-only steps, and steps with prompt tokens.
Averaging the prompts over every step would hide their compute under the decode steps' memory time; keeping the two
kinds apart is what makes TPOT right when prompts are long. TPOT is the request's lifetime after its first token
over its other output tokens; TTFT is `ServingReport.first_token_s` plus any wait for a slot. A scenario's shared
prefix is the engine's prefix cache: its whole blocks are held once in the pool, and each prompt computes only the
tokens after them (attending to the whole prompt). The engine's overheads and queueing terms are fitted to measured
H100 runs (benchmarks/fit_serving.py; data/engines/), its defaults are facts of its source (kvdash.engines).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from kvdash.breakdown import kv_bytes, scenario_stages
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu
from kvdash.kernels import moe_formats
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario
from kvdash.serving_runs import GPU as FITTED_GPU
from kvdash.speculative import accepted_tokens, draft_module, drafted, drafter_words
from kvdash.startup import Startup, engine_startup
from kvdash.step import Step, StepCosts, refuse_pipeline, step_time

ENGINES_DIR = Path(__file__).resolve().parent.parent / "data" / "engines"
# vLLM's KV pool at the share the measured runs used: gpu_memory_utilization 0.9, the default of the releases
# they ran (0.11 to 0.18; kvdash.startup's family "0.8-0.19")
VLLM_FAMILY = "0.8-0.19"


# How the model did on measured runs on GPUs other than the one the overheads were fitted on (serving_runs.GPU)
# (benchmarks/transfer.py: median |predicted / measured - 1| of TPOT and TTFT; BENCHMARKS.md)
TRANSFER_GPUS = ("H200", "B200", "B300", "GB200")
TRANSFER_ERROR = (0.239, 0.395)
TRANSFER_DATE = "2026-12-05"


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
        engine_facts(self.name)  # an unknown engine is refused by name
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


@lru_cache(maxsize=4096)
def pool_startup(m: ModelSpec, s: Scenario, gpu: Gpu) -> Startup:
    """The scenario's engine's start-up at its default share, as the serving model takes its KV pool from it
    (kvdash.startup, the budget `kvdash capacity --gpu` prints; vLLM at 0.9). A model that states no trained length
    (a state-space model) is started with the scenario's own, as --max-model-len would give it: only the blocks a
    request may take depend on it, not the pool."""
    length = None if m.max_position_embeddings else max(1, s.context)
    return engine_startup(m, s, gpu, family=VLLM_FAMILY, max_model_len=length)


def kv_pool_bytes(m: ModelSpec, s: Scenario, gpu: Gpu) -> int:
    """Bytes of KV pool per GPU the scenario's engine is left with (pool_startup)."""
    return pool_startup(m, s, gpu).kv_budget_bytes


def computed_tokens(prompt: int, cached: int, block_size: int) -> int:
    """Prompt tokens an engine computes when the first `cached` of them are in its prefix cache: it reuses whole
    blocks only (vLLM and SGLang hash full blocks; 0: an unpaged cache, every cached token), and a prompt
    always computes its last token (its logits start the output)."""
    if prompt < 1 or not 0 <= cached <= prompt:
        raise KvdashError(f"a prompt of at least one token with 0 to all of them cached, not {cached!r} of {prompt!r}")
    reused = cached // block_size * block_size if block_size else cached
    return max(1, prompt - reused)


@lru_cache(maxsize=4096)
def requests_held(m: ModelSpec, s: Scenario, gpu: Gpu, isl: int, osl: int) -> tuple[int, int, int]:
    """(requests the KV pool holds at once, pool bytes, bytes each request adds): a request holds its prompt
    and, on average, half its output (all of it where the engine reserves the full length); the scenario's
    shared prefix is held once for all of them (the engine's prefix cache keeps its whole blocks)."""
    pool = kv_pool_bytes(m, s, gpu)
    held = osl if engine_facts(s.engine).reserve_full_length else osl // 2
    st = scenario_stages(m, s)[0]

    def used(n: int) -> int:
        return kv_bytes(st, n, isl + held, s.shared_prefix_tokens, s.block_size)

    one = used(2) - used(1)
    if not one:
        return 1 << 30, pool, 0
    n = max(0, (pool - used(1) + one) // one)  # exact where the cache grows by `one` a request, as it does
    while used(n + 1) <= pool:
        n += 1
    while n and used(n) > pool:
        n -= 1
    return n, pool, one


@dataclass(frozen=True)
class Arrivals:
    """How a cycle's steps are made up (see `arrivals`)."""

    group: int  # prompts that arrive, and are prefilled, together
    steps: float  # engine steps in one request's lifetime
    mixed_steps: float  # of them, steps that carry prompt tokens
    mixed_decodes: float  # decodes in a step with prompt tokens (the other groups'; 0 in a wave)
    prompt_tokens: float  # prompt tokens in such a step
    prefill_steps: int  # steps a group's prompts take
    first_token_steps: float  # of them, the mean step on which a member's prompt completes
    saturated: bool  # the token budget, not the output length, sets the cycle: every step carries prompt tokens


def arrivals(mixed_batches: bool, C: int, isl: int, osl: int, budget: int, width: int = 1,
             per_step: float = 1.0) -> Arrivals:
    """The steady state of C requests in flight whose finished requests are replaced at once, as a benchmark at a
    fixed concurrency runs them.

    - An engine that runs prompts in steps of their own (SGLang: prefill batches first, decodes wait) runs in
      waves: requests that start together decode together and finish together, so their replacements arrive
      together. All C prompts are prefilled in ceil(C isl / budget) steps of up to `budget` prompt tokens,
      the j-th completing on step ceil(j isl / budget), then the C decode together for osl - 1 steps.
    - An engine that mixes prompt chunks into the running decodes' steps (vLLM, TensorRT-LLM) takes new
      prompts as they come, spread over the cycle: each prompt rides in ceil(isl / (budget - (C - 1))) steps
      of its own beside the other C - 1 decodes, and a request lives those steps plus osl - 1, unless the
      prompts' steps outnumber that: then every step carries prompt tokens and the budget sets the cycle
      (C (isl + osl - 1) tokens in steps of `budget`). (Waves for these engines too, where the burst at a
      benchmark's start would persist, made the validation split's TTFT worse: BENCHMARKS.md.)
    With speculative decoding a decode takes `width` (k + 1) of a step's tokens and yields `per_step` tokens, so
    a request decodes in (osl - 1) / per_step steps.
    """
    a = 1 if mixed_batches else C
    room = budget - (C - a) * width
    m = math.ceil(a * isl / room)
    first = floor_sum(a, room, isl, isl + room - 1) / a  # sum of ceil(j isl / room), j = 1 .. a
    groups = C // a
    d = osl - 1 if per_step == 1 else (osl - 1) / per_step  # decode steps after the first token
    if groups * m <= m + d:
        return Arrivals(a, m + d, groups * m, C - a, a * isl / m, m, first, False)
    S = max(m + d, C * (isl + d * width) / budget)
    return Arrivals(a, S, S, C * d / S, C * isl / S, m, m, True)


def floor_sum(n: int, m: int, a: int, b: int) -> int:
    """The sum of floor((a i + b) / m) for i = 0 .. n - 1, for non-negative integers (m > 0), in O(log) steps
    (the Euclid-like reduction; a wave of C prompts would otherwise sum C terms)."""
    total = 0
    while n:
        if a >= m:
            total += (n - 1) * n // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        y = a * n + b
        if y < m:
            break
        n, b, m, a = y // m, y % m, a, m
    return total


@dataclass(frozen=True)
class ServingReport:
    concurrency: int
    running: int  # requests running at once (the KV pool or max_num_seqs); the rest wait for a slot
    isl: int
    osl: int
    n_gpus: int
    arrivals: Arrivals  # how a cycle's steps are made up
    step: Step  # a decode-only step
    mixed: Step  # a step with prompt tokens (and the other groups' decodes, if any)
    tpot_s: float
    cycle_s: float  # one request's lifetime once it runs: every step of the cycle
    profile: EngineProfile
    pool_bytes: int
    request_bytes: int
    budget: int  # tokens per step (max_num_batched_tokens)
    max_seqs: int  # requests at once the engine allows (max_num_seqs)
    computed: int = 0  # prompt tokens a request computes (fewer than isl after a prefix-cache hit; 0: isl)
    spec_tokens: int = 0  # k: tokens drafted a step with the model's MTP modules (0: no speculation)
    accepted: float = 1.0  # tokens a decode step yields on average
    draft_s: float = 0.0  # seconds a decode-only step spends drafting
    draft_mixed_s: float = 0.0  # ... and a step with prompt tokens
    drafter: str = ""  # what drafts: an MTP module, an EAGLE head's layer and LM head, a draft model (words)
    experts_format: str = ""  # the routed experts' format ("": no routed experts)

    @property
    def steps_per_cycle(self) -> float:
        return self.arrivals.steps

    @property
    def mixed_steps_per_cycle(self) -> float:
        return self.arrivals.mixed_steps

    @property
    def decode_tokens_per_step(self) -> int:
        """Decode tokens in a decode-only step: every running request's, k + 1 each when it speculates."""
        return self.running * (self.spec_tokens + 1)

    @property
    def prompt_tokens_per_mixed_step(self) -> float:
        return self.arrivals.prompt_tokens

    def cycle_text(self) -> str:
        """What a request's lifetime is made of, in words (`arrivals`)."""
        a, b = self.arrivals, self.budget
        spec = (f"; each decode verifies {self.spec_tokens:,} drafted tokens and yields {self.accepted:g} tokens a "
                "step on average (assumed)" if self.spec_tokens else "")
        cached = (f"; each prompt computes its last {self.computed:,} of {self.isl:,} tokens, the others come from "
                  "the prefix cache" if self.computed and self.computed < self.isl else "")
        if a.group > 1:
            return (f"the {a.group:,} running requests go in waves: their prompts in {a.prefill_steps:,} steps of "
                    f"up to {b:,} prompt tokens with no decodes (a prompt completes on step "
                    f"{a.first_token_steps:,.1f} on average), then {a.steps - a.prefill_steps:,.1f} decode steps "
                    f"together; a request lives {a.steps:,.1f} steps" + cached + spec)
        limit = (f"{b:,} tokens a step at most" if a.prompt_tokens + a.mixed_decodes * (self.spec_tokens + 1) <= b else
                 f"past the {b:,}-token budget: the engine prefills a prompt whole, without chunked prefill")
        return (f"a request lives {a.steps:,.1f} engine steps; {a.mixed_steps:,.1f} of them carry "
                f"{a.prompt_tokens:,.1f} prompt tokens beside {a.mixed_decodes:,.1f} decodes ({limit}), the others "
                f"{self.running:,} decodes" + cached + spec)

    def warnings(self, gpu: Gpu) -> list[str]:
        """What the numbers rest on that was not measured: kernels timed from the spec sheet where no kernel
        measurements of this engine on this GPU exist; on any GPU but the one the overheads were fitted on, the
        error measured there (BENCHMARKS.md's transfer table)."""
        c = self.step.ceilings
        if not c.measured:
            return [f"no kernel measurements of {self.profile.name} on {gpu.name}: its kernels are timed from the "
                    f"spec sheet at {c.memory_eff:.0%} of its bandwidth and {c.compute_eff:.0%} of its dense FLOP/s "
                    "(stated, not measured), so expect larger errors than on the measured GPUs"]
        out = []
        if gpu.id != FITTED_GPU and self.profile.source.startswith("fitted"):  # not a user's own calibration
            out.append(f"the engine's overheads were fitted on H100 SXM runs; on {len(TRANSFER_GPUS)} other GPUs' "
                       f"measured runs ({', '.join(TRANSFER_GPUS)}) the median error was TPOT "
                       f"{TRANSFER_ERROR[0]:.0%}, TTFT {TRANSFER_ERROR[1]:.0%}, mostly too slow (BENCHMARKS.md, "
                       f"{TRANSFER_DATE})")
        if self.experts_format:
            table, own = c.moe_table(self.experts_format), moe_formats(self.experts_format)[0]
            if table != own:
                out.append(f"no valid kernel measurements of {self.profile.name}'s {own} MoE on {gpu.name}: its "
                           f"{self.experts_format} experts are timed at the share of peak its "
                           + (f"{table} MoE kernels reach" if table else "spec sheet states"))
        return out

    @property
    def limited_by(self) -> str:
        """What keeps the other requests waiting: the KV pool, or the engine's max_num_seqs."""
        return "max_num_seqs" if self.running == self.max_seqs < self.concurrency else "the KV pool"

    def first_token_s(self, queue_steps: float, queue_share: float, request_overhead: float = 0.0,
                      queue_prompts: float = 0.0, mn=min) -> float:
        """Time to the first token once the request holds a slot in the KV pool (numpy arrays of the four
        fitted terms, with mn=np.minimum, give an array, which is how kvdash.serving_fit searches them):
        - the engine's fixed per-request time (`request_overhead`: API server, tokenizing, streaming back);
        - `queue_steps` average steps of waiting for the step in progress and of scheduling (fitted);
        - prompts queued ahead of its group beyond the model's: `queue_share` of the others plus
          `queue_prompts` of them, at most all the others, each its share of a step with prompt tokens;
        - its group's steps with prompt tokens until its own prompt completes (`arrivals`)."""
        a, mix = self.arrivals, self.mixed.seconds
        ahead = mn(queue_prompts + queue_share * (self.running - 1), self.running - 1)
        ahead = ahead * (self.computed or self.isl) / a.prompt_tokens
        return request_overhead + queue_steps * self.cycle_s / a.steps + ahead * mix + a.first_token_steps * mix

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
        """(term, seconds in a decode-only step, seconds in a step with prompt tokens, formula)."""
        d, x, p = self.step, self.mixed, self.profile
        c = d.ceilings
        share = ("the share of peak its kernels reach, measured" if c.measured
                 else f"{c.memory_eff:.0%} of bandwidth, {c.compute_eff:.0%} of FLOP/s (spec sheet)")
        dec, mix = self.decode_tokens_per_step, self.arrivals.mixed_decodes + self.prompt_tokens_per_mixed_step
        return [
            ("matrices", d.gemm_s, x.gemm_s, f"each GEMM (fused q/k/v, gate/up; the LM head) for {dec:,.1f} | "
                                             f"{mix:,.1f} tokens: max(FLOPs / peak, bytes / bandwidth) / {share}"),
            ("experts", d.experts_s, x.experts_s, f"the touched experts' bytes or their FLOPs / {share}"),
            ("attention", d.attention_s, x.attention_s, f"cache {d.work.cache_bytes:,.0f} | {x.work.cache_bytes:,.0f} "
                                                        f"B read by decode kernels, a chunk's pairs by prefill "
                                                        f"kernels / {share}"),
            ("all-reduces", d.comm_s, x.comm_s, "2 per layer of the step's hidden states"
                                                + (": the engine's measured all-reduce" if c.measured
                                                   else ": latency + 2 (tp - 1) / tp x bytes / one-way link")),
            ("overheads", d.overhead_s, x.overhead_s, f"{p.step_overhead_s * 1e3:.3f} ms per step + layers x "
                                                      f"({p.layer_overhead_s * 1e6:.1f} µs + decodes x "
                                                      f"{p.seq_overhead_s * 1e6:.2f} µs) (fitted)"),
        ] + ([("drafting", self.draft_s, self.draft_mixed_s,
               f"{self.spec_tokens} pass{'es' if self.spec_tokens > 1 else ''} of {self.drafter} over the decoding "
               f"requests; the step verifies {self.spec_tokens + 1} tokens a request and yields {self.accepted:g} "
               "on average (assumed)")] if self.spec_tokens else []) + [
            ("step", d.seconds + self.draft_s, x.seconds + self.draft_mixed_s,
             "the sum: kernels run one after another"),
        ]

    def to_dict(self) -> dict:
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "request_latency_s": self.request_latency_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu, "tokens_per_s_per_user": self.tokens_per_s_per_user,
            "decode_step_s": self.step.seconds + self.draft_s, "mixed_step_s": self.mixed.seconds + self.draft_mixed_s,
            "spec_tokens": self.spec_tokens, "accepted_tokens_per_step": self.accepted,
            "steps_per_cycle": self.steps_per_cycle, "mixed_steps_per_cycle": self.mixed_steps_per_cycle,
            "decode_tokens_per_step": self.decode_tokens_per_step,
            "decode_tokens_per_mixed_step": self.arrivals.mixed_decodes,
            "prompt_tokens_per_mixed_step": self.prompt_tokens_per_mixed_step,
            "prompts_per_group": self.arrivals.group, "prefill_steps": self.arrivals.prefill_steps,
            "bound": self.step.bound, "engine": self.profile.name, "running": self.running,
            "wait_s": self.wait_s, "kv_pool_bytes": self.pool_bytes, "request_kv_bytes": self.request_bytes,
            "max_num_batched_tokens": self.budget, "max_num_seqs": self.max_seqs,
            "computed_prompt_tokens": self.computed or self.isl,
            "terms": {name: {"decode_step_s": sec, "mixed_step_s": mix, "formula": text}
                      for name, sec, mix, text in self.terms()},
        }


def _check_int(name: str, v, hi: int) -> None:
    if type(v) is not int or not 1 <= v <= hi:
        raise KvdashError(f"{name} must be an integer from 1 to {hi:,}, not {v!r}")


@lru_cache(maxsize=4096)
def engine_setup(m: ModelSpec, s: Scenario, gpu: Gpu, isl: int, osl: int,
                 profile: EngineProfile | None = None) -> tuple[ModelSpec, ModelSpec, Scenario, EngineProfile]:
    """What every serving answer starts from, its input checked: (the target model, the model the KV pool holds:
    with its MTP modules when the scenario speculates, the scenario with the engine's step limits on `gpu`, the
    engine's profile: `profile`, else its fitted one). Kept per process: a search asks it for every concurrency."""
    refuse_pipeline(s)
    if not s.engine:
        raise KvdashError(f"serving needs a serving engine ({', '.join(ENGINES)}), not the {s.runtime} runtime")
    _check_int("isl", isl, 1 << 30)
    _check_int("osl", osl, 1 << 30)
    held = drafted(m, s)
    profile = profile or engine_profile(s.engine)
    if profile.name != s.engine:
        raise KvdashError(f"the {profile.name} profile cannot time the {s.engine} engine")
    if s.shared_prefix_tokens > isl:
        raise KvdashError(f"the shared prefix ({s.shared_prefix_tokens:,} tokens) is longer than the prompt ({isl:,})")
    return m, held, s.resolved(gpu), profile


def serving(m: ModelSpec, s: Scenario, gpu: Gpu, concurrency: int, isl: int, osl: int,
            profile: EngineProfile | None = None) -> ServingReport:
    """Steady-state serving of `concurrency` requests of isl prompt and osl output tokens by the scenario's
    engine (s.runtime; its step limits as set, else its defaults on `gpu`) at its fitted profile, or at
    `profile` (module docstring)."""
    _check_int("concurrency", concurrency, 1 << 20)
    target, m, s, profile = engine_setup(m, s, gpu, isl, osl, profile)
    k = s.spec_tokens
    tau = accepted_tokens(s) if k else 1.0
    budget, max_seqs = s.step_limits()
    cap, pool, one = requests_held(m, s, gpu, isl, osl)
    if cap < 1:
        raise KvdashError(f"one request of {isl:,} + {osl:,} tokens holds {one:,} B of cache per GPU, more than "
                          f"the {pool:,} B the engine leaves for its KV pool on {gpu.name}")
    computed = computed_tokens(isl, s.shared_prefix_tokens, s.block_size)  # the rest is in the prefix cache
    C = min(concurrency, cap, max_seqs)  # the KV pool, or the engine's max_num_seqs, limits who runs
    if budget <= C * (k + 1):
        raise KvdashError(f"max_num_batched_tokens ({budget:,}) must exceed the tokens the running requests decode "
                          f"in a step ({C:,} x {k + 1})")
    facts = engine_facts(s.engine)
    # an engine without chunked prefill (TensorRT-LLM's default) runs a prompt whole, past its budget if need be,
    # as kvdash.breakdown and kvdash.disagg count it
    whole = budget if facts.chunked_prefill else max(budget, computed + (C - 1) * (k + 1))
    arr = arrivals(facts.mixed_batches, C, computed, osl, whole, k + 1, tau)
    ctx = decode_context(isl, osl)
    step, draft = decode_step(target, s, gpu, profile, C, ctx)
    # a step with prompt tokens is timed as without speculation, plus its decodes' drafts: their k verified
    # tokens each are left out (small beside a prompt chunk; stated in the README)
    mixed = step_time(target, s, gpu, profile, arr.mixed_decodes, ctx, prefill=arr.prompt_tokens, prompt=isl,
                      computed=computed)
    draft_mixed = drafting_s(target, s, gpu, profile, arr.mixed_decodes, ctx)
    S, n_mix = arr.steps, arr.mixed_steps
    cycle = n_mix * (mixed.seconds + draft_mixed) + (S - n_mix) * (step.seconds + draft)
    own = arr.first_token_steps * mixed.seconds  # until its first token; its TPOT counts the rest of its lifetime
    tpot = (cycle - own) / (osl - 1) if osl > 1 else step.seconds
    return ServingReport(concurrency, C, isl, osl, s.tp * s.pp, arr, step, mixed, tpot, cycle, profile, pool, one,
                         budget, max_seqs, computed, k, tau, draft, draft_mixed, drafter_words(s) if k else "",
                         s.experts_dtype if target.n_experts else "")


def decode_context(isl: int, osl: int) -> float:
    """The context a decode sees on average: its prompt and half its output."""
    return isl + osl / 2


def decode_step(m: ModelSpec, s: Scenario, gpu: Gpu, profile: EngineProfile, decodes: float,
                ctx: float) -> tuple[Step, float]:
    """A decode-only step of `decodes` running requests at context `ctx`: (the target's step, each request
    verifying k + 1 tokens when the scenario speculates, over the cache its sequence reads once; the seconds
    the step spends drafting). An aggregated engine's decode steps and a disaggregated decode pool's are this."""
    return (step_time(m, s, gpu, profile, decodes, ctx, width=s.spec_tokens + 1),
            drafting_s(m, s, gpu, profile, decodes, ctx))


def drafting_s(m: ModelSpec, s: Scenario, gpu: Gpu, profile: EngineProfile, decodes: float, ctx: float) -> float:
    """Seconds a step spends drafting: k passes of the drafter (an MTP module and the shared LM head, the EAGLE
    head's layer and LM head, or a draft model) over the decoding requests, inside the engine's step (no per-step
    host time of their own); 0 without speculation."""
    if not s.spec_tokens or not decodes:
        return 0.0
    drafter, ds = draft_module(m, s)
    one = step_time(drafter, ds, gpu, replace(profile, step_overhead_s=0.0), decodes, ctx)
    return s.spec_tokens * one.seconds
