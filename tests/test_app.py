"""AppTest of the dashboard: inputs change the numbers to exactly what the library computes."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kvdash.breakdown import breakdown
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.units import fmt_bytes

APP = Path(__file__).resolve().parent.parent / "app.py"


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
    assert shown["Total (GiB)"] == fmt_bytes(b.total, "GiB")
    assert shown["KV cache (GiB)"] == fmt_bytes(b["kv_cache"], "GiB") == "1.00 GiB"
    assert kv_bytes_in_table(at) == 8192 * 131_072
    assert "8,030,261,248 parameters" in at.caption[0].value


def test_inputs_change_the_numbers():
    at = run_app()
    at.selectbox(key="model").set_value("deepseek-v3")
    at.number_input(key="batch").set_value(4)
    at.number_input(key="context").set_value(1000)
    at.radio(key="unit").set_value("GB")
    at.run()
    assert not at.exception
    assert kv_bytes_in_table(at) == 4 * 1000 * 70_272
    assert metrics(at)["KV per token"] == "70,272 B"
    assert "Total (GB)" in metrics(at)
    assert metrics(at)["Fits H100 SXM5 80GB?"] == "does not fit"


def test_tensor_parallel_input():
    at = run_app(tp=2)
    assert metrics(at)["KV per token"] == "65,536 B"


def test_bad_parallel_degree_shows_an_error_and_the_app_recovers():
    at = run_app()
    at.number_input(key="tp").set_value(3).run()
    assert not at.exception
    assert "must divide the 32 attention heads" in at.error[0].value
    at.number_input(key="tp").set_value(2).run()
    assert not at.error and metrics(at)["KV per token"] == "65,536 B"


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
    from kvdash.speed import speed

    at = run_app("app_pages/speed.py")
    assert not at.exception
    r = speed(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192, new_tokens=256),
              get_gpu("nvidia-h100-sxm5"), knee=False)
    assert metrics(at)["Time per output token"] == f"{r.tpot_s * 1e3:,.2f} ms"
    assert len(at.get("plotly_chart")) == 3  # batch knee, GPU comparison, with/without cache
    gpus = at.dataframe[0].value
    # the scenario needs 17.25 GiB: it fits an 80 GB H100, not a 16 GB T4 (15 GiB usable)
    assert "H100 SXM5 80GB" in set(gpus.GPU) and "T4 16GB" not in set(gpus.GPU)
    at.number_input(key="batch").set_value(64).run()
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
    assert any("calibrated" in o for o in at.radio(key="speed_runtime").options)
