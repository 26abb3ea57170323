"""The serving model's structure, by hand: a pure decode step, a pure prefill, the experts a step reads,
the all-reduce term, and the steady-state bookkeeping. (The fitted efficiencies are not tested here:
BENCHMARKS.md reports how they hold on measured runs.)"""

from dataclasses import replace

import pytest

from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import EngineProfile, engine_profile, serving, step_time, step_work
from kvdash.speed import link_bytes_per_s

H100 = get_gpu("nvidia-h100-sxm5")  # 3,350 GB/s, 989.5 dense bf16 TFLOP/s, NVLink 900 GB/s two-way
PEAK = EngineProfile("test", memory_eff=1.0, cache_eff=1.0, compute_eff=1.0, step_overhead_s=0.0, layer_overhead_s=0.0,
                     queue_steps=0.0, allreduce_latency_s=0.0)
# Llama-3.1-8B: matrices and layer norms 6,979,584,000 parameters; embedding and head 128,256 x 4,096 each;
# a full layer's attention does 2 x 32 heads x (128 + 128) = 16,384 FLOP per query-key pair, 32 layers.
BODY, VOCAB_H, PAIR = 6_979_584_000, 128_256 * 4096, 32 * 16_384
WEIGHTS, KV = 16_060_522_496, 131_072  # bf16 weights (B), cache per token (B)
EMBED = 2 * VOCAB_H  # the untied input embedding (B): a step reads only its tokens' rows of it


def test_a_pure_decode_step():
    m = preset_model("llama-3.1-8b")
    st = step_time(m, Scenario(), H100, PEAK, decode=8, prefill=0, decode_ctx=1000, prefill_ctx=0)
    read = WEIGHTS - EMBED + 8 * 4096 * 2 + 8 * 1000 * KV
    assert st.work.bytes == read
    assert st.memory_s == pytest.approx(read / 3350e9)
    flops = 2 * BODY * 8 + 2 * VOCAB_H * 8 + 8 * 1000 * PAIR
    assert st.work.flops == pytest.approx(flops) and st.compute_s == pytest.approx(flops / 989.5e12)
    assert st.bound == "memory" and st.seconds == pytest.approx(st.memory_s)
    # the cache at its own efficiency, and a per-sequence overhead in each of the 32 layers for each of the
    # 8 decodes, beside the step's and the layers' own
    slow = replace(PEAK, cache_eff=0.5, seq_overhead_s=1e-6, step_overhead_s=1e-3, layer_overhead_s=10e-6)
    st = step_time(m, Scenario(), H100, slow, decode=8, prefill=0, decode_ctx=1000, prefill_ctx=0)
    assert st.work.cache_bytes == 8 * 1000 * KV
    assert st.memory_s == pytest.approx((read - 8 * 1000 * KV) / 3350e9 + 8 * 1000 * KV / (0.5 * 3350e9))
    assert st.overhead_s == pytest.approx(1e-3 + 32 * 10e-6 + 32 * 8 * 1e-6)  # 1.576 ms


def test_a_pure_prefill_step():
    m = preset_model("llama-3.1-8b")
    w = step_work(m, Scenario(), decode=0, prefill=1024, decode_ctx=0, prefill_ctx=512)
    # each prompt token's K/V written once and read back once; the logits of the last prompt token only
    assert w.bytes == WEIGHTS - EMBED + 1024 * 4096 * 2 + 2 * 1024 * KV
    assert w.flops == pytest.approx(2 * BODY * 1024 + 2 * VOCAB_H + 1024 * 512 * PAIR)


def test_a_step_reads_only_the_experts_its_tokens_hit():
    m = preset_model("mixtral-8x7b")  # 8 experts, 2 per token
    one = step_work(m, Scenario(), 1, 0, 100, 0)
    three = step_work(m, Scenario(), 3, 0, 100, 0)
    from kvdash.breakdown import breakdown

    st = breakdown(m, Scenario(prompt_tokens=1)).stage
    cache = 32 * 8 * 256 * 2 * 100  # 32 layers x 8 KV heads x (128 + 128) x 2 B x 100 tokens
    rows = 32_000 * 4096 * 2 - 4096 * 2  # of the untied input embedding, the tokens' rows only
    # one token hits 2 experts per layer: 6 of 8 unread; three tokens leave 8 x (6/8)^3 = 3.375 unread
    assert one.bytes == pytest.approx(st.weight_bytes - st.expert_bytes * 6 / 8 - rows + cache)
    assert three.bytes == pytest.approx(st.weight_bytes - st.expert_bytes * 3.375 / 8 - rows - 2 * 4096 * 2
                                        + 3 * cache)


def test_the_all_reduce_term():
    m = preset_model("llama-3.1-8b")
    p = EngineProfile("test", memory_eff=1.0, cache_eff=1.0, compute_eff=1.0, step_overhead_s=0.0,
                      layer_overhead_s=0.0, allreduce_latency_s=5e-6)
    st = step_time(m, Scenario(tp=2), H100, p, decode=4, prefill=0, decode_ctx=10, prefill_ctx=0)
    assert link_bytes_per_s(H100) == 450e9  # NVLink4's 900 GB/s is the two-way total
    # 2 all-reduces per layer; a ring moves 2 (tp - 1) / tp of the 4 tokens' bf16 hidden states
    assert st.comm_s == pytest.approx(2 * 32 * (5e-6 + 2 * 1 / 2 * 4 * 4096 * 2 / 450e9))


def test_link_speeds_are_one_way_and_shared_with_the_speed_model():
    from kvdash.errors import KvdashError
    from kvdash.speed import speed

    # vendors' two-way totals halved: B200 NVLink5 1.8 TB/s, MI300X 7 x 128 GB/s; PCIe Gen4 x16 per direction
    assert link_bytes_per_s(get_gpu("nvidia-b200-hgx")) == 900e9
    assert link_bytes_per_s(get_gpu("amd-mi300x")) == 448e9
    assert link_bytes_per_s(get_gpu("nvidia-rtx-4090")) == 32e9
    with pytest.raises(KvdashError, match="no GPU-to-GPU link"):
        link_bytes_per_s(get_gpu("apple-m2-ultra"))
    # the static-batch speed model's all-reduce uses the same one-way figure: a 70B decode at tp 8 on
    # H100 moves 2 x 80 layers x 2 x 7/8 x 8,192 x 2 B per token over 450 GB/s (not 900)
    m = preset_model("llama-3.1-70b")
    r = speed(m, Scenario(batch=1, prompt_tokens=100, new_tokens=1, tp=8), H100)
    assert r.decode.overhead_s >= 2 * 80 * 2 * 7 / 8 * 8192 * 2 / 450e9


def test_fp4_matrices_run_on_fp4_tensor_cores_only_where_they_exist():
    from kvdash.speed import matrix_rate

    assert matrix_rate(get_gpu("nvidia-b200-hgx"), "nvfp4") == 9000e12  # B200: 9 PFLOP/s dense fp4
    assert matrix_rate(H100, "nvfp4") == 989.5e12  # Hopper dequantizes to bf16
    assert matrix_rate(H100, "fp8-block") == 1979e12


def test_steady_state_bookkeeping():
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(), H100, 32, 1024, 256, PEAK)
    # each prompt fits one chunk beside the 32 decodes (k = 1), so a request lives 1 + 255 = 256 steps; the
    # 32 requests' prompts arrive spread over them and ride in 32 separate steps of 1,024 prompt tokens
    assert (r.steps_per_cycle, r.mixed_steps_per_cycle, r.decode_tokens_per_step) == (256, 32, 32)
    assert (r.prompt_tokens_per_mixed_step, r.prefill_steps) == (1024, 1)
    assert r.mixed.work.flops > r.step.work.flops  # the chunk's 1,024 tokens of work
    assert r.cycle_s == pytest.approx(32 * r.mixed.seconds + 224 * r.step.seconds)
    # TPOT: the request's lifetime after its own prompt step, over its 255 later tokens
    assert r.tpot_s == pytest.approx((31 * r.mixed.seconds + 224 * r.step.seconds) / 255)
    assert r.tokens_per_s_per_gpu == pytest.approx(32 * 256 / r.cycle_s)
    # the first token (PEAK has no queueing terms): the rest of the step in progress, a random moment
    # landing in a step with odds proportional to its length, then the request's own chunk
    mix, dec = r.mixed.seconds, r.step.seconds
    assert r.ttft_s == pytest.approx((32 * mix**2 + 224 * dec**2) / (2 * r.cycle_s) + mix)
    # queue_steps average steps, and a share of the other 31 prompts ahead, each one chunk step
    assert r.ttft_with(2, 0.5) == pytest.approx(r.ttft_s + 2 * r.cycle_s / 256 + 0.5 * 31 * mix)
    # plus a number of them whatever the concurrency, but never more than the 31 others
    assert r.ttft_with(0, 0.5, 0, 3) == pytest.approx(r.ttft_s + (0.5 * 31 + 3) * mix)
    assert r.ttft_with(0, 0.5, 0, 20) == pytest.approx(r.ttft_s + 31 * mix)
    assert r.ttft_with(0, 0, 0.05) == pytest.approx(r.ttft_s + 0.05)  # the engine's fixed per-request time
    long = serving(m, Scenario(), H100, 32, 8192, 16, PEAK)
    # prompt-bound: 32 x (8,192 + 15) tokens need 32.06 full steps, more than a lifetime of 2 + 15
    S = 32 * 8207 / 8192
    assert long.steps_per_cycle == pytest.approx(S) and long.prefill_steps == 2  # 8,192 > 8,192 - 32
    assert long.mixed_steps_per_cycle == pytest.approx(S)  # every step carries a chunk
    d = 32 * 16 / S
    assert long.decode_tokens_per_step == pytest.approx(d)
    assert long.prompt_tokens_per_mixed_step == pytest.approx(8192 - d)  # the budget caps the chunk
    assert long.tpot_s == pytest.approx((S - 2) * long.mixed.seconds / 15)


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
    # TensorRT-LLM's rule: a fraction of the memory the weights and the profile forward leave free, and
    # each request reserves its whole isl + osl
    trt = replace(PEAK, fraction_of_free=True, reserve_full_length=True)
    t = serving(m, Scenario(), H100, 32, 1024, 256, trt)
    used = 0.9 * H100.usable_bytes - r.pool_bytes  # weights, forward, logits and context, from vLLM's rule
    assert t.pool_bytes == pytest.approx(0.9 * (H100.usable_bytes - used), abs=2)
    assert t.request_bytes == 1280 * KV


def test_engine_step_limits_follow_the_gpu_as_vllm_sets_them():
    from kvdash.serving import batch_limits

    vllm = engine_profile("vllm")
    # vLLM's get_batch_defaults for `vllm serve`: 8,192 tokens and 1,024 requests on GPUs of 70 GiB or
    # more that are not A100s; 2,048 and 256 otherwise
    assert batch_limits(vllm, H100) == (8192, 1024)
    assert batch_limits(vllm, get_gpu("nvidia-h200-sxm")) == (8192, 1024)
    assert batch_limits(vllm, get_gpu("nvidia-a100-sxm4-80gb")) == (2048, 256)
    assert batch_limits(vllm, get_gpu("nvidia-l4")) == (2048, 256)
    assert batch_limits(replace(vllm, max_num_batched_tokens=4096), get_gpu("nvidia-l4")) == (4096, 256)
    assert batch_limits(engine_profile("trtllm"), get_gpu("nvidia-l4")) == (8192, 2048)
    # 600 small requests fit the pool of one H100, but max_num_seqs 256 lets only 256 run
    m = preset_model("llama-3.1-8b")
    r = serving(m, Scenario(), H100, 600, 128, 16, replace(PEAK, max_num_seqs=256))
    assert r.running == 256 and r.limited_by == "max_num_seqs" and r.wait_s > 0


def test_a_profile_used_off_the_gpu_it_was_fitted_on_says_so():
    m, vllm = preset_model("llama-3.1-8b"), engine_profile("vllm")
    assert serving(m, Scenario(), H100, 8, 1024, 128, vllm).warnings(H100) == []
    l4 = get_gpu("nvidia-l4")
    assert "fitted on H100 SXM runs only" in serving(m, Scenario(), l4, 8, 1024, 128, vllm).warnings(l4)[0]
    assert serving(m, Scenario(), l4, 8, 1024, 128, PEAK).warnings(l4) == []  # not fitted: nothing to carry


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
    with pytest.raises(KvdashError, match="must exceed the requests running at once"):
        serving(preset_model("llama-3.1-8b"), Scenario(), H100, 9000, 10, 10, PEAK)
    # an engine that overlaps scheduling with the GPU's step has no per-step overhead to add
    with pytest.raises(KvdashError, match="step_overhead_s must be 0"):
        EngineProfile("test", overlap_scheduler=True, step_overhead_s=1e-3)
    # TensorRT-LLM and SGLang overlap it by default; vLLM's fitted profile keeps a per-step overhead
    assert engine_profile("trtllm").overlap_scheduler and engine_profile("sglang").overlap_scheduler
    assert not engine_profile("vllm").overlap_scheduler and engine_profile("vllm").step_overhead_s > 0


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
    assert set(out["terms"]) == {"compute", "memory", "overheads", "all-reduces", "step"}
    # 4,096 requests of 128k tokens cannot fit one H100: said, with the largest concurrency that does
    rc = main(["serving", "--preset", "llama-3.1-8b", "--gpu", "nvidia-h100-sxm5", "--concurrency", "4096",
               "--isl", "131072", "--osl", "16", "--max-num-batched-tokens", "16384", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["fits"] is False and 0 <= out["max_concurrency_that_fits"] < 4096
    assert main(["serving", "--preset", "mixtral-8x7b", "--gpu", "nvidia-h100-sxm5", "--concurrency", "8",
                 "--isl", "100", "--osl", "10", "--tp", "2", "--ep", "4"]) == 2
    assert "--ep 4" in capsys.readouterr().err


def test_tensorrt_llm_per_tensor_fp8_runs_hold_an_fp8_cache():
    from kvdash.serving_runs import GPU, kv_format, matching_runs

    assert kv_format("trtllm", "fp8") == "fp8"  # ModelOpt's per-tensor fp8 checkpoints quantize the cache too
    assert kv_format("trtllm", "fp8_block") == kv_format("vllm", "fp8") == kv_format("trtllm", "") == "bf16"
    # why: 64 requests of 4,096 + 128 tokens of Qwen3-32B (64 layers x 8 KV heads x 128 x 2 x 2 B per token)
    # would hold 70.9 GB of bf16 cache on one 80 GB GPU beside its fp8 weights
    assert 64 * 4224 * 64 * 8 * 128 * 2 * 2 == 70_866_960_384
    # the Speed page draws those runs beside an fp8-cache scenario only
    runs = matching_runs("Qwen/Qwen3-32B", GPU, "trtllm", 1, 4096, 128, "fp8", "fp8")
    assert [r.concurrency for r in runs] == [8, 16, 32, 64]
    assert matching_runs("Qwen/Qwen3-32B", GPU, "trtllm", 1, 4096, 128, "fp8") == []
