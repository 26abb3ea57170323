"""Traffic as a planner states it (issue #22): a request rate instead of a concurrency, and the cache a
disaggregated decode pool receives. Each is a formula of its own here, on top of the one serving model
(kvdash.serving), so a plan's numbers are the Speed page's numbers at the concurrency the rate implies. (A prefix
cache's saved prefill and speculative decoding's tokens a step live in the serving model itself:
kvdash.serving.computed_tokens, kvdash.speculative.)

- Little's law: at a steady rate R, the requests in flight C and each request's time in the system W(C) (its
  first token, then one step per further token) satisfy C = R x W(C). Served throughput C / W(C) grows with C
  until the engine saturates; a rate above the largest throughput cannot be served (the queue grows without
  bound), and `at_rate` says so instead of answering.
- Disaggregated prefill and decode: a request's whole prompt cache moves from the prefill pool to the decode
  pool once, at the link's one-way bandwidth.
- Lengths as users state them (`Lengths`): one value, a uniform range or a small table of values and shares. A
  plan serves them at their means (Little's law and the pool's average hold in the means: a request holds its
  prompt and half its output on average either way); a prompt's attention grows with its square, so a spread of
  prompt lengths prefills somewhat slower than its mean does, which the mean does not show. The longest request
  must still fit: one of it in the pool, and the engine's max_model_len.
- A burst factor: the pools are sized for the rate times the factor (the peak they must absorb within the
  targets); what a token costs is the bill over the mean rate's tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvdash.errors import KvdashError
from kvdash.serving import serving  # the one step cost and pool

MAX_CONCURRENCY = 1 << 14


@dataclass(frozen=True)
class Steady:
    """The steady state at a rate: requests in flight, each one's time in the system, served rate."""

    rate: float  # requests per second asked for
    concurrency: int  # requests in flight (the smallest whole number that serves the rate)
    latency_s: float  # W(concurrency): first token, then the rest
    served: float  # concurrency / latency_s, at least `rate`


def steady_state(rate: float, latency: Callable[[int], float], max_concurrency: int = MAX_CONCURRENCY,
                 tried=()) -> Steady:
    """The fewest requests in flight C whose throughput C / latency(C) reaches `rate` (Little's law: C = R x W
    where the throughput equals the rate). `latency(C)`: each request's seconds in the system at C in flight,
    non-decreasing in C. A rate beyond the throughput at `max_concurrency` is refused: it cannot be served.
    `tried`: concurrencies whose latency is already at hand (a search's), which narrow the bisection."""
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
    for c in tried:  # served grows with C: each known answer narrows [lo, hi]
        if lo < c < hi:
            lo, hi = (lo, c) if served(c) >= rate else (c, hi)
    if hi > lo:
        hi = first_true(lambda c: served(c) >= rate, lambda c: served(c) - rate, lo, hi)
    return Steady(rate, hi, latency(hi), served(hi))


def first_true(pred: Callable[[int], bool], score: Callable[[int], float], lo: int, hi: int) -> int:
    """The smallest integer c in (lo, hi] where `pred` holds, given pred(lo) false, pred(hi) true and pred
    monotone: the bisection's answer, with every other guess where `score` (non-decreasing, crossing 0 where pred
    turns true) is linearly interpolated to 0 between the bracket's ends (regula falsi). A near-linear score
    (a step's time grows about linearly with the requests in it) needs a few guesses; none needs more than
    about twice bisection's."""
    s_lo, s_hi = score(lo), score(hi)
    guess = True
    while hi - lo > 1:
        c = (lo + hi) // 2
        if guess and s_hi > s_lo:
            c = min(max(lo + int((hi - lo) * -s_lo / (s_hi - s_lo)), lo + 1), hi - 1)
        before = hi - lo
        if pred(c):
            hi, s_hi = c, score(c)
        else:
            lo, s_lo = c, score(c)
        guess = not guess or hi - lo <= before // 2  # a guess that did not halve the bracket: bisect next
    return hi


@dataclass(frozen=True)
class Lengths:
    """Token lengths of requests: `values` with their `shares` (a table; one value is fixed), or a uniform range
    from values[0] to values[1] (`uniform`)."""

    values: tuple[int, ...]
    shares: tuple[float, ...] = (1.0,)
    uniform: bool = False

    @property
    def mean(self) -> float:
        if self.uniform:
            return (self.values[0] + self.values[1]) / 2
        return sum(v * w for v, w in zip(self.values, self.shares, strict=True))

    @property
    def planned(self) -> int:
        """The whole number of tokens a plan serves them at: the mean, rounded."""
        return max(1, round(self.mean))

    @property
    def longest(self) -> int:
        return max(self.values)

    def text(self) -> str:
        if self.uniform:
            return f"{self.values[0]:,} to {self.values[1]:,} (uniform, mean {self.mean:,g})"
        if len(self.values) == 1:
            return f"{self.values[0]:,}"
        return ", ".join(f"{v:,} ({w:.0%})" for v, w in zip(self.values, self.shares, strict=True)) + \
            f" (mean {self.mean:,.1f})"


def parse_lengths(text: str, what: str = "lengths") -> Lengths:
    """Lengths as typed: "1024" (fixed), "512-2048" (uniform), or "512:0.7,4096:0.3" (values and shares, which
    must add up to 1), each value 1 to 2^30 tokens."""
    bad = KvdashError(f"{what}: a number of tokens (1024), a uniform range (512-2048) or values with shares "
                      f"(512:0.7,4096:0.3), not {text!r}")
    raw = str(text).replace(" ", "")
    try:
        if ":" in raw:
            pairs = [p.split(":") for p in raw.split(",")]
            values, shares = tuple(int(v) for v, _ in pairs), tuple(float(w) for _, w in pairs)
            if len(values) > 16 or abs(sum(shares) - 1) > 1e-6 or any(not 0 < w <= 1 for w in shares):
                raise bad
            out = Lengths(values, shares)
        elif "-" in raw:
            lo, hi = (int(x) for x in raw.split("-"))
            if lo > hi:
                raise bad
            out = Lengths((lo, hi), (0.5, 0.5), uniform=True)
        else:
            out = Lengths((int(raw),))
    except (ValueError, TypeError):
        raise bad from None
    if any(not 1 <= v <= 1 << 30 for v in out.values):
        raise bad
    return out


def kv_transfer_s(cache_bytes: int, link_gbps: float) -> float:
    """Seconds to move one request's prompt cache between pools at the link's one-way bandwidth (GB/s)."""
    if not link_gbps or link_gbps <= 0:
        raise KvdashError("no link between the prefill and decode pools to move the cache over")
    return cache_bytes / (link_gbps * 1e9)


def at_rate(model, s, gpu, rate: float, isl: int, osl: int, profile=None,
            max_concurrency: int = MAX_CONCURRENCY, reports: dict | None = None):
    """The serving model (kvdash.serving.serving, the Speed page's numbers) at the concurrency a steady `rate`
    of requests of isl + osl tokens implies: (Steady, the ServingReport at that concurrency). `reports`: the
    reports already computed for this scenario and profile, by concurrency (a planner's), reused and added to."""
    reports = {} if reports is None else reports

    def latency(c: int) -> float:
        if c not in reports:
            reports[c] = serving(model, s, gpu, c, isl, osl, profile)
        return reports[c].request_latency_s

    steady = steady_state(rate, latency, max_concurrency, tried=sorted(reports))
    return steady, reports[steady.concurrency]
