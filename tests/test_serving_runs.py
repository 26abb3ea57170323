"""A user's own measured runs: reading `vllm bench serve` results and CSVs (hostile input refused in one
sentence), matching them to a scenario, and fitting an engine's overheads to them (kvdash.serving_fit)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.serving import engine_profile
from kvdash.serving_fit import GRIDS, Observed, fit_profile, predict
from kvdash.serving_runs import matching_runs, parse_runs

BENCH = Path(__file__).parent / "data" / "vllm_bench"
H100 = get_gpu("nvidia-h100-sxm5")


def test_a_vllm_bench_serve_result_file():
    # c32: 320 prompts of 8,192 + 256 tokens, median TTFT 48.5 ms and TPOT 10.9 ms, --metadata gpu= tp=
    (r,) = parse_runs((BENCH / "llama-3.1-8b-h100-c32.json").read_bytes(), "c32.json")
    assert (r.engine, r.concurrency, r.isl, r.osl, r.tp, r.gpu) == ("vllm", 32, 8192, 256, 1, "nvidia-h100-sxm5")
    assert r.ttft_s == pytest.approx(0.0485) and r.tpot_s == pytest.approx(0.0109)
    assert r.model == "meta-llama/Llama-3.1-8B-Instruct"
    # a list of results, and one per line (--append-result), read alike
    docs = [json.loads((BENCH / f"llama-3.1-8b-h100-c{c}.json").read_text()) for c in (8, 32, 128)]
    assert [x.concurrency for x in parse_runs(json.dumps(docs))] == [8, 32, 128]
    assert [x.concurrency for x in parse_runs("\n".join(json.dumps(d) for d in docs))] == [8, 32, 128]
    # without --metadata the engine is vLLM's and the GPU and tp are the page's (empty here)
    bare = {k: v for k, v in docs[0].items() if k not in ("gpu", "tp")}
    (b,) = parse_runs(json.dumps(bare))
    assert (b.engine, b.gpu, b.tp, b.ttft_s) == ("vllm", "", 0, pytest.approx(0.0149))


def test_a_csv_in_kvdash_columns_or_aiconfigurators():
    (r,) = parse_runs("engine,gpu,tp,concurrency,isl,osl,ttft_ms,tpot_ms\n"
                      "sglang,nvidia-h200-sxm,2,16,1024,128,80,9.5\n")
    assert (r.engine, r.gpu, r.tp, r.concurrency, r.isl, r.osl) == ("sglang", "nvidia-h200-sxm", 2, 16, 1024, 128)
    assert (r.ttft_s, r.tpot_s) == (pytest.approx(0.080), pytest.approx(0.0095))
    aic = ("backend,backend_version,model_path,system,gemm_quant_mode,moe_quant_mode,isl,osl,batch_size,tp_size,"
           "moe_tp_size,moe_ep_size,silicon_ttft_ms,silicon_tpot_ms\n"
           "trtllm,1.0.0rc3,Qwen/Qwen3-32B,h100_sxm,fp8,,4096,128,64,1,1,1,1600,30\n")
    (a,) = parse_runs(aic)
    assert (a.engine, a.weights, a.kv, a.gpu, a.concurrency) == ("trtllm", "fp8", "fp8", "nvidia-h100-sxm5", 64)


@pytest.mark.parametrize(("data", "needle"), [
    ("", "no runs"),
    ("{\"completed\": 10}", "not a `vllm bench serve --save-result` file"),
    ("[" * 100_000, "JSON"),
    ("concurrency,isl\n8,100\n", "needs the columns"),
    ("concurrency,isl,osl,ttft_ms,tpot_ms\n8,100,10,-5,1\n", "ttft_ms must be a positive number"),
    ("concurrency,isl,osl,ttft_ms,tpot_ms\n8,100,10,nan,1\n", "ttft_ms must be a positive number"),
    ("concurrency,isl,osl,ttft_ms,tpot_ms\neight,100,10,5,1\n", "concurrency must be a number"),
    (b"\xff\xfe\x00", "not UTF-8"),
    ("x" * (8 << 20 + 1), "the limit is"),
])
def test_bad_files_are_refused_in_one_sentence(data, needle):
    with pytest.raises(KvdashError, match=needle):
        parse_runs(data, "upload")


def test_runs_match_the_scenario_they_measured():
    runs = [x for c in (8, 32, 128) for x in parse_runs((BENCH / f"llama-3.1-8b-h100-c{c}.json").read_bytes())]
    assert [r.concurrency for r in matching_runs(runs, "vllm", 1, 8192, 256, H100.id, model="meta-llama/Llama-3.1-8B")]\
        == [8, 32, 128]
    assert matching_runs(runs, "vllm", 2, 8192, 256, H100.id) == []  # they ran at tp 1
    assert matching_runs(runs, "vllm", 1, 1024, 256, H100.id) == []  # other lengths
    assert matching_runs(runs, "vllm", 1, 8192, 256, "nvidia-b200-hgx") == []  # another GPU
    assert matching_runs(runs, "sglang", 1, 8192, 256, H100.id) == []
    assert matching_runs(runs, "vllm", 1, 8192, 256, H100.id, model="Qwen/Qwen3-32B") == []


def test_fitting_recovers_known_overheads():
    # measurements made by a known profile (grid values of each term) are fitted back to that profile; two layer
    # counts (Llama-3.1-8B's 32, Qwen3-32B's 64) tell the per-step and per-layer overheads apart
    m, q = preset_model("llama-3.1-8b"), preset_model("qwen3-32b")
    truth = replace(engine_profile("vllm"), step_overhead_s=GRIDS["step_overhead_s"][7],
                    layer_overhead_s=GRIDS["layer_overhead_s"][8], seq_overhead_s=GRIDS["seq_overhead_s"][11],
                    queue_steps=2.0, queue_share=0.05, queue_prompts=0.0, request_overhead_s=0.02)
    obs = []
    for model, c, isl, osl in ((m, 1, 1024, 128), (m, 8, 1024, 1024), (m, 32, 8192, 256), (m, 64, 1024, 256),
                               (q, 1, 1024, 128), (q, 16, 1024, 512), (q, 128, 512, 512)):
        o = Observed(model, Scenario(tp=2 if model is q else 1), H100, c, isl, osl, 1.0, 1.0)
        r = predict(o, truth)
        obs.append(replace(o, ttft_s=r.ttft_s, tpot_s=r.tpot_s))
    fitted = fit_profile(obs, "vllm", fixed={"queue_prompts": 0.0})
    for term in ("step_overhead_s", "layer_overhead_s", "seq_overhead_s"):
        assert getattr(fitted, term) == pytest.approx(getattr(truth, term)), term
    assert (fitted.queue_steps, fitted.queue_share, fitted.request_overhead_s) == (2.0, 0.05, 0.02)
    with pytest.raises(KvdashError, match="no measured runs"):
        fit_profile([], "vllm")
