"""What each serving engine does by default: facts read in its source, apart from fitted constants.

Per engine and GPU: the token budget of one step and the sequences it runs at once, the share of memory it
takes, how it decodes latent attention, and how it admits requests. All three overlap the CPU's scheduling of
step n + 1 with the GPU's step n by default (vLLM from 0.14); what a step takes beyond its kernels despite that
(kvdash.step's per-step, per-layer and per-sequence overheads) is fitted, not derived from it. Each rule cites
the release it was read in. The fitted speed profiles (data/engines/*.json) hold only fitted numbers; no memory
answer reads them.

Read in (release archives and the public source):
- vLLM v0.11.0 and v0.34.0, `vllm serve` (UsageContext.OPENAI_API_SERVER): engine/arg_utils.py
  get_batch_defaults: GPUs whose NVML total is 70 GiB or more, and whose name has no "a100", take
  8,192 tokens and 1,024 sequences a step, the rest 2,048 and 256 (v0.34.0 adds 16,384 tokens at 160 GiB
  or more; not modelled, see FACTS); max_num_seqs is then capped at max_num_batched_tokens. Chunked prefill
  on. gpu_memory_utilization 0.9 (config/cache.py, v0.11.0; 0.92 later, see kvdash.vllm_startup's
  families). Logits all-gathered to every tensor-parallel rank (platforms/interface.py use_all_gather,
  True under V1; layers/logits_processor.py). One token budget per step for decodes and prompt chunks
  alike (v1/core/sched/scheduler.py: running requests first, then waiting ones while tokens remain). MLA
  decodes with absorbed weights (queries and keys 576 wide, values 512: layers/attention/mla_attention.py
  "_forward_decode", FlashMLA head_dim_v = kv_lora_rank) and prefills per head (192 + 128). Scheduling overlaps
  the GPU's step from v0.14.0 (b17039bc, PR #27614: config/scheduler.py's async_scheduling defaults to None, which
  config/vllm.py turns on for the mp and uni executors unless a drafter other than EAGLE/MTP runs); v0.11.2 to
  v0.13.0 default it off.
- SGLang 0.5.6, srt/server_args.py: GPU memory as nvidia-smi's total in MiB; chunked_prefill_size 2,048
  below 35 GiB, 4,096 below 60 GiB, 8,192 below 160 GiB, 16,384 above; cuda_graph_max_bs by the same
  tiers and tp; mem_fraction_static = (memory - reserved) / memory, reserved = 512 MiB + 1.5 x
  max(chunk, 2,048) MiB + 2 x cuda_graph_max_bs MiB + tp x pp / 8 GiB (at least 10 GiB above 60 GiB);
  max_running_requests from the KV pool (model_runner); the overlap schedule on
  (disable_overlap_schedule False); prefill first, in batches of their own: Scheduler.get_next_batch_to_run
  runs a new prefill batch whenever one is waiting and the running decodes only when none is
  (managers/scheduler.py, 0.5.1), enable_mixed_chunk False; a prefill batch holds chunked_prefill_size
  tokens in all (PrefillAdder's rem_chunk_tokens shrinks with each request, managers/schedule_policy.py);
  MLA decodes absorbed (models/deepseek_v2.py forward_absorb). The KV pool
  is mem_fraction_static of the total less what is in use after loading (model_runner.profile_max_num_token:
  rest = available - total x (1 - mem_fraction_static)): no profiling forward.
- TensorRT-LLM (PyTorch backend, `trtllm-serve`, commands/serve.py at 00209af1, llmapi/llm_args.py at
  fcd3f316, builder.py BuildConfig at 008b2b8d): max_num_tokens 8,192 and max_batch_size 2,048;
  free_gpu_memory_fraction 0.9 of the memory free after the model and a profiling forward; the overlap
  scheduler on (disable_overlap_scheduler False); in-flight batching: context and generation requests in one
  step up to max_num_tokens (_torch/pyexecutor/scheduler.py ScheduledRequests); chunked prefill off; capacity scheduler
  GUARANTEED_NO_EVICT (a request is admitted only with room for its whole isl + osl).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.errors import KvdashError
from kvdash.units import GiB, MiB

#: Bytes per logit of vLLM's sampler pass: the fp32 logits of the whole vocabulary and the top-k / top-p sort
#: buffers. Measured, not derived: fitted to the vLLM 0.19 start-up logs whose peak is the sampler's
#: (tests/data/vllm_logs); taken for the other engines too, whose sampler was not measured.
SAMPLER_BYTES_PER_LOGIT = 15
#: What the process holds outside torch's allocator once the engine is up (NCCL and custom all-reduce
#: buffers, cuBLAS and Triton modules), per GPU. Measured on vLLM 0.19's H100 logs: 0.25 GiB on one GPU,
#: 2.1 GiB at tp >= 2 (NVLink all-reduce buffers), 0.07 GiB per GPU of a pipeline; not measured for the
#: other engines, which hold the same kinds of buffers.
NON_TORCH = {"tp1": int(0.25 * GiB), "tp": int(2.1 * GiB), "pp": int(0.07 * GiB)}
NON_TORCH_GPU = "nvidia-h100-sxm5"  # the GPU those constants were measured on


@dataclass(frozen=True)
class EngineFacts:
    key: str
    label: str
    mla_absorbed_decode: bool  # latent attention decodes in the latent space (FlashMLA / FlashInfer MLA)
    chunked_prefill: bool  # a prompt longer than the step budget is split across steps
    mixed_batches: bool  # prompt tokens ride in the running decodes' steps (else prefill steps of their own)
    reserve_full_length: bool  # a request is admitted only with cache room for its whole isl + osl
    budget_name: str  # what the engine calls its per-step token budget
    source: str
    # disaggregated: the prefill worker samples the first token and it travels with the cache, so the decode
    # worker streams it as it takes the request (SGLang: disaggregation/decode.py commits the prefill's output id);
    # else the decode worker computes it in its first step (vLLM's NIXL proxy sends the prefill with max_tokens 1
    # and the scheduler recomputes the last prompt token: v1/core/sched/scheduler.py _update_waiting_for_remote_kv;
    # TensorRT-LLM's not read, so timed as vLLM's, the slower)
    prefill_first_token: bool = False

    def step_limits(self, gpu) -> tuple[int, int]:
        """(tokens a step processes at most, sequences it runs at once; 0: as many as the KV pool holds),
        the engine's defaults on `gpu`; without a GPU, its defaults on the largest GPUs it tiers."""
        gib = gpu.usable_bytes / GiB if gpu is not None else float("inf")
        if self.key == "vllm":
            large = gib >= 70 and (gpu is None or "a100" not in gpu.name.lower())
            return (8192, 1024) if large else (2048, 256)
        if self.key == "sglang":
            return _sglang_tier(gib)[0], 0
        return 8192, 2048  # TensorRT-LLM: BuildConfig's max_num_tokens and max_batch_size

    def limits_basis(self, gpu) -> str:
        """Where step_limits' numbers come from, in words."""
        where = f"on {gpu.name}" if gpu is not None else "with no GPU chosen: as on its largest GPUs"
        return f"{self.label}'s default {self.budget_name} {where}"

    def memory_fraction(self, gpu, tp: int = 1, pp: int = 1) -> float:
        """The share of memory the engine's KV pool may fill: vLLM's gpu_memory_utilization (of the total),
        SGLang's mem_fraction_static (of the total), TensorRT-LLM's free_gpu_memory_fraction (of what is free
        after the model and a profiling forward)."""
        if self.key == "sglang":
            mib = gpu.usable_bytes / MiB
            chunk, graph_bs = _sglang_tier(mib * MiB / GiB)
            graph = graph_bs[0] if tp < 4 else graph_bs[1]
            reserved = 512 + max(chunk, 2048) * 1.5 + graph * 2 + tp * pp / 8 * 1024
            if mib > 60 * 1024:
                reserved = max(reserved, 10 * 1024)
            return round((mib - reserved) / mib, 3)
        return 0.9


def _sglang_tier(gib: float) -> tuple[int, tuple[int, int]]:
    """SGLang 0.5.6's (chunked_prefill_size, cuda_graph_max_bs at tp < 4 and at tp >= 4) by GPU memory."""
    for below, chunk, graphs in ((20, 2048, (8, 80)), (35, 2048, (24, 80)), (60, 4096, (32, 160)),
                                 (90, 8192, (256, 512)), (160, 8192, (256, 512))):
        if gib < below:
            return chunk, graphs
    return 16384, (512, 512)


FACTS = {
    "vllm": EngineFacts("vllm", "vLLM", mla_absorbed_decode=True, chunked_prefill=True,
                        mixed_batches=True,
                        reserve_full_length=False, budget_name="max_num_batched_tokens",
                        source="vLLM v0.11.0 (engine/arg_utils.py get_batch_defaults, config/cache.py)"),
    "sglang": EngineFacts("sglang", "SGLang", mla_absorbed_decode=True, chunked_prefill=True,
                          mixed_batches=False,
                          reserve_full_length=False, budget_name="chunked_prefill_size",
                          source="SGLang 0.5.6 (srt/server_args.py)", prefill_first_token=True),
    "trtllm": EngineFacts("trtllm", "TensorRT-LLM", mla_absorbed_decode=True,
                          chunked_prefill=False, mixed_batches=True, reserve_full_length=True,
                          budget_name="max_num_tokens",
                          source="TensorRT-LLM PyTorch backend (commands/serve.py, llmapi/llm_args.py)"),
}
ENGINES = tuple(FACTS)


def engine_facts(key: str) -> EngineFacts:
    try:
        return FACTS[key]
    except (KeyError, TypeError):
        raise KvdashError(f"unknown engine {key!r}; choose one of {', '.join(FACTS)}") from None


def non_torch_bytes(tp: int, pp: int) -> int:
    """Memory outside torch's allocator per GPU once an engine is up (measured; NON_TORCH)."""
    return NON_TORCH["tp"] if tp > 1 else NON_TORCH["pp"] if pp > 1 else NON_TORCH["tp1"]
