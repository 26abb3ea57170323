"""One answer per question: every surface that shows a quantity shows the same bytes for it.

Scenarios are drawn (presets and real configs x GPUs x tensor-parallel degrees x formats x runtimes) and
each quantity is read from every place that shows it: the breakdown, the solvers, the sweep, the engine's
start-up budget, the serving model, the CLI's JSON and the dashboard's pages. These tests compare surfaces
with each other, which is their point; the numbers themselves are held to hand calculations and public logs
elsewhere (test_breakdown, test_solvers, test_vllm_startup, ...).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kvdash.breakdown import activation_phases, breakdown, reserve_bytes
from kvdash.cli import main
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.hf_config import model_from_config
from kvdash.presets import load_presets
from kvdash.scenario import Scenario
from kvdash.serving import requests_held, serving
from kvdash.solvers import max_batch, max_context, total_bytes_fn
from kvdash.speed import decode_step
from kvdash.startup import engine_startup, profile_peaks
from kvdash.sweep import fit_grid, total_grid

CORPUS = Path(__file__).parent / "data" / "configs"
PRESETS = sorted(load_presets())
CONFIGS = sorted(p.stem for p in CORPUS.glob("*.json")
                 if "refused" not in json.loads(p.read_text())["expected"])  # an encoder kvdash does not size
GPUS = ["nvidia-h100-sxm5", "nvidia-h200-sxm", "nvidia-a100-sxm4-80gb", "nvidia-l4", "nvidia-b200-hgx", "amd-mi300x"]
RUNTIMES = ["vllm", "sglang", "trtllm", "static", "hf-sdpa", "hf-eager"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def load(source: str):
    if source in PRESETS:
        return load_presets()[source].model, ["--preset", source]
    path = CORPUS / f"{source}.json"
    return model_from_config(json.loads(path.read_text())["config"]), None


@st.composite
def cases(draw, runtimes=RUNTIMES, sources=tuple(PRESETS + CONFIGS)):
    """(model, CLI model args or None, scenario, gpu): a valid scenario on a GPU (it need not fit)."""
    source = draw(st.sampled_from(sources))
    m, args = load(source)
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    runtime = draw(st.sampled_from(runtimes))
    engine = runtime in ("vllm", "sglang", "trtllm")
    try:
        s = Scenario(batch=draw(st.sampled_from([1, 3, 8, 32, 200])), prompt_tokens=draw(st.sampled_from(
            [1, 100, 2048, 8192, 40_000])), new_tokens=draw(st.sampled_from([0, 1, 64, 1000])),
            weights_dtype=draw(st.sampled_from([m.weights_format or "bf16", "bf16", "fp8"])),
            kv_dtype=draw(st.sampled_from(["bf16", "fp8"])), tp=tp, runtime=runtime,
            max_num_batched_tokens=draw(st.sampled_from([0, 0, 2048])) if engine else 0)
        breakdown(m, s)
    except KvdashError:
        assume(False)
    return m, args, s, get_gpu(draw(st.sampled_from(GPUS)))


@SETTINGS
@given(cases(), st.sampled_from([1, 2, 7, 64, 512]), st.sampled_from([1, 500, 4096, 60_000]))
def test_largest_batch_and_context_do_not_depend_on_the_values_asked_at(case, batch, prompt):
    m, _, s, gpu = case
    assume(prompt >= s.shared_prefix_tokens)
    assert max_batch(m, s, gpu) == max_batch(m, s.with_(batch=batch), gpu)
    assert max_context(m, s, gpu) == max_context(m, s.with_(prompt_tokens=prompt), gpu)


@SETTINGS
@given(cases())
def test_breakdown_solvers_and_sweep_agree(case):
    m, _, s, gpu = case
    b = breakdown(m, s, gpu)
    assert b.total == total_bytes_fn(m, s, gpu)(s.batch, s.prompt_tokens)
    grid = total_grid(m, s, np.array([s.batch]), np.array([s.prompt_tokens]), gpu)
    assert int(grid[0, 0]) + reserve_bytes(b.scenario, gpu) == b.total
    assert bool(fit_grid(m, s, np.array([s.batch]), np.array([s.prompt_tokens]), [gpu])[0, 0, 0]) == b.fits
    # the largest batch is the boundary of the fit verdict
    n = max_batch(m, s, gpu)
    if n:
        assert breakdown(m, s.with_(batch=n), gpu).fits
    if n < 1 << 24:
        assert not breakdown(m, s.with_(batch=n + 1), gpu).fits


@SETTINGS
@given(cases(runtimes=["vllm", "sglang", "trtllm"]), st.sampled_from([1, 8, 64]), st.sampled_from([128, 1024]),
       st.sampled_from([16, 256]))
def test_the_serving_pool_is_the_start_up_budget(case, concurrency, isl, osl):
    m, _, s, gpu = case
    s = s.with_(pp=1)
    try:  # a model that states no trained length starts at the scenario's, as --max-model-len gives it
        start = engine_startup(m, s, gpu, family="0.8-0.19",
                               max_model_len=None if m.max_position_embeddings else max(1, s.context))
    except KvdashError:
        with pytest.raises(KvdashError):
            serving(m, s, gpu, concurrency, isl, osl)
        return
    cap, pool, one = requests_held(m, s.resolved(gpu), gpu, isl, osl)
    assert pool == start.kv_budget_bytes
    # one request's cache is the breakdown's for its prompt and the output it holds on average
    held = osl if s.engine == "trtllm" else osl // 2
    assert one == breakdown(m, s.with_(batch=1, prompt_tokens=isl, new_tokens=held), gpu)["kv_cache"]
    # the start-up's profile pass is the breakdown's activation for that step
    tokens, seqs = s.resolved(gpu).step_limits()
    st_, forward, sampler = profile_peaks(m, s.resolved(gpu))[0]
    phases = activation_phases(st_, seqs, tokens, tokens, (tokens, seqs))
    assert (forward, sampler) == (phases["prefill"], phases["sampler"])
    if s.engine == "vllm":
        assert start.forward_peak_bytes == breakdown(m, s.with_(batch=seqs, prompt_tokens=tokens, new_tokens=0),
                                                     gpu).phases()["prefill"]
    try:
        r = serving(m, s, gpu, concurrency, isl, osl)
    except KvdashError:
        return
    assert r.pool_bytes == pool and r.running == min(concurrency, cap, r.max_seqs)
    # the serving model's decode-only step is the static batch's decode step of as many sequences
    if float(r.decode_tokens_per_step).is_integer():
        same = decode_step(m, s.with_(batch=int(r.decode_tokens_per_step)), gpu, r.profile, context=isl + osl // 2)
        assert same.seconds == r.step.seconds


# capsys is read and emptied after every call, so one fixture serves every example
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(case=cases(runtimes=["vllm"], sources=tuple(PRESETS)))
def test_the_cli_shows_the_library_numbers(capsys, case):
    m, args, s, gpu = case
    s = s.with_(new_tokens=0)  # `size --context T` holds T prompt tokens
    common = [*args, "--tp", str(s.tp), "--kv-dtype", s.kv_dtype, "--weights-dtype", s.weights_dtype]
    limit = ["--max-num-batched-tokens", str(s.max_num_batched_tokens)] if s.max_num_batched_tokens else []
    assert main(["size", *common, *limit, "--batch", str(s.batch), "--context", str(s.prompt_tokens), "--gpu",
                 gpu.id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    b = breakdown(m, s, gpu)
    assert out["total_bytes"] == b.total and out["activation_bytes"] == b["activation"]
    assert out["max_batch"] == max_batch(m, s, gpu) and out["max_context"] == max_context(m, s, gpu)
    # `capacity --gpu` at 0.9 and `serving` report one KV pool, byte for byte
    rc = main(["capacity", *common, *limit, "--gpu", gpu.id, "--gpu-memory-utilization", "0.9", "--json"])
    cap = capsys.readouterr()
    if rc == 2 and "max model length" in cap.err:  # no trained length: serving starts at its requests' 512 + 64
        rc = main(["capacity", *common, *limit, "--gpu", gpu.id, "--gpu-memory-utilization", "0.9", "--max-model-len",
                   "576", "--json"])
        cap = capsys.readouterr()
    rc2 = main(["serving", *common, *limit, "--gpu", gpu.id, "--concurrency", "4", "--isl", "512", "--osl", "64",
                "--json"])
    srv = capsys.readouterr()
    if rc == 0 and rc2 == 0:
        assert json.loads(cap.out)["kv_budget_bytes"] == json.loads(srv.out)["kv_pool_bytes"]
    else:
        assert rc == 2 and srv.err  # no room for a cache: both refuse, each in one line


@pytest.mark.parametrize(("state", "scenario"), [
    (dict(), Scenario(prompt_tokens=8192)),
    (dict(model="qwen3-30b-a3b", batch=32, context=4096, tp=2, kvdtype="fp8"),
     Scenario(batch=32, prompt_tokens=4096, tp=2, kv_dtype="fp8")),
    (dict(model="deepseek-v2-lite", batch=8, context=2048, runtime="SGLang", gpu="nvidia-h200-sxm"),
     Scenario(batch=8, prompt_tokens=2048, runtime="sglang")),
])
def test_the_pages_show_the_library_numbers(state, scenario):
    from kvdash.presets import preset_model
    from kvdash.units import fmt_bytes
    from tests.test_app import metrics, run_app

    m, gpu = preset_model(state.get("model", "llama-3.1-8b")), get_gpu(state.get("gpu", "nvidia-h100-sxm5"))
    b = breakdown(m, scenario, gpu)
    memory = run_app(**state)
    assert not memory.exception and metrics(memory)["Total"] == fmt_bytes(b.total, "GiB")
    assert metrics(memory)["KV cache"] == fmt_bytes(b["kv_cache"], "GiB")
    table = memory.dataframe[0].value
    assert int(table.loc[table.component == "Activation peak", "bytes"].iloc[0]) == b["activation"]
    start = engine_startup(m, scenario, gpu)
    serving_page = run_app("app_pages/serving.py", **state)
    assert not serving_page.exception
    assert metrics(serving_page)["KV budget per GPU"] == fmt_bytes(start.kv_budget_bytes, "GiB")
    gpus_page = run_app("app_pages/gpus.py", **state)
    row = next(d.value for d in gpus_page.dataframe if "GPU" in d.value.columns)
    row = row[gpu.name == row.GPU].iloc[0]
    assert row[f"largest batch at {scenario.context:,} tokens"] == max_batch(m, scenario, gpu)
