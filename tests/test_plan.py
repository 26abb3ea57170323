"""Plan a deployment (issue #22): every option's numbers are `serving`'s for that configuration, each meets the
targets at the rate with the fewest replicas, costs are the GPUs' bill over the tokens served (by hand), a prefix
cache hit is planned with the serving model's numbers, and an impossible plan says why."""

import json
import re
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.cli import main
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.plan import plan
from kvdash.presets import preset_model
from kvdash.serving import serving
from kvdash.traffic import at_rate

M = preset_model("llama-3.1-8b")
GPUS = [get_gpu("nvidia-h100-sxm5"), get_gpu("nvidia-l40s")]
RATE, ISL, OSL, TTFT, TPOT = 10.0, 1024, 256, 0.5, 0.025
AGG = ("aggregated",)  # options that serving() answers alone (disaggregated pools: tests/test_disagg.py)


@pytest.fixture(scope="module")
def planned():
    return plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS, modes=AGG)


def test_the_chosen_options_numbers_are_the_serving_models(planned):
    options, _ = planned
    costs = [o.usd_per_m_output for o in options]
    assert options and None not in costs and costs == sorted(costs)  # cheapest first (both GPUs have prices)
    for o in options[:5]:
        r = serving(M, o.scenario(ISL, OSL), get_gpu(o.gpu), o.concurrency, ISL, OSL)
        assert (r.ttft_s, r.tpot_s) == (o.ttft_s, o.tpot_s)  # the Speed page's numbers, not a second model
        assert r.fits  # its memory holds every request in flight (the engine's own KV pool)


def test_each_option_meets_the_targets_with_the_fewest_replicas(planned):
    options, _ = planned
    for o in options:
        assert o.ttft_s <= TTFT and o.tpot_s <= TPOT
        # Little's law: replicas x the rate one serves within the targets covers the rate; one fewer would not, or
        # its steady state would miss the targets (the serving model is not monotone in the requests in flight)
        assert o.replicas * o.capacity_rate >= RATE
        g, s = get_gpu(o.gpu), o.scenario(ISL, OSL)
        if (o.replicas - 1) * o.capacity_rate >= RATE:
            _, fewer = at_rate(M, s, g, RATE / (o.replicas - 1), ISL, OSL, max_concurrency=o.max_in_flight)
            assert fewer.ttft_s > TTFT or fewer.tpot_s > TPOT
        at_most, beyond = serving(M, s, g, o.max_in_flight, ISL, OSL), serving(M, s, g, o.max_in_flight + 1, ISL, OSL)
        assert at_most.ttft_s <= TTFT and at_most.tpot_s <= TPOT
        assert beyond.ttft_s > TTFT or beyond.tpot_s > TPOT  # the most requests in flight within the targets


def test_an_impossible_plan_says_why():
    options, left_out = plan(M, 10_000.0, ISL, OSL, TTFT, TPOT, GPUS[:1], max_gpus=2, modes=AGG)
    assert options == [] and left_out
    assert all("more than 2" in why or "misses the targets" in why for why in left_out.values())
    with pytest.raises(KvdashError, match="positive"):
        plan(M, RATE, ISL, OSL, 0.0, TPOT, GPUS)


def test_the_cli_plans_and_refuses_bad_input(capsys):
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--gpus", "nvidia-h100-sxm5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["options"] and all(o["gpu"] == "nvidia-h100-sxm5" for o in out["options"])
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "-1", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--gpus", "nvidia-h100-sxm5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_prefix_cache_hit_plans_with_the_serving_models_numbers_and_fewer_prompt_tokens():
    """Issue #22, item 5: half of each prompt in the prefix cache (512 of 1,024 tokens: 32 whole 16-token blocks,
    or all 512 in the planner's unpaged cache) is neither prefilled nor held per request; the options are
    still serving()'s numbers for that scenario, and the first one's TTFT is below the uncached plan's."""
    options, _ = plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS[:1], engines=("vllm",), prefix_tokens=512,
                      modes=AGG)
    o = options[0]
    s = o.scenario(ISL, OSL)
    assert s.shared_prefix_tokens == 512
    r = serving(M, s, get_gpu(o.gpu), o.concurrency, ISL, OSL)
    assert (r.ttft_s, r.tpot_s, r.computed) == (o.ttft_s, o.tpot_s, 512)
    assert o.ttft_s < serving(M, s.with_(shared_prefix_tokens=0), get_gpu(o.gpu), o.concurrency, ISL, OSL).ttft_s
    with pytest.raises(KvdashError, match="cached prefix"):
        plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS[:1], prefix_tokens=ISL + 1)


def test_the_cli_takes_a_prefix_hit_rate(capsys):
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--gpus", "nvidia-h100-sxm5", "--prefix-hit", "0.5",
                 "--json"]) == 0
    assert {o["prefix_tokens"] for o in json.loads(capsys.readouterr().out)["options"]} == {512}
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--prefix-hit", "1.5"]) == 2
    assert "--prefix-hit" in capsys.readouterr().err


def test_listed_prices_are_dated_sourced_and_the_reference_is_the_lowest():
    from kvdash.gpus import load_gpus
    from kvdash.prices import load_prices, reference_price

    listed = load_prices()
    catalog = load_gpus()
    for gpu_id, prices in listed.items():
        assert gpu_id in catalog
        for p in prices:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.seen) and p.source and p.provider
    aws = next(p for p in listed["nvidia-h100-sxm5"] if p.provider == "AWS")
    assert aws.usd_per_gpu_hour == 6.88  # AWS's p5.48xlarge: $55.04 an hour for 8 H100s
    # H100 SXM: AWS 6.88, Azure 98.32 / 8 = 12.29, Oracle 10, CoreWeave 49.24 / 8 = 6.155, Lambda 3.99
    assert reference_price("nvidia-h100-sxm5").provider == "Lambda"
    assert reference_price("nvidia-h100-sxm5").usd_per_gpu_hour == 3.99
    assert reference_price("nvidia-gb200").usd_per_gpu_hour == 10.5  # CoreWeave: $42.00 for a 4-GPU node
    assert reference_price("nvidia-gb300") is None  # "contact sales" everywhere: no price, not a guess


def test_a_million_tokens_cost_the_gpus_bill_over_the_tokens_served():
    """By hand: 10 requests/s of 1,024 + 256 tokens bring 10 x 256 x 3,600 = 9,216,000 output tokens an hour and
    10 x 1,280 x 3,600 = 46,080,000 tokens in all; at $2 per GPU-hour, g GPUs cost 2g / 9.216 dollars per million
    output tokens and 2g / 46.08 per million tokens."""
    options, _ = plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS, prices={"nvidia-h100-sxm5": 2.0,
                                                                    "nvidia-l40s": 0.5})
    for o in options:
        price = 2.0 if o.gpu == "nvidia-h100-sxm5" else 0.5
        assert o.usd_per_gpu_hour == price
        assert o.usd_per_m_output == pytest.approx(price * o.gpus / 9.216, rel=1e-12)
        assert o.usd_per_m_tokens == pytest.approx(price * o.gpus / 46.08, rel=1e-12)
    costs = [o.usd_per_m_output for o in options]
    assert costs == sorted(costs)  # ranked by cost
    by_gpus, _ = plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS, rank="gpus")
    assert [o.gpus for o in by_gpus] == sorted(o.gpus for o in by_gpus)
    with pytest.raises(KvdashError, match="rank by"):
        plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS, rank="speed")


def test_the_pareto_front_keeps_options_nothing_beats_on_gpus_and_tpot(planned):
    from dataclasses import replace

    from kvdash.plan import pareto_front

    base = planned[0][0]
    made = [replace(base, tp=1, replicas=g, tpot_s=t) for g, t in
            [(1, 0.03), (1, 0.02), (2, 0.01), (2, 0.015), (4, 0.012), (4, 0.005)]]  # tp 1: gpus = replicas
    assert [(o.gpus, o.tpot_s) for o in pareto_front(made)] == [(1, 0.02), (2, 0.01), (4, 0.005)]


def test_the_cli_prices_and_refuses_a_bad_price(capsys):
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--gpus", "nvidia-h100-sxm5",
                 "--price", "nvidia-h100-sxm5=2"]) == 0
    assert "0.217" in capsys.readouterr().out  # $2 / 9.216 M output tokens
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--price", "h100"]) == 2
    assert "GPU=USD" in capsys.readouterr().err
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--price", "h100x=2"]) == 2
    assert "unknown GPU 'h100x'" in capsys.readouterr().err  # a price for no GPU is refused, not ignored


def test_weight_formats_are_searched_where_the_gpu_runs_them():
    """Issue #22: the checkpoint's format and the lighter ones each GPU's tensor cores run: fp8 on Hopper, Ada and
    Blackwell, NVFP4 on Blackwell only; an fp8-block checkpoint (DeepSeek-V3) is not re-quantized to fp8, and
    gpt-oss's mxfp4 experts stay mxfp4 under bf16 or fp8 weights (they are lighter than both)."""
    from kvdash.hf_config import model_from_config
    from kvdash.plan import experts_format, weight_formats

    h100, b200, a100 = get_gpu("nvidia-h100-sxm5"), get_gpu("nvidia-b200-hgx"), get_gpu("nvidia-a100-sxm4-80gb")
    assert weight_formats(M, h100) == ("bf16", "fp8")
    assert weight_formats(M, b200) == ("bf16", "fp8", "nvfp4")
    assert weight_formats(M, a100) == ("bf16",)  # no fp8 tensor cores
    assert weight_formats(M, b200, "bf16") == ("bf16",)  # one format asked for: that one
    assert weight_formats(preset_model("deepseek-v3"), h100) == ("fp8-block",)
    cfg = json.loads((Path(__file__).parent / "data" / "configs" / "gpt-oss-120b.json").read_text())["config"]
    oss = model_from_config(cfg)
    assert (experts_format(oss, "bf16"), experts_format(oss, "fp8"), experts_format(M, "fp8")) == ("mxfp4", "mxfp4", "")
    options, _ = plan(M, RATE, ISL, OSL, TTFT, TPOT, [h100, b200], engines=("vllm",), modes=AGG)
    assert {(o.gpu, o.weights_dtype) for o in options} >= {("nvidia-h100-sxm5", "fp8"), ("nvidia-b200-hgx", "nvfp4")}
    assert not any(o.gpu == "nvidia-h100-sxm5" and o.weights_dtype == "nvfp4" for o in options)
    for o in options[:4]:  # each format's numbers are the serving model's for that scenario
        r = serving(M, o.scenario(ISL, OSL), get_gpu(o.gpu), o.concurrency, ISL, OSL)
        assert (r.ttft_s, r.tpot_s) == (o.ttft_s, o.tpot_s)


def test_a_speculating_plan_is_the_serving_models_answer():
    """Issue #22, item 4: DeepSeek-V3 with one MTP token a step, planned on H200: each option's numbers are
    serving()'s for its scenario, which carries the speculation (and so the module's memory)."""
    v3 = preset_model("deepseek-v3")
    options, _ = plan(v3, 2.0, 2048, 512, 2.0, 0.04, [get_gpu("nvidia-h200-sxm")], engines=("sglang",),
                      spec_tokens=1, modes=AGG)
    assert options
    for o in options[:3]:
        s = o.scenario(2048, 512)
        assert (s.spec_tokens, s.spec_accepted) == (1, 0.0)
        r = serving(v3, s, get_gpu(o.gpu), o.concurrency, 2048, 512)
        assert (r.ttft_s, r.tpot_s, r.accepted) == (o.ttft_s, o.tpot_s, 1.85)


def test_a_burst_sizes_the_pools_and_the_mean_rate_pays():
    """burst 2 at 10 requests/s: the same pools and latencies as a steady 20/s, the cost per token over 10/s's
    tokens (10 x 256 x 3,600 = 9,216,000 an hour), so twice the steady 20/s plan's."""
    h100 = GPUS[:1]
    prices = {"nvidia-h100-sxm5": 2.0}
    bursty, _ = plan(M, 10.0, ISL, OSL, TTFT, TPOT, h100, engines=("vllm",), prices=prices, burst=2.0)
    steady, _ = plan(M, 20.0, ISL, OSL, TTFT, TPOT, h100, engines=("vllm",), prices=prices)
    assert [(o.layout, o.ttft_s, o.tpot_s) for o in bursty] == [(o.layout, o.ttft_s, o.tpot_s) for o in steady]
    for b, s in zip(bursty, steady, strict=True):
        assert b.usd_per_m_output == pytest.approx(2.0 * b.gpus / 9.216) == pytest.approx(2 * s.usd_per_m_output)
    with pytest.raises(KvdashError, match="burst factor"):
        plan(M, 10.0, ISL, OSL, TTFT, TPOT, h100, burst=0.5)


def test_the_longest_request_must_fit_every_pool(capsys):
    """Planned at the means, the longest of varied lengths must still fit: 120,000 + 8,000 tokens of Llama-3.1-8B
    (131,072 B a token: 16.8 GB) fit an H100's pool, but not one 24 GB L4 beside the 16 GB of weights (two do, at
    half of each)."""
    options, left_out = plan(M, 1.0, 2048, 512, 60.0, 0.2, [get_gpu("nvidia-l4"), GPUS[0]], engines=("vllm",),
                             weights_dtype="bf16", kv_dtypes=("bf16",), longest=(120_000, 8_000))
    assert options and all(o.gpu == "nvidia-h100-sxm5" or o.tp > 1 for o in options)
    assert left_out["nvidia-l4 vllm tp1 weights bf16 kv bf16"] == \
        "the longest request (120,000 + 8,000 tokens) does not fit its KV pool"
    assert "nvidia-h100-sxm5 vllm tp1 weights bf16 kv bf16" not in left_out
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "512:0.8,8192:0.2", "--osl", "128-384",
                 "--ttft-ms", "1000", "--tpot-ms", "30", "--gpus", "nvidia-h100-sxm5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]
    assert main(["plan", "--preset", "llama-3.1-8b", "--rate", "10", "--isl", "512:0.8", "--osl", "256",
                 "--ttft-ms", "1000", "--tpot-ms", "30"]) == 2
    assert "--isl" in capsys.readouterr().err


def test_a_fixed_concurrency_plans_replicas_that_hold_every_user_within_the_targets(capsys):
    """200 users in a closed loop: each option's replicas run ceil(200 / replicas) each, its numbers are serving()'s
    there, one replica fewer would miss the targets, and it serves 200 / (TTFT + 255 TPOT) requests/s (Little's
    law), which its cost is over: $2 x GPUs / (that x 256 x 3,600 / 10^6) per million output tokens."""
    import math

    options, left_out = plan(M, 0.0, ISL, OSL, TTFT, TPOT, GPUS[:1], prices={"nvidia-h100-sxm5": 2.0}, users=200)
    assert options and not any(o.disaggregated for o in options)
    assert any("planned as aggregated replicas" in why for why in left_out.values())
    g = GPUS[0]
    for o in options[:6]:
        assert o.concurrency == math.ceil(200 / o.replicas)
        r = serving(M, o.scenario(ISL, OSL), g, o.concurrency, ISL, OSL)
        assert (r.ttft_s, r.tpot_s) == (o.ttft_s, o.tpot_s) and r.ttft_s <= TTFT and r.tpot_s <= TPOT
        served = 200 / (r.ttft_s + (OSL - 1) * r.tpot_s)
        assert o.served_rate == pytest.approx(served)
        assert o.usd_per_m_output == pytest.approx(2.0 * o.gpus / (served * OSL * 3600 / 1e6))
        if o.replicas > 1:
            fewer = serving(M, o.scenario(ISL, OSL), g, math.ceil(200 / (o.replicas - 1)), ISL, OSL)
            assert fewer.ttft_s > TTFT or fewer.tpot_s > TPOT
    with pytest.raises(KvdashError, match="fixed concurrency"):
        plan(M, 5.0, ISL, OSL, TTFT, TPOT, GPUS[:1], users=200)  # a rate or users, not both
    assert main(["plan", "--preset", "llama-3.1-8b", "--concurrency", "200", "--isl", "1024", "--osl", "256",
                 "--ttft-ms", "500", "--tpot-ms", "25", "--gpus", "nvidia-h100-sxm5"]) == 0
    assert "200 users in a closed loop" in capsys.readouterr().out


def test_the_chosen_options_memory_is_sizes_and_capacitys(planned):
    """The first option's memory as `kvdash size` and `kvdash capacity --gpu` give it: the breakdown's weights plus
    the rotary table vLLM keeps (131,072 positions x 128 x 2 B = 33,554,432 B), the start-up's KV pool, and each
    request's cache by hand: 32 layers x 8 KV heads x 128 x (K, V) x the KV format's bytes, over 1,024 + 128 tokens
    (its prompt and half its output, 72 whole blocks of 16; TensorRT-LLM, which reserves it all: 1,024 + 256)."""
    from kvdash.startup import engine_startup

    o = planned[0][0]
    g, s = get_gpu(o.gpu), o.scenario(ISL, OSL)
    r = serving(M, s, g, o.concurrency, ISL, OSL)
    start = engine_startup(M, s, g, family="0.8-0.19")
    assert r.pool_bytes == start.kv_budget_bytes
    assert start.weights_bytes == breakdown(M, s.resolved(g), g)["weights"] + 131_072 * 128 * 2
    per_value = 1 if o.kv_dtype == "fp8" else 2
    held = 1024 + (256 if o.engine == "trtllm" else 128)  # TensorRT-LLM reserves the whole output at admission
    assert r.request_bytes == 32 * 8 * 128 * 2 * per_value * held
