"""The serving model's structure, by hand: the steady-state bookkeeping, the KV pool and who waits for it, the
engines' step limits. (Its steps are kvdash.step's, tested in test_step.py; the fitted efficiencies are not
tested here: BENCHMARKS.md reports how they hold on measured runs.)"""

from dataclasses import replace
from pathlib import Path

import pytest

from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import EngineProfile, engine_profile, serving

H100 = get_gpu("nvidia-h100-sxm5")  # 3,350 GB/s, 989.5 dense bf16 TFLOP/s, NVLink 900 GB/s two-way
REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"  # read in place, never copied
PEAK = EngineProfile("vllm", memory_eff=1.0, cache_eff=1.0, compute_eff=1.0, step_overhead_s=0.0, layer_overhead_s=0.0,
                     queue_steps=0.0, allreduce_latency_s=0.0)
KV = 131_072  # Llama-3.1-8B's bf16 cache per token (B)


def test_steady_state_bookkeeping():
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(), H100, 32, 1024, 256, PEAK)
    # vLLM mixes prompts into the decodes' steps: each prompt fits one step beside the 31 other decodes
    # (1,024 <= 8,192 - 31), so a request lives 1 + 255 = 256 steps; the 32 requests' prompts arrive spread
    # over them and ride in 32 separate steps of 1,024 prompt tokens and 31 decodes
    assert (r.steps_per_cycle, r.mixed_steps_per_cycle, r.decode_tokens_per_step) == (256, 32, 32)
    assert (r.prompt_tokens_per_mixed_step, r.arrivals.mixed_decodes, r.arrivals.prefill_steps) == (1024, 31, 1)
    assert r.mixed.work.flops > r.step.work.flops  # the chunk's 1,024 tokens of work
    assert r.cycle_s == pytest.approx(32 * r.mixed.seconds + 224 * r.step.seconds)
    # TPOT: the request's lifetime after its own prompt step, over its 255 later tokens
    assert r.tpot_s == pytest.approx((31 * r.mixed.seconds + 224 * r.step.seconds) / 255)
    assert r.tokens_per_s_per_gpu == pytest.approx(32 * 256 / r.cycle_s)
    # the first token (PEAK has no queueing terms): the request's own step
    mix = r.mixed.seconds
    assert r.ttft_s == pytest.approx(mix)
    # queue_steps average steps, and a share of the other 31 prompts ahead, each one prompt step
    assert r.ttft_with(2, 0.5) == pytest.approx(r.ttft_s + 2 * r.cycle_s / 256 + 0.5 * 31 * mix)
    # plus a number of them whatever the concurrency, but never more than the 31 others
    assert r.ttft_with(0, 0.5, 0, 3) == pytest.approx(r.ttft_s + (0.5 * 31 + 3) * mix)
    assert r.ttft_with(0, 0.5, 0, 20) == pytest.approx(r.ttft_s + 31 * mix)
    assert r.ttft_with(0, 0, 0.05) == pytest.approx(r.ttft_s + 0.05)  # the engine's fixed per-request time
    long = serving(m, Scenario(), H100, 32, 8192, 16, PEAK)
    # prompt-bound: each prompt needs 2 steps beside 31 decodes (8,192 > 8,192 - 31), 64 prompt steps, more
    # than a lifetime of 2 + 15: every step carries prompt tokens, and 32 x (8,192 + 15) tokens fill
    # 32.06 steps of 8,192
    S = 32 * 8207 / 8192
    assert long.steps_per_cycle == pytest.approx(S) and long.arrivals.prefill_steps == 2
    assert long.mixed_steps_per_cycle == pytest.approx(S) and long.arrivals.saturated
    d = 32 * 15 / S  # the decodes of a cycle's 15 later tokens, spread over its steps
    assert long.arrivals.mixed_decodes == pytest.approx(d)
    assert long.prompt_tokens_per_mixed_step == pytest.approx(8192 - d)  # the budget holds the rest
    assert long.tpot_s == pytest.approx((S - 2) * long.mixed.seconds / 15)


def test_sglang_runs_prompts_in_waves():
    # SGLang prefills in batches of their own (decodes wait) of chunked_prefill_size = 8,192 tokens on an
    # 80 GB GPU: 32 prompts of 1,024 take 4 prefill steps, the j-th prompt completing on step ceil(j / 8),
    # so on step 2.5 on average; then the 32 decode together for 255 steps and finish together
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(runtime="sglang"), H100, 32, 1024, 256, replace(PEAK, name="sglang"))
    a = r.arrivals
    assert (a.group, a.prefill_steps, a.first_token_steps, a.mixed_decodes) == (32, 4, 2.5, 0)
    assert (r.steps_per_cycle, r.mixed_steps_per_cycle, r.prompt_tokens_per_mixed_step) == (259, 4, 8192)
    assert r.mixed.work.flops > r.step.work.flops and r.mixed.work.cache_bytes == 2 * 8192 * KV  # no decodes
    P, D = r.mixed.seconds, r.step.seconds
    assert r.cycle_s == pytest.approx(4 * P + 255 * D)
    assert r.ttft_s == pytest.approx(2.5 * P)
    assert r.tpot_s == pytest.approx((1.5 * P + 255 * D) / 255)  # its wave's later prefill steps, then decodes


def test_requests_beyond_the_kv_pool_queue_for_a_slot():
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(), H100, 4096, 1024, 256, PEAK)
    # a request holds its prompt and half its output on average: 1,152 tokens x 128 KiB
    assert r.request_bytes == 1152 * KV
    assert r.running == r.pool_bytes // (1152 * KV) < 4096 and not r.fits
    # Little's law: 4,096 - R requests wait while R slots each free once per request lifetime
    run = r.ttft_s - r.wait_s
    assert r.wait_s == pytest.approx((4096 - r.running) / r.running * (run + 255 * r.tpot_s))
    assert r.tokens_per_s_per_gpu == pytest.approx(r.running * 256 / r.cycle_s)  # only R are served
    # TensorRT-LLM's rule: 0.9 of the memory free after the CUDA context (545,259,520 B), the weights with the
    # rotary table (16,060,522,496 + 131,072 x 128 x 2 B), its profile pass at max_num_tokens 8,192 and
    # max_batch_size 2,048 (the sampler on 2,048 x 128,256 logits x 15 B beside 8,192 x 4,096 x 2 B of hidden
    # states, above the 8,192-token forward's 838,860,800 B) and 0.25 GiB outside torch; each request reserves
    # its whole isl + osl
    trt = replace(PEAK, name="trtllm")
    t = serving(m, Scenario(runtime="trtllm"), H100, 32, 1024, 256, trt)
    free = 81_079 * 2**20 - 545_259_520 - (16_060_522_496 + 33_554_432) - (2048 * 128_256 * 15 + 8192 * 4096 * 2) \
        - 2**28
    assert t.pool_bytes == int(0.9 * free) == 57_692_329_574
    assert t.request_bytes == 1280 * KV


def test_engine_step_limits_follow_the_gpu_as_the_engines_set_them():
    vllm, trt, sgl = (engine_facts(e) for e in ("vllm", "trtllm", "sglang"))
    # vLLM's get_batch_defaults for `vllm serve`: 8,192 tokens and 1,024 requests on GPUs of 70 GiB or
    # more that are not A100s; 2,048 and 256 otherwise
    assert vllm.step_limits(H100) == (8192, 1024)
    assert vllm.step_limits(get_gpu("nvidia-h200-sxm")) == (8192, 1024)
    assert vllm.step_limits(get_gpu("nvidia-a100-sxm4-80gb")) == (2048, 256)
    assert vllm.step_limits(get_gpu("nvidia-l4")) == (2048, 256)
    assert Scenario(max_num_batched_tokens=4096).step_limits(get_gpu("nvidia-l4")) == (4096, 256)
    # TensorRT-LLM: max_num_tokens 8,192 and max_batch_size 2,048 everywhere
    assert trt.step_limits(get_gpu("nvidia-l4")) == (8192, 2048)
    # SGLang's chunked_prefill_size by GPU memory (0.5.6): 2,048 below 35 GiB (L4, 22 GiB), 8,192 below 160 GiB
    # (H100, H200), 16,384 above (B200, 179 GiB usable); running requests limited by its pool alone
    assert [sgl.step_limits(get_gpu(g))[0] for g in ("nvidia-l4", "nvidia-h100-sxm5", "nvidia-h200-sxm",
                                                      "nvidia-b200-hgx")] == [2048, 8192, 8192, 16384]
    # its mem_fraction_static on one H100 (81,079 MiB): (81,079 - (512 + 1.5 x 8,192 + 2 x 256 + 1/8 x 1,024))
    # / 81,079 = 0.834
    assert sgl.memory_fraction(H100) == round((81_079 - 13_440) / 81_079, 3) == 0.834
    # 600 small requests fit the pool of one H100, but max_num_seqs 256 lets only 256 run
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(max_num_seqs=256), H100, 600, 128, 16, PEAK)
    assert r.running == 256 and r.limited_by == "max_num_seqs" and r.wait_s > 0


def test_a_gpu_without_kernel_measurements_is_said_so():
    m, vllm = preset_model("llama-3.1-8b"), engine_profile("vllm")
    assert serving(m, Scenario(), H100, 8, 1024, 128, vllm).warnings(H100) == []  # measured kernels
    b200 = get_gpu("nvidia-b200-hgx")  # measured kernels, but overheads fitted elsewhere: the measured transfer
    w = serving(m, Scenario(), b200, 8, 1024, 128, vllm).warnings(b200)
    assert len(w) == 1 and "fitted on H100 SXM" in w[0] and "TPOT 24%" in w[0] and "TTFT 40%" in w[0]
    l4 = get_gpu("nvidia-l4")  # nobody's kernel tables: the spec sheet at stated shares, said so
    w = serving(m, Scenario(), l4, 8, 1024, 128, vllm).warnings(l4)
    assert len(w) == 1 and "no kernel measurements of vllm on L4" in w[0] and "80%" in w[0]


def test_pipeline_parallelism_is_refused_not_guessed():
    from kvdash.errors import KvdashError

    with pytest.raises(KvdashError, match="pipeline parallelism"):
        serving(preset_model("llama-3.1-8b"), Scenario(pp=2), H100, 8, 100, 10, PEAK)


def test_profiles_load_and_refuse_nonsense():
    from kvdash.errors import KvdashError

    for name in ("vllm", "sglang", "trtllm"):
        assert engine_profile(name).name == name
    with pytest.raises(KvdashError, match="unknown engine"):
        engine_profile("tgi")
    with pytest.raises(KvdashError, match="must exceed the tokens the running requests decode"):
        serving(preset_model("llama-3.1-8b"), Scenario(max_num_seqs=9000), H100, 9000, 10, 10, PEAK)
    with pytest.raises(KvdashError, match="unknown engine"):
        EngineProfile("tgi", step_overhead_s=1e-3)
    with pytest.raises(KvdashError, match="cannot time the sglang engine"):
        serving(preset_model("llama-3.1-8b"), Scenario(runtime="sglang"), H100, 8, 100, 10, PEAK)
    with pytest.raises(KvdashError, match="needs a serving engine"):
        serving(preset_model("llama-3.1-8b"), Scenario(runtime="static"), H100, 8, 100, 10)


def test_cli_serving_json_and_refusals(capsys):
    import json

    from kvdash.cli import main

    rc = main(["serving", "--preset", "llama-3.1-8b", "--gpu", "nvidia-h100-sxm5", "--concurrency", "32", "--isl",
               "1024", "--osl", "256", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["fits"] is True
    for key in ("ttft_s", "tpot_s", "request_latency_s", "tokens_per_s_per_gpu", "tokens_per_s_per_user",
                "decode_step_s", "terms"):
        assert key in out
    assert set(out["terms"]) == {"matrices", "experts", "attention", "all-reduces", "overheads", "step"}
    # 4,096 requests of 128k tokens cannot fit one H100: said, with the largest concurrency that does
    rc = main(["serving", "--preset", "llama-3.1-8b", "--gpu", "nvidia-h100-sxm5", "--concurrency", "4096",
               "--isl", "131072", "--osl", "16", "--max-num-batched-tokens", "16384", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["fits"] is False and 0 <= out["max_concurrency_that_fits"] < 4096
    assert main(["serving", "--preset", "mixtral-8x7b", "--gpu", "nvidia-h100-sxm5", "--concurrency", "8",
                 "--isl", "100", "--osl", "10", "--tp", "2", "--ep", "4"]) == 2
    assert "--ep 4" in capsys.readouterr().err


def test_tensorrt_llm_per_tensor_fp8_runs_hold_an_fp8_cache():
    from kvdash.serving_runs import GPU, kv_format, load_runs, matching_runs

    assert kv_format("trtllm", "fp8") == "fp8"  # ModelOpt's per-tensor fp8 checkpoints quantize the cache too
    assert kv_format("trtllm", "fp8_block") == kv_format("vllm", "fp8") == kv_format("trtllm", "") == "bf16"
    # why: 64 requests of 4,096 + 128 tokens of Qwen3-32B (64 layers x 8 KV heads x 128 x 2 x 2 B per token)
    # would hold 70.9 GB of bf16 cache on one 80 GB GPU beside its fp8 weights
    assert 64 * 4224 * 64 * 8 * 128 * 2 * 2 == 70_866_960_384
    # the Speed page draws those runs beside an fp8-cache scenario only
    runs = load_runs(REFERENCE / "serving_h100.csv")
    fp8 = matching_runs(runs, "trtllm", 1, 4096, 128, GPU, "fp8", "fp8", "Qwen/Qwen3-32B")
    assert [r.concurrency for r in fp8] == [8, 16, 32, 64]
    assert matching_runs(runs, "trtllm", 1, 4096, 128, GPU, "fp8", "bf16", "Qwen/Qwen3-32B") == []


def test_a_shared_prefix_is_held_once_and_not_prefilled():
    """Issue #22, item 5, by hand. Llama-3.1-8B in bf16 holds 32 layers x 8 KV heads x (128 + 128) x 2 B =
    131,072 B per token. vLLM, 16-token blocks, requests of 1,000 + 200 tokens hold their prompt and half their
    output: 1,100 tokens, 69 blocks (1,104 slots) each. With the first 512 prompt tokens in the prefix cache
    (32 whole blocks, held once), a request adds ceil(588 / 16) = 37 blocks (592 slots) and computes 1,000 - 512
    = 488 prompt tokens, which still attend to the whole prompt: 488 x (2 x 1,000 - 488 + 1) / 2 = 369,172
    (query, key) pairs a layer, against 488 x 489 / 2 = 119,316 for a prompt of 488 alone; 2 x 32 heads x
    (128 + 128) = 16,384 FLOPs a pair."""
    from kvdash.serving import kv_pool_bytes, requests_held
    from kvdash.step import step_work

    m, gpu = preset_model("llama-3.1-8b"), get_gpu("nvidia-h100-sxm5")
    plain = Scenario(prompt_tokens=1000, new_tokens=200, runtime="vllm", block_size=16)
    cached = plain.with_(shared_prefix_tokens=512)
    pool = kv_pool_bytes(m, plain, gpu)
    assert requests_held(m, plain, gpu, 1000, 200) == (pool // (1104 * 131_072), pool, 1104 * 131_072)
    shared, each = 512 * 131_072, 592 * 131_072
    assert requests_held(m, cached, gpu, 1000, 200) == ((pool - shared) // each, pool, each)
    r0, r1 = serving(m, plain, gpu, 64, 1000, 200), serving(m, cached, gpu, 64, 1000, 200)
    assert (r0.computed, r1.computed) == (1000, 488)
    assert r1.arrivals.prompt_tokens < r0.arrivals.prompt_tokens and r1.ttft_s < r0.ttft_s
    work = step_work(m, cached, 0, 1, prefill=488, prompt=1000, computed=488)
    alone = step_work(m, plain.with_(prompt_tokens=488), 0, 1, prefill=488, prompt=488)
    assert work.flops - alone.flops == 32 * 16_384 * (369_172 - 119_316)
    with pytest.raises(KvdashError, match="longer than the prompt"):
        serving(m, cached.with_(prompt_tokens=600), gpu, 8, 500, 100)


def test_the_stated_transfer_error_is_benchmarks_latest():
    """The warning's numbers are the last transfer table's "all" row in BENCHMARKS.md (issue #19): a re-scored
    model updates both, or this fails."""
    import re
    from pathlib import Path

    from kvdash.serving import TRANSFER_ERROR

    text = (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").read_text(encoding="utf-8")
    section = text[text.index("### Transfer: GPUs the overheads were never fitted on"):]
    row = re.search(r"^\| all \| (\d+) \| ([\d.]+)% / \d+% \| ([\d.]+)% / \d+% \|", section, re.M)
    assert row and (float(row[2]) / 100, float(row[3]) / 100) == pytest.approx(TRANSFER_ERROR, abs=5e-4)


def test_an_engine_without_chunked_prefill_runs_a_prompt_whole():
    """TensorRT-LLM prefills a prompt whole by default: 4 requests of 8,192 + 128 tokens leave room for 8,192 - 3 =
    8,189 prompt tokens beside the other 3 decodes in its 8,192-token step, so vLLM (chunked) takes two steps of
    4,096, while TensorRT-LLM takes one step of all 8,192, past its budget, as the memory breakdown counts it."""
    m = preset_model("llama-3.1-8b")
    chunked = serving(m, Scenario(runtime="vllm", max_num_batched_tokens=8192), H100, 4, 8192, 128).arrivals
    whole = serving(m, Scenario(runtime="trtllm"), H100, 4, 8192, 128).arrivals
    assert (chunked.prefill_steps, chunked.prompt_tokens) == (2, 4096)
    assert (whole.prefill_steps, whole.prompt_tokens) == (1, 8192)
    text = serving(m, Scenario(runtime="trtllm"), H100, 4, 8192, 128).cycle_text()
    assert "past the 8,192-token budget" in text and "8,192 tokens a step at most" not in text


def test_experts_timed_by_another_formats_kernels_are_said_so():
    """vLLM's MXFP4 MoE was measured validly on neither GPU (BENCHMARKS.md: its 0.19.0 rows ignore expert
    parallelism): on a B200 its experts take the NVFP4 kernels' share, on an H200 the 16-bit ones', and the report
    says which; fp8 experts on an H100 have their own measured table and no such warning."""
    m = preset_model("qwen3-30b-a3b")
    for gpu_id, kernels in (("nvidia-b200-hgx", "nvfp4 MoE kernels"), ("nvidia-h200-sxm", "bf16 MoE kernels")):
        gpu = get_gpu(gpu_id)
        w = serving(m, Scenario(moe_weights_dtype="mxfp4"), gpu, 8, 1024, 128).warnings(gpu)
        assert any("mxfp4 experts are timed" in x and kernels in x for x in w)
    assert serving(m, Scenario(moe_weights_dtype="fp8"), H100, 8, 1024, 128).warnings(H100) == []
