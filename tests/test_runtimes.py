"""Runtime profiles (issue #10): each activation term by hand, and the stored measured peaks."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.layers import FullAttention, LatentAttention
from kvdash.presets import preset_model
from kvdash.report import activation_split, formulas
from kvdash.runtimes import RUNTIMES
from kvdash.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "data" / "measurements" / "peaks"
sys.path.insert(0, str(ROOT / "benchmarks"))
import score_peaks  # noqa: E402  (the same scoring as BENCHMARKS.md's tables)

V2_LITE_MLA = LatentAttention(n_heads=16, kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128)


def test_unknown_runtime_is_refused():
    with pytest.raises(KvdashError, match="runtime must be one of vllm, sglang, trtllm, static, hf-sdpa, hf-eager"):
        Scenario(runtime="engine")


def test_hf_caches_the_mla_latent_and_expands_it_per_key():
    # transformers 5.x (modeling_deepseek_v2.py DeepseekV2Attention.forward): "Cache read / write is performed
    # while the latent KV is still compressed": cache.update(k_nope, k_pe) with the normed latent (512) and the
    # rotary key (64) as one-head tensors, so 27 layers x 576 x 2 B = 31,104 B per token, as an engine keeps
    # (measured on an H200 with transformers 5.17: 31,104 B per token)
    m = preset_model("deepseek-v2-lite")
    assert breakdown(m, Scenario(runtime="hf-sdpa")).kv_bytes_per_token == 27 * 576 * 2 == 31_104
    assert breakdown(m, Scenario(runtime="vllm")).kv_bytes_per_token == 31_104
    # ... then expand_kv decompresses every cached key in every step: kv_b_proj's 16 x (128 + 128) and the
    # keys' concatenated copy 16 x 192, per key of one sequence; its DynamicCache regrows the larger part,
    # the 512-wide latent
    hf = RUNTIMES["hf-sdpa"]
    assert V2_LITE_MLA.key_bytes(1, 2, hf) == V2_LITE_MLA.key_bytes(1, 2, hf, decode=True) == 16 * 448 * 2 == 14_336
    assert V2_LITE_MLA.key_bytes(1, 2) == 0  # engines attend in the latent space
    assert V2_LITE_MLA.regrow_bytes_per_token(get_dtype("bf16")) == 512 * 2


def test_mla_prefill_width_counts_the_decompressed_keys_and_values():
    # latent 576 + kv_b_proj output 16 x (128 + 128) + queries, keys and padded values 3 x 16 x 192
    # + output 16 x 128 = 15,936 values x 2 B
    assert V2_LITE_MLA.act_bytes(1, 2) == (576 + 4096 + 9216 + 2048) * 2 == 31_872
    # Hugging Face per query token: the latent 576, the queries and their concatenated copy 2 x 16 x 192, the
    # output twice 2 x 16 x 128; with the per-key expansion above, a prefill token holds the engine's width
    # and one more 16 x 128 value tensor, as before
    assert V2_LITE_MLA.act_bytes(1, 2, RUNTIMES["hf-sdpa"]) == (576 + 6144 + 4096) * 2 == 21_632
    assert 21_632 + 14_336 == 31_872 + 16 * 128 * 2


def test_moe_routing_buffers():
    # DeepSeek-V2-Lite, engine, 1,000 tokens: residual 2 x 2048 x 2 B; experts 6 x 3 x 1408 x 2 B + shared
    # 3 x 2816 x 2 B + router logits 64 x 4 B + top-k ids and weights 6 x (8 + 4) B = 67,912 B per token,
    # wider than the dense first layer (3 x 10,944 x 2 = 65,664) and the MLA mixer (31,872).
    m = preset_model("deepseek-v2-lite")
    assert breakdown(m, Scenario(prompt_tokens=1000))["activation"] == 1000 * (8192 + 67_912)
    # generate() (transformers 5's grouped_mm experts), per routed token: max(gathered input + gate-up output
    # + activation + product = (2048 + 4 x 1408) x 2 B, input + down output + two fp32 weighted copies =
    # 2048 x (2 + 2 + 4 + 4) B) = 24,576 B; x 6 experts + shared 16,896 + router 256 + ids and weights 72 +
    # the pairs' sort (two int64) and permuted weights 6 x 20 = 164,800 B. Its residual stream is 4 copies
    # (embedding output, layer input, residual, normed); positions: an int64 id and the rotary cos and sin
    # of the 64 rotary dimensions, 8 + 2 x 64 x 2 B.
    hf = breakdown(m, Scenario(prompt_tokens=1000, runtime="hf-sdpa"))
    assert hf["activation"] == 1000 * (4 * 4096 + 264 + 6 * 24_576 + 16_896 + 256 + 72 + 120) == 181_448_000


def test_qk_norm_runs_in_fp32_under_hf():
    qwen3 = FullAttention(n_heads=32, n_kv_heads=8, head_dim=128, qk_norm=True)
    # engine: (4096 q + 8 x 256 K/V + 4096 out) x 2 B; Hugging Face: the queries (2 B) beside their fp32
    # copy and its square (8 B): 4096 x 10 B.
    assert qwen3.act_bytes(1, 2) == 20_480
    assert qwen3.act_bytes(1, 2, RUNTIMES["hf-sdpa"]) == 4096 * 10 == 40_960


def test_sdpa_window_masks():
    # Mistral-7B-v0.1 (window 4096) under SDPA, 2 x 8,192 tokens: one bool mask 8,192 x 8,192 x 1 B for the
    # batch for the whole forward; inside the attention, torch's float copy per sequence 2 x 8,192^2 x 2 B
    # and K/V repeated to 32 heads (32,768 B per token), below the MLP's 86,016 B per token.
    m = preset_model("mistral-7b-v0.1")
    b = breakdown(m, Scenario(batch=2, prompt_tokens=8192, runtime="hf-sdpa"))
    mixer = 16_384 * 32_768 + 2 * 8192 * 8192 * 2
    assert mixer < 16_384 * 86_016
    assert b["activation"] == 16_384 * (4 * 8192 + 520) + 16_384 * 86_016 + 8192 * 8192 == 2_021_785_600
    # eager: an additive bf16 mask per sequence (2 x 8,192^2 x 2 B) beside 32 heads of scores at 10 B
    e = breakdown(m, Scenario(batch=2, prompt_tokens=8192, runtime="hf-eager"))
    assert e["activation"] == (16_384 * (4 * 8192 + 520) + 16_384 * 32_768 + 16_384 * 8192 * 32 * 10
                               + 2 * 8192 * 8192 * 2)


def test_the_peak_split_names_the_dominant_term(llama8b):
    text = formulas(breakdown(llama8b, Scenario(prompt_tokens=4096, runtime="hf-eager")))["activation"]
    assert text.startswith("prefill of 1 seq × 4,096 tokens, Hugging Face generate(), eager")
    assert "4,096 × 4,096 scores × 32 heads × 10 B" in text
    # an engine's peak can be its sampler: 1,024 requests' logits after a step of 8,192 short prompts
    b = breakdown(llama8b, Scenario(batch=1024, prompt_tokens=8, runtime="vllm"))
    phase, terms = activation_split(b)
    assert phase == "sampler after a step of 8,192 tokens (1,024 requests)"
    assert sum(v for _, v, used, _ in terms if used) == b["activation"] == 1024 * 128_256 * 15 + 8192 * 8192


def test_stored_measured_peaks():
    """Every stored measurement of generate()'s peak against the prediction, within the issue's 15 %
    (BENCHMARKS.md lists them). Runs that measure what kvdash does not model (it models GPUs) are listed
    there with the reason and not scored here: see benchmarks/score_peaks.unscored."""
    runs = score_peaks.load(sorted(MEASURED.glob("*-hf")))
    assert len(runs) >= 50
    scored = [r for r in runs if score_peaks.scored(r)]
    assert len(runs) - len(scored) <= 7  # 4 MLA + SDPA on the CPU, 3 MoE decodes on the CPU
    misses = [(r["name"], r["batch"], r["prompt_tokens"], r["new_tokens"], r["attn_implementation"],
               round(score_peaks.predicted_peak(r) / r["measured_peak_bytes"], 3)) for r in scored
              if abs(score_peaks.predicted_peak(r) / r["measured_peak_bytes"] - 1) > 0.15]
    assert not misses


def test_cli_runtime_in_json(capsys):
    from kvdash.cli import main

    assert main(["size", "--preset", "llama-3.1-8b", "--context", "4096", "--runtime", "hf-eager", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"] == "hf-eager" and out["activation_phase"] == "prefill of 1 seq × 4,096 tokens"
    mixer = next(t for t in out["activation_terms"] if t["term"] == "mixer")
    assert mixer["in_peak"] and mixer["bytes"] == 4096 * 32_768 + 4096 * 4096 * 32 * 10
    assert main(["size", "--preset", "llama-3.1-8b", "--runtime", "engine"]) == 2  # one line, exit 2
    assert main(["size", "--preset", "llama-3.1-8b", "--runtime", "hf-sdpa", "--max-num-batched-tokens", "512"]) == 2


@pytest.mark.parametrize("runtime", list(RUNTIMES))
@pytest.mark.parametrize(("preset", "batch", "prompt", "new"), [
    ("llama-3.1-8b", 1, 4096, 0), ("mistral-7b-v0.1", 2, 8192, 16), ("deepseek-v2-lite", 4, 512, 20_000),
    ("gemma-2-9b", 1, 100, 30_000)])
def test_the_printed_split_adds_up_to_the_peak(runtime, preset, batch, prompt, new):
    # what the Memory page and --json show must be what the total counts
    b = breakdown(preset_model(preset), Scenario(batch=batch, prompt_tokens=prompt, new_tokens=new, runtime=runtime))
    _, terms = activation_split(b)
    assert sum(n for _, n, used, _ in terms if used) == b["activation"]


def test_hf_moe_decode_copies_each_routed_experts_weights():
    # generate() on a GPU decodes MoE layers with batched_mm: gate_up_proj[expert_ids] and down_proj[...] copy
    # a routed expert's 3 x 14,336 x 4,096 bf16 weights per (token, expert): Mixtral, 2 experts per token,
    # 704,643,072 B per token. Batch 4 at 116 tokens: 4 x (32,768 residual + 520 positions + 245,856 B of
    # grouped_mm intermediates and routing + 704,643,072), larger than the cache's regrowth (4 x 115 x 2,048 B).
    m = preset_model("mixtral-8x7b")
    b = breakdown(m, Scenario(batch=4, prompt_tokens=16, new_tokens=100, runtime="hf-sdpa"))
    assert b["activation"] == 4 * (32_768 + 520 + 245_856 + 704_643_072) == 2_819_688_864
    # an engine's fused MoE reads the experts in place: no copy
    assert breakdown(m, Scenario(batch=4, prompt_tokens=16, new_tokens=100))["activation"] < 100 * 2**20


def test_no_decode_step_before_the_second_generated_token():
    # new_tokens = 1: the token comes from the prefill's logits, so the peak is the prefill's: 4 x 16 tokens x
    # (32,768 residual + 520 positions + 245,856 grouped_mm intermediates and routing)
    m = preset_model("mixtral-8x7b")
    b = breakdown(m, Scenario(batch=4, prompt_tokens=16, new_tokens=1, runtime="hf-sdpa"))
    assert b["activation"] == 64 * (32_768 + 520 + 245_856) == 17_865_216


def test_hf_runtime_says_which_kinds_it_has_not_read():
    from kvdash.layers import StateLayer

    hybrid = preset_model("llama-3.2-1b")
    mamba = StateLayer("Mamba-2", conv_dim=4096, conv_kernel=4, heads=64, head_state=8192, in_width=8192)
    hybrid = replace(hybrid, layer_specs=(mamba, *hybrid.layers[1:]))
    note = "Hugging Face's own allocations for state space / linear attention layers were not read or measured"
    assert any(note in w for w in breakdown(hybrid, Scenario(runtime="hf-sdpa")).warnings)
    assert not any(note in w for w in breakdown(hybrid, Scenario()).warnings)
    llama = breakdown(preset_model("llama-3.1-8b"), Scenario(runtime="hf-eager"))
    assert not any("not read" in w for w in llama.warnings)


def test_hf_kv_copies_are_per_key_attended():
    from kvdash.layers import SlidingWindow

    eager, sdpa = RUNTIMES["hf-eager"], RUNTIMES["hf-sdpa"]
    gqa = FullAttention(n_heads=32, n_kv_heads=8, head_dim=128)
    mqa = FullAttention(n_heads=32, n_kv_heads=1, head_dim=128)
    window = SlidingWindow(n_heads=32, n_kv_heads=8, head_dim=128, window=4096)
    # repeat_kv copies K and V to 32 heads: 32 x (128 + 128) x 2 B per key; with one K/V head it is a view
    # and the matmul copies K, then V: 32 x 128 x 2 B at a time
    assert gqa.key_bytes(1, 2, eager) == 16_384 and mqa.key_bytes(1, 2, eager) == 8_192
    # SDPA passes no mask to full layers (is_causal) and takes GQA natively: no copy
    assert gqa.key_bytes(1, 2, sdpa) == 0 and gqa.key_bytes(1, 2) == 0
    # a window layer gets a mask (and so copies) in the prefill, not in decode, where it holds only the window
    assert window.key_bytes(1, 2, sdpa) == 16_384 and window.key_bytes(1, 2, sdpa, decode=True) == 0


def test_hf_eager_decode_copies_the_whole_context(llama8b):
    # 4 sequences at 2,016 tokens: per sequence the 2,016 cached keys repeated to 32 heads (16,384 B each) and
    # 32 x 2,016 scores at 10 B, beside 4 tokens x 16,384 B of queries and output; plus 4 x (4 x 8,192 + 520)
    # of residual stream and positions and the additive mask 4 x 2,016 x 2 B.
    b = breakdown(llama8b, Scenario(batch=4, prompt_tokens=16, new_tokens=2000, runtime="hf-eager"))
    mixer = 4 * 16_384 + 4 * 2016 * 16_384 + 4 * 2016 * 32 * 10
    assert mixer > 4 * 2015 * 2048  # larger than the cache's regrowth
    assert b["activation"] == 4 * (32_768 + 520) + mixer + 4 * 2016 * 2 == 134_915_872
