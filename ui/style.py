"""One fixed, colour-blind-safe colour per memory component (Okabe-Ito), used by every chart; the shared chart
layout, axes, figures and download names."""

import functools
import json
import math
import re

import plotly.graph_objects as go

COMPONENT_COLOURS = {
    "weights": "#0072B2",  # blue
    "encoder": "#D55E00",  # vermillion
    "kv_cache": "#E69F00",  # orange
    "activation": "#009E73",  # bluish green
    "logits": "#CC79A7",  # reddish purple
    "overhead": "#56B4E9",  # sky blue
    "engine_reserve": "#999999",  # grey
}
# Hatching as a second cue, so no reading depends on colour alone.
COMPONENT_PATTERNS = {"weights": "", "encoder": "|", "kv_cache": "/", "activation": "x", "logits": ".", "overhead": "-",
                      "engine_reserve": "+"}
SERIES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# One colour per layer kind, for the layer-stack strip.
KIND_COLOURS = {"full": "#0072B2", "sliding": "#56B4E9", "chunked": "#009E73", "mla": "#CC79A7",
                "cross": "#F0E442", "state": "#E69F00", "none": "#BBBBBB"}

# Every chart's legend sits below the plot and its title may wrap onto a second line, so a 390 px phone
# screen shows the data uncovered and the title whole (tests/test_e2e.py checks both).
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left")
# the title in the top-left corner of the chart's own box, so nothing above can cover it
TITLE = dict(font=dict(size=16), x=0.01, xanchor="left", xref="container", y=1, yanchor="top", yref="container",
             pad=dict(t=10))


def tidy(fig, title: str, subtitle: str = ""):
    """Apply the shared layout: a short title (a subtitle on its own line), the legend below the plot."""
    text = title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")
    fig.update_layout(title=TITLE | dict(text=text), legend=LEGEND_BELOW,
                      margin=dict(l=10, r=10, t=80 if subtitle else 50))
    return fig


def figure(spec: dict) -> go.Figure:
    """A Plotly figure from one dict, kept per process for the specs drawn lately.

    Building a figure validates every property (1-3 ms a chart), and a class asks for the same scenarios
    again and again: a rerun whose chart is unchanged (the layer strip when the batch moves) or was drawn
    for another session costs a JSON dump instead. Figures from here are shared: never change one (Streamlit
    only copies them to send them). A spec that is not plain JSON (numpy arrays) is built uncached."""
    try:
        key = json.dumps(spec, sort_keys=True)
    except TypeError:
        return go.Figure(spec)
    return _built(key)


@functools.lru_cache(maxsize=512)
def _built(key: str) -> go.Figure:
    return go.Figure(json.loads(key))


def log_axis(title: str, **kw) -> dict:
    """A log axis labelled at each power of ten in SI form (1k, 10k, 1M), with unlabelled minor ticks: plotly's
    default labels the minor ticks "2" and "5" without their magnitude."""
    return dict(type="log", title=dict(text=title), dtick=1, tickformat="~s", minor=dict(ticks="outside"), **kw)


def seconds_axis(title: str, lo: float, hi: float) -> dict:
    """A log time axis in seconds labelled 1 ms, 10 ms, ..., 1 s, 10 s, 100 s (never "1M ms")."""
    names = {-4: "0.1 ms", -3: "1 ms", -2: "10 ms", -1: "100 ms", 0: "1 s", 1: "10 s", 2: "100 s", 3: "1,000 s",
             4: "10,000 s", 5: "100,000 s"}
    first, last = max(-4, math.floor(math.log10(max(lo, 1e-4)))), min(5, math.ceil(math.log10(max(hi, 1e-4))))
    decades = range(first, max(last, first + 1) + 1)
    return dict(type="log", title=dict(text=title), tickvals=[10.0**d for d in decades],
                ticktext=[names[d] for d in decades], minor=dict(ticks="outside"))


def file_name(*parts) -> str:
    """A download's name from the scenario it holds: letters, digits, dots and dashes only."""
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:120]


def scenario_lines(model_name: str, scenario, gpu) -> str:
    """The scenario as '# key: value' lines heading a CSV export (pandas: read_csv(..., comment="#"))."""
    rows = {"model": model_name, "gpu": gpu.name, "batch": scenario.batch, "prompt tokens": scenario.prompt_tokens,
            "generated tokens": scenario.new_tokens, "weights": scenario.weights_dtype, "kv cache": scenario.kv_dtype,
            "tensor parallel": scenario.tp, "pipeline parallel": scenario.pp, "runtime": scenario.runtime}
    return "".join(f"# {k}: {v}\n" for k, v in rows.items())
