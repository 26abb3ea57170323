"""Serving-engine capacity: what vLLM reports at start-up for a KV-cache budget.

vLLM (v1) pages the cache in blocks of `block_size` tokens per layer and logs
"GPU KV cache size: N tokens" and "Maximum concurrency for L tokens per request: X.XXx".
This module reproduces both numbers from a budget in bytes, following
vllm/v1/core/kv_cache_utils.py: layers are grouped by cache kind, every group shares one
block pool, sliding-window groups reserve only the window plus one scheduling step.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.breakdown import pipeline_partition
from kvdash.dtypes import get_dtype
from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.layers import LayerSpec
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import GiB, cdiv

DEFAULT_BLOCK_SIZE = 16
DEFAULT_MAX_NUM_BATCHED_TOKENS = engine_facts("vllm").step_limits(None)[0]  # `vllm serve`'s on large GPUs
# vLLM groups layers by the largest kind's count when max < 1.5 x min, else by the smallest
# (kv_cache_utils / kv_cache_planning, v0.20 to v0.33; v0.15 used 1.25, v0.11 always the smallest).
GROUPING_RATIO = 1.5


@dataclass(frozen=True)
class Capacity:
    kv_budget_bytes: int
    block_size: int  # attention tokens per block (raised for hybrid models, see below)
    page_bytes: int  # one block of one layer (state pages are padded to it)
    group_size: int  # layers sharing a block table
    n_groups: int
    gpu_blocks: int  # "num_gpu_blocks"
    kv_cache_tokens: int  # "GPU KV cache size: N tokens"
    max_model_len: int
    blocks_per_request: int
    max_concurrency: float  # "Maximum concurrency for L tokens per request: X.XXx"
    state_page_bytes: int = 0  # a state layer's per-sequence page before padding (hybrid models)
    requested_block_size: int = 0  # the block size asked for, when vLLM raised it
    pipeline_stage: int = 0  # the stage whose GPU decides (the fewest blocks)

    def log_lines(self) -> list[str]:
        lines = []
        if self.requested_block_size:
            lines.append(f"Setting attention block size to {self.block_size} tokens to ensure that attention page "
                         "size is >= mamba page size.")
        if self.state_page_bytes and self.state_page_bytes != self.page_bytes:
            pct = 100 * (self.page_bytes - self.state_page_bytes) / self.state_page_bytes
            lines.append(f"Padding mamba page size by {pct:.2f}% to ensure that mamba page size and attention page "
                         "size are exactly equal.")
        return [*lines, f"GPU KV cache size: {self.kv_cache_tokens:,} tokens",
                f"Maximum concurrency for {self.max_model_len:,} tokens per request: {self.max_concurrency:.2f}x"]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def vllm_capacity(
    m: ModelSpec,
    kv_budget_bytes: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_model_len: int | None = None,
    tp: int = 1,
    pp: int = 1,
    kv_dtype: str = "bf16",
    model_dtype: str = "bf16",
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> Capacity:
    """Blocks, tokens and concurrency a vLLM engine reports for `kv_budget_bytes` per GPU.

    Hybrid attention + state models follow vLLM's alignment (Platform._align_hybrid_block_size, v0.20+):
    the attention block is raised to a multiple of 16 tokens whose page holds at least one state page,
    and the state page is padded to it; state layers then form groups like any other kind and each
    request takes one state block per group (prefix caching off: mamba_cache_mode "none").
    With pipeline parallelism each GPU holds its stage's layers and the engine keeps the smallest
    block count."""
    if type(kv_budget_bytes) is not int or kv_budget_bytes < 0:
        raise KvdashError(f"KV budget must be a non-negative integer of bytes, not {kv_budget_bytes!r}")
    if type(block_size) is not int or not 1 <= block_size <= 1 << 16:
        raise KvdashError(f"block size must be an integer from 1 to 65536, not {block_size!r}")
    max_len = max_model_len if max_model_len is not None else m.max_position_embeddings
    if type(max_len) is not int or max_len < 1:
        raise KvdashError("max model length must be a positive integer (the preset has none: pass --max-model-len)")
    check_parallel(m, Scenario(tp=tp, pp=pp))
    kv, act = get_dtype(kv_dtype), get_dtype(model_dtype)
    for spec, _ in m.layer_groups:
        if spec.vllm_group() is None:
            raise KvdashError(f"vLLM capacity for {spec.label} layers is not modelled")

    # Hybrid alignment: one attention page must hold the largest state page.
    state_page = max((spec.vllm_page(1, kv, act, tp) for spec, _ in m.layer_groups if not spec.grows), default=0)
    attn_token = {spec.vllm_page(1, kv, act, tp) for spec, _ in m.layer_groups if spec.grows and spec.vllm_group()}
    requested = 0
    if state_page and attn_token:
        if len(attn_token) > 1:
            raise KvdashError("hybrid models whose attention layers differ in page size are not modelled")
        (per_token,) = attn_token
        align = max(KERNEL_BLOCK, block_size)
        needed = align * cdiv(state_page, align * per_token)
        if block_size < needed:
            requested, block_size = block_size, needed
    draft = list(m.draft_model.layers) if m.draft_model is not None else []  # in the same pool (kvdash.speculative)
    stage_caps = [_stage_capacity([m.layers[j] for j in layers] + (draft if i == 0 else []), kv_budget_bytes,
                                  block_size, max_len, tp, kv, act, max_num_batched_tokens, i)
                  for i, layers in enumerate(pipeline_partition(m.n_layers, pp))]
    worst = min(stage_caps, key=lambda c: c.gpu_blocks)
    return Capacity(**{**worst.to_dict(), "state_page_bytes": state_page, "requested_block_size": requested})


KERNEL_BLOCK = 16  # the smallest block the default attention kernels take (FlashAttention: multiples of 16)


def _stage_capacity(layers: list[LayerSpec], budget: int, block_size: int, max_len: int, tp: int, kv, act,
                    max_num_batched_tokens: int, stage: int) -> Capacity:
    # Layers with the same vLLM spec (group key and page) form a bucket. Pages are then unified as
    # vLLM's unify_kv_cache_spec_page_size does: an attention bucket whose page divides the largest
    # takes proportionally more tokens per block (Gemma-4: sliding layers of head size 256 get blocks of
    # 32 tokens beside full layers of 512 in blocks of 16); state pages were already padded to it.
    layers = [spec for spec in layers if spec.vllm_group()]  # "": holds nothing (MLP-only, shared K/V)
    if not layers:
        raise KvdashError("no layer on this GPU holds a cache")
    counts: dict[tuple, int] = {}
    first: dict[tuple, LayerSpec] = {}
    for spec in layers:
        key = (spec.vllm_group(), spec.vllm_page(block_size, kv, act, tp) if spec.grows else 0)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, spec)
    attention = [key for key in counts if first[key].grows]
    if len(attention) == len(counts) > 1 and len({g for g, _ in counts}) == 1:
        # one kind of attention in pages of several sizes (a draft model's smaller heads beside the target's):
        # vLLM's UniformTypeKVCacheSpecs, one group whose block holds every layer's page (kv_cache_utils.py)
        total = sum(n * p for (_, p), n in counts.items())
        blocks = budget // total
        spec = first[attention[0]]
        return Capacity(kv_budget_bytes=budget, block_size=block_size, page_bytes=total, group_size=len(layers),
                        n_groups=1, gpu_blocks=blocks, kv_cache_tokens=blocks * block_size, max_model_len=max_len,
                        blocks_per_request=(per := spec.vllm_request_blocks(max_len, block_size,
                                                                            max_num_batched_tokens)),
                        max_concurrency=blocks / per, pipeline_stage=stage)
    page = max((p for _, p in attention), default=0) or max(spec.vllm_page(block_size, kv, act, tp)
                                                            for spec in layers)
    blocks_of: dict[tuple, int] = {}
    for key in counts:
        if not first[key].grows:
            blocks_of[key] = max_len  # a state block stands for a whole sequence (mamba_block_size)
        elif page % key[1]:
            raise KvdashError("attention layers whose pages do not divide each other are not modelled "
                              f"({key[1]:,} B and {page:,} B per block)")
        else:
            blocks_of[key] = block_size * (page // key[1])

    if len(counts) == 1:
        (key, n), = counts.items()
        group_size, groups = n, {key: 1}
    else:  # vLLM: one group per bucket when the counts are close, else groups of the smallest count
        lo, hi = min(counts.values()), max(counts.values())
        group_size = hi if hi < GROUPING_RATIO * lo else lo
        groups = {key: cdiv(n, group_size) for key, n in counts.items()}
    n_groups = sum(groups.values())
    blocks = budget // page // group_size
    per_request = sum(g * first[key].vllm_request_blocks(max_len, blocks_of[key], max_num_batched_tokens)
                      for key, g in groups.items())
    return Capacity(
        kv_budget_bytes=budget,
        block_size=min(blocks_of[key] for key in attention) if attention else block_size,
        page_bytes=page,
        group_size=group_size,
        n_groups=n_groups,
        gpu_blocks=blocks,
        # "GPU KV cache size" (v0.20's report): blocks per group x the smallest group block
        kv_cache_tokens=blocks // n_groups * min(blocks_of[key] for key in groups),
        max_model_len=max_len,
        blocks_per_request=per_request,
        max_concurrency=blocks / per_request,
        pipeline_stage=stage,
    )


def gib_to_bytes(gib: float) -> int:
    if not isinstance(gib, (int, float)) or isinstance(gib, bool) or not 0 <= gib <= 1 << 20:
        raise KvdashError(f"KV budget must be between 0 and 1,048,576 GiB, not {gib!r}")
    return int(gib * GiB)
