"""How fast does a static batch run? B sequences prefilled together, then decoded together (what the Live
run measures), timed by the one step model (kvdash.step):

- prefill: one step of B x P prompt tokens (every weight read once, 2 FLOPs per active parameter per
  token, the attention products over the prompt: the quadratic term);
- decode: one step of B decodes at the context (weights read once, each sequence's cache read);
- without a KV cache, every new token is a prefill of the whole prefix.

The step costs are a serving engine's fitted profile (data/engines/; the Speed page's serving section uses
the same, so both time a decode step alike) or kvdash's own decoder's (kvdash.step.RUNTIMES: CUDA graphs or
eager PyTorch, first-principles defaults), which kvdash.step.calibrate fits to measured runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario
from kvdash.serving import engine_profile
from kvdash.step import IDEAL, RUNTIMES, Step, StepCosts, step_time

__all__ = ["IDEAL", "RUNTIMES", "SpeedReport", "compute_bound_batch", "decode_step", "generation_seconds",
           "prefill_step", "speed", "step_costs"]

DEFAULT = RUNTIMES["torch-graphs"]


def step_costs(name: str) -> StepCosts:
    """A static-batch profile by name: a serving engine's fitted one (vllm, sglang, trtllm) or kvdash's decoder's."""
    if name in RUNTIMES:
        return RUNTIMES[name]
    try:
        return engine_profile(name)
    except KvdashError:
        raise KvdashError(f"unknown step costs {name!r}; choose one of vllm, sglang, trtllm, "
                          f"{', '.join(RUNTIMES)}") from None


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


def decode_step(m: ModelSpec, s: Scenario, gpu, p: StepCosts = DEFAULT, context: int | None = None) -> Step:
    """One decode step of the batch at `context` tokens (default: the scenario's full context)."""
    return step_time(m, s, gpu, p, s.batch, context or s.context)


def prefill_step(m: ModelSpec, s: Scenario, gpu, p: StepCosts = DEFAULT, tokens: int | None = None) -> Step:
    """The batch's prompts (`tokens` each; default the scenario's) in one step."""
    t = tokens or s.prompt_tokens
    return step_time(m, s, gpu, p, 0, 0, prefill=s.batch * t, prompt=t)


def compute_bound_batch(m: ModelSpec, s: Scenario, gpu, p: StepCosts = DEFAULT, limit: int = 1 << 16):
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


def speed(m: ModelSpec, s: Scenario, gpu, p: StepCosts = DEFAULT, knee: bool = True) -> SpeedReport:
    mid = s.prompt_tokens + max(0, s.new_tokens - 1) // 2 + 1
    return SpeedReport(
        prefill=prefill_step(m, s, gpu, p),
        decode=decode_step(m, s, gpu, p, context=mid),
        new_tokens=s.new_tokens,
        batch=s.batch,
        compute_bound_batch=compute_bound_batch(m, s, gpu, p) if knee else None,
    )


def generation_seconds(m: ModelSpec, s: Scenario, gpu, p: StepCosts = DEFAULT, cache: bool = True,
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
