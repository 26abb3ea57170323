"""How well kvdash's per-GPU tables (data/gpu_tables) reproduce the kernel measurements they were derived from:
every GEMM (at least 1,024 wide both ways) and balanced fused-MoE row of AIConfigurator's tables that
derive_gpu_tables.py reads, timed by kvdash.kernels as the serving model times it (the weight's bytes with its
scales), against the measured latency.

    python benchmarks/check_gpu_tables.py GITDIR [--decode]

Prints, per GPU, engine and format, the median signed and absolute error of predicted / measured - 1 (`--decode`:
only the rows of at most 256 tokens, the sizes of decode steps), over the rows no faster than the GPU's peak (the
derivation leaves the others out; their count is printed). This is the yardstick for a change to the
derivation: it uses the microbenchmarks alone, never an end-to-end run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import derive_gpu_tables as d  # noqa: E402

from kvdash.gpus import get_gpu  # noqa: E402
from kvdash.kernels import ceilings  # noqa: E402

MIN_WIDTH = 1024  # GEMMs narrower than this in either dimension are no layer of a served model


def gemm_rows(repo: d.Repo, aic_gpu: str, engine: str, c) -> list[tuple]:
    t, _ = repo.table(aic_gpu, "gemm", engine, "gemm_perf")
    if t is None:
        return []
    scale, _ = repo.table(aic_gpu, "quantize", engine, "computescale_perf", any_version=True)
    out = []
    for src, name in d.GEMM_DTYPES.items():
        x = t[(t.gemm_dtype == src) & t.m.isin(d.M_GRID) & (t.n >= MIN_WIDTH) & (t.k >= MIN_WIDTH)]
        if x.empty or name not in c.tables.get("gemm", {}):
            continue
        if src == "fp8":
            x = d.static_fp8(x, scale)
        flops, nbytes, wb = d.gemm_work(x, name)
        pred = [c.gemm_s(m, n, k, name, b) for m, n, k, b in zip(x.m, x.n, x.k, wb, strict=True)]
        ideal = np.maximum(flops / c.rate(name), nbytes / c.peaks["bandwidth"])
        out += [("gemm", name, *r) for r in zip(x.m, pred, x.latency * 1e-3, ideal, strict=True)]
    return out


def moe_rows(repo: d.Repo, aic_gpu: str, engine: str, c) -> list[tuple]:
    t, _ = repo.table(aic_gpu, "moe", engine, "moe_perf", usable=d.balanced)
    if t is None:
        return []
    out = []
    t = d.default_moe(t[t.distribution == "balanced"])
    for src, name in d.MOE_DTYPES.items():
        k = t[(t.moe_dtype == src) & t.num_tokens.isin(d.M_GRID)]
        if k.empty or name not in c.tables.get("moe", {}):
            continue
        routed, touched, numel, one = d.moe_work(k, name)
        pred = [c.moe_s(n, 2.0 * r * e, tch * b, tch * e, name)
                for n, r, e, tch, b in zip(k.num_tokens, routed, numel, touched, one, strict=True)]
        ideal = np.maximum(2.0 * routed * numel / c.rate(name), touched * one / c.peaks["bandwidth"])
        out += [("moe", name, *r) for r in zip(k.num_tokens, pred, k.latency * 1e-3, ideal, strict=True)]
    return out


def attention_rows(repo: d.Repo, aic_gpu: str, engine: str, c) -> list[tuple]:
    """Decode attention by the bytes of cache it reads, prefill attention by its causal FLOPs: standard (head size
    128, no window) and latent, as derive_gpu_tables.py selects them."""
    out = []
    t, _ = repo.table(aic_gpu, "attention", engine, "generation_attention_perf")
    if t is not None and "decode_attention" in c.tables:
        t = t[(t.window_size == 0) & (t.head_dim == 128)]
        for kv, nbytes in d.KV_BYTES.items():
            k = t[t.kv_cache_dtype == kv]
            read, group = d.kv_read(k, nbytes)
            fmt = "fp8" if nbytes == 1 else "bf16"
            out += [("decode attention", fmt, b, c.decode_attention_s(r, fmt, group=g), lat * 1e-3,
                     r / c.peaks["bandwidth"])
                    for b, r, g, lat in zip(k.batch_size, read, group, k.latency, strict=True)]
    t, _ = repo.table(aic_gpu, "attention", engine, "context_attention_perf")
    if t is not None and "prefill_attention" in c.tables:
        k = t[(t.window_size == 0) & (t.head_dim == 128) & (t.attn_dtype == "bfloat16")
              & (t.kv_cache_dtype == "bfloat16")]
        flops = d.prefill_flops(k)
        out += [("prefill attention", "bf16", b, c.prefill_attention_s(f), lat * 1e-3, f / c.rate("bf16"))
                for b, f, lat in zip(k.batch_size, flops, k.latency, strict=True)]
    t, _ = repo.table(aic_gpu, "mla", engine, "generation_mla_perf")
    if t is not None and "mla_decode" in c.tables:
        for kv, nbytes in d.KV_BYTES.items():
            k = t[(t.kv_cache_dtype == kv) & (t.mla_dtype == "bfloat16")]
            read = d.latent_read(k, nbytes)
            fmt = "fp8" if nbytes == 1 else "bf16"
            out += [("latent decode", fmt, b, c.decode_attention_s(r, fmt, latent=True), lat * 1e-3,
                     r / c.peaks["bandwidth"]) for b, r, lat in zip(k.batch_size, read, k.latency, strict=True)]
    t, _ = repo.table(aic_gpu, "mla", engine, "context_mla_perf")
    if t is not None and "mla_prefill" in c.tables:
        k = t[(t.kv_cache_dtype == "bfloat16") & (t.mla_dtype == "bfloat16")]
        flops = d.latent_prefill_flops(k)
        out += [("latent prefill", "bf16", b, c.prefill_attention_s(f, latent=True), lat * 1e-3, f / c.rate("bf16"))
                for b, f, lat in zip(k.batch_size, flops, k.latency, strict=True)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gitdir")
    ap.add_argument("--decode", action="store_true", help="only rows of at most 256 tokens")
    args = ap.parse_args(argv)
    repo = d.Repo(args.gitdir)
    print("| GPU | engine | kernel | format | rows | signed median | median abs | rows faster than the peak, left out |"
          "\n|---|---|---|---|---|---|---|---|")
    for aic_gpu, gpu_id in d.GPUS.items():
        for engine in d.VERSIONS:
            c = ceilings(get_gpu(gpu_id), engine)
            if not c.measured:
                continue
            rows = pd.DataFrame(gemm_rows(repo, aic_gpu, engine, c) + moe_rows(repo, aic_gpu, engine, c)
                                + attention_rows(repo, aic_gpu, engine, c),
                                columns=["kernel", "format", "m", "predicted", "measured", "ideal"])
            if args.decode:
                rows = rows[rows.m <= 256]
            rows = rows.assign(err=rows.predicted / rows.measured - 1, fast=rows.measured < rows.ideal)
            for (kernel, fmt), g in rows.groupby(["kernel", "format"]):
                ok = g[~g.fast]
                print(f"| {gpu_id} | {engine} | {kernel} | {fmt} | {len(ok)} | {ok.err.median():+.1%} | "
                      f"{ok.err.abs().median():.1%} | {int(g.fast.sum())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
