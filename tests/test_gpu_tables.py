"""The per-GPU kernel tables (data/gpu_tables, derived by benchmarks/derive_gpu_tables.py from AIConfigurator's
kernel measurements at ai-dynamo/aiconfigurator@095f58a5) against measurements quoted from the source by hand:
each GPU's weight-streaming bandwidth (a bf16 GEMM of one token by a 16,384 x 16,384 weight, vLLM's table), and
for the H100 a decode-attention kernel and an all-reduce. The tables hold medians over a size bucket, so a single
shape agrees within a few per cent."""

import pytest

from kvdash.gpus import get_gpu, load_gpus
from kvdash.kernels import ceilings, measured_gpus, spec_sheet

# (kvdash GPU, the vLLM version measured, latency in ms of gemm_perf.parquet's bf16 row m = 1, n = k = 16,384)
STREAMING = [
    ("nvidia-a100-sxm4-80gb", "0.14.0", 0.354472),
    ("nvidia-h100-sxm5", "0.19.0", 0.183296),
    ("nvidia-h200-sxm", "0.19.0", 0.134492),
    ("nvidia-b200-hgx", "0.19.0", 0.082914),
    ("nvidia-b300-hgx", "0.19.0", 0.083199),
    ("nvidia-gb200", "0.19.0", 0.090690),
    ("nvidia-l40s", "0.14.0", 0.719538),
]
WEIGHT = 2 * 16_384 * 16_384  # 536,870,912 B of bf16 weight, read once for one token


@pytest.mark.parametrize(("gpu_id", "version", "latency_ms"), STREAMING)
def test_each_gpu_streams_weights_as_measured(gpu_id, version, latency_ms):
    # H100: 536,870,912 B in 0.183296 ms is 2.93 TB/s, 87 % of the 3.35 TB/s spec; H200 3.99 of 4.8 TB/s
    c = ceilings(get_gpu(gpu_id), "vllm")
    assert c.measured and f"vllm {version}" in c.source
    assert c.gemm_s(1, 16_384, 16_384, "bf16", WEIGHT) == pytest.approx(latency_ms * 1e-3, rel=0.10)


def test_h100_decode_attention_and_all_reduce_as_measured():
    c = ceilings(get_gpu("nvidia-h100-sxm5"), "vllm")
    # generation_attention_perf.parquet: batch 64, 32 query and 8 K/V heads of 128, bf16 cache, 4,096 tokens
    # (step 4,095): 64 x 4,096 x 8 x 128 x 2 x 2 B = 2^30 B read in 0.360373 ms (2.98 TB/s)
    assert c.decode_attention_s(2**30, "bf16") == pytest.approx(0.360373e-3, rel=0.02)
    # custom_allreduce_perf.parquet, vLLM's CUDA-graph all-reduce on 2 GPUs: 1,048,576 bf16 values (2 MiB) in
    # 0.012364 ms
    assert c.allreduce_s(2 * 1_048_576, 2, 450e9, 10e-6) == pytest.approx(0.012364e-3, rel=0.01)


def test_tables_cover_the_gpus_the_issue_names_and_others_use_the_spec_sheet():
    assert {"nvidia-a100-sxm4-80gb", "nvidia-h100-sxm5", "nvidia-h200-sxm", "nvidia-b200-hgx", "nvidia-b300-hgx",
            "nvidia-gb200", "nvidia-l40s"} <= set(measured_gpus())
    for engine in ("vllm", "sglang", "trtllm"):
        assert ceilings(get_gpu("nvidia-h100-sxm5"), engine).measured
    l4 = get_gpu("nvidia-l4")
    c = ceilings(l4, "vllm")
    assert not c.measured and "spec sheet" in c.source and c == spec_sheet(l4, "vllm")
    # a decode of 1 GB on the spec sheet: bytes / (bandwidth x 0.8)
    assert c.decode_attention_s(1e9, "bf16") == pytest.approx(1e9 / (l4.bandwidth_gbps * 1e9 * 0.8))
    assert not ceilings(get_gpu("nvidia-h100-sxm5"), "").measured  # no engine: kvdash's own decoder
    assert set(measured_gpus()) <= set(load_gpus())


def test_h100_fused_moe_as_measured_by_its_experts_size():
    # moe_perf.parquet (TensorRT-LLM 1.2.0rc5, block-scaled fp8, balanced routing), both at 16 tokens:
    # - hidden 4,096, 8 experts of 14,336 split over tp 16 (896 wide) and ep 8: one local expert, 4 (token,
    #   expert) pairs, 3 x 4,096 x 896 = 11,010,048 parameters touched, in 0.027408 ms;
    # - hidden 7,168, 256 experts of 2,048 over tp 2 (1,024) and ep 128: two local experts, both touched by
    #   16 x 8 / 128 = 1 pair on average (1 - (1/2)^1 of 2 = 1 expert, 3 x 7,168 x 1,024 = 22,020,096
    #   parameters), in 0.048208 ms.
    # At decode sizes a fused MoE is mostly a floor, so its share of peak depends on the experts' size: one share
    # per token count would put these two 2x apart in bytes and in time alike.
    c = ceilings(get_gpu("nvidia-h100-sxm5"), "trtllm")
    for pairs, params, latency_ms in ((4, 11_010_048, 0.027408), (1, 22_020_096, 0.048208)):
        # FLOPs: every pair through the one touched expert's shard; bytes: its parameters at 1 B (fp8)
        t = c.moe_s(16, 2.0 * pairs * params, params, params, "fp8-block")
        assert t == pytest.approx(latency_ms * 1e-3, rel=0.20)


def test_b200_nvfp4_gemm_as_measured_with_its_scales():
    # gemm_perf.parquet (vLLM 0.19.0, B200), nvfp4, m = 1, n = k = 16,384: 0.051309 ms. The weight kvdash gives
    # the kernel is NVFP4 as stored: 16,384^2 / 2 = 134,217,728 B of values + one fp8 scale per 16 values
    # (16,777,216 B) + 8 B of per-tensor scalars = 150,994,952 B. A table derived from the values alone would
    # charge this kernel 12.5 % more than it was measured to take.
    c = ceilings(get_gpu("nvidia-b200-hgx"), "vllm")
    assert c.gemm_s(1, 16_384, 16_384, "nvfp4", 150_994_952) == pytest.approx(0.051309e-3, rel=0.05)


def test_latent_decode_is_timed_by_a_kernel_not_a_host_floor():
    # One sequence of 1,024 tokens of DeepSeek's latent cache (576 values of 2 B a token) on an H200: 1,179,648 B.
    # generation_mla_perf.parquet times it at 0.028 ms on TensorRT-LLM 1.2.0rc5 and 0.017 ms on SGLang 0.5.9, but
    # 0.15 ms on vLLM 0.14.0's legacy table, whose 140-190 us floor holds from 1 to 128 sequences (host time a
    # CUDA-graph step does not pay); that table is left out, so vLLM is timed by its own decode-attention kernels.
    nbytes = 1024 * 576 * 2
    for engine in ("vllm", "trtllm", "sglang"):
        c = ceilings(get_gpu("nvidia-h200-sxm"), engine)
        assert c.decode_attention_s(nbytes, "bf16", latent=True) < 0.05e-3


def test_decode_attention_depends_on_the_query_heads_per_kv_head():
    # generation_attention_perf.parquet (TensorRT-LLM 1.2.0rc5, H100, fp8 cache): 64 sequences of 4,096 tokens
    # (step 4,095) of one K/V head of 128: 64 x 4,096 x 128 x 2 x 1 B = 67,108,864 B read either way, in 0.029467 ms
    # with 8 query heads and 1.260891 ms with 64 (the kernel turns compute-bound). One share per byte count would
    # time both alike.
    c = ceilings(get_gpu("nvidia-h100-sxm5"), "trtllm")
    assert c.decode_attention_s(67_108_864, "fp8", group=8) == pytest.approx(0.029467e-3, rel=0.2)
    assert c.decode_attention_s(67_108_864, "fp8", group=64) == pytest.approx(1.260891e-3, rel=0.2)


def _experts(hidden: int, inter: int, experts: int, topk: int, tokens: int, fmt: str) -> tuple:
    """moe_s's arguments for one GPU holding every expert whole: FLOPs, touched bytes and parameters (uniform
    routing), the bytes as kvdash.dtypes stores the format."""
    from kvdash.dtypes import get_dtype

    pairs = tokens * topk
    touched = experts * (1 - (1 - 1 / experts) ** pairs)
    numel = 3 * hidden * inter
    one = get_dtype(fmt).matrix_bytes(2 * inter, hidden) + get_dtype(fmt).matrix_bytes(hidden, inter)
    return 2.0 * pairs * numel, touched * one, touched * numel


def test_grouped_int4_experts_use_the_int4_moe_table():
    # moe_perf.parquet (vLLM 0.19.0, H200, int4_wo, balanced): Kimi-K2's shape, hidden 7,168, 384 experts of 2,048
    # split 8 ways (256 wide), top 8, 4 tokens: 0.130368 ms (vllm_marlin_int4_moe). Kimi's checkpoint groups its
    # int4 by 32 (9 % more scale bytes than the group of 128 measured), which must still find the int4 table: the
    # 16-bit kernels' table would time it at about 0.03 ms.
    c = ceilings(get_gpu("nvidia-h200-sxm"), "vllm")
    t = c.moe_s(4, *_experts(7168, 256, 384, 8, 4, "int4-g32"), "int4-g32")
    assert 0.10e-3 < t < 0.18e-3


def test_mxfp4_experts_are_not_timed_by_a_table_that_ignores_expert_parallelism():
    # vLLM 0.19.0's MXFP4 MoE rows on B200 take 0.205 ms for gpt-oss's shape (hidden 2,880, 128 experts of 2,880, top
    # 4) at 4 tokens whatever the expert parallelism (1 to 32), so they are left out; vLLM 0.24.0's serving kernel
    # for them (FlashInfer TRT-LLM MXFP4 x bf16) measures 0.0721 ms at ep 1. kvdash answers from the B200's NVFP4 MoE
    # table (a 4-bit kernel of the same family).
    c = ceilings(get_gpu("nvidia-b200-hgx"), "vllm")
    assert c.moe_s(4, *_experts(2880, 2880, 128, 4, 4, "mxfp4"), "mxfp4") == pytest.approx(0.0721e-3, rel=0.35)
