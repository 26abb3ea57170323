"""What a GPU's kernels reach: measured ceilings per GPU and engine, or the spec sheet at a stated efficiency.

`data/gpu_tables/<gpu>.json` holds kvdash's own numbers derived from public kernel measurements
(benchmarks/derive_gpu_tables.py, from AIConfigurator's per-GPU tables; the source and commit are in each
file): for each engine, the share of the GPU's peak a GEMM reaches by its rows and its weight's size, decode
attention by the query heads sharing a K/V head and the bytes read, latent decode by the bytes read, prefill
attention (standard and latent) by the FLOPs done, a fused-MoE layer by its tokens
and the touched experts' parameters, and the engine's all-reduce time by message size and GPU count. A
kernel's time is its ideal time at the stored peaks divided by that share (interpolated in log2 space, the
edge value held beyond the measured range). Where no table exists (a GPU or an engine nobody measured,
kvdash's own decoder) `spec_sheet` answers instead: the catalog's peaks at fixed efficiencies, said so by
`Ceilings.measured` and `source`.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from kvdash.errors import KvdashError

TABLES_DIR = Path(__file__).resolve().parent.parent / "data" / "gpu_tables"
# which GEMM table answers for a weight format: its own, else the 16-bit kernels that dequantize it
GEMM_FORMAT = {"fp8": "fp8", "fp8-channel": "fp8", "fp8-block": "fp8-block", "nvfp4": "nvfp4", "mxfp4": "nvfp4"}
# which MoE tables answer for an experts' format, in turn: its family's (any group size), a kernel of the same
# width (MXFP4 where only NVFP4 was measured), else the 16-bit kernels
MOE_FORMATS = {"fp8-channel": ("fp8",), "int4-asym": ("int4",), "awq-int4": ("int4",), "gptq-int4": ("int4",),
               "mxfp4": ("mxfp4", "nvfp4")}


@lru_cache(maxsize=64)
def moe_formats(fmt: str) -> tuple[str, ...]:
    """The MoE tables to try for an experts' format, in order (MOE_FORMATS); kept per process, as every step asks."""
    base, _, group = fmt.rpartition("-g")
    family = base if group.isdigit() else fmt
    return (*MOE_FORMATS.get(family, (family,)), "bf16")


def touched_experts(experts, pairs):
    """Experts that `pairs` (token, expert) pairs reach on average under uniform routing (floats or arrays): the
    MoE tables were derived, and each step is timed, by the experts' bytes this many read."""
    return experts * (1 - (1 - 1 / experts) ** pairs)


def _interp(grid: list[float], values: list[float], x: float) -> float:
    """Linear interpolation in `grid` (already log2), the edge value held outside it."""
    if x <= grid[0]:
        return values[0]
    if x >= grid[-1]:
        return values[-1]
    i = bisect_right(grid, x) - 1
    t = (x - grid[i]) / (grid[i + 1] - grid[i])
    return values[i] + t * (values[i + 1] - values[i])


def _log2(x: float) -> float:
    return math.log2(max(x, 1e-30))


def _util_2d(t: dict | None, rows: float, size: float) -> float | None:
    """A table's share of peak at `rows` tokens and `size` (log2-interpolated both ways), or None. Only the
    (at most two) rows around `rows` are interpolated in size: the others carry no weight."""
    if not t:
        return None
    ls, grid = _log2(size), _log2_grid(tuple(t["m"]))
    i = min(max(bisect_right(grid, _log2(rows)) - 1, 0), len(grid) - 2) if len(grid) > 1 else 0
    near = range(i, min(i + 2, len(grid)))
    by_rows = [_interp(t["log2_size"], t["util"][j], ls) for j in near]
    return max(_interp([grid[j] for j in near], by_rows, _log2(rows)), 1e-6)


@lru_cache(maxsize=256)
def _log2_grid(m: tuple) -> list[float]:
    return [math.log2(x) for x in m]


@lru_cache(maxsize=4096)
def _gemm_curve(gpu_id: str, engine: str, fmt: str, size: int) -> tuple[list[float], list[float]] | None:
    """A measured GEMM table at one weight size: (log2 rows, share of peak) for every row, each row interpolated in
    size as _util_2d does, so interpolating it in rows gives _util_2d's answer bit for bit; kept per process (a GEMM's
    size is fixed while its rows change with every step)."""
    t = ((_load(gpu_id) or {}).get("engines", {}).get(engine) or {}).get("gemm", {}).get(fmt)
    if not t:
        return None
    ls = _log2(size)
    return _log2_grid(tuple(t["m"])), [_interp(t["log2_size"], row, ls) for row in t["util"]]


@lru_cache(maxsize=1024)
def _row_curve(gpu_id: str, engine: str, key: str, fmt: str, row: int) -> tuple[list, list] | None:
    """A two-way table (rows x log2 size) at one row value, e.g. decode attention at a model's query heads per K/V
    head: (log2 size, share of peak) interpolated across rows at each size, kept per process (the row is fixed
    by the model, the size changes with every step)."""
    t = ((_load(gpu_id) or {}).get("engines", {}).get(engine) or {}).get(key, {}).get(fmt)
    if not t or "m" not in t:
        return None
    grid, x = _log2_grid(tuple(t["m"])), _log2(row)
    return t["log2_size"], [_interp(grid, [u[i] for u in t["util"]], x) for i in range(len(t["log2_size"]))]


@dataclass(frozen=True)
class Ceilings:
    """Peaks and the share of them a kernel reaches, for one GPU and engine."""

    gpu_id: str
    engine: str
    measured: bool  # from kernel measurements (a table), or the spec sheet
    source: str
    peaks: dict  # bandwidth (B/s) and dense FLOP/s by format
    tables: dict  # the engine's tables ({} on the spec sheet)
    memory_eff: float = 0.8  # the spec sheet's shares, where no table answers
    compute_eff: float = 0.7
    cache_eff: float = 0.8
    gpu_name: str = ""
    _rates: dict = field(default_factory=dict, compare=False, repr=False)  # rate() by format, filled as asked

    def rate(self, fmt: str) -> float:
        """Peak dense FLOP/s the matrix products of `fmt` run at: fp8 formats (per tensor, channel or block) on
        fp8 tensor cores; NVFP4/MXFP4 on fp4 tensor cores where the GPU has them (Blackwell); fp32 at fp32; the
        rest in bf16 (weight-only int formats, and fp4 on GPUs without an fp4 path such as Hopper, dequantize
        to bf16 in the kernel). Kept per format: every kernel of every step asks."""
        r = self._rates.get(fmt)
        if r is None:
            r = self._rates[fmt] = self._rate(fmt)
        return r

    def _rate(self, fmt: str) -> float:
        if fmt == "fp32":
            r = self.peaks.get("fp32")
        elif fmt.startswith("fp8"):
            r = self.peaks.get("fp8") or self.peaks.get("bf16")
        elif fmt in ("nvfp4", "mxfp4"):
            r = self.peaks.get("nvfp4") or self.peaks.get("bf16")
        else:
            r = self.peaks.get("bf16")
        if not r:
            raise KvdashError(f"the catalog has no {fmt} matrix rate for {self.gpu_name or self.gpu_id}")
        return r

    def _table_util(self, key: str, fmt: str, x: float) -> float | None:
        t = self.tables.get(key, {}).get(fmt)
        return max(1e-6, _interp(t["log2"], t["util"], _log2(x))) if t else None

    def gemm_s(self, m: float, n: int, k: int, fmt: str, weight_bytes: float, act_bytes: int = 2) -> float:
        """One GEMM of m rows by a weight of n x k (weight_bytes with its scales), in `fmt`."""
        flops = 2.0 * m * n * k
        ideal_c, ideal_m = flops / self.rate(fmt), (weight_bytes + act_bytes * m * (n + k)) / self.peaks["bandwidth"]
        curve = _gemm_curve(self.gpu_id, self.engine, GEMM_FORMAT.get(fmt, "bf16"), n * k) if self.measured else None
        if curve is None:
            return max(ideal_c / self.compute_eff, ideal_m / self.memory_eff)
        return max(ideal_c, ideal_m) / max(_interp(*curve, _log2(m)), 1e-6)

    def moe_s(self, tokens: float, flops: float, nbytes: float, params: float, fmt: str) -> float:
        """A fused-MoE layer's experts for `tokens` tokens: its FLOPs, and the touched experts' bytes and
        parameters."""
        ideal_c, ideal_m = flops / self.rate(fmt), nbytes / self.peaks["bandwidth"]
        table = self.moe_table(fmt)
        util = _util_2d(self.tables["moe"][table], tokens, params) if table else None
        if util is None:
            return max(ideal_c / self.compute_eff, ideal_m / self.memory_eff)
        return max(ideal_c, ideal_m) / util

    def moe_table(self, fmt: str) -> str | None:
        """Which measured MoE table times experts stored as `fmt` (MOE_FORMATS' order), or None (the spec sheet)."""
        moe = self.tables.get("moe", {})
        return next((f for f in moe_formats(fmt) if f in moe), None)

    def decode_attention_s(self, nbytes: float, kv_fmt: str, latent: bool = False, group: int = 1) -> float:
        """One layer's decode attention reading `nbytes` of cache (the whole step's sequences), each cached vector
        read by `group` query heads (the GQA ratio; a latent layer's local heads): the more heads share a K/V
        head, the more work per byte, and some kernels (TensorRT-LLM's) slow down several-fold at large ratios."""
        if nbytes <= 0:
            return 0.0
        fmt = "fp8" if kv_fmt.startswith("fp8") or kv_fmt in ("int8", "int4") else "bf16"
        util = (self._table_util("mla_decode", fmt, nbytes) if latent else None)
        if util is None and self.measured:
            curve = _row_curve(self.gpu_id, self.engine, "decode_attention", fmt, group) or \
                _row_curve(self.gpu_id, self.engine, "decode_attention", "bf16", group)
            util = max(_interp(*curve, _log2(nbytes)), 1e-6) if curve else None
        return nbytes / (self.peaks["bandwidth"] * (util or self.cache_eff))

    def prefill_attention_s(self, flops: float, latent: bool = False) -> float:
        """One layer's prefill attention doing `flops` (QK^T and PV over the causal pairs)."""
        if flops <= 0:
            return 0.0
        util = (self._table_util("mla_prefill", "bf16", flops) if latent else None) or \
            self._table_util("prefill_attention", "bf16", flops)
        return flops / (self.rate("bf16") * (util or self.compute_eff))

    def allreduce_s(self, nbytes: float, n_gpus: int, link_bytes_per_s: float, latency_s: float) -> float | None:
        """One all-reduce of `nbytes` per GPU over `n_gpus`: the engine's measured all-reduce (the nearest GPU
        count measured, scaled by the ring's 2 (n - 1) / n), else None (the caller's ring formula answers)."""
        t = self.tables.get("allreduce")
        if not t:
            return None
        counts = sorted(int(c) for c in t)
        near = min(counts, key=lambda c: abs(c - n_gpus))
        row = t[str(near)]
        us = _interp(row["log2_bytes"], row["us"], _log2(nbytes))
        return us * 1e-6 * ((n_gpus - 1) / n_gpus) / ((near - 1) / near)


@lru_cache(maxsize=64)
def _load(gpu_id: str) -> dict | None:
    path = TABLES_DIR / f"{gpu_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def catalog_peaks(gpu) -> dict:
    """The catalog's peaks of a GPU that it states: bandwidth in B/s, dense FLOP/s by tensor-core format."""
    peaks = {"bandwidth": gpu.bandwidth_gbps * 1e9, "bf16": (gpu.bf16_tflops or 0) * 1e12,
             "fp8": (gpu.fp8_tflops or 0) * 1e12, "nvfp4": (gpu.fp4_tflops or 0) * 1e12,
             "fp32": (gpu.fp32_tflops or 0) * 1e12}
    return {k: v for k, v in peaks.items() if v}


def spec_sheet(gpu, engine: str = "", memory_eff: float = 0.8, compute_eff: float = 0.7,
               cache_eff: float = 0.8) -> Ceilings:
    return Ceilings(gpu.id, engine, False, f"the spec sheet of {gpu.name} at {memory_eff:.0%} of its bandwidth and "
                    f"{compute_eff:.0%} of its dense FLOP/s (no kernel measurements of this GPU and engine)",
                    catalog_peaks(gpu), {}, memory_eff, compute_eff, cache_eff, gpu.name)


@lru_cache(maxsize=1024)
def ceilings(gpu, engine: str, memory_eff: float = 0.8, compute_eff: float = 0.7, cache_eff: float = 0.8) -> Ceilings:
    """The measured ceilings of `engine` on `gpu` where a table exists, else the spec sheet (kept per process:
    every step asks)."""
    data = _load(gpu.id) if engine else None
    tables = (data or {}).get("engines", {}).get(engine)
    if not tables:
        return spec_sheet(gpu, engine, memory_eff, compute_eff, cache_eff)
    versions = ", ".join(sorted({f"{engine} {v}" for v in tables["versions"].values()}))
    return Ceilings(gpu.id, engine, True, f"kernel measurements of {versions} on {gpu.name} ({data['source']})",
                    data["peaks"], tables, memory_eff, compute_eff, cache_eff, gpu.name)


def measured_gpus() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in TABLES_DIR.glob("*.json")))
