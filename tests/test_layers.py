"""Layer specs: each kind's arithmetic by hand, and no kind tests outside kvdash/layers.py."""

import json
import re
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.capacity import vllm_capacity
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.hf_config import model_from_config
from kvdash.layers import (
    KINDS,
    ChunkedLocal,
    CrossAttention,
    FullAttention,
    NoCache,
    SlidingWindow,
    StateLayer,
    Tensor,
    held_chunked,
    mamba2,
)
from kvdash.model import ModelSpec
from kvdash.scenario import Scenario

BF16 = get_dtype("bf16")
ROOT = Path(__file__).resolve().parent.parent


def _model(specs, **kw) -> ModelSpec:
    return ModelSpec(name="t", hidden_size=1024, vocab_size=1000, intermediate_size=4096, layer_specs=tuple(specs),
                     **kw)


def test_no_kind_tests_outside_the_layer_specs():
    # Kind-specific logic lives in kvdash/layers.py; the config readers only map config names to specs.
    names = "|".join(k.__name__ for k in KINDS)
    patterns = [
        re.compile(rf"isinstance\([^)]*\b({names})\b"),
        re.compile(r"\.kind\s*[!=]="),
        re.compile(r"[!=]=\s*(FULL|SLIDING|MLA|LINEAR)\b"),
        re.compile(r"\b(FULL|SLIDING|MLA|LINEAR)\s+(not\s+)?in\b"),
        re.compile(r"\bin\s+\(?\s*(FULL|SLIDING|MLA|LINEAR)\b"),
        re.compile(r"\.count\(\s*(FULL|SLIDING|MLA|LINEAR)"),
        re.compile(r"""["'](full|sliding|mla|linear|chunked|cross|state)["']\s+(not\s+)?in\s+\S*kinds"""),
        re.compile(r"""kinds\)?\s*[!=]=\s*\{?\(?["'](full|sliding|mla|linear)"""),
    ]
    allowed = {"kvdash/layers.py", "kvdash/hf_config.py", "kvdash/hf_readers.py", "kvdash/hf_families.py"}
    hits = []
    for folder in ("kvdash", "ui", "app_pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if any(p.search(line) for p in patterns):
                    hits.append(f"{rel}:{i}: {line.strip()}")
    hits += [f"app.py: {line}" for line in (ROOT / "app.py").read_text().splitlines()
             if any(p.search(line) for p in patterns)]
    assert not hits, "kind tests outside the layer specs:\n" + "\n".join(hits)


def test_the_grep_would_catch_a_kind_test():
    # the patterns above are not vacuous: lines like those the redesign removed are caught
    line = "    if kind in (FULL, SLIDING):"
    assert re.search(r"\bin\s+\(?\s*(FULL|SLIDING|MLA|LINEAR)\b", line)
    assert re.search(r"\.kind\s*[!=]=", "if spec.kind == 'sliding':")


def test_chunked_layers_hold_one_chunk():
    # chunk 8, one sequence: at t = 8 the chunk is full (8); at t = 9 a new chunk holds 1; peak over
    # t <= 9 is 8. At t = 13: 5 in the current chunk, peak still 8.
    assert held_chunked(1, 8, 0, 8, 0) == 8
    assert held_chunked(1, 9, 0, 8, 0) == 8
    assert held_chunked(1, 5, 0, 8, 0) == 5
    # two sequences sharing a 6-token prefix, T = 7 (first chunk): 6 + 2 x 1 = 8 slots; at T = 20 the
    # peak is the last full chunk [8, 16): nothing shared, 2 x 8 = 16 (the first chunk held 6 + 2 x 2).
    assert held_chunked(2, 7, 6, 8, 0) == 8
    assert held_chunked(2, 20, 6, 8, 0) == 16
    # paged, blocks of 4, chunk 8: T = 10 -> peak at t = 8, two blocks per sequence.
    assert held_chunked(1, 10, 0, 8, 4) == 8
    assert held_chunked(3, 11, 0, 8, 4) == 3 * 8


def test_chunked_attention_pairs():
    # chunk 4, a 10-token prompt: positions 0..9 see 1,2,3,4,1,2,3,4,1,2 keys = 23
    layer = ChunkedLocal(n_heads=4, n_kv_heads=4, head_dim=8, chunk=4)
    assert layer.attention_pairs(10, 10) == 23
    assert layer.attention_pairs(1, 10) == 2  # decode at position 9: its chunk [8, 10)


def test_llama4_like_stack_at_64k():
    # 48 layers, 3 of 4 chunked (8,192), 8 KV heads x 128: 4,096 B per token per layer (bf16).
    full = FullAttention(n_heads=40, n_kv_heads=8, head_dim=128)
    local = ChunkedLocal(n_heads=40, n_kv_heads=8, head_dim=128, chunk=8192)
    m = ModelSpec(name="l4", hidden_size=5120, vocab_size=1000, intermediate_size=8192,
                  layer_specs=tuple(full if (i + 1) % 4 == 0 else local for i in range(48)))
    kv = breakdown(m, Scenario(prompt_tokens=65_536))["kv_cache"]
    assert kv == 12 * 65_536 * 4096 + 36 * 8192 * 4096 == int(4.125 * 2**30)


def test_cross_attention_holds_the_source_per_sequence():
    # 2 KV heads x 256 x 2 B = 1,024 B per source token; 1,500 frames; 3 sequences.
    cross = CrossAttention(n_heads=8, n_kv_heads=2, head_dim=128, source_len=1500)
    m = _model([FullAttention(n_heads=8, n_kv_heads=2, head_dim=128), cross])
    for tokens in (10, 5000):
        b = breakdown(m, Scenario(batch=3, prompt_tokens=tokens))
        assert b["kv_cache"] == 3 * tokens * 1024 + 3 * 1500 * 1024
        assert b.state_bytes_per_seq == 1500 * 1024 and b.kv_bytes_per_token == 1024
    # paged in blocks of 16: the source rounds up to 94 blocks = 1,504 slots
    b = breakdown(m, Scenario(batch=1, prompt_tokens=16, block_size=16))
    assert b["kv_cache"] == 16 * 1024 + 1504 * 1024


def test_mamba2_state_and_tensor_parallel_split():
    # Nemotron-H-like Mamba-2: 64 heads x 64, state 128, 8 groups, kernel 4.
    layer = mamba2(hidden=2688, d_inner=4096, d_state=128, d_conv=4, n_heads=64, n_groups=8)
    assert layer.conv_elems() == (4096 + 2 * 8 * 128) * 3 == 18_432
    assert layer.recurrent_elems() == 64 * 64 * 128 == 524_288
    assert layer.bytes_per_seq(BF16, BF16) == (18_432 + 524_288) * 2
    # tp = 4: conv channels and heads split
    assert layer.bytes_per_seq(BF16, BF16, tp=4) == (6144 // 4 * 3 + 16 * 64 * 128) * 2
    fp32 = mamba2(hidden=2688, d_inner=4096, d_state=128, d_conv=4, n_heads=64, n_groups=8, recurrent_fp32=True)
    assert fp32.bytes_per_seq(BF16, BF16) == 18_432 * 2 + 524_288 * 4
    with pytest.raises(KvdashError, match="must divide the 64 heads"):
        layer.check_tp(3)


def test_pure_state_model_has_no_kv_cache():
    mixer = StateLayer("test", conv_dim=100, conv_kernel=4, heads=10, head_state=50,
                       weights=(Tensor("proj", 10, 100, "rows"),))
    m = _model([mixer, NoCache(), mixer], mlp_layers=(False, True, False))
    b = breakdown(m, Scenario(batch=2, prompt_tokens=100_000))
    assert b.kv_bytes_per_token == 0
    assert b["kv_cache"] == 2 * 2 * (100 * 3 + 10 * 50) * 2
    # parameters: 2 mixers of 10 x 100, one dense MLP (3 x 1024 x 4096), 2 RMSNorms per layer, embedding +
    # head + final norm
    assert m.params == 2 * 1000 + 3 * 1024 * 4096 + 3 * 2 * 1024 + 2 * 1000 * 1024 + 1024


def test_sliding_is_a_full_layer_with_a_window():
    s = SlidingWindow(n_heads=8, n_kv_heads=2, head_dim=128, window=100)
    assert s.as_full() == FullAttention(n_heads=8, n_kv_heads=2, head_dim=128)
    assert s.with_kv_heads(1).window == 100 and s.with_kv_heads(None).n_kv_heads == 8
    assert s.held(2, 500, 0, 0) == 200


def test_capacity_refuses_kinds_it_does_not_model():
    cross = CrossAttention(n_heads=8, n_kv_heads=2, head_dim=128, source_len=1500)
    with pytest.raises(KvdashError, match="cross-attention layers is not modelled"):
        vllm_capacity(_model([cross, FullAttention(n_heads=8, n_kv_heads=2, head_dim=128)]), 1 << 30,
                      max_model_len=1024)


def test_hybrid_capacity_aligns_the_attention_block_with_the_state_page():
    # vLLM's worked example for Qwen3-Next-80B-A3B, bf16, tp 1 (Platform._align_hybrid_block_size):
    # attention 2 KV heads x (256 + 256) x 2 B = 2,048 B per token; a Gated DeltaNet state is
    # (2 x 16 x 128 + 32 x 128) x 3 conv + 32 x 128 x 128 recurrent = 548,864 values = 1,097,728 B.
    # Block = 16 x ceil(1,097,728 / (16 x 2,048)) = 16 x 34 = 544 tokens; page 544 x 2,048 = 1,114,112 B.
    # 12 attention + 36 state layers: 36 >= 1.5 x 12, so groups of 12: 1 attention + 3 state groups.
    import json

    cfg = json.loads((ROOT / "tests/data/configs/qwen3-next-80b-a3b-thinking.json").read_text())["config"]
    from kvdash.hf_config import model_from_config

    c = vllm_capacity(model_from_config(cfg), 60 * 2**30, max_model_len=32_768)
    assert (c.block_size, c.page_bytes, c.state_page_bytes) == (544, 1_114_112, 1_097_728)
    assert (c.group_size, c.n_groups) == (12, 4)
    assert c.gpu_blocks == 60 * 2**30 // (1_114_112 * 12) == 4_818
    # per request: ceil(32,768 / 544) = 61 attention blocks + one block in each of 3 state groups
    assert c.blocks_per_request == 64 and c.max_concurrency == 4_818 / 64
    assert c.kv_cache_tokens == 4_818 // 4 * 544
    assert c.log_lines()[:2] == [
        "Setting attention block size to 544 tokens to ensure that attention page size is >= mamba page size.",
        "Padding mamba page size by 1.49% to ensure that mamba page size and attention page size are exactly equal.",
    ]


def test_pipeline_capacity_splits_the_layers():
    # Llama-3.1-8B, 10 GiB per GPU, pp 2: each GPU holds 16 layers: 10 GiB // 65,536 // 16 = 10,240 blocks
    from kvdash.presets import preset_model

    c = vllm_capacity(preset_model("llama-3.1-8b"), 10 * 2**30, max_model_len=8192, pp=2)
    assert c.gpu_blocks == 10 * 2**30 // 65_536 // 16 == 10_240
    assert c.kv_cache_tokens == 10_240 * 16


def _simulated_chunk_slots(B, T, S, C, bs):
    """Independent check: walk t = 1..T and count the slots of the current chunk (whole blocks when paged),
    the prefix's whole blocks (or tokens) stored once."""
    peak = 0
    for t in range(1, T + 1):
        start = (t - 1) // C * C
        if bs:
            blocks = range(start // bs, (t - 1) // bs + 1)
            shared = sum(1 for blk in blocks if blk < S // bs)
            peak = max(peak, (shared + B * (len(blocks) - shared)) * bs)
        else:
            shared = max(0, min(t, S) - start)
            peak = max(peak, shared + B * (t - start - shared))
    return peak


def test_chunked_peak_matches_a_token_by_token_walk():
    import itertools

    for B, T, S, C, bs in itertools.product((1, 3), (1, 7, 16, 33, 64, 100), (0, 5, 16, 40), (8, 16, 32), (0, 4, 8)):
        if S <= T and (not bs or C % bs == 0):
            assert held_chunked(B, T, S, C, bs) == _simulated_chunk_slots(B, T, S, C, bs), (B, T, S, C, bs)


def test_capacity_unifies_pages_of_different_head_sizes():
    # Gemma-4-E4B (real config, corpus): 24 layers hold K/V (the last 18 share them): 20 sliding layers
    # of 2 KV heads x 256 (window 512) and 4 full layers of 2 x 512. At blocks of 16 a full page is
    # 16 x 2 x 1,024 x 2 B = 65,536 B and a sliding page 32,768 B, so vLLM gives sliding layers blocks of
    # 32 tokens. Buckets 20 and 4: 20 >= 1.5 x 4, groups of 4: 5 sliding + 1 full group.
    import json

    from kvdash.hf_config import model_from_config

    cfg = json.loads((ROOT / "tests/data/configs/gemma-4-e4b-it.json").read_text())["config"]
    c = vllm_capacity(model_from_config(cfg), 10 * 2**30, max_model_len=8192)
    assert (c.page_bytes, c.group_size, c.n_groups) == (65_536, 4, 6)
    assert c.gpu_blocks == 10 * 2**30 // 65_536 // 4 == 40_960
    # per request: full ceil(8,192 / 16) = 512; each sliding group ceil(min(511 + 8,192, 8,192) / 32) + 1 = 257
    assert c.blocks_per_request == 512 + 5 * 257
    assert c.kv_cache_tokens == 40_960 // 6 * 16


# DeepSeek-V3.2's shape (DeepseekV32Config): 61 layers of MLA (latent 512 + rope 64), 128 heads of 128 + 64 /
# 128, q_lora_rank 1,536; the indexer: 64 heads of 128, top 2,048 keys
V32 = dict(model_type="deepseek_v32", architectures=["DeepseekV32ForCausalLM"], hidden_size=7168,
           num_attention_heads=128, num_key_value_heads=128, num_hidden_layers=61, intermediate_size=18_432,
           moe_intermediate_size=2048, n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8,
           first_k_dense_replace=3, kv_lora_rank=512, q_lora_rank=1536, qk_nope_head_dim=128, qk_rope_head_dim=64,
           v_head_dim=128, vocab_size=129_280, index_head_dim=128, index_n_heads=64, index_topk=2048,
           max_position_embeddings=163_840)


def test_sparse_attention_caches_the_indexer_key_beside_the_latent():
    m = model_from_config(V32)
    # vLLM (DeepseekV32IndexerCache): 128 fp8 values + one fp32 scale per 128 = 132 B; transformers keeps the
    # key in bf16 (256 B). The latent: (512 + 64) x 2 B = 1,152 B. 61 layers, all running the indexer.
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 61 * (1152 + 132) == 78_324
    assert breakdown(m, Scenario(prompt_tokens=1, runtime="hf-sdpa")).kv_bytes_per_token == 61 * (1152 + 256)
    spec = m.layer_specs[0]
    # a decode at 65,536 tokens reads the selected 2,048 latents and every indexer key
    assert spec.read_bytes(BF16, 1, 65_536) == 2048 * 1152 + 65_536 * 132
    assert spec.read_bytes(BF16, 1, 1000) == 1000 * (1152 + 132)  # below top-k: every key
    # its FLOPs: absorbed decode attention 2 x 128 heads x (576 + 512) per selected key, and the indexer's
    # 2 x 64 heads x 128 per key it scores (replicated, so the same on each of 8 GPUs)
    assert spec.attention_flops(1, 65_536, 8, decode=True) == 2 * 16 * 1088 * 2048 + 2 * 64 * 128 * 65_536
    # a prefill of 4,096 tokens: query p sees min(p, 2,048) keys; the indexer scores all 4,096 x 4,097 / 2 pairs
    pairs = 2048 * 2049 // 2 + 2048 * 2048
    assert spec.attention_flops(4096, 4096, 1) == 2 * 128 * 320 * pairs + 2 * 64 * 128 * 4096 * 4097 // 2


def test_shared_indexer_layers_cache_no_indexer_key():
    # GLM-5-style schedule (configuration_glm_moe_dsa.py): full where max(i - offset + 1, 0) % freq == 0;
    # freq 4, offset 2 over 12 layers: max(i - 1, 0) is 0, 0, 1, 2, 3, 4, ... so layers 0, 1, 5, 9 run it
    c = V32 | dict(num_hidden_layers=12, index_topk_freq=4, index_skip_topk_offset=2)
    full = [i for i in range(12) if max(i - 2 + 1, 0) % 4 == 0]
    assert full == [0, 1, 5, 9]
    m = model_from_config(c)
    assert [i for i, ls in enumerate(m.layer_specs) if ls.index_head_dim] == full
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 12 * 1152 + 4 * 132
    # an explicit list wins; a pattern string of F / S too
    types = ["full", "shared"] * 6
    assert [ls.index_head_dim > 0 for ls in model_from_config(c | {"indexer_types": types}).layer_specs] == \
        [t == "full" for t in types]
    assert [ls.index_head_dim > 0 for ls in model_from_config(c | {"index_topk_pattern": "FSSS" * 3}).layer_specs] \
        == [i % 4 == 0 for i in range(12)]
    with pytest.raises(KvdashError, match="index_topk_pattern"):
        model_from_config(c | {"index_topk_pattern": "FX"})


def test_gemma4_keys_reused_as_values_drop_v_proj_not_the_cache():
    # Gemma-4 with attention_k_eq_v (the 26B-A4B / 31B flag): full layers take values from the key projection
    # (Gemma4Attention.use_alternative_attention: v_proj is None), then v_norm them, so the cache still holds K
    # and V; and configuration_gemma4.py applies num_global_key_value_heads only with the flag set
    cfg = json.loads((ROOT / "tests/data/configs/gemma-4-e4b-it.json").read_text())["config"]
    text = cfg["text_config"]
    plain = model_from_config(cfg | {"text_config": text | {"num_global_key_value_heads": 4}})
    kv_eq = model_from_config(cfg | {"text_config": text | {"attention_k_eq_v": True, "num_global_key_value_heads": 4}})
    full = [i for i, k in enumerate(kv_eq.kinds) if k == "full" and not kv_eq.layers[i].kv_shared]
    # without the flag the global K/V head count stays num_key_value_heads (2); with it, 4
    assert {plain.layers[i].n_kv_heads for i in full} == {2} and {kv_eq.layers[i].n_kv_heads for i in full} == {4}
    names = {t.name for t in kv_eq.layers[full[0]].tensors(text["hidden_size"])}
    assert "k_proj" in names and "v_proj" not in names
    # per token a full layer holds 4 heads x (512 + 512) x 2 B, K and V both
    assert kv_eq.layers[full[0]].bytes_per_token(BF16) == 4 * 1024 * 2


def test_query_heads_per_cached_vector():
    # Llama-3.1-70B's attention, 64 query and 8 K/V heads: 8 per K/V head at tp 1 and tp 8; at tp 16 each GPU holds
    # 4 query heads and one replicated K/V head, so 4. Sliding layers are the same kernel. A state layer reads no
    # K/V: 1. DeepSeek-V3's latent layers, 128 heads: at tp 8 the 16 heads on a GPU all read the one latent.
    from kvdash.layers import LatentAttention

    full = FullAttention(n_heads=64, n_kv_heads=8, head_dim=128)
    assert [full.query_group(tp) for tp in (1, 8, 16)] == [8, 8, 4]
    assert SlidingWindow(n_heads=64, n_kv_heads=8, head_dim=128, window=4096).query_group(2) == 8
    assert NoCache().query_group(4) == 1
    mla = LatentAttention(n_heads=128, kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
                          q_lora_rank=1536)
    assert mla.query_group(8) == 16
