"""Traffic as a planner states it (issue #22): a request rate instead of a concurrency, the prefill a prefix cache
saves, the cache a disaggregated decode pool receives, and speculative decoding's tokens per step. Each is a
formula of its own here, on top of the one serving model (kvdash.serving), so a plan's numbers are the Speed
page's numbers at the concurrency the rate implies.

- Little's law: at a steady rate R, the requests in flight C and each request's time in the system W(C) (its
  first token, then one step per further token) satisfy C = R x W(C). Served throughput C / W(C) grows with C
  until the engine saturates; a rate above the largest throughput cannot be served (the queue grows without
  bound), and `at_rate` says so instead of answering.
- Prefix caching: engines keep whole blocks (vLLM and SGLang hash full blocks), so a prompt whose first h of its
  tokens are cached prefills the rest from the last whole cached block on.
- Disaggregated prefill and decode: a request's whole prompt cache moves from the prefill pool to the decode
  pool once, at the link's one-way bandwidth.
- Speculative decoding: a draft proposes k tokens, the target verifies them in one step of k + 1 positions, and
  on average `tokens_per_step` are accepted (the step's own token included); the time per output token is the
  draft's and the verifying step's time over that. The acceptance is an input, never a hidden constant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvdash.errors import KvdashError

MAX_CONCURRENCY = 1 << 14


@dataclass(frozen=True)
class Steady:
    """The steady state at a rate: requests in flight, each one's time in the system, served rate."""

    rate: float  # requests per second asked for
    concurrency: int  # requests in flight (the smallest whole number that serves the rate)
    latency_s: float  # W(concurrency): first token, then the rest
    served: float  # concurrency / latency_s, at least `rate`


def steady_state(rate: float, latency: Callable[[int], float], max_concurrency: int = MAX_CONCURRENCY) -> Steady:
    """The fewest requests in flight C whose throughput C / latency(C) reaches `rate` (Little's law: C = R x W
    where the throughput equals the rate). `latency(C)`: each request's seconds in the system at C in flight,
    non-decreasing in C. A rate beyond the throughput at `max_concurrency` is refused: it cannot be served."""
    if not isinstance(rate, int | float) or not 0 < rate < 1e9:
        raise KvdashError(f"the request rate must be a positive number of requests per second, not {rate!r}")

    def served(c: int) -> float:
        return c / latency(c)

    if served(max_concurrency) < rate:
        raise KvdashError(f"{rate:,.3g} requests/s is more than this configuration serves: at most "
                          f"{served(max_concurrency):,.3g} requests/s with {max_concurrency:,} in flight (the queue "
                          "would grow without bound); add replicas or GPUs")
    lo, hi = 1, max_concurrency  # served(hi) >= rate; find the smallest such C (served grows with C)
    if served(lo) >= rate:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if served(mid) >= rate else (mid, hi)
    return Steady(rate, hi, latency(hi), served(hi))


def prefill_tokens(prompt: int, hit_rate: float, block_size: int) -> int:
    """Prompt tokens still prefilled when `hit_rate` of each prompt is already cached (computed_tokens)."""
    if not 0 <= hit_rate <= 1:
        raise KvdashError(f"the prefix hit rate must be between 0 and 1, not {hit_rate!r}")
    if block_size < 1:
        raise KvdashError("a block of at least one token")
    from kvdash.serving import computed_tokens  # an engine's prefix cache, as the serving model holds it

    return computed_tokens(prompt, int(hit_rate * prompt), block_size)


def kv_transfer_s(cache_bytes: int, link_gbps: float) -> float:
    """Seconds to move one request's prompt cache between pools at the link's one-way bandwidth (GB/s)."""
    if not link_gbps or link_gbps <= 0:
        raise KvdashError("no link between the prefill and decode pools to move the cache over")
    return cache_bytes / (link_gbps * 1e9)


def speculative_tpot(verify_step_s: float, draft_s: float, tokens_per_step: float) -> float:
    """Seconds per output token with speculative decoding: each step drafts (draft_s) then verifies the drafts in
    one step of the target (verify_step_s), and `tokens_per_step` tokens come out of it on average (at least
    1: the target's own token; at most drafts + 1)."""
    if not tokens_per_step >= 1:
        raise KvdashError(f"a speculative step yields at least one token, not {tokens_per_step!r}")
    return (draft_s + verify_step_s) / tokens_per_step


def at_rate(model, s, gpu, rate: float, isl: int, osl: int, profile=None,
            max_concurrency: int = MAX_CONCURRENCY, reports: dict | None = None):
    """The serving model (kvdash.serving.serving, the Speed page's numbers) at the concurrency a steady `rate`
    of requests of isl + osl tokens implies: (Steady, the ServingReport at that concurrency). `reports`: the
    reports already computed for this scenario and profile, by concurrency (a planner's), reused and added to."""
    from kvdash.serving import serving  # the one step cost and pool

    reports = {} if reports is None else reports

    def latency(c: int) -> float:
        if c not in reports:
            reports[c] = serving(model, s, gpu, c, isl, osl, profile)
        return reports[c].request_latency_s

    steady = steady_state(rate, latency, max_concurrency)
    return steady, reports[steady.concurrency]
