"""vLLM capacity arithmetic (vllm/v1/core/kv_cache_utils.py), checked by hand."""

import json

import pytest

from kvdash.capacity import gib_to_bytes, vllm_capacity
from kvdash.cli import main
from kvdash.errors import KvdashError
from kvdash.presets import preset_model

GiB = 1 << 30


def test_llama8b_ten_gib():
    # page = 16 tokens x 8 KV heads x 256 x 2 B = 65,536 B per layer; 10 GiB // 65,536 // 32 = 5,120 blocks
    c = vllm_capacity(preset_model("llama-3.1-8b"), 10 * GiB, max_model_len=8192)
    assert (c.page_bytes, c.gpu_blocks, c.kv_cache_tokens) == (65_536, 5_120, 81_920)
    assert c.max_concurrency == 5_120 / 512 == 10.0
    assert c.log_lines() == [
        "GPU KV cache size: 81,920 tokens",
        "Maximum concurrency for 8,192 tokens per request: 10.00x",
    ]


def test_concurrency_counts_whole_blocks_per_request():
    # 8,001 tokens need ceil(8001 / 16) = 501 blocks, not 8001 / 16.
    c = vllm_capacity(preset_model("llama-3.1-8b"), 10 * GiB, max_model_len=8001)
    assert c.blocks_per_request == 501 and c.max_concurrency == 5_120 / 501


def test_tensor_parallel_shrinks_the_page():
    # Llama-3.1-70B on 4 GPUs: 2 KV heads each; page 16 x 2 x 256 x 2 B = 16,384 B; 80 layers.
    c = vllm_capacity(preset_model("llama-3.1-70b"), 20 * GiB, max_model_len=131072, tp=4)
    assert c.page_bytes == 16_384
    assert c.gpu_blocks == 20 * GiB // 16_384 // 80 == 16_384
    assert c.kv_cache_tokens == 16_384 * 16


def test_gemma2_hybrid_groups():
    # 21 sliding + 21 full layers, equal pages (16 x 8 x 512 x 2 B = 131,072 B): two groups of 21.
    c = vllm_capacity(preset_model("gemma-2-9b"), 10 * GiB, max_model_len=8192)
    assert (c.group_size, c.n_groups) == (21, 2)
    assert c.gpu_blocks == 10 * GiB // 131_072 // 21 == 3_900
    assert c.kv_cache_tokens == 3_900 // 2 * 16 == 31_200
    # per request: full ceil(8192/16) = 512; sliding ceil(min(4095 + 8192, 8192) / 16) + 1 = 513
    assert c.blocks_per_request == 1_025 and c.max_concurrency == 3_900 / 1_025


def test_gemma3_pads_groups():
    # 52 sliding + 10 full: group size 10, so 6 sliding groups (one padded) + 1 full group.
    c = vllm_capacity(preset_model("gemma-3-27b"), 10 * GiB, max_model_len=8192)
    assert (c.group_size, c.n_groups) == (10, 7)
    assert c.kv_cache_tokens == (10 * GiB // 131_072 // 10) // 7 * 16 == 18_720


def test_all_sliding_model_reserves_only_the_window():
    c = vllm_capacity(preset_model("mistral-7b-v0.1"), 10 * GiB, max_model_len=32768, max_num_batched_tokens=2048)
    # ceil((4096 - 1 + 2048) / 16) + 1 = 385 blocks per request, whatever the 32k max length
    assert c.blocks_per_request == 385


def test_mla_latent_pages():
    # DeepSeek-V3: 16 x (512 + 64) x 2 B = 18,432 B per layer page, 61 layers, replicated under TP.
    for tp in (1, 8):
        c = vllm_capacity(preset_model("deepseek-v3"), 10 * GiB, max_model_len=8192, tp=tp)
        assert c.page_bytes == 18_432 and c.gpu_blocks == 10 * GiB // 18_432 // 61 == 9_549


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda m: vllm_capacity(m, -1, max_model_len=10), "non-negative"),
        (lambda m: vllm_capacity(m, 10, block_size=0, max_model_len=10), "block size"),
        (lambda m: vllm_capacity(m, 10, max_model_len=0), "max model length"),
        (lambda m: gib_to_bytes(-3), "between 0"),
        (lambda m: vllm_capacity(m, 10, max_model_len=10, tp=3), "must divide"),
    ],
)
def test_bad_capacity_input(llama8b, call, needle):
    with pytest.raises(KvdashError, match=needle):
        call(llama8b)


def test_cli_capacity_json(capsys):
    rc = main(["capacity", "--preset", "llama-3.1-8b", "--kv-budget-gib", "10", "--max-model-len", "8192", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert (out["gpu_blocks"], out["kv_cache_tokens"], out["max_concurrency"]) == (5_120, 81_920, 10.0)
