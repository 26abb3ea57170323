"""Measured serving runs (data/serving/h100.csv, from the public AIConfigurator repository), to draw
beside the serving model's predictions where a scenario matches them. Data to compare with, never an
expected value: BENCHMARKS.md reports the model's error on them."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / "data" / "serving" / "h100.csv"
GPU = "nvidia-h100-sxm5"  # every stored run is on H100 SXM
# the runs' weight formats in kvdash's names (empty = the checkpoint's bf16)
FORMATS = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4"}


def kv_format(engine: str, gemm_quant_mode: str) -> str:
    """The KV cache's format in a run, which the CSV does not state. TensorRT-LLM's per-tensor fp8 runs
    hold an fp8 cache: such checkpoints are ModelOpt's, which set kv_cache_quant_algo FP8 (the
    AIConfigurator repository keeps Qwen3-32B's), TensorRT-LLM's kv_cache_dtype 'auto' follows the
    checkpoint, and a bf16 cache could not hold what the runs show running: 64 requests of 4,096 + 128
    tokens of Qwen3-32B at tp 1 are 70.9 GB of bf16 cache beside about 33 GB of weights on an 80 GB GPU, yet
    their TTFT (1.6 s) has no wait for a slot. Everything else: the engines' default, the model's bf16."""
    return "fp8" if engine == "trtllm" and gemm_quant_mode == "fp8" else "bf16"


@dataclass(frozen=True)
class Run:
    engine: str
    version: str
    model: str  # Hugging Face id as the benchmark named it
    weights: str
    experts: str
    kv: str
    tp: int
    ep: int
    isl: int
    osl: int
    concurrency: int
    ttft_s: float
    tpot_s: float


@lru_cache(maxsize=1)
def load_runs() -> tuple[Run, ...]:
    with open(RUNS, newline="", encoding="utf-8") as f:
        return tuple(Run(r["backend"], r["backend_version"], r["model_path"], FORMATS[r["gemm_quant_mode"]],
                         FORMATS[r["moe_quant_mode"]], kv_format(r["backend"], r["gemm_quant_mode"]),
                         int(r["tp_size"]), int(r["moe_ep_size"]), int(r["isl"]),
                         int(r["osl"]), int(r["batch_size"]), float(r["silicon_ttft_ms"]) / 1e3,
                         float(r["silicon_tpot_ms"]) / 1e3) for r in csv.DictReader(f))


def same_model(a: str, b: str) -> bool:
    """Hub ids of one architecture: 'meta-llama/Llama-3.1-8B' and '.../Llama-3.1-8B-Instruct', or
    'Qwen/Qwen3-235B-A22B' and its '-FP8' upload (same shapes; the format is matched separately)."""
    def key(hf_id: str) -> str:
        name = hf_id.rsplit("/", 1)[-1].lower().removeprefix("meta-")
        for tail in ("-instruct", "-fp8", "-thinking-2507", "-instruct-2507"):
            name = name.removesuffix(tail)
        return name
    return bool(a and b) and key(a) == key(b)


def matching_runs(hf_id: str, gpu_id: str, engine: str, tp: int, isl: int, osl: int, weights: str,
                  kv: str = "bf16") -> list[Run]:
    """The stored runs of this model, GPU, engine, tp, lengths, weight and cache format, by concurrency."""
    if gpu_id != GPU:
        return []
    return sorted((r for r in load_runs() if r.engine == engine and r.tp == tp and r.isl == isl and r.osl == osl
                   and r.weights == weights and r.kv == kv and same_model(r.model, hf_id)),
                  key=lambda r: r.concurrency)
