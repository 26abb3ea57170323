"""What a GPU-hour costs, and what a million tokens then cost (issue #22, item 6).

data/gpu_prices.csv lists dated on-demand prices from the providers' own price lists (data/README.md says
which and how); a GPU's reference price is the lowest of them. Costs are the bill of the GPUs a deployment
holds over the tokens it serves in that time: nothing else (storage, network, idle capacity beyond the
replicas the rate needs) is in them, and the planner says so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu

PRICES = Path(__file__).resolve().parent.parent / "data" / "gpu_prices.csv"


@dataclass(frozen=True)
class Price:
    gpu_id: str
    provider: str
    offer: str
    instance_usd_per_hour: float
    gpus_per_instance: int
    seen: str  # the date the price list was published or read
    source: str

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.instance_usd_per_hour / self.gpus_per_instance

    @property
    def label(self) -> str:
        return f"${self.usd_per_gpu_hour:,.2f} per GPU-hour ({self.provider}, {self.seen})"


@lru_cache(maxsize=1)
def load_prices() -> dict[str, tuple[Price, ...]]:
    """Every listed price, by GPU id, cheapest first."""
    out: dict[str, list[Price]] = {}
    with PRICES.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            p = Price(row["gpu_id"], row["provider"], row["offer"], float(row["instance_usd_per_hour"]),
                      int(row["gpus_per_instance"]), row["seen"], row["source"])
            out.setdefault(p.gpu_id, []).append(p)
    return {g: tuple(sorted(ps, key=lambda p: p.usd_per_gpu_hour)) for g, ps in out.items()}


def reference_price(gpu_id: str) -> Price | None:
    """The lowest listed on-demand price of a GPU, or None where no provider lists one."""
    listed = load_prices().get(gpu_id)
    return listed[0] if listed else None


def usd_per_gpu_hour(gpu_id: str, overrides: dict[str, float] | None = None) -> float | None:
    """The user's price for the GPU if they gave one, else its reference price (None: unknown)."""
    if overrides and gpu_id in overrides:
        return overrides[gpu_id]
    p = reference_price(gpu_id)
    return p.usd_per_gpu_hour if p else None


def usd_per_million(usd_per_hour: float, tokens_per_s: float) -> float:
    """Dollars per million tokens: the hourly bill over the tokens served in an hour."""
    if not tokens_per_s > 0:
        raise KvdashError("a cost per token needs a positive token rate")
    return usd_per_hour / (tokens_per_s * 3600) * 1e6


def parse_overrides(items: list[str] | None) -> dict[str, float]:
    """`--price GPU=USD` values (a GPU-hour's price in dollars), checked."""
    out = {}
    for item in items or ():
        gpu, sep, usd = item.partition("=")
        try:
            value = float(usd)
        except ValueError:
            value = float("nan")
        if not sep or not gpu.strip() or not 0 <= value < 1e4:
            raise KvdashError(f"--price takes GPU=USD per GPU-hour (e.g. nvidia-h100-sxm5=2.5), not {item!r}")
        out[get_gpu(gpu.strip()).id] = value  # an unknown GPU id is refused, not ignored
    return out
