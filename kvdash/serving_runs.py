"""Measured serving runs, read from a user's files: to draw beside the serving model's predictions and to fit
an engine's overheads to ("calibrate to my cluster", kvdash.serving_fit). kvdash bundles no third-party runs.

Two formats, both parsed as data only (never executed), bounded in size and checked field by field:

- the result JSON of `vllm bench serve --save-result` (one object, a list of them, or one per line as
  `--append-result` writes): `max_concurrency`, `completed`, `total_input_tokens`, `total_output_tokens`,
  `median_ttft_ms`, `median_tpot_ms` (the mean where the median is absent), `model_id`; the engine, GPU, tensor
  parallelism and formats from `--metadata` keys where given (engine=, gpu=, tp=, weights=, kv=), else the
  page's scenario;
- a CSV with a header row: `concurrency, isl, osl, ttft_ms, tpot_ms` and optionally `engine, gpu, tp, model,
  weights, kv` (kvdash's names); or AIConfigurator's columns (`backend, model_path, batch_size, isl, osl,
  tp_size, silicon_ttft_ms, silicon_tpot_ms`, ...), as in the reference data the project's benchmarks read.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from kvdash.errors import KvdashError

GPU = "nvidia-h100-sxm5"  # the GPU of the reference runs the engine profiles are fitted on
MAX_BYTES = 8 << 20  # a results file of a few thousand runs is well under this
MAX_RUNS = 5000
# AIConfigurator's weight formats in kvdash's names (empty = the checkpoint's bf16)
FORMATS = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4"}
ENGINE_NAMES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "tensorrt-llm": "trtllm",
                "tensorrt_llm": "trtllm"}


def kv_format(engine: str, gemm_quant_mode: str) -> str:
    """The KV cache's format in a reference run, which AIConfigurator's CSV does not state. TensorRT-LLM's
    per-tensor fp8 runs hold an fp8 cache: such checkpoints are ModelOpt's, which set kv_cache_quant_algo FP8
    (the AIConfigurator repository keeps Qwen3-32B's), TensorRT-LLM's kv_cache_dtype 'auto' follows the
    checkpoint, and a bf16 cache could not hold what the runs show running: 64 requests of 4,096 + 128 tokens of
    Qwen3-32B at tp 1 are 70.9 GB of bf16 cache beside about 33 GB of weights on an 80 GB GPU, yet their TTFT
    (1.6 s) has no wait for a slot. Everything else: the engines' default, the model's bf16."""
    return "fp8" if engine == "trtllm" and gemm_quant_mode == "fp8" else "bf16"


@dataclass(frozen=True)
class Run:
    engine: str  # "" when the file does not say (the page's engine applies)
    version: str
    model: str  # as the benchmark named it
    weights: str  # "" when the file does not say
    experts: str
    kv: str
    tp: int  # 0 when the file does not say
    ep: int
    isl: int
    osl: int
    concurrency: int
    ttft_s: float
    tpot_s: float
    gpu: str = ""  # a kvdash GPU id; "" when the file does not say
    source: str = ""


def _positive(v, what: str, where: str, cast=float):
    try:
        x = cast(v) if cast is float else int(float(v))
    except (TypeError, ValueError):
        raise KvdashError(f"{where}: {what} must be a number, not {str(v)[:40]!r}") from None
    if not (isinstance(x, int) or math.isfinite(x)) or x <= 0 or x > 1e12:
        raise KvdashError(f"{where}: {what} must be a positive number, not {str(v)[:40]!r}")
    return x


def _from_bench_json(d: dict, where: str) -> Run:
    """One `vllm bench serve --save-result` object."""
    if not isinstance(d, dict):
        raise KvdashError(f"{where}: expected a JSON object of `vllm bench serve` results")
    missing = [k for k in ("max_concurrency", "completed", "total_input_tokens", "total_output_tokens") if d.get(k)
               is None]
    if missing:
        raise KvdashError(f"{where}: not a `vllm bench serve --save-result` file (no {', '.join(missing)}; run it "
                          "with --max-concurrency)")
    done = _positive(d["completed"], "completed", where, int)
    ttft = d.get("median_ttft_ms", d.get("mean_ttft_ms"))
    tpot = d.get("median_tpot_ms", d.get("mean_tpot_ms"))
    engine = ENGINE_NAMES.get(str(d.get("engine", "vllm")).lower(), "")
    return Run(engine, str(d.get("version", ""))[:40], str(d.get("model_id", ""))[:200], str(d.get("weights", ""))[:20],
               "", str(d.get("kv", ""))[:20], int(_positive(d["tp"], "tp", where, int)) if d.get("tp") else 0, 1,
               max(1, round(_positive(d["total_input_tokens"], "total_input_tokens", where) / done)),
               max(1, round(_positive(d["total_output_tokens"], "total_output_tokens", where) / done)),
               _positive(d["max_concurrency"], "max_concurrency", where, int),
               _positive(ttft, "median_ttft_ms", where) / 1e3, _positive(tpot, "median_tpot_ms", where) / 1e3,
               str(d.get("gpu", ""))[:60], where)


def _from_csv_row(r: dict, where: str) -> Run:
    if "silicon_ttft_ms" in r:  # AIConfigurator's columns
        engine = r.get("backend", "")
        return Run(ENGINE_NAMES.get(engine, ""), r.get("backend_version", ""), r.get("model_path", ""),
                   FORMATS.get(r.get("gemm_quant_mode", ""), ""), FORMATS.get(r.get("moe_quant_mode", ""), ""),
                   kv_format(engine, r.get("gemm_quant_mode", "")), _positive(r["tp_size"], "tp_size", where, int),
                   _positive(r.get("moe_ep_size") or 1, "moe_ep_size", where, int),
                   _positive(r["isl"], "isl", where, int), _positive(r["osl"], "osl", where, int),
                   _positive(r["batch_size"], "batch_size", where, int),
                   _positive(r["silicon_ttft_ms"], "silicon_ttft_ms", where) / 1e3,
                   _positive(r["silicon_tpot_ms"], "silicon_tpot_ms", where) / 1e3,
                   GPU if r.get("system") == "h100_sxm" else "", where)
    missing = [k for k in ("concurrency", "isl", "osl", "ttft_ms", "tpot_ms") if not r.get(k)]
    if missing:
        raise KvdashError(f"{where}: the CSV needs the columns concurrency, isl, osl, ttft_ms, tpot_ms (missing "
                          f"{', '.join(missing)})")
    return Run(ENGINE_NAMES.get((r.get("engine") or "").lower(), ""), "", (r.get("model") or "")[:200],
               (r.get("weights") or "")[:20], "", (r.get("kv") or "")[:20],
               _positive(r["tp"], "tp", where, int) if r.get("tp") else 0, 1,
               _positive(r["isl"], "isl", where, int), _positive(r["osl"], "osl", where, int),
               _positive(r["concurrency"], "concurrency", where, int),
               _positive(r["ttft_ms"], "ttft_ms", where) / 1e3, _positive(r["tpot_ms"], "tpot_ms", where) / 1e3,
               (r.get("gpu") or "")[:60], where)


def parse_runs(data: bytes | str, name: str = "runs") -> tuple[Run, ...]:
    """The runs in an uploaded file (module docstring); a KvdashError naming the problem otherwise."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise KvdashError(f"{name}: {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KvdashError(f"{name}: not UTF-8 text") from None
    stripped = text.lstrip()
    runs: list[Run] = []
    if stripped.startswith(("{", "[")):
        try:
            docs = json.loads(text)
            docs = docs if isinstance(docs, list) else [docs]
        except json.JSONDecodeError:  # one object per line (--append-result)
            try:
                docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            except (json.JSONDecodeError, RecursionError):
                raise KvdashError(f"{name}: not valid JSON") from None
        except RecursionError:
            raise KvdashError(f"{name}: JSON nested too deeply") from None
        runs = [_from_bench_json(d, f"{name}[{i}]") for i, d in enumerate(docs[:MAX_RUNS])]
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as e:
            raise KvdashError(f"{name}: not a CSV file ({e})") from None
        runs = [_from_csv_row({k.strip(): (v or "").strip() for k, v in r.items() if k}, f"{name} row {i + 2}")
                for i, r in enumerate(rows[:MAX_RUNS])]
    if not runs:
        raise KvdashError(f"{name}: no runs in the file")
    return tuple(runs)


@lru_cache(maxsize=4)
def load_runs(path: Path) -> tuple[Run, ...]:
    """Runs from a file on disk (the reference data the benchmarks and tests read in place)."""
    return tuple(replace(r, source=Path(path).name) for r in parse_runs(Path(path).read_bytes(), Path(path).name))


def same_model(a: str, b: str) -> bool:
    """Hub ids of one architecture: 'meta-llama/Llama-3.1-8B' and '.../Llama-3.1-8B-Instruct', or
    'Qwen/Qwen3-235B-A22B' and its '-FP8' upload (same shapes; the format is matched separately)."""
    def key(hf_id: str) -> str:
        name = hf_id.rsplit("/", 1)[-1].lower().removeprefix("meta-")
        for tail in ("-instruct", "-fp8", "-thinking-2507", "-instruct-2507"):
            name = name.removesuffix(tail)
        return name
    return bool(a and b) and key(a) == key(b)


def matching_runs(runs, engine: str, tp: int, isl: int, osl: int, gpu_id: str = "", weights: str = "",
                  kv: str = "", model: str = "") -> list[Run]:
    """The runs of this engine, tp and lengths (and GPU, formats and model where both sides say), by concurrency.
    Lengths match within 5 % (a benchmark's random lengths average close to what was asked)."""
    def near(a: int, b: int) -> bool:
        return abs(a - b) <= 0.05 * b

    def agrees(mine: str, theirs: str, same=str.__eq__) -> bool:
        return not mine or not theirs or same(mine, theirs)

    return sorted((r for r in runs if agrees(engine, r.engine) and (not r.tp or r.tp == tp) and near(r.isl, isl)
                   and near(r.osl, osl) and agrees(gpu_id, r.gpu) and agrees(weights, r.weights)
                   and agrees(kv, r.kv) and agrees(model, r.model, same_model)), key=lambda r: r.concurrency)
