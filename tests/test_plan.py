"""Plan a deployment (issue #22), first step: every option's numbers are `serving`'s for that configuration, each
meets the targets at the rate with the fewest replicas, and an impossible plan says why."""

import json

import pytest

from kvdash.cli import main
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.plan import plan
from kvdash.presets import preset_model
from kvdash.serving import serving

M = preset_model("llama-3.1-8b")
GPUS = [get_gpu("nvidia-h100-sxm5"), get_gpu("nvidia-l40s")]
RATE, ISL, OSL, TTFT, TPOT = 10.0, 1024, 256, 0.5, 0.025


@pytest.fixture(scope="module")
def planned():
    return plan(M, RATE, ISL, OSL, TTFT, TPOT, GPUS)


def test_the_chosen_options_numbers_are_the_serving_models(planned):
    options, _ = planned
    assert options and options == sorted(options, key=lambda o: (o.gpus, o.tpot_s, o.ttft_s))
    for o in options[:5]:
        r = serving(M, o.scenario(ISL, OSL, "bf16"), get_gpu(o.gpu), o.concurrency, ISL, OSL)
        assert (r.ttft_s, r.tpot_s) == (o.ttft_s, o.tpot_s)  # the Speed page's numbers, not a second model
        assert r.fits  # its memory holds every request in flight (the engine's own KV pool)


def test_each_option_meets_the_targets_with_the_fewest_replicas(planned):
    options, _ = planned
    for o in options:
        assert o.ttft_s <= TTFT and o.tpot_s <= TPOT
        # Little's law: replicas x the rate one serves within the targets covers the rate; one fewer would not
        assert o.replicas * o.capacity_rate >= RATE > (o.replicas - 1) * o.capacity_rate
        g, s = get_gpu(o.gpu), o.scenario(ISL, OSL, "bf16")
        at_most, beyond = serving(M, s, g, o.max_in_flight, ISL, OSL), serving(M, s, g, o.max_in_flight + 1, ISL, OSL)
        assert at_most.ttft_s <= TTFT and at_most.tpot_s <= TPOT
        assert beyond.ttft_s > TTFT or beyond.tpot_s > TPOT  # the most requests in flight within the targets


def test_an_impossible_plan_says_why():
    options, left_out = plan(M, 10_000.0, ISL, OSL, TTFT, TPOT, GPUS[:1], max_gpus=2)
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
