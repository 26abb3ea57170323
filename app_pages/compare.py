"""Compare: the sidebar's scenario (A) beside up to three derived from it (another model, attention scheme or
format)."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.dtypes import DTYPES
from kvdash.errors import KvdashError
from kvdash.presets import load_presets
from kvdash.units import fmt_bytes, to_unit
from ui.links import COMPARE_ATTENTION, SIDEBAR_MODEL
from ui.sidebar import require
from ui.style import COMPONENT_COLOURS, COMPONENT_PATTERNS, tidy
from ui.text import label, plain

model, scenario, gpu, unit = require()
presets = load_presets()
st.title("Compare scenarios")
per_gpu = f"per GPU at tensor parallel {scenario.tp}" if scenario.tp > 1 else "on one GPU"
st.caption(f"Scenario A is the sidebar's: {plain(model.name)}, batch {scenario.batch:,} × {scenario.context:,} "
           f"tokens, KV {scenario.kv_dtype}, weights {scenario.weights_dtype}. B to D change one thing or more "
           f"from it. Sizes {per_gpu}, in {unit}.")

# Each scheme maps every layer spec; kinds without K/V heads (state, latent) keep themselves.
ATTENTION = dict(zip(COMPARE_ATTENTION, (None, ("MHA", lambda spec: spec.with_kv_heads(None)),
                                          ("MQA", lambda spec: spec.with_kv_heads(1)),
                                          ("MLA", lambda spec: spec.as_latent(512, 64))), strict=True))
Q = "query-params"  # every selection travels in the link
n = st.radio("Scenarios", [2, 3, 4], index=2, horizontal=True, key="cmp_n", bind=Q)
# B, C, D by default: the same model with every head its own K/V, with a DeepSeek-sized latent, and an fp8 cache
defaults = [("multi-head (MHA)", scenario.kv_dtype), ("latent (MLA, 512 + 64)", scenario.kv_dtype),
            ("as configured", "fp8" if scenario.kv_dtype != "fp8" else "bf16")]
columns = st.columns(n)
with columns[0]:
    st.markdown("**Scenario A** (the sidebar)")
    st.caption(f"{plain(model.name, 60)}; attention as configured; KV {scenario.kv_dtype}; weights "
               f"{scenario.weights_dtype}")
chosen = [(f"A: {label(model.name, 40)}, KV {scenario.kv_dtype}, W {scenario.weights_dtype}", model, scenario)]
choices = [SIDEBAR_MODEL, *presets]
formats = list(dict.fromkeys([*DTYPES, scenario.weights_dtype]))  # a grouped format (awq-int4-g64) too
for i, col in enumerate(columns[1:], start=1):
    attn, kv = defaults[i - 1]
    with col:
        st.markdown(f"**Scenario {chr(65 + i)}**")
        p = st.selectbox("Model", choices, key=f"cmp_model_{i}", bind=Q)
        a = st.selectbox("Attention", list(ATTENTION), index=list(ATTENTION).index(attn), key=f"cmp_attn_{i}",
                         bind=Q)
        k = st.selectbox("KV cache", list(DTYPES), index=list(DTYPES).index(kv), key=f"cmp_kv_{i}", bind=Q)
        w = st.selectbox("Weights", formats, index=formats.index(scenario.weights_dtype), key=f"cmp_w_{i}",
                         bind=Q)
    m = model if p == SIDEBAR_MODEL else presets[p].model
    name = f"{chr(65 + i)}: {label(m.name, 40)}"
    if ATTENTION[a] is not None:  # DeepSeek's latent sizes for MLA, on this model's layers
        short, fn = ATTENTION[a]
        variant = m.map_layers(fn, name=f"{m.name} ({short})")
        if variant.layers != m.layers:
            m, name = variant, f"{name}, {short}"
    experts = scenario.moe_weights_dtype if w == scenario.weights_dtype else ""  # gpt-oss keeps its mxfp4 experts
    chosen.append((f"{name}, KV {k}, W {w}", m, scenario.with_(kv_dtype=k, weights_dtype=w, moe_weights_dtype=experts)))

results = []
for name, m, s in chosen:
    try:
        results.append((name, breakdown(m, s, gpu)))
    except KvdashError as e:
        st.error(f"{name}: {e}")
if not results:
    st.stop()
fig = go.Figure()
for key in ("weights", "encoder", "kv_cache", "activation", "logits", "overhead"):
    name = next(c.label for c in results[0][1].components if c.key == key)
    fig.add_bar(name=name, x=[r[0] for r in results], y=[to_unit(r[1][key], unit) for r in results],
                marker_color=COMPONENT_COLOURS[key], marker_pattern_shape=COMPONENT_PATTERNS[key])
fig.add_hline(y=to_unit(gpu.usable_bytes, unit), line_dash="dash", annotation_text=f"{gpu.name} usable",
              annotation_position="top left")
fig.add_scatter(x=[r[0] for r in results], y=[to_unit(r[1].total, unit) for r in results], mode="text",
                text=[fmt_bytes(r[1].total, unit) for r in results], textposition="top center", showlegend=False,
                hoverinfo="skip")
fig.update_layout(barmode="stack", yaxis_title=unit,
                  yaxis_range=[0, 1.15 * max(to_unit(gpu.usable_bytes, unit), *(to_unit(r[1].total, unit)
                                                                                for r in results))])
tidy(fig, f"Total memory per scenario ({unit})", "stacked by component, against the GPU's usable memory")
st.plotly_chart(fig, width="stretch", key="cmp_chart")

base = results[0][1]
rows = []
for name, b in results:
    row = {"scenario": name, "KV per token (B)": f"{b.kv_bytes_per_token:,}"}
    for c in b.components[:6]:
        diff = c.bytes - base[c.key]
        change = "" if b is base else f" ({'+' if diff >= 0 else '−'}{fmt_bytes(abs(diff), unit)})"
        row[f"{c.label} ({unit})"] = fmt_bytes(c.bytes, unit) + change
    row[f"total ({unit})"] = fmt_bytes(b.total, unit)
    row["vs A"] = "—" if b is base else f"{b.total / base.total:.2f}x"
    row["fits?"] = "fits" if b.fits else "does not fit"
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="cmp_table")
