"""Disaggregated prefill and decode (issue #22, item 3): the M/D/1 queue of a prefill worker and its inverse by hand,
the prompt cache a prefill GPU sends (bytes by hand), a prompt's chunks as each engine runs them, the TTFT as the
sum kvdash.disagg states (each engine's first token), Little's law on a decode worker, the planner's disaggregated
options being disaggregated()'s answers, and against llm-d's published P/D run."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kvdash.disagg import (
    decode_steady,
    decode_worker,
    disaggregated,
    md1_max_load,
    md1_wait_s,
    prefill_worker,
)
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.hf_config import model_from_config
from kvdash.plan import plan
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import engine_profile

M = preset_model("llama-3.1-8b")
H100 = get_gpu("nvidia-h100-sxm5")
CONFIGS = Path(__file__).parent / "data" / "configs"


def scenario(engine="vllm", tp=1, **kw):
    return Scenario(prompt_tokens=1024, new_tokens=256, runtime=engine, tp=tp, **kw)


def test_an_md1_queue_waits_rho_s_over_two_one_minus_rho_and_its_inverse_gives_the_load_back():
    # Pollaczek-Khinchine with a fixed service time: rho = 0.5, S = 100 ms -> 0.5 x 0.1 / (2 x 0.5) = 50 ms
    assert md1_wait_s(0.5, 0.1) == pytest.approx(0.05)
    assert md1_wait_s(0.0, 0.1) == 0.0
    assert md1_wait_s(0.9, 0.2) == pytest.approx(0.9 * 0.2 / 0.2)  # 0.9 s
    # the inverse: a 50 ms budget on a 100 ms service allows rho = 2 x 0.05 / (0.1 + 0.1) = 0.5
    assert md1_max_load(0.05, 0.1) == pytest.approx(0.5)
    assert md1_max_load(-1.0, 0.1) == 0.0
    with pytest.raises(KvdashError, match="cannot keep up"):
        md1_wait_s(1.0, 0.1)


def test_a_prefill_gpu_sends_its_share_of_the_prompt_cache():
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x (K, V) x 2 B = 131,072 B a token; 1,024 tokens = 134,217,728 B
    assert prefill_worker(M, scenario(), H100, 1024).cache_bytes == 134_217_728
    assert prefill_worker(M, scenario(tp=2), H100, 1024).cache_bytes == 67_108_864  # 4 KV heads a GPU
    assert prefill_worker(M, scenario(kv_dtype="fp8"), H100, 1024).cache_bytes == 67_108_864  # 1 B a value


def test_a_long_prompt_is_prefilled_in_chunks_where_the_engine_chunks():
    # vLLM's and SGLang's budget on an H100 is 8,192 tokens a step: 10,000 tokens take 2 steps of 5,000 each;
    # TensorRT-LLM does not chunk (kvdash.engines): one step of all 10,000
    for engine, steps in (("vllm", 2), ("sglang", 2), ("trtllm", 1)):
        p = prefill_worker(M, scenario(engine), H100, 10_000)
        assert p.steps == steps and p.service_s == pytest.approx(steps * p.step.seconds)
        assert p.step.work.flops > 0 and p.computed == 10_000


def test_the_ttft_is_the_queue_the_prefill_the_transfer_and_the_decode_join():
    """TTFT = request overhead + rho S / (2 (1 - rho)) + S + bytes / link + (1.5 decode steps for vLLM, whose
    decode worker computes the first token; 0.5 for SGLang, whose prefill worker sampled it)."""
    for engine, join in (("vllm", 1.5), ("sglang", 0.5)):
        s = scenario(engine)
        d = disaggregated(M, s, s, H100, 2.0, 1024, 256, 1, 1, link_gbps=50.0)
        S = prefill_worker(M, s, H100, 1024).service_s
        rho = 2.0 * S
        by_hand = (engine_profile(engine).request_overhead_s + rho * S / (2 * (1 - rho)) + S + 134_217_728 / 50e9
                   + join * d.decode.step_s)
        assert d.ttft_s == pytest.approx(by_hand, rel=1e-12)
        assert d.tpot_s == d.decode.step_s  # no speculation: one token a step
        assert sum(sec for _, sec, _ in d.terms()) == pytest.approx(d.ttft_s)
        assert d.gpus == 2


def test_a_decode_worker_holds_the_requests_littles_law_gives():
    s, rate = scenario(), 5.0
    steady, worker = decode_steady(M, s, H100, rate, 1024, 256, most=512)
    c = steady.concurrency
    assert c / worker.latency_s >= rate  # serves the rate ...
    prev = decode_worker(M, s, H100, c - 1, 1024, 256)
    assert (c - 1) / prev.latency_s < rate  # ... and one fewer in flight would not
    with pytest.raises(KvdashError, match="runs 1 to"):
        decode_worker(M, s, H100, 10**6, 1024, 256)  # more than its pool holds


def test_pools_must_agree_and_an_overloaded_prefill_pool_is_refused():
    s = scenario()
    with pytest.raises(KvdashError, match="must agree on kv_dtype"):
        disaggregated(M, s, replace(s, kv_dtype="fp8"), H100, 1.0, 1024, 256, 1, 1)
    with pytest.raises(KvdashError, match="cannot keep up"):
        disaggregated(M, s, s, H100, 1000.0, 1024, 256, 1, 64)  # 1,000 prompts/s on one prefill worker
    mamba = model_from_config(json.loads((CONFIGS / "falcon-mamba-7b.json").read_text())["config"])
    with pytest.raises(KvdashError, match="same tp in both pools"):
        disaggregated(mamba, replace(s, tp=1), replace(s, tp=2), H100, 1.0, 1024, 256, 1, 1)


def test_the_planners_disaggregated_options_are_disaggregated_answers():
    """Issue #22's acceptance: a plan's numbers are the functions' own for that configuration."""
    options, _ = plan(M, 40.0, 4096, 256, 1.0, 0.02, [H100], engines=("vllm", "sglang"),
                             modes=("disaggregated",), link_gbps=25.0)
    assert options and all(o.disaggregated for o in options)
    for o in options[:6]:
        d = disaggregated(M, o.prefill_scenario(4096, 256), o.scenario(4096, 256), H100, 40.0, 4096, 256,
                          o.prefill_replicas, o.replicas, 25.0)
        assert (d.ttft_s, d.tpot_s, d.gpus, d.transfer_s) == (o.ttft_s, o.tpot_s, o.gpus, o.transfer_s)
        assert d.ttft_s <= 1.0 and d.tpot_s <= 0.02
        assert d.decode.concurrency <= d.decode.running_max  # the decode pool holds every request in flight
        if o.prefill_replicas > 1:  # the fewest prefill workers: one fewer misses the TTFT target or overloads
            try:
                fewer = disaggregated(M, o.prefill_scenario(4096, 256), o.scenario(4096, 256), H100, 40.0, 4096,
                                      256, o.prefill_replicas - 1, o.replicas, 25.0)
                assert fewer.ttft_s > 1.0
            except KvdashError as e:
                assert "cannot keep up" in str(e)


def test_llm_ds_published_pd_run_against_the_prefill_queue():
    """llm-d's P/D guide (llm-d/llm-d guides/pd-disaggregation, README.md @ 027a0532 and
    benchmark-results/vllm-gpt-oss-120b-h200-multi-tier.md @ 3cfabd6a): gpt-oss-120b on 16 H200, vLLM with
    NIXL, 8 prefill workers of tp 1 and 2 decode workers of tp 4, 5,000 + 250 tokens at 45 requests/s. Measured
    mean TTFT 0.518 s at 44.27 requests/s (vLLM v0.27.1) and 1.157 s at 42.58 (the README's run). llm-d calibrates
    a prefill worker at 33,821 prompt tokens/s (its peakPrefillThroughput for this fleet). At that service time
    kvdash's M/D/1 prefill queue alone accounts for 80-100 % of the 0.518 s run's TTFT (the rest: transfer and the
    decode join); kvdash's own step cost is further off (BENCHMARKS.md, the disaggregated table)."""
    S = 5000 / 33_821
    rho = 44.27 / 8 * S
    assert 0.8 <= (md1_wait_s(rho, S) + S) / 0.518 <= 1.0
    oss = model_from_config(json.loads((CONFIGS / "gpt-oss-120b.json").read_text())["config"])
    base = Scenario(prompt_tokens=5000, new_tokens=250, runtime="vllm", block_size=128,
                    moe_weights_dtype=oss.experts_format)
    d = disaggregated(oss, replace(base, tp=1), replace(base, tp=4), get_gpu("nvidia-h200-sxm"), 44.27, 5000, 250,
                      8, 2)
    assert d.gpus == 16 and d.decode.concurrency <= d.decode.running_max


def test_a_speculating_decode_pool_yields_its_accepted_tokens_a_step():
    """DeepSeek-V3 with one MTP token a step (1.85 tokens a step, kvdash.speculative's default): the decode pool's
    TPOT is its step (verify + draft) over 1.85, and the prefill worker also runs the module over the prompt (its
    cache is the module's layer's)."""
    v3, h200 = preset_model("deepseek-v3"), get_gpu("nvidia-h200-sxm")
    s = Scenario(prompt_tokens=2048, new_tokens=512, runtime="sglang", tp=8, spec_tokens=1,
                 weights_dtype=v3.weights_format)
    d = disaggregated(v3, s, s, h200, 1.0, 2048, 512, 1, 1)
    assert d.decode.draft_s > 0 and d.tpot_s == pytest.approx((d.decode.step.seconds + d.decode.draft_s) / 1.85)
    assert d.prefill.draft_s > 0
    plain = prefill_worker(v3, replace(s, spec_tokens=0), h200, 2048)
    # DeepSeek-V3's latent cache: 576 values x 2 B a token a layer, held whole on every GPU (MLA is not split);
    # 61 layers, + 1 with the module: 2,048 x 1,152 x 61 and x 62
    assert (plain.cache_bytes, d.prefill.cache_bytes) == (2048 * 1152 * 61, 2048 * 1152 * 62)


def test_the_cli_plans_disaggregated_pools_and_refuses_a_bad_link(capsys):
    from kvdash.cli import main

    args = ["plan", "--preset", "llama-3.1-8b", "--rate", "40", "--isl", "4096", "--osl", "256", "--ttft-ms", "1000",
            "--tpot-ms", "20", "--gpus", "nvidia-h100-sxm5", "--engine", "vllm"]
    assert main([*args, "--mode", "disaggregated", "--kv-link-gbps", "25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["options"]
    assert out and all(o["prefill_replicas"] >= 1 and o["link_gbps"] == 25 for o in out)
    assert out[0]["gpus"] == out[0]["prefill_replicas"] * out[0]["prefill_tp"] + out[0]["replicas"] * out[0]["tp"]
    assert main([*args, "--mode", "disaggregated"]) == 0
    text = capsys.readouterr().out
    assert "prefill " in text and "+ decode " in text and "assumed: one 400 Gb/s port per GPU" in text
    assert main([*args, "--kv-link-gbps", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_each_engine_starts_its_pools_as_its_docs_say():
    """vLLM: NixlConnector through --kv-transfer-config and its toy proxy; SGLang: --disaggregation-mode with the
    NIXL backend and sglang_router's --pd-disaggregation; TensorRT-LLM: trtllm-serve disaggregated (kvdash.launch)."""
    from kvdash.launch import launch, pool_launch, router_command

    def base(engine):
        return launch(M, scenario(engine), engine, "meta-llama/Llama-3.1-8B", utilization=0.9, max_model_len=1280,
                      block_size=16, max_num_batched_tokens=8192, max_num_seqs=0)

    vllm = pool_launch(base("vllm"), "vllm", "prefill")
    assert ("--kv-transfer-config", '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}') in vllm.flags
    assert any(e.startswith("VLLM_NIXL_SIDE_CHANNEL_HOST=") for e in vllm.env)
    assert "--prefiller-hosts PREFILL_1 PREFILL_2" in router_command("vllm", 2, 1)
    for role in ("prefill", "decode"):
        sg = pool_launch(base("sglang"), "sglang", role)
        assert ("--disaggregation-mode", role) in sg.flags and ("--disaggregation-transfer-backend", "nixl") in sg.flags
    assert router_command("sglang", 1, 2).count("--decode http://") == 2
    assert "--pd-disaggregation" in router_command("sglang", 1, 1)
    assert router_command("trtllm", 3, 1).startswith("trtllm-serve disaggregated -c")
    assert any("cache_transceiver_config" in n for n in pool_launch(base("trtllm"), "trtllm", "decode").notes)


def test_a_model_without_a_trained_length_is_served_at_the_requests_own():
    """Falcon-Mamba states no max_position_embeddings: the serving model (and so a plan) starts the engine with the
    scenario's length, as --max-model-len would; the KV pool does not depend on it, only the blocks a request takes."""
    from kvdash.serving import serving
    from kvdash.startup import engine_startup

    mamba = model_from_config(json.loads((CONFIGS / "falcon-mamba-7b.json").read_text())["config"])
    s = Scenario(prompt_tokens=3000, new_tokens=300, runtime="vllm")
    r = serving(mamba, s, H100, 8, 3000, 300)
    pools = {engine_startup(mamba, s, H100, family="0.8-0.19", max_model_len=n).kv_budget_bytes for n in (2048, 3300)}
    assert pools == {r.pool_bytes} and r.running == 8
