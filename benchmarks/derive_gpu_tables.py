"""Derive kvdash's per-GPU kernel tables (data/gpu_tables/*.json) from AIConfigurator's public kernel
measurements (ai-dynamo/aiconfigurator, Apache-2.0, aic-core/src/aiconfigurator_core/systems/data/<gpu>/).

Reads the repository where `fetch` put it (a git directory; nothing is copied into this project) and writes
small tables of kvdash's own derived numbers: for each GPU and engine, the share of the GPU's peak (from
kvdash's catalog, stored beside the tables) that a kernel reaches, by its size:

- GEMM: utilization = max(FLOPs / peak FLOP/s, bytes / peak bandwidth) / measured latency, by tokens m (rows)
  and the weight's size n x k (log2, even buckets), the median over the measured shapes in each cell; per-tensor
  fp8 without the dynamic activation-scale kernel the collectors include (`static_fp8`);
- decode attention (GQA/MHA, head size 128, no window) and latent-attention decode (MLA): bytes of K/V read
  over the measured latency, as a share of peak bandwidth, by the bytes read (log2 buckets);
- prefill attention and latent-attention prefill: causal FLOPs over latency, as a share of the dense bf16 peak,
  by the FLOPs (log2 buckets);
- MoE (balanced routing): max(FLOPs, the touched experts' bytes) over latency, by tokens per step and the
  touched experts' parameters (log2, even buckets);
- all-reduce (the engine's custom all-reduce, CUDA-graph variant where measured): microseconds by message bytes
  and GPU count.

    python benchmarks/derive_gpu_tables.py GITDIR [--out data/gpu_tables]

GITDIR is the fetched repository's git directory (e.g. .../ai-dynamo+aiconfigurator/repo); the commit read is
its HEAD and is written into every table.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from kvdash.dtypes import DTYPES  # noqa: E402
from kvdash.gpus import get_gpu  # noqa: E402
from kvdash.kernels import catalog_peaks, touched_experts  # noqa: E402

DATA = "aic-core/src/aiconfigurator_core/systems/data"
GPUS = {"a100_sxm": "nvidia-a100-sxm4-80gb", "h100_sxm": "nvidia-h100-sxm5", "h200_sxm": "nvidia-h200-sxm",
        "b200_sxm": "nvidia-b200-hgx", "b300_sxm": "nvidia-b300-hgx", "gb200": "nvidia-gb200",
        "gb300": "nvidia-gb300", "l40s": "nvidia-l40s", "rtx_pro_6000_server": "nvidia-rtx-pro-6000-bw-server"}
# per engine, the versions to take a table from, first found wins: the releases nearest the measured serving
# runs kvdash's overheads are fitted on (vLLM 0.11 - 0.18, TensorRT-LLM 1.0, SGLang 0.5.1 - 0.5.8), then newer
VERSIONS = {"vllm": ("0.19.0", "0.14.0", "0.22.0", "0.24.0"),
            "trtllm": ("1.2.0rc5", "1.0.0", "1.3.0rc10", "1.3.0rc20"),
            "sglang": ("0.5.9", "0.5.6.post2", "0.5.10", "0.5.14")}
# AIConfigurator's format names -> kvdash's
GEMM_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4"}
MOE_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4", "int4_wo": "int4",
              "w4a16_mxfp4": "mxfp4"}
# Measurements left out, by (GPU or "*", family, engine, version); kvdash.kernels then answers from the next
# preferred release, or the engine's other tables:
# - vLLM 0.14.0's latent-attention tables (legacy collector) time the host, not the kernel: a flat 140-190 us from
#   1 to 128 sequences and 1 to 128 heads, prefill and decode alike (H200: 0.15 ms for one sequence of 1,024
#   tokens, where TensorRT-LLM's and SGLang's kernels on the same GPU take 0.028 and 0.017 ms), yet equal to
#   TensorRT-LLM's where the work is large (128 sequences of 16,384: 0.602 ms both): a floor outside the kernel
#   that an engine's CUDA-graph step does not pay.
# - vLLM 0.19.0's attention tables on the H200 hold two collections (10,120 prefill rows where every other
#   GPU's has 5,457), one of which does not grow with the heads: from 12 heads up its prefill latency stays put, up
#   to 257 PFLOP/s of bf16 (the H200's dense peak is 0.99); the H200's tables of vLLM 0.14.0, 0.18.0 and 0.22.0
#   top out at 0.63-0.72 PFLOP/s, as the H100's do.
LEFT_OUT = {("*", "mla", "vllm", "0.14.0"), ("h200_sxm", "attention", "vllm", "0.19.0")}
# - vLLM 0.19.0's MXFP4 MoE rows (w4a16_mxfp4, gpt-oss's shapes, on H200 and B200) do not shard the experts: the
#   same latency from expert parallelism 1 to 32 at every token count (B200, 4 tokens: 0.205 ms at ep 1 and at
#   ep 32), where vLLM 0.24.0's serving kernel for them (FlashInfer TRT-LLM MXFP4 x bf16) falls 0.072 -> 0.025 ms;
#   every other MoE table's latency falls with expert parallelism (checked over all of them).
LEFT_OUT_MOE = {("vllm", "0.19.0", "w4a16_mxfp4")}
KV_BYTES = {"bfloat16": 2, "float16": 2, "fp8": 1}
M_GRID = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
SIZE_GRID = list(range(16, 33, 2))  # log2(n x k)
MOE_SIZE_GRID = list(range(18, 37, 2))  # log2(parameters of the touched experts)
GROUP_GRID = [1, 2, 4, 8, 16, 32, 64, 128]  # query heads per K/V head


class Repo:
    def __init__(self, gitdir: str):
        self.gitdir = gitdir
        self.commit = self._git("rev-parse", "HEAD").decode().strip()
        self.files = set(self._git("ls-tree", "-r", "--name-only", "HEAD", DATA).decode().split("\n"))

    def _git(self, *args) -> bytes:
        return subprocess.run(["git", "-C", self.gitdir, *args], check=True, capture_output=True).stdout

    def table(self, gpu: str, family: str, engine: str, name: str,
              any_version: bool = False, usable=None) -> tuple[pd.DataFrame | None, str]:
        """(the table, the version it was measured on) for the first preferred version that has it (with
        any_version, then any other version, newest first by name), and where `usable(table)` says it holds
        what is derived from it."""
        versions = list(VERSIONS[engine])
        if any_version:
            prefix = f"{DATA}/{gpu}/{family}/{engine}/"
            versions += sorted({f[len(prefix):].split("/")[0] for f in self.files if f.startswith(prefix)},
                               reverse=True)
        for version in versions:
            path = f"{DATA}/{gpu}/{family}/{engine}/{version}/{name}.parquet"
            if path in self.files and not {(gpu, family, engine, version), ("*", family, engine, version)} & LEFT_OUT:
                t = pd.read_parquet(io.BytesIO(self._git("show", f"HEAD:{path}")))
                t = t.assign(window_size=0) if "window_size" not in t else t
                if usable is None or usable(t):
                    return t, version
        return None, ""


def matrix_bytes(fmt: str, rows: pd.Series, cols: pd.Series) -> np.ndarray:
    """Each weight's bytes with its scales, as kvdash.dtypes stores it: the bytes kvdash.kernels is given for the
    same matrix, so a share derived here is the share applied there (NVFP4's scales add 1/8 to its 4-bit
    values; derived without them, an fp4 kernel would be charged 12.5 % more than it was measured to take)."""
    f = DTYPES[fmt]
    return np.array([f.matrix_bytes(int(r), int(c)) for r, c in zip(rows, cols, strict=True)], dtype=float)


# Each measured row's work, as kvdash.kernels is given it for the same kernel (also check_gpu_tables.py's)
def gemm_work(d: pd.DataFrame, fmt: str) -> tuple:
    """(FLOPs, bytes moved, the weight's bytes) of each GEMM row: m x n x k, the weight with its scales and the
    16-bit activations in and out."""
    weight = matrix_bytes(fmt, d.n, d.k)
    return 2.0 * d.m * d.n * d.k, weight + 2.0 * d.m * (d.k + d.n), weight


def moe_work(k: pd.DataFrame, fmt: str) -> tuple:
    """(the (token, expert) pairs on this GPU, the experts they touch, one expert's parameters and its bytes) of
    each MoE row, its experts split tp-wise and ep-wise. A gated expert has gate, up and down matrices; a
    non-gated one (relu^2: Nemotron) up and down only."""
    inter = k.inter_size // k.moe_tp_size
    routed = k.num_tokens * k.topk / k.moe_ep_size
    touched = touched_experts(k.num_experts / k.moe_ep_size, routed.clip(lower=0))
    ups = np.where(gated(k), 2, 1)
    one = matrix_bytes(fmt, ups * inter, k.hidden_size) + matrix_bytes(fmt, k.hidden_size, inter)
    return routed, touched, (ups + 1) * k.hidden_size * inter, one


def kv_read(k: pd.DataFrame, nbytes: int) -> tuple:
    """(cache bytes read, query heads per K/V head) of each decode-attention row."""
    heads = np.where(k.num_key_value_heads == 0, k.num_heads, k.num_key_value_heads)
    return k.batch_size * (k.isl + k.step) * heads * k.head_dim * 2 * nbytes, k.num_heads // heads


def prefill_flops(d: pd.DataFrame) -> pd.Series:
    """QK^T and PV over a causal prompt's pairs, per prefill-attention row."""
    return 2.0 * 2 * d.batch_size * d.num_heads * d.head_dim * d.isl * (d.isl + 1) / 2


def latent_read(k: pd.DataFrame, nbytes: int) -> pd.Series:
    """Cache bytes a latent-decode row reads: the latent and the rotary key (512 + 64 values) a token."""
    return k.batch_size * (k.isl + k.step) * 576 * nbytes


def latent_prefill_flops(d: pd.DataFrame) -> pd.Series:
    """Per head K 128 + 64 and V 128 over the causal pairs; num_heads is already one GPU's share (the collectors
    log the heads after dividing by tp_size: collector/trtllm/collect_mla.py, "The perf loader keys on local
    heads")."""
    return 2.0 * d.batch_size * d.num_heads * (192 + 128) * d.isl * (d.isl + 1) / 2


def _median_by(df: pd.DataFrame, key: str, grid: list[int]) -> list[float | None]:
    out = []
    for g in grid:
        cell = df[df[key] == g]["util"]
        out.append(round(float(cell.median()), 4) if len(cell) else None)
    return out


def _fill(values: list) -> list:
    """Cells without a measurement take their nearest measured neighbour (the edges hold the edge value)."""
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        return values
    return [values[i] if values[i] is not None else values[min(known, key=lambda k: abs(k - i))]
            for i in range(len(values))]


def static_fp8(d: pd.DataFrame, scale: pd.DataFrame | None) -> pd.DataFrame:
    """Per-tensor fp8 GEMMs as a checkpoint with static activation scales runs them. The collectors measure
    fp8 with dynamic activation quantization (collector/trtllm/collect_gemm.py: "the collected fp8 GEMM
    includes the compute-scale overhead. AIC derives fp8_static at query time by subtracting that overhead";
    collector/vllm/collect_gemm.py: activation_scheme="dynamic"); ModelOpt and llm-compressor per-tensor fp8
    checkpoints carry static input scales, so the compute-scale kernel (computescale_perf: m x k) is taken off,
    at the nearest measured k and interpolated in log2 m. Never below half the measured time."""
    if scale is None or scale.empty:
        return d
    ks = np.array(sorted(scale.k.unique()))
    curves = {k: scale[scale.k == k].groupby("m").latency.median().sort_index() for k in ks}

    def overhead(m: int, k: int) -> float:
        c = curves[ks[np.argmin(np.abs(np.log2(ks) - np.log2(k)))]]
        return float(np.interp(np.log2(m), np.log2(c.index.to_numpy(float)), c.to_numpy()))

    cut = np.array([overhead(m, k) for m, k in zip(d.m, d.k, strict=True)])
    return d.assign(latency=np.maximum(d.latency - cut, d.latency / 2))


def gemm(df: pd.DataFrame, peaks: dict, scale: pd.DataFrame | None = None) -> dict:
    out = {}
    for src, name in GEMM_DTYPES.items():
        d = df[df.gemm_dtype == src].copy()
        rate = peaks.get(name)
        if d.empty or not rate:
            continue
        if src == "fp8":
            d = static_fp8(d, scale)
        flops, nbytes, _ = gemm_work(d, name)
        d["util"] = np.maximum(flops / rate, nbytes / peaks["bandwidth"]) / (d.latency * 1e-3)
        table = by_rows_and_size(d, d.m, d.n * d.k, SIZE_GRID)
        if table:
            out[name] = table
    return out


def by_rows_and_size(d: pd.DataFrame, rows: pd.Series, size: pd.Series, grid: list[int]) -> dict:
    """Median utilisation per (rows in M_GRID, log2 size in even buckets of `grid`), the cells a row did not
    measure filled from their nearest neighbour; rows never measured are left out."""
    d = d.assign(rows=rows, size=(np.log2(size) / 2).round().astype(int) * 2)
    d = physical(d[d.rows.isin(M_GRID)])
    table = {m: _fill([_cell(d, m, s) for s in grid]) for m in M_GRID}
    table = {m: row for m, row in table.items() if row[0] is not None}
    return {"m": list(table), "log2_size": grid, "util": list(table.values())} if table else {}


def _cell(d: pd.DataFrame, m: int, s: int):
    cell = d[(d.rows == m) & (d["size"] == s)]["util"]
    return round(float(cell.median()), 4) if len(cell) else None


def physical(d: pd.DataFrame) -> pd.DataFrame:
    """The rows no faster than the GPU's peak: a latency below the ideal time at the peak is not a kernel's
    (H200, vLLM 0.19.0's context_attention_perf reports up to 4.9 PFLOP/s of bf16 attention for long prompts, five
    times the dense peak, where the H100's table of the same release tops out at 0.70)."""
    return d[d.util <= 1.0]


def by_log2(d: pd.DataFrame, value: pd.Series, lo: int, hi: int) -> dict:
    d = physical(d.assign(key=np.log2(value).round().astype(int)))
    grid = list(range(lo, hi + 1))
    return {"log2": grid, "util": _fill(_median_by(d, "key", grid))}


def decode_attention(df: pd.DataFrame, bw: float) -> dict:
    """Decode attention's share of bandwidth by the query heads per K/V head (rows: powers of two; measured
    ratios between them are left out) and the bytes of cache read (every integer log2)."""
    out = {}
    d = df[(df.window_size == 0) & (df.head_dim == 128)]
    for kv, nbytes in KV_BYTES.items():
        k = d[d.kv_cache_dtype == kv]
        if k.empty:
            continue
        read, ratio = kv_read(k, nbytes)
        table = by_key_and_log2(k.assign(util=read / (k.latency * 1e-3) / bw), ratio, GROUP_GRID, read, 12, 34)
        if table:
            out["bf16" if nbytes == 2 else "fp8"] = table
    return out


def by_key_and_log2(d: pd.DataFrame, key: pd.Series, keys: list[int], value: pd.Series, lo: int, hi: int) -> dict:
    """Median utilisation per (key in `keys`, log2 value lo..hi), in by_rows_and_size's layout (rows "m")."""
    d = physical(d.assign(row=key, cell=np.log2(value).round().astype(int)))
    grid = list(range(lo, hi + 1))
    table = {}
    for r in keys:
        row = d[d.row == r]
        if len(row):
            table[r] = _fill(_median_by(row, "cell", grid))
    return {"m": list(table), "log2_size": grid, "util": list(table.values())} if table else {}


def prefill_attention(df: pd.DataFrame, rate: float) -> dict:
    d = df[(df.window_size == 0) & (df.head_dim == 128) & (df.attn_dtype == "bfloat16")
           & (df.kv_cache_dtype == "bfloat16")]
    if d.empty:
        return {}
    flops = prefill_flops(d)
    return {"bf16": by_log2(d.assign(util=flops / (d.latency * 1e-3) / rate), flops, 14, 46)}


def mla_decode(df: pd.DataFrame, bw: float) -> dict:
    out = {}
    for kv, nbytes in KV_BYTES.items():
        k = df[(df.kv_cache_dtype == kv) & (df.mla_dtype == "bfloat16")]
        if k.empty:
            continue
        read = latent_read(k, nbytes)
        out["bf16" if nbytes == 2 else "fp8"] = by_log2(k.assign(util=read / (k.latency * 1e-3) / bw), read, 12, 34)
    return out


def mla_prefill(df: pd.DataFrame, rate: float) -> dict:
    d = df[(df.kv_cache_dtype == "bfloat16") & (df.mla_dtype == "bfloat16")]
    if d.empty:
        return {}
    flops = latent_prefill_flops(d)
    return {"bf16": by_log2(d.assign(util=flops / (d.latency * 1e-3) / rate), flops, 14, 46)}


def moe(df: pd.DataFrame, peaks: dict) -> dict:
    """A fused-MoE layer's share of peak by tokens and by the parameters its tokens touch: at decode sizes its
    time is mostly a floor, so one share per token count (whatever the experts' size) would be wrong by the
    ratio of two models' expert sizes."""
    out = {}
    d = default_moe(df[df.distribution == "balanced"])
    for src, name in MOE_DTYPES.items():
        k = d[d.moe_dtype == src]
        rate = peaks.get(name) or peaks.get("bf16")
        if k.empty or not rate:
            continue
        routed, touched, numel, one = moe_work(k, name)
        util = np.maximum(2.0 * routed * numel / rate, touched * one / peaks["bandwidth"]) / (k.latency * 1e-3)
        table = by_rows_and_size(k.assign(util=util), k.num_tokens, touched * numel, MOE_SIZE_GRID)
        if table:
            out[name] = table
    return out


def balanced(t: pd.DataFrame) -> bool:
    """A MoE table is derived from its balanced-routing rows: some releases measured skewed routing only."""
    return bool((t.distribution == "balanced").any())


def default_moe(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the MoE kernels an engine runs by default. TensorRT-LLM's collector also times NVFP4 experts
    on the trtllm-gen backend (kernel_source moe_torch_flow_min_latency, about half the CUTLASS time at decode
    sizes on B200), but TensorRT-LLM serves NVFP4 experts on CUTLASS unless a config asks otherwise
    (MoeConfig.backend defaults to CUTLASS in llm_args.py; its AUTO resolution, PR #11074, keeps CUTLASS for
    NVFP4), and AIConfigurator keeps those rows in a separate low-latency view (sdk/operations/moe.py)."""
    if "kernel_source" not in df:
        return df
    return df[~df.kernel_source.astype(str).str.contains("min_latency")]


def gated(df: pd.DataFrame) -> np.ndarray:
    """Which rows measured gated experts: TensorRT-LLM labels its non-gated MoE kernels (kernel_source
    ..._nongated), which have one input matrix where a gated expert has two."""
    src = df["kernel_source"].astype(str) if "kernel_source" in df else pd.Series("", index=df.index)
    return ~src.str.contains("nongated").to_numpy()


def allreduce(df: pd.DataFrame) -> dict:
    d = df[df.allreduce_dtype.isin(["bfloat16", "half", "float16"])]
    for col in ("backend", "implementation", "kernel_source"):
        if col in d and d[col].astype(str).str.contains("graph").any():
            d = d[d[col].astype(str).str.contains("graph")]
            break
    out = {}
    for n in sorted(d.num_gpus.unique()):
        k = d[d.num_gpus == n]
        nbytes = k.message_size * 2  # message_size counts bf16 elements
        key = np.log2(nbytes).round().astype(int)
        grid = sorted(key.unique())
        us = [round(float(k[key == g].latency.median() * 1e3), 3) for g in grid]
        out[str(int(n))] = {"log2_bytes": [int(g) for g in grid], "us": us}
    return out


def derive(repo: Repo, aic_gpu: str) -> dict:
    gpu = get_gpu(GPUS[aic_gpu])
    peaks = catalog_peaks(gpu)  # kvdash.kernels' peaks, under the weight formats' names too
    peaks |= {alias: peaks[base] for alias, base in (("fp8-block", "fp8"), ("mxfp4", "nvfp4")) if base in peaks}
    engines = {}
    for engine in VERSIONS:
        tables, versions = {}, {}
        scale, scale_version = repo.table(aic_gpu, "quantize", engine, "computescale_perf", any_version=True)
        for key, family, name, fn in (
                ("gemm", "gemm", "gemm_perf", lambda t, scale=scale: gemm(t, peaks, scale)),
                ("decode_attention", "attention", "generation_attention_perf",
                 lambda t: decode_attention(t, peaks["bandwidth"])),
                ("prefill_attention", "attention", "context_attention_perf",
                 lambda t: prefill_attention(t, peaks["bf16"])),
                ("mla_decode", "mla", "generation_mla_perf", lambda t: mla_decode(t, peaks["bandwidth"])),
                ("mla_prefill", "mla", "context_mla_perf", lambda t: mla_prefill(t, peaks["bf16"])),
                ("moe", "moe", "moe_perf", lambda t: moe(t, peaks)),
                ("allreduce", "comm", "custom_allreduce_perf", allreduce)):
            t, version = repo.table(aic_gpu, family, engine, name, usable=balanced if key == "moe" else None)
            if t is not None and key == "moe":
                t = t[~t.moe_dtype.isin([dt for e, v, dt in LEFT_OUT_MOE if (e, v) == (engine, version)])]
            if t is not None:
                derived = fn(t)
                if derived:
                    tables[key], versions[key] = derived, version
                    if key == "gemm" and scale is not None:
                        versions["fp8_compute_scale"] = scale_version
        if tables:
            engines[engine] = {"versions": versions, **tables}
    return {"gpu": gpu.id, "aic_system": aic_gpu,
            "source": f"derived by benchmarks/derive_gpu_tables.py from ai-dynamo/aiconfigurator@{repo.commit} "
                      f"{DATA}/{aic_gpu} (Apache-2.0): shares of the peaks below that its measured kernels reach",
            "peaks": {k: v for k, v in peaks.items() if v}, "engines": engines}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gitdir", help="the fetched ai-dynamo/aiconfigurator git directory")
    ap.add_argument("--out", default=str(ROOT / "data" / "gpu_tables"))
    args = ap.parse_args(argv)
    repo = Repo(args.gitdir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for aic_gpu, gpu_id in GPUS.items():
        table = derive(repo, aic_gpu)
        path = out / f"{gpu_id}.json"
        path.write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{gpu_id}: {', '.join(f'{e} ({len(t) - 1} tables)' for e, t in table['engines'].items())}, "
              f"{path.stat().st_size:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
