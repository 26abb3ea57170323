"""Run the live decoder and measure it: memory of weights, cache and prefill, time of prefill and of
every decode step with and without the cache, next to kvdash's predictions for the same shape."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import torch

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.gpus import gpu_for_device_name
from kvdash.live.model import LiveDecoder, check_supported
from kvdash.live.shapes import nocache_positions
from kvdash.model import ModelSpec, attention_shape
from kvdash.scenario import Scenario
from kvdash.step import roofline, step_work

Progress = Callable[[float, str], None]


class LiveOutOfMemory(KvdashError):
    """The device ran out of memory; the message says what kvdash predicted and what was free."""


@dataclass(frozen=True)
class LiveConfig:
    spec: ModelSpec
    batch: int = 1
    prompt_tokens: int = 128
    new_tokens: int = 32
    device: str = "auto"  # auto | cpu | cuda
    graph: bool = False  # capture the decode step in a CUDA graph
    compile: bool = False  # torch.compile the decode step (fuses the small elementwise kernels)
    repeats: int = 5  # prefill timings (median)
    nocache_points: int = 6  # positions at which the cacheless step is timed
    seed: int = 0

    def __post_init__(self):
        check_supported(self.spec)
        if self.new_tokens < 1:
            raise KvdashError("generate at least one token")
        if self.device not in ("auto", "cpu", "cuda"):
            raise KvdashError(f"device must be auto, cpu or cuda, not {self.device!r}")
        Scenario(batch=self.batch, prompt_tokens=self.prompt_tokens, new_tokens=self.new_tokens)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise KvdashError("no CUDA device is available")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


class _Clock:
    """Times work on the device: CUDA events on a GPU (the stream's own clock, no host latency),
    perf_counter around a synchronisation on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def _probe(device: torch.device, dtype: torch.dtype, clock: _Clock) -> dict:
    """Quick ceilings of this device: copy bandwidth (bytes read + written) and matmul rate."""
    n_bytes = (1 << 30) if device.type == "cuda" else (64 << 20)
    src = torch.empty(n_bytes // 2, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy_s = statistics.median(clock.time(lambda: dst.copy_(src)) for _ in range(5))
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    mm_s = statistics.median(clock.time(lambda: a @ b) for _ in range(5))
    return {"copy_bytes_per_s": 2 * n_bytes / copy_s, "matmul_flops_per_s": 2 * n**3 / mm_s, "matmul_n": n}


def _mem(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"allocated": torch.cuda.memory_allocated(), "reserved": torch.cuda.memory_reserved(),
            "peak": torch.cuda.max_memory_allocated(), "free": free, "total": total}


def run_benchmark(cfg: LiveConfig, progress: Progress | None = None) -> dict:
    """The whole live run. Raises LiveOutOfMemory (memory freed) when the device runs out."""
    device = pick_device(cfg.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dt_name = "bf16" if dtype == torch.bfloat16 else "fp32"
    scenario = Scenario(batch=cfg.batch, prompt_tokens=cfg.prompt_tokens, new_tokens=cfg.new_tokens,
                        weights_dtype=dt_name, kv_dtype=dt_name, runtime="static")
    predicted = breakdown(cfg.spec, scenario)
    out_of_memory = False
    try:
        return _run(cfg, device, dtype, scenario, predicted, progress or (lambda f, msg: None))
    except torch.cuda.OutOfMemoryError:
        out_of_memory = True  # handled below, once the traceback (and the model it holds) is gone
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info() if device.type == "cuda" else (None, None)
    have = f"; {free:,} B of {total:,} B were free after freeing this run" if free is not None else ""
    assert out_of_memory
    raise LiveOutOfMemory(
        f"out of memory: kvdash predicted {predicted.total:,} B for this shape "
        f"(weights {predicted['weights']:,} B, KV cache {predicted['kv_cache']:,} B){have}"
    )


def _run(cfg: LiveConfig, device, dtype, scenario: Scenario, predicted, progress: Progress) -> dict:
    clock = _Clock(device)
    m, B, P, G = cfg.spec, cfg.batch, cfg.prompt_tokens, cfg.new_tokens
    info = {"device": device.type, "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
            "cuda": torch.version.cuda, "name": "CPU"}
    mem: dict[str, object] = {}
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
        torch.empty(1, device=device)  # creates the CUDA context
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
        m0 = _mem(device)
        mem["device_total"] = m0["total"]
        mem["device_free_at_start"] = m0["free"]
        # What the process holds outside PyTorch's allocator: the CUDA context and libraries.
        mem["context_overhead"] = m0["total"] - m0["free"] - m0["reserved"]
    progress(0.05, "probing the device (copy bandwidth, matrix rate)")
    probe = _probe(device, dtype, clock)

    progress(0.15, "building the model")
    base = _mem(device).get("allocated", 0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = LiveDecoder(m, max_tokens=P + G)
    finally:
        torch.set_default_dtype(default)
    model.to_empty(device=device)
    model.init_weights(cfg.seed)
    weights_exact = sum(p.nbytes for p in model.parameters())
    mem["weights_tensors"] = weights_exact
    mem["weights_allocated"] = _mem(device).get("allocated", base) - base if device.type == "cuda" else None
    model.setup_rope()
    mem["rope_tables"] = model.cos.nbytes + model.sin.nbytes

    before_cache = _mem(device).get("allocated", 0)
    mem["kv_cache_tensors"] = model.allocate_cache(B)
    mem["kv_cache_allocated"] = _mem(device)["allocated"] - before_cache if device.type == "cuda" else None
    tokens = torch.randint(0, m.vocab_size, (B, P + G), generator=torch.Generator().manual_seed(cfg.seed))
    tokens = tokens.to(device)

    progress(0.25, "prefill")
    with torch.inference_mode():
        model.prefill(tokens[:, :P])  # warm-up (kernels, allocator)
        if device.type == "cuda":
            clock.sync()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        prefill_times = [clock.time(lambda: model.prefill(tokens[:, :P])) for _ in range(cfg.repeats)]
        if device.type == "cuda":
            mem["prefill_peak_over_resident"] = torch.cuda.max_memory_allocated() - before
            mem["resident_before_prefill"] = before

        progress(0.45, "decoding with the cache")
        step = _decoder(model, cfg, device, clock)
        nxt = tokens[:, P : P + 1]
        cached = []
        for pos in range(P, P + G - 1):
            dt, _ = step(nxt, pos)
            cached.append((pos, dt))
            nxt = tokens[:, pos + 1 : pos + 2]  # teacher-forced: the same tokens every run
        if not cached:  # one new token: time one extra step at the last position
            dt, _ = step(nxt, P)
            cached.append((P, dt))

        progress(0.7, "decoding without a cache (recomputing the prefix)")
        nocache = []
        for pos in nocache_positions(P, G, cfg.nocache_points):
            prefix = tokens[:, : pos + 1]
            model.forward_nocache(prefix)
            ts = [clock.time(lambda prefix=prefix: model.forward_nocache(prefix)) for _ in range(3)]
            nocache.append((pos, statistics.median(ts)))
    if device.type == "cuda":
        mem["peak_allocated"] = torch.cuda.max_memory_allocated()
        mem["reserved_at_end"] = torch.cuda.memory_reserved()
    progress(0.95, "comparing with the predictions")
    return _report(cfg, info, mem, probe, predicted, scenario, prefill_times, cached, nocache)


def _decoder(model: LiveDecoder, cfg: LiveConfig, device, clock: _Clock):
    """A function (token, position) -> (seconds, logits) for one cached decode step.

    Every mode runs the static-shape step (all cache slots, masked), so each position runs the same
    kernels: eagerly from Python, compiled by torch.compile, and/or replayed from a CUDA graph.
    """
    fn = model.decode_static
    if cfg.compile:
        fn = torch.compile(fn, dynamic=False)
    tok_buf = torch.zeros((cfg.batch, 1), dtype=torch.long, device=device)
    pos_buf = torch.full((1,), cfg.prompt_tokens, dtype=torch.long, device=device)
    if not (cfg.graph and device.type == "cuda"):
        if cfg.compile:
            fn(tok_buf, pos_buf)  # compile before timing

        def eager(tok, pos):
            out = {}
            tok_buf.copy_(tok)
            pos_buf.fill_(pos)
            dt = clock.time(lambda: out.setdefault("l", fn(tok_buf, pos_buf)))
            return dt, out["l"]
        return eager
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up (and compilation) off the capture stream
            fn(tok_buf, pos_buf)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(tok_buf, pos_buf)

    def replay(tok, pos):
        tok_buf.copy_(tok)
        pos_buf.fill_(pos)
        return clock.time(graph.replay), out
    return replay


def _report(cfg, info, mem, probe, predicted, scenario, prefill_times, cached, nocache) -> dict:
    m = cfg.spec
    gpu = gpu_for_device_name(info["name"]) if info["device"] == "cuda" else None
    bandwidth = probe["copy_bytes_per_s"]
    matmul = probe["matmul_flops_per_s"]
    ttft = statistics.median(prefill_times)
    steps = [dt for _, dt in cached]
    tpot = statistics.median(steps)
    cached_at = dict(cached)
    # The static decode step reads every cache slot, so its floor counts the whole cache.
    B, P = scenario.batch, cfg.prompt_tokens
    attn = attention_shape(m)
    decode_floor = roofline(step_work(m, scenario, B, scenario.context), bandwidth, matmul)[0]
    prefill_floor = roofline(step_work(m, scenario, 0, 0, prefill=B * P, prompt=P), bandwidth, matmul)[1]
    largest = nocache[-1]
    speedup = largest[1] / cached_at.get(largest[0], tpot)
    half = len(steps) // 2
    flat = statistics.median(steps[half:]) / statistics.median(steps[: max(1, half)]) if len(steps) > 3 else None
    pred_weights, pred_cache = predicted["weights"], predicted["kv_cache"]
    pred_prefill = predicted["activation"] + predicted["logits"]
    measured_prefill = mem.get("prefill_peak_over_resident")
    return {
        "kvdash_live": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": info,
        "catalog_gpu": gpu.id if gpu else None,
        "shape": {
            "name": m.name, "n_layers": m.n_layers, "hidden_size": m.hidden_size, "n_heads": attn.n_heads,
            "n_kv_heads": attn.n_kv_heads, "head_dim": attn.head_dim, "intermediate_size": m.intermediate_size,
            "vocab_size": m.vocab_size, "sliding_window": max(sp.live_window for sp in m.layers),
            "layer_types": list(m.kinds),
            "tie_word_embeddings": m.tie_word_embeddings, "params": m.params,
            "batch": cfg.batch, "prompt_tokens": cfg.prompt_tokens, "new_tokens": cfg.new_tokens,
            "graph": cfg.graph and info["device"] == "cuda",
            "compile": cfg.compile,
        },
        "predicted": {
            "weights_bytes": pred_weights,
            "kv_cache_bytes": pred_cache,
            "prefill_activation_bytes": pred_prefill,
            "decode_floor_s": decode_floor,
            "prefill_floor_s": prefill_floor,
        },
        "measured": {
            "weights_bytes": mem["weights_tensors"],
            "kv_cache_bytes": mem["kv_cache_tensors"],
            "prefill_activation_bytes": measured_prefill,
            "memory": mem,
            "ttft_s": ttft,
            "tpot_s": tpot,
            "tokens_per_s": cfg.batch / tpot,
            "decode_cached_s": [[p, dt] for p, dt in cached],
            "decode_nocache_s": [[p, dt] for p, dt in nocache],
            "probe": probe,
        },
        "checks": {
            "weights_exact": mem["weights_tensors"] == pred_weights,
            "kv_cache_exact": mem["kv_cache_tensors"] == pred_cache,
            "prefill_ratio": (measured_prefill / pred_prefill) if measured_prefill else None,
            "decode_vs_floor": tpot / decode_floor,
            "prefill_vs_floor": ttft / prefill_floor,
            "cached_speedup_at_longest": speedup,
            "longest_position": largest[0],
            "cached_flatness": flat,
            "catalog_bandwidth_bytes_per_s": gpu.bandwidth_gbps * 1e9 if gpu else None,
            "finite": all(math.isfinite(x) for x in steps + prefill_times),
        },
    }
