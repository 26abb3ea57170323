"""AppTest of the dashboard: inputs change the numbers to exactly what the library computes."""

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kvdash.breakdown import breakdown
from kvdash.gpus import get_gpu
from kvdash.presets import get_preset, preset_model
from kvdash.scenario import Scenario
from kvdash.units import fmt_bytes

APP = Path(__file__).resolve().parent.parent / "app.py"
BENCH_RUNS = Path(__file__).resolve().parent / "data" / "vllm_bench"


def run_app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.switch_page(page)
    return at.run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def kv_bytes_in_table(at) -> int:
    table = at.dataframe[0].value
    return int(table.loc[table.component == "KV cache", "bytes"].iloc[0])


def test_default_page_shows_the_library_numbers():
    at = run_app()
    assert not at.exception
    b = breakdown(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192), get_gpu("nvidia-h100-sxm5"))
    shown = metrics(at)
    assert shown["Total"] == fmt_bytes(b.total, "GiB")
    assert shown["KV cache"] == fmt_bytes(b["kv_cache"], "GiB") == "1.00 GiB"
    assert kv_bytes_in_table(at) == 8192 * 131_072
    assert "8,030,261,248 parameters" in at.caption[0].value


def test_inputs_change_the_numbers():
    at = run_app(precise=True)  # number boxes, for a prompt of exactly 1,000 tokens
    at.selectbox(key="model").set_value("deepseek-v3")
    at.text_input(key="batch").set_value("4")
    at.text_input(key="context").set_value("1000")
    at.radio(key="unit").set_value("GB")
    at.run()
    assert not at.exception
    assert kv_bytes_in_table(at) == 4 * 1000 * 70_272
    assert metrics(at)["KV per token"] == "70,272 B"
    # DeepSeek-V3's fp8 checkpoint, 675 GB (not 1.34 TB in bf16): the unit is in the value, decimal
    assert metrics(at)["Total"].endswith(" GB") and metrics(at)["Total"].startswith("675.")
    assert metrics(at)["On H100 SXM5 80GB"] == "does not fit"


def test_typed_values_are_read_as_people_write_them_and_refused_when_not_whole():
    """Issue #21, item 5: 1e6 is a million tokens, not 1; 2.5 and out-of-range values are refused in an error box
    (never rounded, clamped or left in a red box while the page computes the previous value)."""
    at = run_app(precise=True)
    at.text_input(key="context").set_value("1e4").run()
    assert not at.error and kv_bytes_in_table(at) == 10_000 * 131_072
    at.text_input(key="context").set_value("12,288").run()
    assert not at.error and kv_bytes_in_table(at) == 12_288 * 131_072
    at.text_input(key="batch").set_value("2.5").run()
    assert not at.exception and any("'2.5' is not a whole number" in e.value for e in at.error)
    assert not at.metric  # no number computed from a value the box did not take
    at.text_input(key="batch").set_value("0").run()
    assert any("'0' is outside 1 to" in e.value for e in at.error)
    at.text_input(key="batch").set_value("3").run()
    assert not at.error and kv_bytes_in_table(at) == 3 * 12_288 * 131_072


def test_tensor_parallel_input():
    at = run_app(tp=2)
    assert metrics(at)["KV per token"] == "65,536 B"


def test_bad_parallel_degree_shows_an_error_and_the_app_recovers():
    at = run_app(precise=True)
    at.text_input(key="tp").set_value("3").run()
    assert not at.exception
    assert "must divide the 32 attention heads" in at.error[0].value
    at.text_input(key="tp").set_value("2").run()
    assert not at.error and metrics(at)["KV per token"] == "65,536 B"


def test_metric_units_follow_the_value_and_negative_headroom_points_down():
    # a 3-token prompt: the cache is KiB, and the value says so (the label carries no unit)
    at = run_app(precise=True)
    at.text_input(key="context").set_value("3").run()
    assert metrics(at)["KV cache"] == "384.00 KiB"  # 3 x 131,072 B
    at = run_app(model="llama-3.1-70b")  # 131 GiB of bf16 weights on one 80 GB H100
    fit = next(m for m in at.metric if m.label.startswith("On "))
    assert fit.value == "does not fit" and fit.delta.startswith("-")  # Streamlit draws a down arrow


def test_an_engine_step_makes_memory_agree_with_serving():
    # the review's scenario: Llama-3.1-70B, 16 x 32,768 tokens, fp8 KV, tp 4 on H100. Prefilling all 524,288
    # prompt tokens in one forward (a static batch) does not fit; vLLM's steps of 8,192 tokens do
    state = dict(model="llama-3.1-70b", batch=16, context=32768, kvdtype="fp8", tp=4)
    static = run_app(**state, runtime="static batch (Live run)")
    engine = run_app(**state)  # the default runtime: vLLM at its default token budget on the GPU
    assert metrics(static)["On H100 SXM5 80GB"] == "does not fit" and metrics(engine)["On H100 SXM5 80GB"] == "fits"
    m, gpu = preset_model("llama-3.1-70b"), get_gpu("nvidia-h100-sxm5")
    s = Scenario(batch=16, prompt_tokens=32768, kv_dtype="fp8", tp=4, runtime="vllm")
    assert metrics(engine)["Total"] == fmt_bytes(breakdown(m, s, gpu).total, "GiB")
    # a smaller budget shrinks the step: 2,048 tokens
    small = run_app(**state, step_tokens="2048")
    s = s.with_(max_num_batched_tokens=2048)
    assert metrics(small)["Total"] == fmt_bytes(breakdown(m, s, gpu).total, "GiB")


def test_the_largest_batch_does_not_depend_on_the_batch_asked_at(capsys):
    # Llama-3.1-8B, 8,192 tokens, H100, vLLM: 62 sequences (tests/test_solvers.py by hand), at any sidebar batch,
    # as the CLI says at any --batch
    from kvdash.cli import main

    for batch in (1, 8, 32):
        at = run_app(batch=batch)
        text = next(m.value for m in at.markdown if m.value.startswith("Largest batch"))
        assert "Largest batch at 8,192 tokens: **62**" in text, text
    for batch in ("1", "8", "32"):
        assert main(["size", "--preset", "llama-3.1-8b", "--batch", batch, "--context", "8192", "--gpu",
                     "nvidia-h100-sxm5", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["max_batch"] == 62


def test_dimension_sliders_take_exact_values_and_edit_a_preset():
    at = run_app()
    assert at.select_slider(key="batch").options[:4] == ["1", "2", "4", "8"]  # powers of two to drag
    at.select_slider(key="batch").set_value(4).run()
    assert kv_bytes_in_table(at) == 4 * 8192 * 131_072
    # an exact value typed with "Precise values" stays exact when the slider comes back (it becomes a stop)
    at.toggle(key="precise").set_value(True).run()
    at.text_input(key="context").set_value("1000").run()
    at.toggle(key="precise").set_value(False).run()
    assert at.select_slider(key="context").value == 1000 and kv_bytes_in_table(at) == 4 * 1000 * 131_072
    # "Edit this model": Llama-3.1-8B's dimensions as a custom architecture, then drag its KV heads 8 -> 32 -> 1
    at.button(key="edit_preset").click().run()
    assert at.radio(key="source").value == "custom"
    assert (at.select_slider(key="c_layers").value, at.select_slider(key="c_kv").value,
            at.select_slider(key="c_inter").value) == (32, 8, 14336)
    assert kv_bytes_in_table(at) == 4 * 1000 * 131_072  # the same model, the same cache
    # ... under its own name, still knowing the context it was trained for (no "unknown" warning)
    assert at.title[0].value.startswith("Llama-3.1-8B \\(edited\\)")
    assert at.select_slider(key="c_ctx").value == 131_072
    assert not [w for w in at.warning if "trained" in w.value]
    # only valid head counts to drag: the divisors of the 32 query heads
    assert at.select_slider(key="c_kv").options == ["1", "2", "4", "8", "16", "32"]
    at.select_slider(key="c_kv").set_value(32).run()
    assert kv_bytes_in_table(at) == 4 * 1000 * 32 * 2 * 32 * 128 * 2  # 4x the heads: 512 KiB per token
    at.select_slider(key="c_kv").set_value(1).run()
    assert kv_bytes_in_table(at) == 4 * 1000 * 32 * 2 * 1 * 128 * 2  # MQA: 16 KiB per token


@pytest.mark.parametrize(("preset", "attn", "extra"), [
    ("mistral-7b-v0.1", "sliding", {"c_window": 4096}),  # every layer a 4,096-token window
    ("deepseek-v2-lite", "latent (MLA)", {"c_latent": 512, "c_rope": 64, "c_hd": 128}),
    ("gemma-2-9b", "full", {}),  # alternating windows: no single kind holds the same cache
])
def test_edit_this_model_keeps_the_attention_kind_where_one_kind_reproduces_it(preset, attn, extra):
    at = run_app(model=preset)
    at.button(key="edit_preset").click().run()
    assert not at.exception and at.selectbox(key="c_attn").value == attn
    for key, value in extra.items():
        assert at.select_slider(key=key).value == value


def test_preset_state_reaches_the_page():
    at = run_app(model="qwen3-4b", context=1000)
    assert kv_bytes_in_table(at) == 1000 * 147_456


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KVDASH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_live_page_runs_a_tiny_shape_on_the_cpu(store_dir):
    pytest.importorskip("torch")
    at = run_app("app_pages/live.py")
    assert not at.exception
    assert any("No GPU" in i.value for i in at.info)
    at.selectbox(key="live_shape").set_value("tiny")
    at.slider(key="live_prompt").set_value(16)
    at.slider(key="live_new").set_value(4)
    at.run()
    # on a CPU too the run is estimated (from the CPU's measured roofs) before it may start
    assert any("Estimated run time on this CPU" in c.value and "KiB of memory" in c.value for c in at.caption)
    at.button(key="live_run").click().run()
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Time per output token"].endswith("ms")
    table = at.dataframe[0].value
    rows = dict(zip(table.quantity, table.comparison, strict=True))
    assert rows["Weights (B)"] == "exact" and rows["KV cache (B)"] == "exact"
    assert len(at.get("plotly_chart")) >= 2
    assert (store_dir / "runs.sqlite").exists()  # the run joined the history


def test_live_page_shows_reference_runs():
    at = run_app("app_pages/live.py")
    assert not at.exception
    options = at.selectbox(key="live_reference").options
    assert any("h200" in o for o in options)


def test_live_page_without_torch_says_so(monkeypatch):
    import streamlit as st

    from kvdash.live import runner

    monkeypatch.setattr(runner, "torch_status",
                        lambda: {"torch": False, "version": None, "cuda": False, "device": "none"})
    st.cache_resource.clear()
    try:
        at = run_app("app_pages/live.py")
    finally:
        st.cache_resource.clear()
    assert not at.exception
    assert any("PyTorch is not installed" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "live_run"]  # nothing to run
    assert at.selectbox(key="live_reference").options  # the reference runs are still shown


def test_speed_page_shows_the_library_prediction():
    from kvdash.serving import engine_profile
    from kvdash.speed import speed

    at = run_app("app_pages/speed.py")
    assert not at.exception
    # the static batch at the sidebar engine's (vLLM's) fitted costs, as the serving section above it
    r = speed(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192, new_tokens=256),
              get_gpu("nvidia-h100-sxm5"), engine_profile("vllm"), knee=False)
    assert metrics(at)["Time per output token"] == f"{r.tpot_s * 1e3:,.2f} ms"
    # serving latency and curve, then the static batch's knee, GPU comparison, with/without cache
    assert len(at.get("plotly_chart")) == 5
    gpus = next(d.value for d in at.dataframe if "GPU" in d.value.columns)
    # the scenario needs 17.25 GiB: it fits an 80 GB H100, not a 16 GB T4 (15 GiB usable)
    assert "H100 SXM5 80GB" in set(gpus.GPU) and "T4 16GB" not in set(gpus.GPU)
    at.select_slider(key="batch").set_value(64).run()
    assert metrics(at)["Time per output token"] != f"{r.tpot_s * 1e3:,.2f} ms"


def test_fit_button_calibrates_and_feeds_the_speed_page():
    at = run_app("app_pages/live.py")
    at.button(key="live_fit").click().run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "error after" in d.value.columns)
    assert set(table["mode"]) >= {"graph", "eager"}
    after = table[table["mode"] == "graph"]["error after"].map(lambda v: abs(float(v.rstrip("%"))))
    assert (after < 25).all()
    at.switch_page("app_pages/speed.py").run()
    assert any(o.startswith("fitted: graph") for o in at.radio(key="speed_runtime").options)


def test_memory_page_charts_and_exports():
    at = run_app()
    assert len(at.get("plotly_chart")) == 3  # stacked bar against the GPU, treemap, layer strip
    assert {b.label for b in at.get("download_button")} >= {"Breakdown as CSV", "Scenario as JSON"}


def test_custom_architecture():
    at = run_app(source="custom", c_layers=10, c_heads=16, c_kv=2, c_hd=64, context=1000)
    assert not at.exception and not at.error
    assert metrics(at)["KV per token"] == f"{10 * 2 * 64 * 2 * 2:,} B"
    at = run_app(source="custom", c_attn="latent (MLA)", c_layers=4, c_latent=256, c_rope=32)
    assert metrics(at)["KV per token"] == f"{4 * (256 + 32) * 2:,} B"
    # 12 query heads over 5 KV heads is impossible: the link's 5 moves to the divisor below, and says so
    at = run_app(source="custom", c_layers=10, c_heads=12, c_kv=5, c_hd=64)
    assert not at.exception and not at.error
    assert at.select_slider(key="c_kv").options == ["1", "2", "3", "4", "6", "12"]
    assert at.select_slider(key="c_kv").value == 4
    assert any("5 KV heads do not divide 12 query heads: using 4" in c.value for c in at.caption)
    assert metrics(at)["KV per token"] == f"{10 * 2 * 4 * 64 * 2:,} B"
    # the heads change under a valid KV count: 8 KV heads do not divide 12, so they become 6
    at = run_app(source="custom", c_heads=32, c_kv=8)
    at.select_slider(key="c_heads").set_value(12).run()
    assert not at.error and at.select_slider(key="c_kv").value == 6


def test_pasted_config_and_malformed_config():
    cfg = json.dumps(get_preset("qwen3-8b").config)
    at = run_app(source="config.json", cfg_text=cfg, context=100)
    assert not at.exception and metrics(at)["KV per token"] == "147,456 B"
    bad = run_app(source="config.json", cfg_text='{"model_type": "llama", "hidden_size": "huge"')
    assert not bad.exception
    assert any("not valid JSON" in e.value for e in bad.error)


def test_hybrid_config_shows_state_layers_and_checkpoint_formats():
    # gpt-oss-120b's real config: experts in mxfp4 by its quantization_config, sliding and full layers
    corpus = Path(__file__).parent / "data" / "configs"
    cfg = json.loads((corpus / "gpt-oss-120b.json").read_text())["config"]
    at = run_app(source="config.json", cfg_text=json.dumps(cfg), context=8192)
    assert not at.exception and not at.error
    assert not any("tensor" in d.value.columns for d in at.dataframe)  # the weight table waits until opened
    at.session_state["weights_open"] = True
    at.run()
    strip = next(c for c in at.get("plotly_chart") if c.key == "memory_layers")
    assert strip is not None
    table = next(d.value for d in at.dataframe if "tensor" in d.value.columns)
    assert set(table[table.tensor.str.startswith("experts.")]["format"]) == {"mxfp4"}
    assert set(table[table.tensor == "q_proj"]["format"]) == {"bf16"}
    # Qwen3-Next: 36 Gated DeltaNet layers hold a fixed state per sequence (39,518,208 B by hand, see the corpus)
    cfg = json.loads((corpus / "qwen3-next-80b-a3b-thinking.json").read_text())["config"]
    at = run_app(source="config.json", cfg_text=json.dumps(cfg), context=1000)
    assert not at.exception
    assert metrics(at)["KV per token"] == "24,576 B"
    assert "fixed per sequence" in next(m.proto.delta for m in at.metric if m.label == "KV per token")


def test_malformed_link_falls_back_with_a_notice():
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["batch"] = "lots"
    at.query_params["model"] = "no-such-model"
    at.run()
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert metrics(at)["KV cache"] == "1.00 GiB"  # the defaults: Llama-3.1-8B, batch 1, 8,192 tokens


def test_gpus_page_matches_the_library():
    at = run_app("app_pages/gpus.py", gpus_vendors=["NVIDIA"])
    assert not at.exception
    table = at.dataframe[0].value
    row = table[table.GPU == "GeForce RTX 4090 24GB"].iloc[0]
    b = breakdown(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192), get_gpu("nvidia-rtx-4090"))
    assert row["fits?"] == ("fits" if b.fits else "does not fit")
    assert set(table.vendor) == {"NVIDIA"}
    # issue #22: the catalog's price per GPU-hour, the lowest dated on-demand price listed (Lambda's H100 SXM, $3.99)
    price = table[table.GPU == "H100 SXM5 80GB"].iloc[0]["$ per GPU-hour (lowest listed on demand)"]
    assert price == "3.99 (Lambda, 2026-09-20)" and row["$ per GPU-hour (lowest listed on demand)"] == "none listed"
    tiers = at.dataframe[1].value
    assert "does not fit" in " ".join(tiers.verdict)  # 70B in bf16 on one 80 GB card


def test_scaling_compare_serving_learn_pages():
    at = run_app("app_pages/scaling.py")
    assert not at.exception and len(at.get("plotly_chart")) == 3
    fit_map = chart_spec(at, "scaling_map")
    hatched = next(t for t in fit_map["data"] if t.get("name") == "does not fit (hatched)")
    assert hatched["fillpattern"]["shape"] == "/"
    # the hatched polygon lies where the total exceeds the GPU: Llama-3.1-8B at batch 4,096 and 131,072
    # tokens needs far more than 80 GB, at batch 1 and 16 tokens far less
    assert max(hatched["y"]) == 4096 and min(hatched["y"]) > 1
    labels = {a["text"] for a in fit_map["layout"]["annotations"]}
    assert {"<b>fits</b>", "<b>does not fit</b> (hatched)"} <= labels
    at = run_app("app_pages/compare.py")
    assert not at.exception
    table = at.dataframe[0].value
    # Llama-3.1-8B as GQA, as MHA, and with a 512 + 64 latent: 32 x 576 x 2 B
    assert list(table["KV per token (B)"][:3]) == ["131,072", "524,288", "36,864"]
    at = run_app("app_pages/serving.py")
    assert not at.exception
    from kvdash.startup import vllm_startup

    m = preset_model("llama-3.1-8b")
    cap = vllm_startup(m, get_gpu("nvidia-h100-sxm5"), max_model_len=131072).capacity
    assert metrics(at)["GPU KV cache size"] == f"{cap.kv_cache_tokens:,} tokens"
    assert "--max-num-seqs 1024" in at.code[1].value
    assert "vllm serve meta-llama/Llama-3.1-8B" in at.code[1].value
    at = run_app("app_pages/learn.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "8,192 B = 8 KiB" in text and "201,326,592 B = 192 MiB" in text


def chart_spec(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def test_learn_teaches_even_when_the_sidebar_has_no_model():
    at = run_app("app_pages/learn.py", source="config.json")  # no file uploaded: the sidebar shows an error
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "201,326,592 B = 192 MiB" in text  # the worked example still runs
    assert any("Choose a valid model in the sidebar" in i.value for i in at.info)
    anim = chart_spec(at, "learn_anim")
    # two aligned panels on their own axes: MiB held, and tokens processed with / without a cache
    assert {t["yaxis"] for t in anim["data"]} == {"y", "y2"}
    assert anim["layout"]["yaxis"]["title"]["text"] == "MiB"
    assert anim["layout"]["yaxis2"]["title"]["text"] == "tokens processed"
    assert len(anim["frames"]) == 48 and anim["frames"][-1]["data"][1]["y"] == [1, 48]


def test_learn_lecture_mode_steps_through_slides_in_large_type():
    at = run_app("app_pages/learn.py", lecture=True)
    assert not at.exception
    assert [h.value for h in at.main.header] == ["Why a KV cache?"] and at.button(key="learn_back").disabled
    at.button(key="learn_next").click().run()
    assert [h.value for h in at.main.header] == ["The worked example, exactly"]
    at.button(key="learn_next").click().run()
    anim = chart_spec(at, "learn_anim")
    assert anim["layout"]["font"]["size"] >= 20  # chart text readable from the back row
    assert all(a["font"]["size"] >= 20 for a in anim["layout"]["annotations"])
    at.button(key="learn_back").click().run()
    assert [h.value for h in at.main.header] == ["The worked example, exactly"]
    for _ in range(3):  # slides 3, 4, 5
        at.button(key="learn_next").click().run()
    assert [h.value for h in at.main.header] == ["One slide"] and at.button(key="learn_next").disabled
    summary = next(c for c in at.get("plotly_chart") if c.key == "learn_summary")
    assert json.loads(summary.proto.config)["toImageButtonOptions"]["format"] == "svg"


def test_serving_capacity_starts_from_vllms_step_budget_for_the_gpu():
    # vLLM's get_batch_defaults: 8,192 tokens a step on an H100, 2,048 on an L4 (under 70 GiB)
    assert run_app("app_pages/serving.py").text_input(key="serve_batched").value == "8192"
    at = run_app("app_pages/serving.py", gpu="nvidia-l4", model="qwen2.5-0.5b")
    assert not at.exception and at.text_input(key="serve_batched").value == "2048"


def test_speed_page_serves_at_a_concurrency():
    from kvdash.serving import engine_profile, serving

    at = run_app("app_pages/speed.py", batch=64, runtime="SGLang")  # the sidebar's engine, at its batch
    assert not at.exception and not at.error
    shown = metrics(at)
    r = serving(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192, new_tokens=256, runtime="sglang"),
                get_gpu("nvidia-h100-sxm5"), 64, 8192, 256, engine_profile("sglang"))
    assert shown["TPOT at 64 in flight"] == f"{r.tpot_s * 1e3:,.2f} ms"  # the page shows the library's number
    terms = next(d.value for d in at.dataframe if "step with prompt tokens, ms" in d.value.columns)
    assert list(terms["term"]) == ["matrices", "experts", "attention", "all-reduces", "overheads", "step"]
    assert terms["decode-only step, ms"].iloc[-1] == round(r.step.seconds * 1e3, 3)
    assert any(c.key == "serving_curve" for c in at.get("plotly_chart"))


def test_speed_page_times_a_decode_step_alike_in_both_sections():
    # batch 32 of 1,024 + 256 tokens: the serving section's decode-only step at 32 in flight (32 decodes at
    # 1,024 + 128 tokens) is the static batch's decode step at mid-generation (1,024 + 127 + 1 tokens)
    at = run_app("app_pages/speed.py", batch=32, context=1024, new=256)
    assert not at.exception and any("**32**, the sidebar's batch" in c.value for c in at.caption)
    terms = next(d.value for d in at.dataframe if "step with prompt tokens, ms" in d.value.columns)
    static = float(metrics(at)["Time per output token"].removesuffix(" ms"))
    assert abs(terms["decode-only step, ms"].iloc[-1] - static) < 0.006
    # the serving engine radio appears only when the sidebar's runtime is not an engine
    assert not [r for r in at.radio if r.key == "serving_engine"]
    hf = run_app("app_pages/speed.py", runtime="HF generate(), SDPA")
    assert not hf.exception and hf.radio(key="serving_engine").value == "vllm"


def chart_traces(at, key: str) -> list[str]:
    chart = next(c for c in at.get("plotly_chart") if c.key == key)
    return [t.get("name", "") for t in json.loads(chart.proto.spec)["data"]]


def test_speed_page_draws_and_calibrates_to_the_users_runs():
    # recorded `vllm bench serve` results (tests/data/vllm_bench): Llama-3.1-8B, one H100, 8,192 + 256 tokens
    files = [(f.name, f.read_bytes(), "application/json") for f in sorted(BENCH_RUNS.glob("*.json"))]
    at = run_app("app_pages/speed.py")  # the default scenario is that one
    assert not any("measured" in n for n in chart_traces(at, "serving_latency"))
    at.file_uploader(key="speed_runs").set_value(files).run()
    assert not at.exception and not at.error
    assert any(n.startswith("TPOT, measured") for n in chart_traces(at, "serving_latency"))
    assert "TTFT, measured" in chart_traces(at, "serving_latency")
    assert any("3 of your runs match" in c.value for c in at.caption)
    at.button(key="speed_calibrate").click().run()
    assert not at.exception
    assert "calibrated to 3 of your runs" in at.session_state["serving_calibrated"]["vllm"].source
    assert any("calibrated to 3 of your runs" in c.value for c in at.caption)
    at.button(key="speed_uncalibrate").click().run()
    assert not at.exception and "vllm" not in at.session_state["serving_calibrated"]
    # the same files at another output length match nothing, and the page says so
    at.session_state["new"] = 512
    at.run()
    assert not any("measured" in n for n in chart_traces(at, "serving_latency"))
    assert any("None of your 3 runs matches" in c.value for c in at.caption)


def test_speed_page_refuses_a_hostile_runs_file_in_an_error_box():
    at = run_app("app_pages/speed.py")
    at.file_uploader(key="speed_runs").set_value(("runs.json", b"{not json", "application/json")).run()
    assert not at.exception and at.error and at.sidebar.selectbox  # the sidebar stays


def test_speed_page_says_when_requests_queue_for_the_kv_pool():
    # Llama-3.1-8B on one H100 at 512 requests of 8,192 + 256 tokens: about 1.06 GiB of cache each, far
    # more than the ~60 GiB pool holds at once
    at = run_app("app_pages/speed.py", batch=512)
    assert not at.exception
    assert any("others queue for a slot" in w.value for w in at.warning)


UNIT = re.compile(r"(\d B|[KMGT]i?B|ms|\d s|tokens|tokens/s|x|%)$")


@pytest.mark.parametrize("page", ["memory", "gpus", "scaling", "compare", "serving", "speed", "learn", "live"])
def test_every_metric_states_its_unit(page):
    """A number on a metric carries its unit in the value, or its label says what it counts."""
    at = run_app(f"app_pages/{page}.py")
    assert not at.exception
    for m in at.metric:
        value = m.value.strip()
        if not any(c.isdigit() for c in value):
            continue  # a verdict ("fits")
        assert UNIT.search(value) or "tokens/s" in m.label.lower(), f"{page}: {m.label} = {value}"
        assert not re.search(r"\((GiB|GB|MiB|MB)\)", m.label), f"{page}: a unit in the label {m.label!r}"


def test_runtime_choice_drives_the_peak_and_its_split():
    # Llama-3.1-8B, one 32,768-token prompt on an H100: generate() with eager attention stores 32 heads x
    # 32,768^2 scores at 10 B (343.6 GB): it does not fit, while the engine's fused attention does.
    state = dict(model="llama-3.1-8b", context=32768)
    engine = run_app(**state)
    eager = run_app(**state, runtime="HF generate(), eager")
    assert metrics(engine)["On H100 SXM5 80GB"] == "fits" and metrics(eager)["On H100 SXM5 80GB"] == "does not fit"
    split = next(d.value for d in eager.dataframe if "term" in d.value.columns)
    mixer = split.loc[split.term == "mixer"].iloc[0]
    assert mixer["in the peak"] == "yes" and mixer["bytes"] > 32 * 32768**2 * 10
    assert any("largest term is the **mixer**" in c.value for c in eager.caption)
    gpus = run_app("app_pages/gpus.py", gpus_vendors=["NVIDIA"], **state, runtime="HF generate(), eager")
    table = gpus.dataframe[0].value
    assert set(table["fits?"]) == {"does not fit"}  # no single GPU holds 344 GB of scores


def test_memory_page_tables_beyond_int64_stay_exact():
    # 16,777,216 sequences of 2^30 tokens in one forward (a static batch; an engine's step is bounded): byte
    # counts past Arrow's int64 are shown as exact text
    at = run_app(batch=1 << 24, context=1 << 30, runtime="static batch (Live run)")
    assert not at.exception
    split = next(d.value for d in at.dataframe if "term" in d.value.columns)
    assert all(isinstance(v, str) for v in split["bytes"]) and any(len(v) > 19 for v in split["bytes"])


def test_a_zero_names_its_cause():
    """Issue #21, item 5: Llama-3.1-70B's 131 GiB of bf16 weights on one 80 GB H100: no batch fits, and the page
    says the weights alone are why, rather than "Largest batch: 0"."""
    at = run_app(model="llama-3.1-70b")
    text = " ".join(m.value for m in at.markdown)
    assert "Largest batch at 8,192 tokens: **none: the weights alone exceed the usable memory**" in text
    at = run_app(model="llama-3.1-8b", precise=True, batch=1_000_000, context=131_072)
    text = " ".join(m.value for m in at.markdown)
    assert "longest context at batch 1,000,000: **none: a batch of 1,000,000 at even one token does not fit**" in text


def test_the_article_example_keeps_the_articles_fp32_unless_changed():
    """Issue #21, item 2: the article's arithmetic is in fp32 (1024 x 2 x 4 B x 512 tokens x 48 layers =
    192 MiB); the KV cache follows the preset's own dtype until someone chooses another."""
    at = run_app(model="article-example", precise=True, context=512)
    assert at.selectbox(key="kvdtype").value == "fp32" and metrics(at)["KV cache"] == "192.00 MiB"
    at.selectbox(key="kvdtype").set_value("bf16").run()
    at.selectbox(key="model").set_value("llama-3.1-8b").run()
    at.selectbox(key="model").set_value("article-example").run()
    assert at.selectbox(key="kvdtype").value == "bf16"  # chosen by hand: kept
    at = run_app()
    at.selectbox(key="model").set_value("article-example").run()
    assert at.selectbox(key="kvdtype").value == "fp32"


def test_arrow_tables_keep_every_integer_exact():
    import pyarrow as pa

    from ui.tables import arrow_table

    t = arrow_table([{"what": "small", "bytes": 7}, {"what": "huge", "bytes": (1 << 64) + 1}])
    assert t.column_names == ["what", "bytes"]
    assert t.column("bytes").type == pa.string()  # 2^64 + 1 has no int64 and no exact float64
    assert t.column("bytes").to_pylist() == ["7", "18446744073709551617"]
    assert arrow_table([{"bytes": (1 << 63) - 1}]).column("bytes").type == pa.int64()


def test_the_plan_page_shows_why_its_first_option_works():
    """Issue #22: the chosen configuration's memory and step terms, from the serving model at the requests in
    flight the rate implies, with the sidebar's shared prefix held once."""
    at = run_app("app_pages/plan.py", context=1024, new=256, prefix=512, plan_gpus=["nvidia-h100-sxm5"])
    assert not at.exception and not at.error
    why = next(c.value for c in at.caption if c.value.startswith("Per GPU of"))
    assert "beyond the 512-token prefix held once" in why and "each prompt computes its last 512 of 1,024" in why
    terms = next(d.value for d in at.dataframe if "formula" in d.value.columns and "term" in d.value.columns)
    assert list(terms["term"]) == ["matrices", "experts", "attention", "all-reduces", "overheads", "step"]


def test_the_plan_page_plans_disaggregated_pools_with_their_commands():
    """Issue #22, item 3: disaggregated only, bound to the link: the first option's prefill, decode and router
    commands, and its TTFT in parts that add up."""
    at = run_app("app_pages/plan.py", context=4096, new=256, plan_gpus=["nvidia-h100-sxm5"], plan_mode="disaggregated",
                 plan_rate=20.0, plan_link=25.0)
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "pools (workers × tp)" in d.value.columns)
    assert all(p.startswith("prefill ") for p in table["pools (workers × tp)"])
    codes = [c.value for c in at.code]
    assert len(codes) == 3 and any("--tp_size" in c or "--tensor-parallel-size" in c or "--tp-size" in c
                                   for c in codes)
    parts = next(d.value for d in at.dataframe if "part of the TTFT" in d.value.columns)
    assert list(parts["part of the TTFT"]) == ["request overhead", "prefill wait", "prefill", "KV transfer",
                                               "decode join"]
    why = next(c.value for c in at.caption if c.value.startswith("Prefill: each of"))
    assert "at 25 GB/s" in why
    # the working is the option's own, at the rate its pools were sized for (a burst of 2: 40 requests/s)
    burst = run_app("app_pages/plan.py", context=4096, new=256, plan_gpus=["nvidia-h100-sxm5"],
                    plan_mode="disaggregated", plan_rate=20.0, plan_link=25.0, plan_burst=2.0)
    assert not burst.exception and not burst.error
    assert "(40 / " in next(c.value for c in burst.caption if c.value.startswith("Prefill: each of"))
    ttft = next(m.value for m in burst.metric if m.label == "TTFT at the rate")
    parts = next(d.value for d in burst.dataframe if "part of the TTFT" in d.value.columns)
    assert ttft == f"{parts['ms'].sum():,.0f} ms"


def test_the_plan_page_plans_users_in_a_closed_loop_and_varied_lengths():
    """Issue #22, item 1: a fixed concurrency (aggregated replicas, tokens per GPU at the rate they then serve) and
    lengths as a table and a range, planned at their means, all bound to the link."""
    at = run_app("app_pages/plan.py", context=1024, new=256, plan_gpus=["nvidia-h100-sxm5"], plan_ttft=500,
                 plan_tpot=25, plan_traffic="users in a closed loop", plan_users=256, plan_isl="512:0.5,1536:0.5",
                 plan_osl="128-384")
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "pools (workers × tp)" in d.value.columns)
    assert not any(p.startswith("prefill") for p in table["pools (workers × tp)"])
    assert any("planned at the means (1,024 + 256" in c.value for c in at.caption)
    # a sidebar prefix longer than the planned prompt is said, not silently cut
    cut = run_app("app_pages/plan.py", context=4096, new=256, prefix=2048, plan_gpus=["nvidia-h100-sxm5"],
                  plan_isl="1024")
    assert not cut.exception and not cut.error
    assert any("shared prefix (2,048 tokens) is longer than the planned prompt (1,024)" in w.value
               for w in cut.warning)


def test_speculating_with_mtp_modules_reaches_every_page():
    """Issue #22, item 4: DeepSeek-V3's MTP module, chosen in the sidebar, is counted on the Memory page (its
    11,610,068,224 parameters, by hand in tests/test_speculative.py) and timed on the Speed page (a drafting term)."""
    state = dict(model="deepseek-v3", tp=8, gpu="nvidia-h200-sxm", runtime="vLLM", context=2048,
                 new=512)
    plain = run_app(**state)
    assert "spec" in [w.key for w in plain.select_slider]  # offered: the model ships MTP modules
    spec = run_app(spec=1, **state)
    assert not spec.exception and not spec.error
    assert "+ 11,610,068,224 of its 1 MTP module(s)" in spec.caption[0].value
    assert metrics(spec)["Weights"] != metrics(plain)["Weights"]
    speed = run_app("app_pages/speed.py", spec=1, **state)
    assert not speed.exception
    terms = next(d.value for d in speed.dataframe if "term" in d.value.columns)
    assert "drafting" in list(terms["term"])
    # Llama-3.1-8B ships no MTP modules but takes an EAGLE head (kvdash.speculative); a windowed model neither
    eagle = run_app(model="llama-3.1-8b", runtime="vLLM", spec=7, spec_by="an EAGLE-3 head")
    assert not eagle.exception and not eagle.error
    assert "+ 424,721,664 of an EAGLE-3 head (16-bit)" in eagle.caption[0].value  # 424,689,664 and d2t's 32,000
    assert [s.value for s in eagle.selectbox if s.key == "spec_by"] == ["an EAGLE-3 head"]
    assert "spec" not in [w.key for w in run_app(model="mistral-7b-v0.1", runtime="vLLM").select_slider]
    # a draft model of the same vocabulary, on vLLM: Llama-3.2-1B beside Llama-3.1-70B (1,235,814,400 parameters)
    draft = run_app(model="llama-3.1-70b", runtime="vLLM", tp=4, spec=3, spec_by="a draft model",
                    spec_draft="llama-3.2-1b")
    assert not draft.exception and not draft.error
    assert "+ 1,235,814,400 of the draft model llama-3.2-1b" in draft.caption[0].value
    assert "a draft model" not in next(s for s in run_app(model="llama-3.1-70b", runtime="SGLang", spec=3).selectbox
                                       if s.key == "spec_by").options


def test_serving_capacity_leaves_sglangs_running_requests_to_sglang():
    """SGLang runs as many requests as its pool holds unless told otherwise: the box says 0 (its own rule) and the
    command leaves --max-running-requests out, rather than writing an invented 1,048,576."""
    at = run_app("app_pages/serving.py", runtime="SGLang")
    assert not at.exception and not at.error
    assert at.text_input(key="serve_seqs").value == "0"
    command = next(c.value for c in at.code if "sglang.launch_server" in c.value)
    assert "--max-running-requests" not in command and "1048576" not in command
    vllm = run_app("app_pages/serving.py", runtime="vLLM")
    assert vllm.text_input(key="serve_seqs").value == "1024"  # vLLM's default max_num_seqs
