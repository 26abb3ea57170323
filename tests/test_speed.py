"""The static batch (kvdash.speed): hand calculations, properties, MoE, no-cache growth, calibration. The step
model's own terms are tested in test_step.py."""

import json
from pathlib import Path

import pytest

from kvdash.calibration import IDEAL, errors, fit, from_run
from kvdash.cli import main
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import engine_profile, serving
from kvdash.speed import compute_bound_batch, decode_step, generation_seconds, prefill_step, speed, step_costs
from kvdash.step import IDEAL as PEAK
from kvdash.step import StepCosts, calibrate

H100 = get_gpu("nvidia-h100-sxm5")
MEASUREMENTS = Path(__file__).resolve().parent.parent / "data" / "measurements"


def test_llama8b_decode_floor_on_h100_by_hand(llama8b):
    # Every bf16 weight once (2 x 8,030,261,248 B), except that of the untied input embedding
    # (128,256 x 4,096 x 2 B = 1,050,673,152 B) only the token's row (8,192 B), plus a 1-token cache
    # (131,072 B), over 3.35 TB/s: kvdash's own decoder at the spec sheet's peaks (a static batch)
    step = decode_step(llama8b, Scenario(prompt_tokens=1, runtime="static"), H100, PEAK)
    read = 16_060_522_496 - 1_050_673_152 + 8_192 + 131_072
    assert step.bytes == read and step.memory_s == pytest.approx(read / 3.35e12)
    # the kernels add up to that, less the 65 RMSNorm weights (elementwise, not a GEMM: 532,480 B) and the
    # embedding row, plus each GEMM's one row of input and output (2 B x (n + k), 0.5 MB in all)
    assert step.seconds == pytest.approx(read / 3.35e12, rel=1e-3)
    assert step.seconds == pytest.approx(4.5e-3, rel=0.01) and step.bound == "memory"


def test_prefill_flops_by_hand(llama8b):
    # 1,000 tokens: 2 x 6,979,588,096 layer parameters (matrices + norms) per token, the LM head for
    # the last position only, and QK^T + PV over 1000 x 1001 / 2 causal pairs in 32 layers of 32 heads.
    body = 8_030_261_248 - 2 * 128_256 * 4096 - 4096
    expected = 2 * body * 1000 + 2 * 128_256 * 4096 + 2 * 32 * 256 * 32 * (1000 * 1001 // 2)
    step = prefill_step(llama8b, Scenario(prompt_tokens=1000, runtime="static"), H100, PEAK)
    assert step.flops == expected and step.compute_s == pytest.approx(expected / 989.5e12)
    assert step.bound == "compute"
    # at the peaks each layer GEMM of 1,000 rows is compute-bound, the attention too; the LM head of one
    # sampled row reads its 1,050,673,152 B weight (and 2 x 132,352 B of row) at 3.35 TB/s; the 64 layer norms'
    # 2 x 4,096 x 1,000 FLOPs each are elementwise, not a GEMM
    head, norms = 2 * 128_256 * 4096, 2 * 64 * 4096 * 1000
    assert step.seconds == pytest.approx((expected - head - norms) / 989.5e12
                                         + (head + 2 * (128_256 + 4096)) / 3.35e12)


def test_attention_pairs_with_windows():
    spec = preset_model("mistral-7b-v0.1").layers[0]  # sliding, window 4096
    assert spec.attention_pairs(1, 10_000) == 4096  # a decode step sees only the window
    assert spec.attention_pairs(10, 10) == 55  # short prompts are causal: 1 + 2 + ... + 10
    # a 5,000-token prompt: the first 4,096 queries see their prefix, the other 904 see 4,096 keys
    assert spec.attention_pairs(5000, 5000) == 4096 * 4097 // 2 + 904 * 4096


def test_monotone_in_batch_and_context(llama8b):
    base = speed(llama8b, Scenario(batch=4, prompt_tokens=2048, new_tokens=128), H100, knee=False)
    bigger = speed(llama8b, Scenario(batch=8, prompt_tokens=2048, new_tokens=128), H100, knee=False)
    longer = speed(llama8b, Scenario(batch=4, prompt_tokens=8192, new_tokens=128), H100, knee=False)
    assert bigger.tpot_s >= base.tpot_s and bigger.ttft_s >= base.ttft_s
    assert longer.tpot_s >= base.tpot_s and longer.ttft_s >= base.ttft_s
    assert bigger.tokens_per_s > base.tokens_per_s  # batching pays while decode is memory-bound


def test_faster_gpu_is_faster(llama8b):
    s = Scenario(prompt_tokens=1024, new_tokens=64)
    assert speed(llama8b, s, get_gpu("nvidia-h200-sxm"), knee=False).tpot_s < speed(llama8b, s, H100,
                                                                                      knee=False).tpot_s


def test_moe_reads_only_the_active_experts():
    m = preset_model("mixtral-8x7b")
    one = decode_step(m, Scenario(prompt_tokens=1), H100, PEAK)
    many = decode_step(m, Scenario(batch=256, prompt_tokens=1), H100, PEAK)
    # batch 1 touches 2 of 8 experts: weights read = total minus 6 experts' parameters (bf16), and of the
    # untied 32,000 x 4,096 input embedding only the token's row
    per_expert = 32 * 3 * 4096 * 14336
    embedding = 32_000 * 4096
    assert one.bytes == pytest.approx(2 * (m.params - 6 * per_expert - embedding + 4096) + 32 * 8 * 256 * 2,
                                      rel=1e-6)
    assert many.bytes > 2 * m.params * 0.99  # a large batch touches every expert
    # compute follows the active parameters per token
    assert one.flops < 2 * m.active_params * 1.01 + 2 * 32 * 32 * 256


def test_no_cache_generation_grows_quadratically(llama8b):
    s = Scenario(prompt_tokens=1)
    t = {n: generation_seconds(llama8b, s.with_(new_tokens=n), H100, cache=False) for n in (2048, 4096, 8192)}
    c = {n: generation_seconds(llama8b, s.with_(new_tokens=n), H100, cache=True) for n in (2048, 4096, 8192)}
    assert t[8192] / t[4096] > 3.5 and t[4096] / t[2048] > 3.0  # doubling the length ~quadruples it
    assert c[8192] / c[4096] < 2.2  # with the cache: about linear
    assert t[8192] > 10 * c[8192]


def test_compute_bound_batch(llama8b):
    # At 128 tokens of context the cache is small, so a big enough batch becomes compute-bound ...
    knee = compute_bound_batch(llama8b, Scenario(prompt_tokens=128), H100, PEAK)
    assert knee is not None
    assert decode_step(llama8b, Scenario(batch=knee, prompt_tokens=128), H100, PEAK).bound == "compute"
    assert decode_step(llama8b, Scenario(batch=knee - 1, prompt_tokens=128), H100, PEAK).bound == "memory"
    # ... while at 32k tokens every sequence's cache read keeps decode memory-bound.
    assert compute_bound_batch(llama8b, Scenario(prompt_tokens=32768), H100, PEAK) is None


def test_tensor_parallel_adds_communication():
    # a 70B decode of one sequence at tp 4 on H100: 2 all-reduces in each of 80 layers, each a 10 µs latency and
    # a ring moving 2 x 3/4 of the token's 8,192 bf16 hidden values over 450 GB/s one way (not 900)
    m70 = preset_model("llama-3.1-70b")
    with_comm = decode_step(m70, Scenario(prompt_tokens=1024, tp=4, runtime="static"), H100)
    assert with_comm.comm_s == pytest.approx(2 * 80 * (10e-6 + 2 * 3 / 4 * 8192 * 2 / 450e9))
    assert with_comm.seconds > with_comm.memory_s + with_comm.comm_s
    # vLLM's own all-reduce, measured (its CUDA-graph custom all-reduce of 16 KiB on 4 H100s: about 5 µs)
    vllm = decode_step(m70, Scenario(prompt_tokens=1024, tp=4), H100)
    assert vllm.ceilings.measured and 2 * 80 * 4e-6 < vllm.comm_s < 2 * 80 * 8e-6


def test_static_and_serving_time_a_decode_step_alike():
    # the Speed page's two sections: the static batch at an engine's costs, and the serving model's decode-only
    # step of as many sequences at the same context, are the same step of kvdash.step
    m, vllm = preset_model("llama-3.1-8b"), engine_profile("vllm")
    r = serving(m, Scenario(), H100, 32, 1024, 256)
    static = decode_step(m, Scenario(batch=32, prompt_tokens=1024, new_tokens=128), H100, vllm, context=1024 + 128)
    assert r.step.seconds == static.seconds and r.decode_tokens_per_step == 32
    assert step_costs("vllm") is vllm and step_costs("torch-eager").layer_overhead_s == 500e-6
    with pytest.raises(KvdashError, match="unknown step costs"):
        step_costs("tgi")


def test_calibration_recovers_known_parameters():
    truth = StepCosts("truth", memory_eff=0.65, cache_eff=0.65, layer_overhead_s=80e-6)
    samples = [(floor / truth.memory_eff + n * truth.layer_overhead_s, floor, n)
               for floor, n in ((0.5e-3, 17), (1.4e-3, 9), (0.8e-3, 5), (0.3e-3, 33))]
    fitted = calibrate(samples)
    assert fitted.memory_eff == pytest.approx(0.65) and fitted.layer_overhead_s == pytest.approx(80e-6)
    assert fitted.cache_eff == fitted.memory_eff and "calibrated on 4 runs" in fitted.source
    with pytest.raises(KvdashError):
        calibrate([])


def test_reference_runs_before_and_after_calibration():
    runs = [from_run(json.loads(p.read_text()), p.stem) for p in sorted(MEASUREMENTS.glob("*/*.json"))]
    assert len(runs) >= 4
    before = errors(runs)
    assert all(abs(r["tpot_error"]) < 0.5 for r in before)  # the defaults are within 2x of every run
    graph = [x for x in runs if x.mode == "graph"]
    after = errors(graph, fit(graph))
    assert all(abs(r["tpot_error"]) < 0.25 for r in after)
    assert decode_step(graph[0].model, graph[0].scenario, graph[0].gpu, IDEAL).seconds < graph[0].tpot_s


def test_cli_speed(capsys):
    rc = main(["speed", "--preset", "llama-3.1-8b", "--gpu", "nvidia-h100-sxm5", "--batch", "2", "--context",
               "1000", "--new-tokens", "100", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["tpot_s"] > 0 and out["ttft_s"] > 0 and out["decode_bound"] == "memory"
    assert out["tokens_per_s"] == pytest.approx(2 / out["tpot_s"])
    assert out["e2e_s"] == pytest.approx(out["ttft_s"] + 99 * out["tpot_s"])
    rc = main(["speed", "--preset", "llama-3.1-8b", "--gpu", "nvidia-h100-sxm5"])
    assert rc == 0 and "time per output token" in capsys.readouterr().out
    assert main(["speed", "--preset", "llama-3.1-8b"]) == 2  # --gpu is required
    assert "--gpu" in capsys.readouterr().err
