"""vLLM's start-up memory budget from scratch: what is left for the KV cache on each GPU.

vLLM requests `gpu_memory_utilization` x the device's total memory (torch.cuda.mem_get_info) and
subtracts what the model needs besides its cache, measured by a profile pass (read in vLLM's
gpu_worker.determine_available_memory and gpu_model_runner.profile_run, 0.6 to 0.33):

- weights: the growth of torch's allocation across load_model (the weights and the model's buffers,
  of which the rotary cos/sin cache is the one that counts);
- the activation peak of the profile pass: one forward of `max_num_batched_tokens` tokens (attention is
  skipped in the V1 engine), then, on the last pipeline stage, the sampler on the last position of
  `min(max_num_seqs, max_num_batched_tokens)` requests: fp32 logits of the full vocabulary with top-k /
  top-p sorting buffers, while the forward's hidden states are still held, and so is the fused-MoE
  workspace of a mixture-of-experts model (intermediate_cache13, max(2 I, hidden) per routed token,
  beside intermediate_cache2, I per routed token), which vLLM keeps between calls;
- non-torch memory: what the process holds outside torch's allocator (NCCL and custom all-reduce
  buffers under tensor parallelism, cuBLAS and Triton modules);
- CUDA-graph memory only where the run asks vLLM to estimate it first (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1,
  0.18+; 0 with --enforce-eager); otherwise graphs are captured after the cache is allocated, out of the
  (1 - utilization) headroom (the 0.19 and 0.31 logs kept here: the budget closes without them).

The sampler's bytes per logit and the non-torch memory are measured, not derived: the sort path's
buffers differ by version and backend (FlashInfer or native), and the all-reduce buffers by
interconnect. Both are fitted to the public start-up logs kept in tests/data/vllm_logs/.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.breakdown import activation_dtype, activation_phases, scenario_stages
from kvdash.capacity import DEFAULT_BLOCK_SIZE, Capacity, vllm_capacity
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import GiB, cdiv


@dataclass(frozen=True)
class VllmFamily:
    key: str
    label: str
    default_utilization: float
    sampler_bytes_per_logit: int  # measured: see the module docstring
    non_torch_tp1: int  # measured: one GPU
    non_torch_tp: int  # measured: per GPU of a tensor-parallel group (NVLink, custom all-reduce)
    non_torch_pp: int  # measured: per GPU of a pipeline without tensor parallelism


FAMILIES = {
    # V1 engine, the sampler profiled (0.8+). Sampler: 15 B per logit, fitted on the 0.19 logs whose peak is
    # the sampler's (Llama-3.1-8B, Qwen2.5-7B, Qwen3-8B, Gemma-2, Phi-4). Non-torch: 0.25 GiB on one GPU,
    # 2.1 GiB per GPU at tp >= 2 on H100 (NCCL + custom all-reduce), 0.07 GiB per GPU of a pipeline (0.19 logs).
    "0.8-0.19": VllmFamily("0.8-0.19", "vLLM 0.8 – 0.19", 0.90, 15, int(0.25 * GiB), int(2.1 * GiB), int(0.07 * GiB)),
    # 0.20 raised the default utilization to 0.92; the rest as measured on 0.19.
    "0.20+": VllmFamily("0.20+", "vLLM 0.20 and later", 0.92, 15, int(0.25 * GiB), int(2.1 * GiB), int(0.07 * GiB)),
}
DEFAULT_FAMILY = "0.20+"
MEASURED_ON = "nvidia-h100-sxm5"  # the GPU of the logs the non-torch constants were fitted on
# CUDA-graph pool per GPU, vLLM 0.19's own estimates for 2-72 B models on H100: 0.52 to 1.82 GiB, median
# 0.84 GiB (tests/data/vllm_logs). A measured typical value, not a formula: warned about where used.
TYPICAL_CUDA_GRAPH_BYTES = int(0.84 * GiB)


@dataclass(frozen=True)
class Startup:
    family: VllmFamily
    total_bytes: int  # the device's memory as CUDA reports it
    utilization: float
    requested_bytes: int
    weights_bytes: int
    rotary_cache_bytes: int  # part of weights_bytes: the cos/sin table vLLM builds at load
    forward_peak_bytes: int  # the profile's forward of max_num_batched_tokens tokens
    sampler_peak_bytes: int  # the profile's sampler pass, with the hidden states and the MoE workspace held
    non_torch_bytes: int
    cuda_graph_bytes: int
    rank0_kv_bytes: int  # the first GPU's budget: what vLLM's log line shows
    max_num_batched_tokens: int
    max_num_seqs: int
    capacity: Capacity
    gpu_id: str = ""
    tp: int = 1

    @property
    def activation_peak_bytes(self) -> int:
        return max(self.forward_peak_bytes, self.sampler_peak_bytes)

    @property
    def kv_budget_bytes(self) -> int:
        return self.capacity.kv_budget_bytes

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.tp > 1 and self.gpu_id != MEASURED_ON:
            out.append(f"the {self.non_torch_bytes / GiB:.2f} GiB per GPU outside torch (NCCL and custom all-reduce "
                       "buffers) was measured on H100 NVLink groups; other GPUs and interconnects differ (public "
                       "A100 PCIe logs show far less), so the KV budget may differ by up to that much")
        if self.cuda_graph_bytes:
            out.append(f"CUDA-graph memory is a typical value ({TYPICAL_CUDA_GRAPH_BYTES / GiB:.2f} GiB; vLLM's own "
                       "estimates run from 0.5 to 1.8 GiB by model size): the KV budget may differ by that much")
        return out

    def log_lines(self) -> list[str]:
        gib = GiB
        return [f"Model loading took {self.weights_bytes / gib:.2f} GiB memory",
                f"Requested memory: {self.utilization:.6f} (util), {self.requested_bytes / gib:.2f} GiB",
                f"Available KV cache memory: {self.rank0_kv_bytes / gib:.2f} GiB",
                *self.capacity.log_lines()]

    def to_dict(self) -> dict:
        return {"vllm_family": self.family.key, "total_bytes": self.total_bytes, "utilization": self.utilization,
                "requested_bytes": self.requested_bytes, "weights_bytes": self.weights_bytes,
                "rotary_cache_bytes": self.rotary_cache_bytes, "forward_peak_bytes": self.forward_peak_bytes,
                "sampler_peak_bytes": self.sampler_peak_bytes, "activation_peak_bytes": self.activation_peak_bytes,
                "non_torch_bytes": self.non_torch_bytes, "cuda_graph_bytes": self.cuda_graph_bytes,
                "kv_budget_bytes": self.kv_budget_bytes, "rank0_kv_bytes": self.rank0_kv_bytes,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "max_num_seqs": self.max_num_seqs, "log_lines": self.log_lines(), "warnings": self.warnings,
                **{f"capacity_{k}": v for k, v in self.capacity.to_dict().items()}}

    def terms(self) -> list[tuple[str, int, str]]:
        """(term, bytes, how it is known) for a table: the requested memory and what it is split into."""
        return [("requested", self.requested_bytes, f"{self.utilization} × {self.total_bytes:,} B (CUDA total)"),
                ("weights", self.weights_bytes, f"computed; includes a {self.rotary_cache_bytes:,} B rotary cache"),
                ("activation peak", self.activation_peak_bytes,
                 f"max(forward of {self.max_num_batched_tokens:,} tokens {self.forward_peak_bytes:,} B, sampler on "
                 f"{self.max_num_seqs:,} requests {self.sampler_peak_bytes:,} B)"),
                ("non-torch", self.non_torch_bytes, "measured constant (vLLM logs)"),
                ("CUDA graphs", self.cuda_graph_bytes,
                 "typical measured value" if self.cuda_graph_bytes else "captured after the cache, not subtracted"),
                ("KV cache", self.kv_budget_bytes, "what is left")]


def vllm_startup(m: ModelSpec, gpu, *, utilization: float | None = None, max_model_len: int | None = None,
                 max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 enforce_eager: bool = False, reserve_cuda_graphs: bool = False, family: str = DEFAULT_FAMILY,
                 tp: int = 1, pp: int = 1,
                 weights_dtype: str = "bf16", moe_weights_dtype: str = "", kv_dtype: str = "bf16",
                 expert_parallel: bool = False, block_size: int = DEFAULT_BLOCK_SIZE) -> Startup:
    """The KV budget vLLM is left with per GPU, and the blocks and tokens it reports from it."""
    from kvdash.serving import batch_limits, engine_profile  # the engine's step limits by GPU

    if family not in FAMILIES:
        raise KvdashError(f"vLLM version family must be one of {', '.join(FAMILIES)}, not {family!r}")
    fam = FAMILIES[family]
    u = fam.default_utilization if utilization is None else utilization
    if not isinstance(u, (int, float)) or isinstance(u, bool) or not 0 < u <= 1:
        raise KvdashError(f"gpu memory utilization must be in (0, 1], not {u!r}")
    tokens, seqs = batch_limits(engine_profile("vllm"), gpu)
    tokens = tokens if max_num_batched_tokens is None else max_num_batched_tokens
    seqs = seqs if max_num_seqs is None else max_num_seqs
    for name, v in (("max_num_batched_tokens", tokens), ("max_num_seqs", seqs)):
        if type(v) is not int or not 1 <= v <= 1 << 24:
            raise KvdashError(f"{name} must be an integer from 1 to 16,777,216, not {v!r}")
    s = Scenario(batch=1, prompt_tokens=tokens, weights_dtype=weights_dtype, moe_weights_dtype=moe_weights_dtype,
                 kv_dtype=kv_dtype, tp=tp, pp=pp, expert_parallel=expert_parallel, runtime_overhead_bytes=0)
    check_parallel(m, s)
    model_dtype = activation_dtype(get_dtype(weights_dtype))
    act = model_dtype.nbytes(1, 1)
    # vLLM's rotary embedding keeps a [max_position, rotary_dim] cos/sin table in the model's dtype
    rotary = (m.max_position_embeddings or 0) * max((sp.rotary_dim for sp in m.layers), default=0) * act
    non_torch = fam.non_torch_tp if tp > 1 else fam.non_torch_pp if pp > 1 else fam.non_torch_tp1
    graphs = TYPICAL_CUDA_GRAPH_BYTES if reserve_cuda_graphs and not enforce_eager else 0
    requested = int(u * gpu.usable_bytes)
    # Each pipeline stage sizes its own cache; the engine keeps the fewest blocks. The log line is rank 0's.
    stage_rows = []
    for st in scenario_stages(m, s):
        weights = st.weight_bytes + st.encoder_bytes + rotary  # each rank builds its rotary cache
        forward = activation_phases(st, 1, tokens, tokens, 0)[0]
        sampler = 0
        if st.logits_per_seq:  # the last stage: full-vocabulary logits (gathered across the tp group)
            sampler = min(seqs, tokens) * m.vocab_size * fam.sampler_bytes_per_logit + tokens * m.hidden_size * act
            if any(m.moe_mask[j] for j in st.layers):  # fused-MoE workspace, kept between calls
                e = cdiv(m.expert_intermediate_size, tp)
                sampler += tokens * m.experts_per_token * (max(2 * e, m.hidden_size) + e) * act
        stage_rows.append((weights, forward, sampler, requested - weights - max(forward, sampler) - non_torch - graphs))
    weights, forward, _, kv = stage_rows[0]  # rank 0's, as vLLM logs them
    sampler = max(r[2] for r in stage_rows)  # the last stage's
    if min(r[3] for r in stage_rows) <= 0:
        short = min(stage_rows, key=lambda r: r[3])
        raise KvdashError(f"no memory is left for the KV cache: {requested / GiB:.2f} GiB requested, "
                          f"{(requested - short[3]) / GiB:.2f} GiB taken by weights, the profile pass and the runtime; "
                          "raise gpu_memory_utilization, use more GPUs or smaller weights")
    cap = vllm_capacity(m, min(r[3] for r in stage_rows), block_size=block_size, max_model_len=max_model_len,
                        tp=tp, pp=pp, kv_dtype=kv_dtype, model_dtype=model_dtype.name,
                        max_num_batched_tokens=tokens)
    return Startup(fam, gpu.usable_bytes, u, requested, weights, rotary, forward, sampler, non_torch, graphs, kv,
                   tokens, seqs, cap, gpu.id, tp)
