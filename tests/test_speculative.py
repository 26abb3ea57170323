"""Speculative decoding with a model's multi-token-prediction modules or an EAGLE head (issue #22, item 4): what the
engine holds (by hand from DeepSeek-V3's config and Llama-3.1-8B's), what a speculative step does, and the
refusals."""

import pytest

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import serving
from kvdash.speculative import with_mtp
from kvdash.step import step_work

V3 = preset_model("deepseek-v3")
H200 = get_gpu("nvidia-h200-sxm")


def test_deepseek_v3s_mtp_module_by_hand():
    """DeepSeek-V3 (hidden 7,168; MLA with q_lora 1,536, kv_lora 512, rope 64, nope 128, v 128, 128 heads; 256
    routed experts and one shared of 2,048; num_nextn_predict_layers 1). The module is one decoder layer:
    attention q_a 7,168 x 1,536 + q_a norm 1,536 + q_b 1,536 x 128 x 192 + kv_a 7,168 x 576 + kv_a norm 512 +
    kv_b 512 x 128 x 256 + o 16,384 x 7,168 = 187,107,328; experts 256 x 3 x 7,168 x 2,048 = 11,274,289,152; the
    shared expert 44,040,192; the router 256 x 7,168 + 256 bias; two norms 14,336: 11,507,286,272 (DeepSeek's
    README_WEIGHTS.md: "11.5B unique parameters"). Then eh_proj 7,168 x 14,336 = 102,760,448 and enorm, hnorm
    and the shared head's norm, 3 x 7,168; the embedding and the LM head are the target's (vLLM shares them)."""
    layer = 187_107_328 + 11_274_289_152 + 44_040_192 + 256 * 7168 + 256 + 2 * 7168
    assert layer == 11_507_286_272
    assert with_mtp(V3).params - V3.params == layer + 2 * 7168 * 7168 + 3 * 7168 == 11_610_068_224
    # its attention is one more latent layer in the pool: (512 + 64) x 2 B a token, on every GPU of the group
    s = Scenario(tp=8, runtime="vllm", prompt_tokens=4096, weights_dtype="fp8-block")
    plain, spec = breakdown(V3, s, H200), breakdown(V3, s.with_(spec_tokens=1), H200)
    assert spec.kv_bytes_per_token - plain.kv_bytes_per_token == 1152
    assert spec["weights"] > plain["weights"]


def test_a_verifying_step_carries_k_plus_1_queries_over_one_read_of_the_cache():
    """Llama-3.1-8B, bf16, 4 sequences at 1,000 tokens verifying 2 drafted tokens each: the matrices and the LM
    head see 12 tokens, as 12 decodes would, but the cache is read once per sequence: 32 layers x 4,096 B a token x
    1,000 tokens x 4 = 524,288,000 B, plus the 8 drafted tokens' K/V written and read back, 8 x 2 x 131,072 B."""
    m, s = preset_model("llama-3.1-8b"), Scenario(runtime="vllm")
    verify, twelve = step_work(m, s, 4, 1000, width=3), step_work(m, s, 12, 1000)
    assert verify.flops == twelve.flops
    assert verify.cache_bytes == 524_288_000 + 8 * 2 * 131_072


def test_at_one_request_the_time_per_token_is_the_speculative_formula():
    """One request in flight on an engine that mixes prompts into decode steps (vLLM): its prompt rides alone, so
    after the first token every step verifies and drafts: TPOT = (verify + drafting) / tokens a step."""
    s = Scenario(tp=8, runtime="vllm", prompt_tokens=2048, weights_dtype="fp8-block", spec_tokens=1)
    r = serving(V3, s, H200, 1, 2048, 512)
    assert r.accepted == 1.85 and r.draft_s > 0
    assert r.tpot_s == pytest.approx((r.step.seconds + r.draft_s) / 1.85, rel=1e-12)
    assert r.tpot_s < serving(V3, s.with_(spec_tokens=0), H200, 1, 2048, 512).tpot_s
    assert serving(V3, s.with_(spec_accepted=1.5), H200, 1, 2048, 512).tpot_s > r.tpot_s  # fewer accepted: slower


def test_speculation_kvdash_does_not_model_is_refused():
    with pytest.raises(KvdashError, match="ships no multi-token-prediction modules"):
        breakdown(preset_model("llama-3.1-8b"), Scenario(runtime="vllm", spec_tokens=1))
    with pytest.raises(KvdashError, match="serving engine"):
        breakdown(V3, Scenario(tp=8, runtime="static", spec_tokens=1))  # a static batch does not speculate
    with pytest.raises(KvdashError, match="no sourced acceptance for mtp with 3 draft tokens"):
        serving(V3, Scenario(tp=8, runtime="vllm", weights_dtype="fp8-block", spec_tokens=3), H200, 4, 1024, 128)
    with pytest.raises(KvdashError, match="yields 1 to 2 tokens"):
        Scenario(spec_tokens=1, spec_accepted=2.5)


@pytest.mark.parametrize(("k", "accepted", "speedup"), [(1, 1.92, 1.78), (2, 2.58, 2.25), (3, 2.82, 2.28),
                                                       (4, 2.99, 2.21), (5, 3.01, 2.15)])
def test_the_speedup_is_tensorrt_llms_published_one(k, accepted, speedup):
    """TensorRT-LLM's "Pushing Latency Boundaries" (NVIDIA/TensorRT-LLM docs/source/blogs/tech_blog/blog1_...
    @ 56851033): DeepSeek-R1 on 8 B200 at one request, 1k prompt and 2k output, attention in bf16 and experts in
    NVFP4, k MTP tokens a step with the acceptance lengths it measured: TPS/user 111 without MTP, speedups
    1.78, 2.25, 2.28, 2.21, 2.15 for k = 1 to 5. Given the measured acceptance, the serving model's speedup is
    within 5 % (2.3 % at most on 2026-12-05, BENCHMARKS.md), the turn after k = 3 included."""
    s = Scenario(tp=8, runtime="trtllm", prompt_tokens=1024, new_tokens=2048, weights_dtype="bf16",
                 moe_weights_dtype="nvfp4")
    b200 = get_gpu("nvidia-b200-hgx")
    plain = serving(V3, s, b200, 1, 1024, 2048).tpot_s
    spec = serving(V3, s.with_(spec_tokens=k, spec_accepted=accepted), b200, 1, 1024, 2048).tpot_s
    assert plain / spec == pytest.approx(speedup, rel=0.05)


def test_the_cli_counts_the_module_when_asked(capsys):
    """`kvdash size --spec-tokens 1` holds the MTP module's latent cache too: (512 + 64) x 2 B = 1,152 B more per
    token than without; a model without modules is refused in one line."""
    import json

    from kvdash.cli import main

    args = ["size", "--preset", "deepseek-v3", "--tp", "8", "--runtime", "vllm", "--weights-dtype", "fp8-block",
            "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--spec-tokens", "1"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["kv_bytes_per_token"] - plain["kv_bytes_per_token"] == 1152
    assert main(["size", "--preset", "llama-3.1-8b", "--spec-tokens", "1"]) == 2
    assert "ships no multi-token-prediction modules" in capsys.readouterr().err


def test_the_largest_batch_and_the_sweeps_count_the_module_too():
    """The solvers and the sweeps start from the same memory as the breakdown: with DeepSeek-V3's MTP module on
    8 H200 at 32k tokens, the largest batch is the last one whose breakdown fits, and the sweep's total at a
    point is the breakdown's."""
    import numpy as np

    from kvdash.solvers import max_batch
    from kvdash.sweep import total_grid

    s = Scenario(tp=8, runtime="vllm", prompt_tokens=32768, weights_dtype="fp8-block", spec_tokens=1)
    largest = max_batch(V3, s, H200)
    assert breakdown(V3, s.with_(batch=largest), H200).fits
    assert not breakdown(V3, s.with_(batch=largest + 1), H200).fits
    grid = total_grid(V3, s, np.array([4]), np.array([32768]), H200)
    b = breakdown(V3, s.with_(batch=4), H200)
    assert int(grid[0, 0]) == b.total - b["engine_reserve"]


L8 = preset_model("llama-3.1-8b")
H100 = get_gpu("nvidia-h100-sxm5")


def eagle(method, k=7, **kw):
    return Scenario(runtime="vllm", prompt_tokens=1024, new_tokens=256, spec_tokens=k, spec_method=method, **kw)


def test_eagle_heads_for_llama_3_1_8b_by_hand():
    """Llama-3.1-8B (hidden 4,096; 32 heads, 8 KV heads of 128; MLP 14,336). An EAGLE-1 head (vLLM's llama_eagle.py)
    is one Llama layer without its input norm: q/k/v 4,096 x 6,144 = 25,165,824, o 16,777,216, gate/up/down
    3 x 14,336 x 4,096 = 176,160,768, one norm 4,096, and fc 2 x 4,096 x 4,096 = 33,554,432: 251,662,336. An
    EAGLE-3 head (llama_eagle3.py) widens q/k/v's input to 8,192 (50,331,648), keeps both norms and adds
    hidden_norm (3 x 4,096) and a final norm (4,096), fc 3 x 4,096 x 4,096 = 50,331,648 and its own LM head of
    32,000 x 4,096 = 131,072,000: 424,689,664, and d2t, 32,000 int64 entries (256,000 B). Both stay 16-bit beside
    an fp8 target; each is one more attention layer in the pool: 8 x 128 x 2 x 2 B = 4,096 B a token."""
    eagle1 = 25_165_824 + 16_777_216 + 176_160_768 + 4_096 + 33_554_432
    eagle3 = 50_331_648 + 16_777_216 + 176_160_768 + 3 * 4_096 + 4_096 + 50_331_648 + 131_072_000
    assert (eagle1, eagle3) == (251_662_336, 424_689_664)
    for method, params, extra_bytes in (("eagle", eagle1, 0), ("eagle3", eagle3, 256_000)):
        for weights in ("bf16", "fp8"):
            s = eagle(method, weights_dtype=weights)
            plain, spec = breakdown(L8, s.with_(spec_tokens=0, spec_method=""), H100), breakdown(L8, s, H100)
            assert spec["weights"] - plain["weights"] == 2 * params + extra_bytes
            assert spec.kv_bytes_per_token - plain.kv_bytes_per_token == 4_096
    # under tensor parallelism the head's layer and EAGLE-3's LM head split, fc, the norms and d2t do not
    s = eagle("eagle3", tp=2)
    plain, spec = breakdown(L8, s.with_(spec_tokens=0, spec_method=""), H100), breakdown(L8, s, H100)
    layer = (50_331_648 + 16_777_216 + 176_160_768) // 2 + 3 * 4_096
    assert spec["weights"] - plain["weights"] == 2 * (layer + 4_096 + 50_331_648 + 131_072_000 // 2) + 256_000


def test_an_eagle_step_drafts_with_the_head_and_yields_the_stated_tokens():
    """At one request TPOT = (verify + k draft passes of the head) / the tokens a step yields; EAGLE-3's default at
    k = 7 is 3.53 (vLLM issue #26191); EAGLE's at k = 2 is 1.89 (vLLM PR #16035)."""
    for method, k, tau in (("eagle3", 7, 3.53), ("eagle", 2, 1.89)):
        r = serving(L8, eagle(method, k), H100, 1, 1024, 256)
        assert r.accepted == tau and r.draft_s > 0
        assert r.step.seconds + r.draft_s == pytest.approx(r.tpot_s * tau, rel=0.01)  # the mixed steps differ a bit
    # EAGLE-3's pass reads its own 32,000-row LM head, EAGLE-1's the target's 128,256 rows: a slower draft
    assert serving(L8, eagle("eagle", 2), H100, 1, 1024, 256).draft_s / 2 > \
        serving(L8, eagle("eagle3", 2, spec_accepted=2.0), H100, 1, 1024, 256).draft_s / 2


def test_eagle_heads_kvdash_does_not_shape_are_refused():
    for name in ("qwen3-30b-a3b", "mistral-7b-v0.1", "gemma-3-27b", "deepseek-v3"):  # MoE, windows, latent
        with pytest.raises(KvdashError, match="EAGLE heads have widths of their own"):
            breakdown(preset_model(name), eagle("eagle3"))
    with pytest.raises(KvdashError, match="no sourced acceptance for eagle3 with 3 draft tokens"):
        serving(L8, eagle("eagle3", 3), H100, 4, 1024, 256)
    with pytest.raises(KvdashError, match="draft vocabulary is an EAGLE-3 head's"):
        eagle("eagle", spec_draft_vocab=1000)


def test_eagle_launch_flags_and_cli(capsys):
    import json

    from kvdash.cli import main
    from kvdash.launch import launch

    def flags(engine, method, k):
        return dict(launch(L8, eagle(method, k), engine, "meta-llama/Llama-3.1-8B-Instruct", utilization=0.9,
                           max_model_len=2048, block_size=16, max_num_batched_tokens=8192, max_num_seqs=0).flags)
    assert json.loads(flags("vllm", "eagle3", 7)["--speculative-config"]) == {
        "method": "eagle3", "model": "<eagle-head-repo>", "num_speculative_tokens": 7}
    sg = flags("sglang", "eagle3", 3)
    assert sg["--speculative-algorithm"] == "EAGLE3" and sg["--speculative-draft-model-path"] == "<eagle-head-repo>"
    assert (sg["--speculative-num-steps"], sg["--speculative-eagle-topk"], sg["--speculative-num-draft-tokens"]) == \
        ("3", "1", "4")
    assert main(["size", "--preset", "llama-3.1-8b", "--runtime", "vllm", "--spec-tokens", "7", "--spec-method",
                 "eagle3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["size", "--preset", "qwen3-30b-a3b", "--runtime", "vllm", "--spec-tokens", "7", "--spec-method",
                 "eagle3"]) == 2
    assert "widths of their own" in capsys.readouterr().err


L70 = preset_model("llama-3.1-70b")


def drafting(k=3, **kw):
    return Scenario(runtime="vllm", prompt_tokens=2048, new_tokens=256, tp=4, spec_tokens=k, spec_method="draft",
                    spec_draft="llama-3.2-1b", **kw)


def test_a_draft_model_beside_llama_3_1_70b_by_hand():
    """Llama-3.2-1B (hidden 2,048, 16 layers, 32 heads and 8 KV heads of 64, MLP 8,192, vocabulary 128,256 tied)
    drafting for Llama-3.1-70B at tp 4, as vLLM loads it (its own weights, the target's tp, its layers in the same
    pool). Per GPU: the embedding 32,064 x 2,048 = 65,667,072; a layer q 512 x 2,048 + k and v 128 x 2,048 each +
    o 2,048 x 512 + gate/up/down 3 x 2,048 x 2,048 + two norms 4,096 = 15,208,448, x 16 = 243,335,168; the final
    norm 2,048: 309,004,288 parameters, 618,008,576 B in bf16 (also beside an fp8 target). Its cache: 16 layers x
    2 KV heads x 64 x (K, V) x 2 B = 8,192 B a token. vLLM's pool then has one group of 80 + 16 layers whose
    block holds 80 pages of 16,384 B and 16 of 8,192 B (UniformTypeKVCacheSpecs)."""
    from kvdash.serving import pool_startup
    from kvdash.speculative import drafted

    assert 65_667_072 + 16 * 15_208_448 + 2_048 == 309_004_288
    assert drafted(L70, drafting()).params - L70.params == 1_235_814_400  # Llama-3.2-1B's published count
    for weights in ("bf16", "fp8"):
        plain, spec = breakdown(L70, Scenario(runtime="vllm", prompt_tokens=2048, tp=4, weights_dtype=weights), H200), \
            breakdown(L70, drafting(weights_dtype=weights), H200)
        assert spec["weights"] - plain["weights"] == 618_008_576
        assert spec.kv_bytes_per_token - plain.kv_bytes_per_token == 8_192
    s = drafting().resolved(H200)
    start = pool_startup(drafted(L70, s), s, H200)
    assert start.capacity.gpu_blocks == start.kv_budget_bytes // (80 * 16_384 + 16 * 8_192)
    assert start.capacity.kv_cache_tokens == start.capacity.gpu_blocks * 16


def test_a_draft_model_drafts_in_its_own_format_and_is_refused_where_not_modelled():
    from kvdash.launch import launch
    from kvdash.speculative import draft_module

    r = serving(L70, drafting(weights_dtype="fp8"), H200, 8, 2048, 256)
    assert r.accepted == 2.79 and r.draft_s > 0  # vLLM PR #24322's Qwen3-1.7B for Qwen3-32B at k = 3
    d, ds = draft_module(L70, drafting(weights_dtype="fp8"))
    assert (d.name, ds.weights_dtype, ds.spec_tokens) == ("Llama-3.2-1B", "bf16", 0)
    import json

    flags = dict(launch(L70, drafting(), "vllm", "meta-llama/Llama-3.1-70B-Instruct", utilization=0.9,
                        max_model_len=4096, block_size=16, max_num_batched_tokens=8192, max_num_seqs=0).flags)
    assert json.loads(flags["--speculative-config"]) == {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B",
                                                         "num_speculative_tokens": 3}
    with pytest.raises(KvdashError, match="a draft model on sglang is not modelled"):
        breakdown(L70, drafting().with_(runtime="sglang"))
    with pytest.raises(KvdashError, match="vocabulary"):
        breakdown(L70, drafting().with_(spec_draft="qwen3-4b"))
    with pytest.raises(KvdashError, match="smaller model of its own"):
        breakdown(preset_model("llama-3.2-1b"), drafting().with_(tp=1, spec_draft="llama-3.1-8b"))
    with pytest.raises(KvdashError, match="goes with spec_method draft"):
        Scenario(spec_tokens=3, spec_draft="llama-3.2-1b")


def test_vllms_proposer_buffers_come_out_of_the_pool():
    """vLLM's proposer allocates at start-up (llm_base_proposer.py): per token of max_num_batched_tokens (8,192 on an
    H100) input_ids 4 B, positions 8 B, the slot mapping 8 B and hidden states and input embeddings of 4,096 bf16
    values each: 16,404 B, so 134,381,568 B; arange over max(1,024 + 1, 8,192) int32s, 32,768 B; the next-token
    backup, 1,024 int32s: 134,418,432 B in all. With the EAGLE-3 head's 849,635,328 B the pool is 984,053,760 B
    smaller than without speculation."""
    from kvdash.serving import pool_startup
    from kvdash.speculative import drafted

    plain = Scenario(runtime="vllm", prompt_tokens=1024, new_tokens=256).resolved(H100)
    spec = eagle("eagle3").resolved(H100)
    a, b = pool_startup(L8, plain, H100), pool_startup(drafted(L8, spec), spec, H100)
    assert b.drafter_buffer_bytes == 8192 * 16_404 + 4 * 8192 + 4 * 1024 == 134_418_432
    assert a.kv_budget_bytes - b.kv_budget_bytes == 849_635_328 + 134_418_432
    assert ("drafter buffers", 134_418_432) in [(name, n) for name, n, _ in b.terms()]
