"""A serving engine's start-up memory budget from scratch: what is left for the KV cache on each GPU.

One function for every engine (`engine_startup`), each taking its share by its own rule (kvdash.engines):

- vLLM requests `gpu_memory_utilization` x the device's total memory (torch.cuda.mem_get_info) and
  subtracts what the model needs besides its cache, measured by a profile pass (read in vLLM's
  gpu_worker.determine_available_memory and gpu_model_runner.profile_run, 0.6 to 0.33): the weights (the
  growth of torch's allocation across load_model: the weights and the model's buffers, of which the rotary
  cos/sin cache is the one that counts); the profile pass's peak, one forward of `max_num_batched_tokens`
  tokens (attention skipped) or, on the last pipeline stage, the sampler on `min(max_num_seqs, tokens)`
  requests with the hidden states and any fused-MoE workspace still held (kvdash.breakdown's prefill and
  sampler phases of that step: the same functions as every scenario's activation peak); the memory outside
  torch (kvdash.engines.non_torch_bytes); CUDA-graph memory only where the run asks vLLM to estimate it
  first (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1, 0.18+; 0 with --enforce-eager); otherwise graphs are
  captured after the cache is allocated, out of the (1 - utilization) headroom (the 0.19 and 0.31 logs kept
  here close without them). The CUDA context exists before vLLM measures, so it is not subtracted.
- SGLang takes mem_fraction_static of the total, less what is in use once the model is loaded (the CUDA
  context, the weights, the memory outside torch); it runs no profiling forward.
- TensorRT-LLM takes free_gpu_memory_fraction of what is free after the model is loaded and a profiling
  forward of max_num_tokens has run.

vLLM's budget is checked against the public start-up logs in tests/data/vllm_logs/; the other two rules are
read in their source, not yet checked against logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.breakdown import activation_dtype, activation_phases, scenario_stages
from kvdash.capacity import DEFAULT_BLOCK_SIZE, Capacity, vllm_capacity
from kvdash.dtypes import get_dtype
from kvdash.engines import NON_TORCH_GPU, engine_facts, non_torch_bytes
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario, check_parallel
from kvdash.speculative import drafted, drafter_buffer_bytes
from kvdash.units import GiB


@dataclass(frozen=True)
class VllmFamily:
    key: str
    label: str
    default_utilization: float


FAMILIES = {
    # V1 engine, the sampler profiled (0.8+); the sampler and non-torch constants (kvdash.engines) measured on 0.19
    "0.8-0.19": VllmFamily("0.8-0.19", "vLLM 0.8 – 0.19", 0.90),
    # 0.20 raised the default utilization to 0.92 (config/cache.py DEFAULT_GPU_MEMORY_UTILIZATION, read in 0.34.0,
    # where an on-by-default extensible KV cache takes 1.0 instead: not modelled)
    "0.20+": VllmFamily("0.20+", "vLLM 0.20 and later", 0.92),
}
DEFAULT_FAMILY = "0.20+"
# CUDA-graph pool per GPU, vLLM 0.19's own estimates for 2-72 B models on H100: 0.52 to 1.82 GiB, median
# 0.84 GiB (tests/data/vllm_logs). A measured typical value, not a formula: warned about where used.
TYPICAL_CUDA_GRAPH_BYTES = int(0.84 * GiB)


@dataclass(frozen=True)
class Startup:
    engine: str
    total_bytes: int  # the device's memory as CUDA reports it
    fraction: float  # vLLM's gpu_memory_utilization, SGLang's mem_fraction_static, TensorRT-LLM's free fraction
    requested_bytes: int  # the share the engine takes (TensorRT-LLM: of the memory left free)
    weights_bytes: int
    rotary_cache_bytes: int  # part of weights_bytes: the cos/sin table the engine builds at load
    forward_peak_bytes: int  # the profile's forward of max_num_batched_tokens tokens (0: no profile pass)
    sampler_peak_bytes: int  # the profile's sampler pass, with the hidden states and the MoE workspace held
    context_bytes: int  # the CUDA context, where the engine's rule subtracts it (SGLang, TensorRT-LLM)
    non_torch_bytes: int
    cuda_graph_bytes: int
    rank0_kv_bytes: int  # the first GPU's budget: what vLLM's log line shows
    max_num_batched_tokens: int
    max_num_seqs: int
    capacity: Capacity
    gpu_id: str = ""
    tp: int = 1
    family: VllmFamily | None = None  # vLLM's release family
    drafter_buffer_bytes: int = 0  # vLLM's speculative proposer's buffers (kvdash.speculative)

    @property
    def utilization(self) -> float:
        return self.fraction

    @property
    def activation_peak_bytes(self) -> int:
        return max(self.forward_peak_bytes, self.sampler_peak_bytes)

    @property
    def kv_budget_bytes(self) -> int:
        return self.capacity.kv_budget_bytes

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.tp > 1 and self.gpu_id != NON_TORCH_GPU:
            out.append(f"the {self.non_torch_bytes / GiB:.2f} GiB per GPU outside torch (NCCL and custom all-reduce "
                       "buffers) was measured on H100 NVLink groups; other GPUs and interconnects differ (public "
                       "A100 PCIe logs show far less), so the KV budget may differ by up to that much")
        if self.cuda_graph_bytes:
            out.append(f"CUDA-graph memory is a typical value ({TYPICAL_CUDA_GRAPH_BYTES / GiB:.2f} GiB; vLLM's own "
                       "estimates run from 0.5 to 1.8 GiB by model size): the KV budget may differ by that much")
        if self.engine != "vllm":
            out.append(f"{engine_facts(self.engine).label}'s budget follows its source's rule; unlike vLLM's, it has "
                       "not been checked against start-up logs")
        return out

    def log_lines(self) -> list[str]:
        gib = GiB
        if self.engine != "vllm":
            return [f"KV cache memory per GPU: {self.rank0_kv_bytes / gib:.2f} GiB", *self.capacity.log_lines()[-2:]]
        return [f"Model loading took {self.weights_bytes / gib:.2f} GiB memory",
                f"Requested memory: {self.fraction:.6f} (util), {self.requested_bytes / gib:.2f} GiB",
                f"Available KV cache memory: {self.rank0_kv_bytes / gib:.2f} GiB",
                *self.capacity.log_lines()]

    def to_dict(self) -> dict:
        return {"engine": self.engine, "vllm_family": self.family.key if self.family else None,
                "total_bytes": self.total_bytes, "utilization": self.fraction,
                "requested_bytes": self.requested_bytes, "weights_bytes": self.weights_bytes,
                "rotary_cache_bytes": self.rotary_cache_bytes, "forward_peak_bytes": self.forward_peak_bytes,
                "sampler_peak_bytes": self.sampler_peak_bytes, "activation_peak_bytes": self.activation_peak_bytes,
                "context_bytes": self.context_bytes, "non_torch_bytes": self.non_torch_bytes,
                "cuda_graph_bytes": self.cuda_graph_bytes, "drafter_buffer_bytes": self.drafter_buffer_bytes,
                "kv_budget_bytes": self.kv_budget_bytes, "rank0_kv_bytes": self.rank0_kv_bytes,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "max_num_seqs": self.max_num_seqs, "log_lines": self.log_lines(), "warnings": self.warnings,
                **{f"capacity_{k}": v for k, v in self.capacity.to_dict().items()}}

    def terms(self) -> list[tuple[str, int, str]]:
        """(term, bytes, how it is known) for a table: the requested memory and what it is split into."""
        share = {"vllm": "gpu_memory_utilization", "sglang": "mem_fraction_static",
                 "trtllm": "free_gpu_memory_fraction"}[self.engine]
        of = "memory left free after the model and its profile pass" if self.engine == "trtllm" else "CUDA total"
        rows = [("requested", self.requested_bytes, f"{share} {self.fraction} × {self.total_bytes:,} B ({of})"),
                ("weights", self.weights_bytes, f"computed; includes a {self.rotary_cache_bytes:,} B rotary cache")]
        if self.forward_peak_bytes or self.sampler_peak_bytes:
            rows.append(("activation peak", self.activation_peak_bytes,
                         f"max(forward of {self.max_num_batched_tokens:,} tokens {self.forward_peak_bytes:,} B, "
                         f"sampler on {min(self.max_num_seqs, self.max_num_batched_tokens):,} requests "
                         f"{self.sampler_peak_bytes:,} B)"))
        if self.drafter_buffer_bytes:
            rows.append(("drafter buffers", self.drafter_buffer_bytes,
                         "computed: the speculative proposer's inputs, positions and hidden states per token of "
                         f"{self.max_num_batched_tokens:,}"))
        if self.context_bytes:
            rows.append(("CUDA context", self.context_bytes, "measured constant (in use before the engine measures)"))
        rows += [("non-torch", self.non_torch_bytes, "measured constant (vLLM logs)"),
                 ("CUDA graphs", self.cuda_graph_bytes,
                  "typical measured value" if self.cuda_graph_bytes else "captured after the cache, not subtracted"),
                 ("KV cache", self.kv_budget_bytes, "what is left")]
        return rows


def profile_peaks(m: ModelSpec, s: Scenario) -> list[tuple[object, int, int]]:
    """(stage, forward peak, sampler peak) of an engine's profile pass on each pipeline stage: one step of
    max_num_batched_tokens tokens of min(max_num_seqs, tokens) requests (vLLM's _dummy_run spreads the
    tokens over that many requests), whose activation is the scenario breakdown's for that step."""
    tokens, seqs = s.step_limits()
    out = []
    for st in scenario_stages(m, s):
        phases = activation_phases(st, seqs, tokens, tokens, (tokens, seqs))
        out.append((st, phases["prefill"], phases["sampler"]))
    return out


def default_share(engine: str, gpu, tp: int = 1, pp: int = 1, family: str = DEFAULT_FAMILY) -> float:
    """The memory share an engine takes when none is set: vLLM's gpu_memory_utilization of its version family,
    SGLang's and TensorRT-LLM's by the GPU (kvdash.engines)."""
    if engine == "vllm":
        return FAMILIES[family].default_utilization
    return engine_facts(engine).memory_fraction(gpu, tp, pp)


def engine_startup(m: ModelSpec, s: Scenario, gpu, *, fraction: float | None = None,
                   max_model_len: int | None = None, enforce_eager: bool = False,
                   reserve_cuda_graphs: bool = False, family: str = DEFAULT_FAMILY,
                   block_size: int = DEFAULT_BLOCK_SIZE) -> Startup:
    """The KV budget the scenario's engine (s.runtime: vllm, sglang or trtllm) is left with per GPU at its
    memory share (`fraction`; default: the engine's, and vLLM's family's), and the blocks and tokens vLLM
    would report from it. The scenario's tensor and pipeline degrees, formats and step limits apply."""
    if not s.engine:
        raise KvdashError(f"a start-up budget is a serving engine's; the {s.runtime} runtime has none")
    target, m = m, drafted(m, s)  # the engine loads the drafter (MTP modules, a head, a draft model) to speculate
    if family not in FAMILIES:
        raise KvdashError(f"vLLM version family must be one of {', '.join(FAMILIES)}, not {family!r}")
    s = s.resolved(gpu).with_(batch=1, new_tokens=0, gpu_memory_utilization=0.0)
    tokens, seqs = s.step_limits()
    check_parallel(m, s)
    u = default_share(s.engine, gpu, s.tp, s.pp, family) if fraction is None else fraction
    if not isinstance(u, (int, float)) or isinstance(u, bool) or not 0 < u <= 1:
        raise KvdashError(f"gpu memory utilization must be in (0, 1], not {u!r}")
    model_dtype = activation_dtype(get_dtype(s.weights_dtype))
    act = model_dtype.nbytes(1, 1)
    # the rotary embedding's [max_position, rotary_dim] cos/sin table in the model's dtype, on every rank
    rotary = (m.max_position_embeddings or 0) * max((sp.rotary_dim for sp in m.layers), default=0) * act
    non_torch = non_torch_bytes(s.tp, s.pp)
    graphs = TYPICAL_CUDA_GRAPH_BYTES if reserve_cuda_graphs and not enforce_eager and s.engine == "vllm" else 0
    # vLLM's proposer's buffers (SGLang's and TensorRT-LLM's drafters' were not read: not counted)
    drafter = drafter_buffer_bytes(target, s, tokens, seqs, act) if s.engine == "vllm" else 0
    context = 0 if s.engine == "vllm" else s.runtime_overhead_bytes
    total = gpu.usable_bytes
    # Each pipeline stage sizes its own cache; the engine keeps the fewest blocks. The log line is rank 0's.
    rows = []
    for st, forward, sampler in profile_peaks(m, s):
        weights = st.weight_bytes + st.encoder_bytes + rotary
        if s.engine == "sglang":  # no profile pass: the headroom (1 - fraction) holds the activations
            forward = sampler = 0
            requested = int(u * total)
        elif s.engine == "trtllm":
            requested = int(u * (total - context - weights - max(forward, sampler) - non_torch))
        else:
            requested = int(u * total)
        used = 0 if s.engine == "trtllm" else context + weights + max(forward, sampler) + non_torch + graphs + drafter
        rows.append((weights, forward, sampler, requested, requested - used))
    weights, forward, _, requested, kv = rows[0]  # rank 0's, as vLLM logs them
    sampler = max(r[2] for r in rows)  # the last stage's
    if min(r[4] for r in rows) <= 0:
        short = min(rows, key=lambda r: r[4])
        raise KvdashError(f"no memory is left for the KV cache: {short[3] / GiB:.2f} GiB requested, "
                          f"{(short[3] - short[4]) / GiB:.2f} GiB taken by weights, the profile pass and the runtime; "
                          "raise the memory fraction, use more GPUs or smaller weights")
    cap = vllm_capacity(m, min(r[4] for r in rows), block_size=block_size, max_model_len=max_model_len,
                        tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype, model_dtype=model_dtype.name,
                        max_num_batched_tokens=tokens)
    return Startup(s.engine, total, u, requested, weights, rotary, forward, sampler, context, non_torch, graphs, kv,
                   tokens, seqs, cap, gpu.id, s.tp, FAMILIES[family] if s.engine == "vllm" else None, drafter)


def vllm_startup(m: ModelSpec, gpu, *, utilization: float | None = None, max_model_len: int | None = None,
                 max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 enforce_eager: bool = False, reserve_cuda_graphs: bool = False, family: str = DEFAULT_FAMILY,
                 tp: int = 1, pp: int = 1,
                 weights_dtype: str = "bf16", moe_weights_dtype: str = "", kv_dtype: str = "bf16",
                 expert_parallel: bool = False, block_size: int = DEFAULT_BLOCK_SIZE) -> Startup:
    """engine_startup for vLLM, its settings as `vllm serve` flags (None: vLLM's default on the GPU)."""
    for name, v in (("max_num_batched_tokens", max_num_batched_tokens), ("max_num_seqs", max_num_seqs)):
        if v is not None and (type(v) is not int or not 1 <= v <= 1 << 24):
            raise KvdashError(f"{name} must be an integer from 1 to 16,777,216, not {v!r}")
    s = Scenario(runtime="vllm", weights_dtype=weights_dtype, moe_weights_dtype=moe_weights_dtype, kv_dtype=kv_dtype,
                 tp=tp, pp=pp, expert_parallel=expert_parallel, max_num_batched_tokens=max_num_batched_tokens or 0,
                 max_num_seqs=max_num_seqs or 0)
    return engine_startup(m, s, gpu, fraction=utilization, max_model_len=max_model_len, enforce_eager=enforce_eager,
                          reserve_cuda_graphs=reserve_cuda_graphs, family=family, block_size=block_size)
