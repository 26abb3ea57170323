"""The one step model (kvdash.step), by hand: a pure decode step, a pure prefill, the experts a step reads,
latent attention decoded with absorbed weights, the all-reduce term, the GPU's rates and links; and that no
other module computes a step's time."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.step import IDEAL, StepCosts, link_bytes_per_s, matrix_rate, step_time, step_work

ROOT = Path(__file__).resolve().parent.parent
H100 = get_gpu("nvidia-h100-sxm5")  # 3,350 GB/s, 989.5 dense bf16 TFLOP/s, NVLink 900 GB/s two-way
# Llama-3.1-8B: matrices and layer norms 6,979,584,000 parameters; embedding and head 128,256 x 4,096 each;
# a full layer's attention does 2 x 32 heads x (128 + 128) = 16,384 FLOP per query-key pair, 32 layers.
BODY, VOCAB_H, PAIR = 6_979_584_000, 128_256 * 4096, 32 * 16_384
WEIGHTS, KV = 16_060_522_496, 131_072  # bf16 weights (B), cache per token (B)
EMBED = 2 * VOCAB_H  # the untied input embedding (B): a step reads only its tokens' rows of it


# Llama-3.1-8B's kernels per layer as engines fuse them, (n, k) of each GEMM: q/k/v in one (4,096 + 2 x 1,024),
# o_proj, gate/up in one (2 x 14,336), down; and the LM head (128,256 x 4,096) for each sampled position
LAYER_GEMMS = ((6144, 4096), (4096, 4096), (28_672, 4096), (4096, 14_336))
STATIC = Scenario(runtime="static")  # kvdash's own decoder: the spec sheet (no kernel tables)


def test_a_pure_decode_step():
    m = preset_model("llama-3.1-8b")
    st = step_time(m, STATIC, H100, IDEAL, decode=8, decode_ctx=1000)
    read = WEIGHTS - EMBED + 8 * 4096 * 2 + 8 * 1000 * KV
    assert st.work.bytes == read
    assert st.memory_s == pytest.approx(read / 3350e9)
    flops = 2 * BODY * 8 + 2 * VOCAB_H * 8 + 8 * 1000 * PAIR
    assert st.work.flops == pytest.approx(flops) and st.compute_s == pytest.approx(flops / 989.5e12)
    assert st.bound == "memory" and not st.ceilings.measured
    # at the peaks every kernel is bandwidth-bound at 8 tokens: each GEMM reads its bf16 weight and its 8 rows of
    # input and output (2 B x 8 x (n + k)), the attention kernels the 8 sequences' 1,000 cached tokens
    gemms = 32 * sum(2 * n * k + 2 * 8 * (n + k) for n, k in LAYER_GEMMS) + 2 * VOCAB_H + 2 * 8 * (128_256 + 4096)
    assert st.gemm_s == pytest.approx(gemms / 3350e9) and st.attention_s == pytest.approx(8 * 1000 * KV / 3350e9)
    assert st.seconds == pytest.approx(st.gemm_s + st.attention_s)
    # the cache at its own efficiency, and a per-sequence overhead in each of the 32 layers for each of the
    # 8 decodes, beside the step's and the layers' own
    slow = replace(IDEAL, cache_eff=0.5, seq_overhead_s=1e-6, step_overhead_s=1e-3, layer_overhead_s=10e-6)
    st = step_time(m, STATIC, H100, slow, decode=8, decode_ctx=1000)
    assert st.attention_s == pytest.approx(8 * 1000 * KV / (0.5 * 3350e9))
    assert st.overhead_s == pytest.approx(1e-3 + 32 * 10e-6 + 32 * 8 * 1e-6)  # 1.576 ms


def test_measured_kernels_time_the_steps_of_an_engine():
    # vLLM on an H100: kvdash's table from AIConfigurator's kernel measurements (vLLM 0.19.0). One token's
    # o_proj (4,096 x 4,096 bf16) measured 0.016059 ms there (gemm/vllm/0.19.0/gemm_perf.parquet, m = 1); the
    # table holds the median of the seven shapes of that size, so kvdash's time is within 5 % of it
    m = preset_model("llama-3.1-8b")
    st = step_time(m, Scenario(), H100, IDEAL, decode=1, decode_ctx=1)
    c = st.ceilings
    assert c.measured and "vllm 0.19.0" in c.source
    assert c.gemm_s(1, 4096, 4096, "bf16", 2 * 4096 * 4096) == pytest.approx(0.016059e-3, rel=0.05)
    # no kernel beats the peak: every GEMM takes at least its bytes at peak bandwidth
    assert st.gemm_s > 32 * sum(2 * n * k for n, k in LAYER_GEMMS) / 3350e9


def test_a_pure_prefill_step():
    m = preset_model("llama-3.1-8b")
    w = step_work(m, Scenario(), decode=0, decode_ctx=0, prefill=1024, prompt=1024)
    # each prompt token's K/V written once and read back once; the logits of the prompt's last token only;
    # the causal pairs of a whole 1,024-token prompt: 1,024 x 1,025 / 2
    assert w.bytes == WEIGHTS - EMBED + 1024 * 4096 * 2 + 2 * 1024 * KV
    assert w.flops == pytest.approx(2 * BODY * 1024 + 2 * VOCAB_H + 1024 * 1025 // 2 * PAIR)
    # half a prompt's tokens (a chunk of a 2,048-token prompt, wherever it sits) carry half its pairs and
    # half a sampled position: on average over a prompt's chunks, exact
    half = step_work(m, Scenario(), decode=0, decode_ctx=0, prefill=1024, prompt=2048)
    assert half.flops == pytest.approx(2 * BODY * 1024 + 2 * VOCAB_H / 2 + 2048 * 2049 // 2 / 2 * PAIR)


def test_prefill_pairs_of_a_sliding_window():
    m = preset_model("mistral-7b-v0.1")  # Llama-3.1-8B's layer shapes (BODY), 32 sliding layers of window 4,096
    pair = 2 * 32 * 256
    w = step_work(m, Scenario(), 0, 0, prefill=5000, prompt=5000)
    # a 5,000-token prompt: the first 4,096 queries see their prefix, the other 904 see 4,096 keys
    attention = 32 * pair * (4096 * 4097 // 2 + 904 * 4096)
    assert w.flops == pytest.approx(2 * BODY * 5000 + 2 * 32_000 * 4096 + attention)
    # a decode step past the window sees only the window: a longer context adds no work
    assert step_work(m, Scenario(), 1, 10_000).flops == step_work(m, Scenario(), 1, 9_000).flops


def test_a_step_reads_only_the_experts_its_tokens_hit():
    from kvdash.breakdown import scenario_stages

    m = preset_model("mixtral-8x7b")  # 8 experts, 2 per token
    one = step_work(m, Scenario(), 1, 100)
    three = step_work(m, Scenario(), 3, 100)
    st = scenario_stages(m, Scenario())[0]
    cache = 32 * 8 * 256 * 2 * 100  # 32 layers x 8 KV heads x (128 + 128) x 2 B x 100 tokens
    rows = 32_000 * 4096 * 2 - 4096 * 2  # of the untied input embedding, the tokens' rows only
    # one token hits 2 experts per layer: 6 of 8 unread; three tokens leave 8 x (6/8)^3 = 3.375 unread
    assert one.bytes == pytest.approx(st.weight_bytes - st.expert_bytes * 6 / 8 - rows + cache)
    assert three.bytes == pytest.approx(st.weight_bytes - st.expert_bytes * 3.375 / 8 - rows - 2 * 4096 * 2
                                        + 3 * cache)


def test_latent_attention_decodes_with_absorbed_weights():
    # DeepSeek-V3 at tp 8: 16 of 128 heads per GPU, kv_lora_rank 512, rope 64, no-rope 128, values 128, 61 MLA
    # layers. An engine's decode kernel (FlashMLA, FlashInfer MLA) attends in the latent space: QK^T over
    # 512 + 64 values and PV over 512, so one more key costs 61 x 2 x 16 x (576 + 512) = 2,123,776 FLOP;
    # a prefill (and Hugging Face) attends per head: 61 x 2 x 16 x (128 + 64 + 128) = 624,640, 3.4x less.
    m = preset_model("deepseek-v3")
    s = Scenario(tp=8)
    key = step_work(m, s, 1, 1001).flops - step_work(m, s, 1, 1000).flops
    assert key == pytest.approx(61 * 2 * 16 * (576 + 512)) == 2_123_776
    hf = s.with_(runtime="hf-sdpa")
    assert step_work(m, hf, 1, 1001).flops - step_work(m, hf, 1, 1000).flops == pytest.approx(624_640)
    # the matrices are the same either way: absorbing W_UK and W_UV into the query and output costs what
    # kv_b_proj (512 -> 16 x 256 per GPU) would, 2 x 512 x 16 x (128 + 128) FLOP per token per layer
    spec = m.layers[0]
    assert spec.flops_per_pair(8, decode=True) / spec.flops_per_pair(8) == pytest.approx(3.4)


def test_the_all_reduce_term():
    m = preset_model("llama-3.1-8b")
    p = replace(IDEAL, allreduce_latency_s=5e-6)
    st = step_time(m, STATIC.with_(tp=2), H100, p, decode=4, decode_ctx=10)
    assert link_bytes_per_s(H100) == 450e9  # NVLink4's 900 GB/s is the two-way total
    # 2 all-reduces per layer; a ring moves 2 (tp - 1) / tp of the 4 tokens' bf16 hidden states
    assert st.comm_s == pytest.approx(2 * 32 * (5e-6 + 2 * 1 / 2 * 4 * 4096 * 2 / 450e9))


def test_link_speeds_are_one_way():
    # vendors' two-way totals halved: B200 NVLink5 1.8 TB/s, MI300X 7 x 128 GB/s; PCIe Gen4 x16 per direction
    assert link_bytes_per_s(get_gpu("nvidia-b200-hgx")) == 900e9
    assert link_bytes_per_s(get_gpu("amd-mi300x")) == 448e9
    assert link_bytes_per_s(get_gpu("nvidia-rtx-4090")) == 32e9
    with pytest.raises(KvdashError, match="no GPU-to-GPU link"):
        link_bytes_per_s(get_gpu("apple-m2-ultra"))


def test_fp4_matrices_run_on_fp4_tensor_cores_only_where_they_exist():
    assert matrix_rate(get_gpu("nvidia-b200-hgx"), "nvfp4") == 9000e12  # B200: 9 PFLOP/s dense fp4
    assert matrix_rate(H100, "nvfp4") == 989.5e12  # Hopper dequantizes to bf16
    assert matrix_rate(H100, "fp8-block") == 1979e12


def test_costs_are_validated():
    with pytest.raises(KvdashError, match="memory_eff"):
        StepCosts("x", memory_eff=1.5)
    with pytest.raises(KvdashError, match="layer_overhead_s"):
        StepCosts("x", layer_overhead_s=-1.0)
    with pytest.raises(KvdashError, match="prompt length"):
        step_work(preset_model("llama-3.1-8b"), Scenario(), 0, 0, prefill=10)


def test_no_other_module_computes_a_step_time():
    # a step's time is work over a rate: only kvdash/step.py (and kvdash/kernels.py, the ceilings it reads)
    # divide by a bandwidth, a FLOP rate or a link
    rate = re.compile(r"\s/\s+\(?\s*[\w.]*(bandwidth_gbps|matrix_rate|link_bytes_per_s|_eff\b|tflops|rate\(|peaks)")
    offenders = []
    for path in [*ROOT.glob("kvdash/**/*.py"), *ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py")]:
        if path.name in ("step.py", "kernels.py"):  # the step model and the kernels' ceilings it reads
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if rate.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


def test_a_gpu_without_a_matrix_rate_is_refused_in_words():
    # Apple's GPUs state no bf16 tensor rate in the catalog: the step is refused by name, not a KeyError
    apple = get_gpu("apple-m2-ultra")
    with pytest.raises(KvdashError, match="no bf16 matrix rate for M2 Ultra"):
        step_time(preset_model("llama-3.2-1b"), Scenario(), apple, IDEAL, decode=1, decode_ctx=1)
    with pytest.raises(KvdashError, match="no bf16 matrix rate"):
        matrix_rate(apple, "bf16")


def test_the_printed_formula_names_the_ceilings_the_step_uses():
    vllm = Scenario(runtime="vllm")
    f = IDEAL.formula(H100, vllm)
    assert f.startswith("Σ over the step's kernels") and "kernel measurements of vllm" in f and "989.5 TFLOP/s" in f
    assert "spec sheet" in IDEAL.formula(get_gpu("nvidia-l4"), vllm)
    assert "measured all-reduce" in IDEAL.formula(H100, vllm.with_(tp=2))
