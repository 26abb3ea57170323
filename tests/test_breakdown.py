"""The breakdown against independent hand calculations (arithmetic in the comments)."""

import pytest

from kvdash.breakdown import breakdown, held_full, held_sliding, pipeline_partition
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.params import embedding_params, layer_params
from kvdash.presets import preset_model
from kvdash.report import formulas
from kvdash.scenario import DEFAULT_RUNTIME_OVERHEAD, Scenario

# Llama-3.1-8B by hand: per layer q 4096x4096, k and v 4096x1024 each, o 4096x4096, MLP 3 x 4096x14336.
LLAMA8B_LINEAR = 32 * (4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 14336)
LLAMA8B_OTHER = 2 * 128256 * 4096 + (2 * 32 + 1) * 4096  # untied embedding + head, 65 RMSNorms


def test_hand_counts_add_up(llama8b):
    assert LLAMA8B_LINEAR == 6_979_321_856
    assert LLAMA8B_LINEAR + LLAMA8B_OTHER == llama8b.params == 8_030_261_248


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("bf16", 2 * 8_030_261_248),
        ("fp32", 4 * 8_030_261_248),
        ("fp8", LLAMA8B_LINEAR + 2 * LLAMA8B_OTHER),  # embeddings and norms stay bf16
        ("int8", LLAMA8B_LINEAR + LLAMA8B_LINEAR // 128 * 2 + 2 * LLAMA8B_OTHER),
        ("int4", LLAMA8B_LINEAR // 2 + LLAMA8B_LINEAR // 128 * 2 + 2 * LLAMA8B_OTHER),
    ],
)
def test_weight_bytes_per_dtype(llama8b, dtype, expected):
    assert breakdown(llama8b, Scenario(weights_dtype=dtype))["weights"] == expected


@pytest.mark.parametrize(
    ("dtype", "per_token"),
    [
        ("fp32", 32 * 8 * 256 * 4),
        ("bf16", 32 * 8 * 256 * 2),
        ("fp8", 32 * 8 * 256),
        ("int8", 32 * 8 * 2 * (128 + 2)),  # one fp16 scale per token, head and K/V
        ("int4", 32 * 8 * 2 * (64 + 2)),
    ],
)
def test_kv_dtypes(llama8b, dtype, per_token):
    b = breakdown(llama8b, Scenario(batch=3, prompt_tokens=1000, kv_dtype=dtype))
    assert b.kv_bytes_per_token == per_token
    assert b["kv_cache"] == 3 * 1000 * per_token


def test_generated_tokens_count_toward_the_cache(llama8b):
    b = breakdown(llama8b, Scenario(batch=2, prompt_tokens=1000, new_tokens=24))
    assert b["kv_cache"] == 2 * 1024 * 131_072


def test_fused_activation_peak(llama8b):
    # per token: residual + normed copy 2 x 4096 x 2 B = 16,384; MLP gate, up, product 3 x 14336 x 2 B
    # = 86,016 (wider than attention's (4096 + 2048 + 4096) x 2 B = 20,480).
    # (vLLM's sampler after that step, 4,096 x 4,096 x 2 B of hidden states + 128,256 logits x 15 B, is smaller)
    b = breakdown(llama8b, Scenario(prompt_tokens=4096))
    assert b["activation"] == 4096 * (16_384 + 86_016) == 419_430_400


def test_eager_attention_materialises_scores(llama8b):
    # transformers' eager_attention_forward: masked scores (2 B) beside softmax(dtype=float32), which
    # converts to an fp32 copy (4 B) and writes an fp32 result (4 B): 32 heads x 4096 x 4096 x 10 B.
    scores = 32 * 4096 * 4096 * 10
    # repeat_kv widens K/V to 32 heads: (4096 q + 32 x 256 K/V + 4096 out) x 2 B = 32,768 B per token;
    # four residual-stream tensors (embedding output, layer input, residual, normed) 4 x 4096 x 2 B;
    # one additive bf16 causal mask 4096 x 4096 x 2 B; per token an int64 position id and the rotary cos
    # and sin (2 x 128 x 2 B) = 520 B.
    b = breakdown(llama8b, Scenario(prompt_tokens=4096, runtime="hf-eager"))
    assert b["activation"] == 4096 * (32_768 + 520) + 4096 * 32_768 + scores + 4096 * 4096 * 2 == 5_672_828_928


def test_hf_sdpa_prefills_the_whole_prompt_with_four_residual_copies(llama8b):
    # No mask (is_causal), no score matrix: 4 x 8,192 B residual-stream copies + 520 B of positions + the
    # MLP's 86,016 B per token, for all 4096 tokens of the batch (generate() has no token budget; one is refused).
    b = breakdown(llama8b, Scenario(batch=2, prompt_tokens=4096, runtime="hf-sdpa"))
    assert b["activation"] == 2 * 4096 * (4 * 8192 + 520 + 86_016) == 977_338_368
    with pytest.raises(KvdashError, match="serving engine's step limits"):
        Scenario(runtime="hf-sdpa", max_num_batched_tokens=512)


def test_hf_decode_holds_two_copies_of_a_growing_layer(llama8b):
    # A decode step at T = 10,000 (9,999 tokens cached before it): torch.cat builds a layer's new keys
    # (8 heads x 128 x 2 B per token) while the old ones still exist, 8 x 9,999 x 2,048 B for 8 sequences:
    # larger than the step's mixer, MLP or fp32 norm for one token per sequence, so it is the inner peak,
    # beside 8 x (4 residual-stream copies x 8,192 B + 520 B of positions).
    b = breakdown(llama8b, Scenario(batch=8, prompt_tokens=16, new_tokens=9_984, runtime="hf-sdpa"))
    decode = 8 * (4 * 8192 + 520) + 8 * 9_999 * 2_048
    prefill = 8 * 16 * (4 * 8192 + 520 + 86_016)
    assert decode > prefill and b["activation"] == decode == 266_304 + 163_823_616


def test_an_engine_step_holds_at_most_its_token_budget(llama8b, h100):
    # vLLM processes at most max_num_batched_tokens a step: 512 tokens x (16,384 + 86,016) B
    b = breakdown(llama8b, Scenario(prompt_tokens=4096, max_num_batched_tokens=512))
    assert b["activation"] == 512 * (16_384 + 86_016)
    # 32 prompts of 8,192 tokens on an H100 run in steps of vLLM's default 8,192 tokens there: 0.78 GiB, not the
    # 32 x 8,192 x 102,400 B = 25 GiB of one pass over the whole batch (a static batch, as the Live run does)
    b = breakdown(llama8b, Scenario(batch=32, prompt_tokens=8192), h100)
    assert b["activation"] == 8192 * 102_400 == 838_860_800 == 0.78125 * 2**30
    static = breakdown(llama8b, Scenario(batch=32, prompt_tokens=8192, runtime="static"), h100)
    assert static["activation"] == 32 * 8192 * 102_400 == 25 * 2**30
    # on an L4 (22 GiB) vLLM's default is 2,048 tokens
    assert breakdown(llama8b, Scenario(batch=32, prompt_tokens=8192), get_gpu("nvidia-l4"))["activation"] \
        == 2048 * 102_400


def test_logits_and_overhead(llama8b):
    # a static batch: the LM head's bf16 output and its fp32 copy, last position; the CUDA context alone
    b = breakdown(llama8b, Scenario(batch=4, runtime="static"))
    assert b["logits"] == 4 * 128_256 * (2 + 4)
    assert b["overhead"] == DEFAULT_RUNTIME_OVERHEAD == 520 * 2**20
    assert b.total == sum(c.bytes for c in b.components)
    # vLLM samples after the forward: fp32 logits of the whole vocabulary and sort buffers, 15 B per logit
    # (measured), for the 4 requests, beside the step's 4 x 1,024 hidden states; a phase of the activation
    # peak, smaller here than the forward. Outside torch it holds 0.25 GiB (measured) beside the context.
    v = breakdown(llama8b, Scenario(batch=4))
    assert v["logits"] == 0 and v.phases()["sampler"] == 4 * 128_256 * 15 + 4 * 1024 * 4096 * 2
    assert v["overhead"] == 520 * 2**20 + 2**28
    # at tp 2 every GPU still holds the whole vocabulary's logits (vLLM all-gathers them), and 2.1 GiB of
    # all-reduce buffers
    t = breakdown(llama8b, Scenario(batch=4, tp=2))
    assert t.phases()["sampler"] == 4 * 128_256 * 15 + 4 * 1024 * 4096 * 2
    assert t["overhead"] == 520 * 2**20 + int(2.1 * 2**30)


def test_engine_reserve_and_fit(llama8b, h100):
    assert h100.usable_bytes == 81_079 * 2**20
    # (1 - 0.9) x usable, of which the CUDA context (520 MiB) is part: the engine's share starts after it
    b = breakdown(llama8b, Scenario(gpu_memory_utilization=0.9), h100)
    assert b["engine_reserve"] == h100.usable_bytes - int(0.9 * h100.usable_bytes) - 520 * 2**20 == 7_956_489_831
    assert b.fits and b.headroom == h100.usable_bytes - b.total


def test_shared_prefix_and_paging():
    # 4 sequences of 1,000 tokens sharing a 600-token prefix: 600 + 4 x 400 = 2,200 slots.
    assert held_full(4, 1000, 600, 0) == 2200
    # Paged (16): the prefix shares 37 whole blocks (592 tokens); each sequence rounds 408 up to 416.
    assert held_full(4, 1000, 600, 16) == 592 + 4 * 416
    assert held_full(1, 1000, 0, 16) == 1008


def test_sliding_window_with_prefix():
    # W = 4096, T = 5000: the window starts at 904, so 2000 - 904 = 1096 prefix tokens are shared,
    # and each of 2 sequences keeps 4096 - 1096 = 3000 of its own.
    assert held_sliding(2, 5000, 2000, 4096, 0) == 1096 + 2 * 3000
    assert held_sliding(2, 3000, 0, 4096, 0) == 2 * 3000


def test_paged_sliding_window_blocks():
    # W = 20, blocks of 16, one sequence. At t = 35 the window [15, 35) touches blocks 0, 1, 2; at
    # t = 36 it is [16, 36), blocks 1 and 2 only. The memory a 36-token sequence needs is the peak: 3.
    assert held_sliding(1, 35, 0, 20, 16) == 3 * 16
    assert held_sliding(1, 36, 0, 20, 16) == 3 * 16
    assert held_sliding(1, 20, 0, 20, 16) == 2 * 16  # t <= 20: blocks 0 and 1
    # The case CI's fuzzing found: W = 1505, T = 1506, a 16-token prefix in one shared block, 2 seqs.
    # At t = 1506 the window [1, 1506) still touches block 0 (the shared prefix): 1 + 2 x 94 blocks,
    # exactly what a full-attention layer holds, never more.
    assert held_sliding(2, 1506, 16, 1505, 16) == (1 + 2 * 94) * 16 == held_full(2, 1506, 16, 16)


def _simulated_window_slots(B, T, S, W, bs):
    """Independent check: walk the sequences token by token and count the blocks in use."""
    peak = 0
    for t in range(1, T + 1):
        blocks = range(max(0, t - W) // bs, (t - 1) // bs + 1)
        shared = sum(b < S // bs for b in blocks)
        peak = max(peak, shared + B * (len(blocks) - shared))
    return peak * bs


def test_paged_sliding_matches_a_token_by_token_simulation():
    for bs in (1, 3, 16):
        for W in (1, 5, 16, 17, 40):
            for T in (1, 15, 16, 17, 33, 50, 97):
                for S in {0, T // 2, T}:
                    for B in (1, 3):
                        assert held_sliding(B, T, S, W, bs) == _simulated_window_slots(B, T, S, W, bs)


def test_tensor_parallel_kv_split_and_replication():
    m70 = preset_model("llama-3.1-70b")
    per_gpu = {tp: breakdown(m70, Scenario(prompt_tokens=1, tp=tp)).kv_bytes_per_token for tp in (1, 2, 8, 16)}
    assert per_gpu[1] == 327_680
    assert per_gpu[2] == 327_680 // 2 and per_gpu[8] == 327_680 // 8
    assert per_gpu[16] == 80 * 1 * 256 * 2  # 8 KV heads on 16 GPUs: one head replicated per GPU


def test_tensor_parallel_weight_shards_add_up(llama8b):
    # With tp <= n_kv_heads nothing but the norms is replicated.
    for tp in (2, 4, 8):
        shard = layer_params(llama8b, tp)
        assert sum(p.linear for p in shard) * tp == LLAMA8B_LINEAR
        assert sum(p.other for p in shard) == 32 * 2 * 4096  # norms, whole on every GPU
        assert embedding_params(llama8b, tp).embed * tp == 128_256 * 4096


def test_pipeline_partition_matches_vllm():
    assert [len(r) for r in pipeline_partition(32, 3)] == [11, 11, 10]
    assert [len(r) for r in pipeline_partition(80, 8)] == [10] * 8
    assert [r.start for r in pipeline_partition(10, 4)] == [0, 2, 5, 8]


def test_pipeline_stages_place_embeddings(llama8b):
    b = breakdown(llama8b, Scenario(pp=2))
    # Both stages hold 16 layers; the last adds the LM head, final norm and logits, so it is heavier
    # than the first, which holds the embedding of the same size.
    assert b.stage.index == 1
    assert b["weights"] == 2 * (LLAMA8B_LINEAR // 2 + 16 * 2 * 4096 + 128_256 * 4096 + 4096)
    assert b["kv_cache"] == 1024 * 131_072 // 2


def test_tied_embedding_is_duplicated_only_across_stages():
    m = preset_model("llama-3.2-1b")
    one = breakdown(m, Scenario())["weights"]
    assert one == 2 * m.params
    two = breakdown(m, Scenario(pp=2))
    assert two.stage.index == 1  # holds a copy of the tied head


def test_formulas_show_the_numbers(llama8b):
    b = breakdown(llama8b, Scenario(batch=2, prompt_tokens=512))
    text = formulas(b)
    assert "2 seq × 512 tokens × 131,072 B/token" in text["kv_cache"]
    assert "6,979,321,856" in text["weights"]
    assert [c.basis for c in b.components if c.key == "overhead"] == ["measured"]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        (dict(tp=3), "must divide the 32 attention heads"),
        (dict(tp=16, prompt_tokens=10), None),  # 16 > 8 KV heads, a multiple: replicated, allowed
        (dict(pp=33), "exceeds the 32 layers"),
    ],
)
def test_parallel_rules(llama8b, kw, needle):
    if needle is None:
        breakdown(llama8b, Scenario(**kw))
    else:
        with pytest.raises(KvdashError, match=needle):
            breakdown(llama8b, Scenario(**kw))


@pytest.mark.parametrize(
    "kw",
    [
        dict(batch=0), dict(batch=1.5), dict(prompt_tokens=0), dict(new_tokens=-1), dict(weights_dtype="fp4"),
        dict(kv_dtype=3), dict(runtime="magic"), dict(shared_prefix_tokens=2000), dict(gpu_memory_utilization=1.5),
        dict(tp=0), dict(block_size=-16), dict(batch=True),
    ],
)
def test_bad_scenarios(kw):
    with pytest.raises(KvdashError):
        Scenario(**kw)
