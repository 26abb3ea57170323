"""Serving-engine capacity: what vLLM reports at start-up for a KV-cache budget.

vLLM (v1) pages the cache in blocks of `block_size` tokens per layer and logs
"GPU KV cache size: N tokens" and "Maximum concurrency for L tokens per request: X.XXx".
This module reproduces both numbers from a budget in bytes, following
vllm/v1/core/kv_cache_utils.py: layers are grouped by cache kind, every group shares one
block pool, sliding-window groups reserve only the window plus one scheduling step.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.layers import LayerSpec
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario, check_parallel
from kvdash.units import GiB, cdiv

DEFAULT_BLOCK_SIZE = 16
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # vLLM's scheduler default for `vllm serve` on large GPUs
# vLLM groups layers by the largest kind's count when max < 1.5 x min, else by the smallest
# (kv_cache_utils / kv_cache_planning, v0.20 to v0.33; v0.15 used 1.25, v0.11 always the smallest).
GROUPING_RATIO = 1.5


@dataclass(frozen=True)
class Capacity:
    kv_budget_bytes: int
    block_size: int
    page_bytes: int  # one block of one layer
    group_size: int  # layers sharing a block table
    n_groups: int
    gpu_blocks: int  # "num_gpu_blocks"
    kv_cache_tokens: int  # "GPU KV cache size: N tokens"
    max_model_len: int
    blocks_per_request: int
    max_concurrency: float  # "Maximum concurrency for L tokens per request: X.XXx"

    def log_lines(self) -> list[str]:
        return [
            f"GPU KV cache size: {self.kv_cache_tokens:,} tokens",
            f"Maximum concurrency for {self.max_model_len:,} tokens per request: {self.max_concurrency:.2f}x",
        ]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def vllm_capacity(
    m: ModelSpec,
    kv_budget_bytes: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_model_len: int | None = None,
    tp: int = 1,
    kv_dtype: str = "bf16",
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> Capacity:
    """Blocks, tokens and concurrency a vLLM engine reports for `kv_budget_bytes` per GPU."""
    if type(kv_budget_bytes) is not int or kv_budget_bytes < 0:
        raise KvdashError(f"KV budget must be a non-negative integer of bytes, not {kv_budget_bytes!r}")
    if type(block_size) is not int or not 1 <= block_size <= 1 << 16:
        raise KvdashError(f"block size must be an integer from 1 to 65536, not {block_size!r}")
    max_len = max_model_len if max_model_len is not None else m.max_position_embeddings
    if type(max_len) is not int or max_len < 1:
        raise KvdashError("max model length must be a positive integer (the preset has none: pass --max-model-len)")
    check_parallel(m, Scenario(tp=tp))
    kv = get_dtype(kv_dtype)

    # Layers whose specs share a vLLM group key (full and latent attention are both full-attention
    # specs in vLLM) share a block table; each key needs one page size.
    counts: dict[str, int] = {}
    pages: dict[str, int] = {}
    first: dict[str, LayerSpec] = {}
    for spec, n in m.layer_groups:
        key = spec.vllm_group()
        if key is None:
            raise KvdashError(f"vLLM capacity for {spec.label} layers is not modelled")
        counts[key] = counts.get(key, 0) + n
        pages.setdefault(key, block_size * spec.bytes_per_token(kv, tp))
        first.setdefault(key, spec)
        if pages[key] != block_size * spec.bytes_per_token(kv, tp):
            raise KvdashError("models mixing latent and standard attention are not modelled")
    if len(set(pages.values())) > 1:
        raise KvdashError("hybrid layers with different page sizes are not modelled")
    page = next(iter(pages.values()))

    if len(counts) == 1:
        (key, n), = counts.items()
        group_size, groups = n, {key: 1}
    else:  # vLLM: one group per kind when the counts are close, else groups of the smallest count
        lo, hi = min(counts.values()), max(counts.values())
        group_size = hi if hi < GROUPING_RATIO * lo else lo
        groups = {key: cdiv(n, group_size) for key, n in counts.items()}
    n_groups = sum(groups.values())
    blocks = kv_budget_bytes // page // group_size
    per_request = sum(g * first[key].vllm_request_blocks(max_len, block_size, max_num_batched_tokens)
                      for key, g in groups.items())
    return Capacity(
        kv_budget_bytes=kv_budget_bytes,
        block_size=block_size,
        page_bytes=page,
        group_size=group_size,
        n_groups=n_groups,
        gpu_blocks=blocks,
        kv_cache_tokens=blocks // n_groups * block_size,
        max_model_len=max_len,
        blocks_per_request=per_request,
        max_concurrency=blocks / per_request,
    )


def gib_to_bytes(gib: float) -> int:
    if not isinstance(gib, (int, float)) or isinstance(gib, bool) or not 0 <= gib <= 1 << 20:
        raise KvdashError(f"KV budget must be between 0 and 1,048,576 GiB, not {gib!r}")
    return int(gib * GiB)


def engine_kv_budget(m: ModelSpec, s: Scenario, gpu, utilization: float) -> int:
    """The KV budget a vLLM-style engine is left with on `gpu` at `utilization`:
    utilization x usable memory - weights - activation peak - logits - non-torch overhead."""
    if not isinstance(utilization, (int, float)) or not 0 < utilization <= 1:
        raise KvdashError(f"gpu memory utilization must be in (0, 1], not {utilization!r}")
    b = breakdown(m, s.with_(gpu_memory_utilization=0.0), gpu)
    used = b["weights"] + b["activation"] + b["logits"] + b["overhead"]
    return max(0, int(utilization * gpu.usable_bytes) - used)
