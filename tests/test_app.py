"""AppTest of the dashboard page: inputs change the numbers to exactly what the library says."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kvdash.breakdown import breakdown
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.units import fmt_bytes

APP = Path(__file__).resolve().parent.parent / "app.py"


@pytest.fixture
def app():
    return AppTest.from_file(str(APP), default_timeout=60).run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_page_shows_the_library_numbers(app):
    assert not app.exception
    b = breakdown(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192), get_gpu("nvidia-h100-sxm5"))
    shown = metrics(app)
    assert shown["Total (GiB)"] == fmt_bytes(b.total, "GiB")
    assert shown["KV cache (GiB)"] == fmt_bytes(b["kv_cache"], "GiB") == "1.00 GiB"
    table = app.dataframe[0].value
    assert int(table.loc[table.component == "KV cache", "bytes"].iloc[0]) == 8192 * 131_072


def test_changing_inputs_updates_numbers(app):
    app.selectbox(key="model").set_value("deepseek-v3")
    app.number_input(key="batch").set_value(4)
    app.number_input(key="context").set_value(1000)
    app.radio(key="unit").set_value("GB")
    app.run()
    table = app.dataframe[0].value
    assert int(table.loc[table.component == "KV cache", "bytes"].iloc[0]) == 4 * 1000 * 70_272
    assert metrics(app)["KV per token"] == "70,272 B"
    assert "Total (GB)" in metrics(app)
    assert metrics(app)["Fits H100 SXM5 80GB?"] == "does not fit"


def test_bad_parallel_degree_shows_an_error_and_the_app_recovers(app):
    app.number_input(key="tp").set_value(3).run()
    assert not app.exception
    assert "must divide the 32 attention heads" in app.error[0].value
    app.number_input(key="tp").set_value(2).run()
    assert not app.error and metrics(app)["KV per token"] == "65,536 B"
