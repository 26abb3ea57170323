"""Compare: up to four scenarios side by side (models, attention schemes, dtypes)."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.dtypes import DTYPES
from kvdash.errors import KvdashError
from kvdash.presets import load_presets
from kvdash.units import fmt_bytes, to_unit
from ui.links import COMPARE_ATTENTION
from ui.sidebar import require
from ui.style import COMPONENT_COLOURS, COMPONENT_PATTERNS, tidy

model, scenario, gpu, unit = require()
presets = load_presets()
st.title("Compare scenarios")
st.caption(f"Batch {scenario.batch:,} × {scenario.context:,} tokens from the sidebar; per GPU; sizes in {unit}.")

# Each scheme maps every layer spec; kinds without K/V heads (state, latent) keep themselves.
ATTENTION = dict(zip(COMPARE_ATTENTION, (None, ("MHA", lambda spec: spec.with_kv_heads(None)),
                                          ("MQA", lambda spec: spec.with_kv_heads(1)),
                                          ("MLA", lambda spec: spec.as_latent(512, 64))), strict=True))
Q = "query-params"  # every selection travels in the link
n = st.radio("Scenarios", [2, 3, 4], index=1, horizontal=True, key="cmp_n", bind=Q)
defaults = [("llama-3.1-8b", "as configured", "bf16"), ("llama-3.1-8b", "multi-head (MHA)", "bf16"),
            ("llama-3.1-8b", "latent (MLA, 512 + 64)", "bf16"), ("llama-3.1-8b", "as configured", "fp8")]
columns = st.columns(n)
chosen = []
for i, col in enumerate(columns):
    pid, attn, kv = defaults[i]
    with col:
        st.markdown(f"**Scenario {chr(65 + i)}**")
        p = st.selectbox("Model", list(presets), index=list(presets).index(pid), key=f"cmp_model_{i}", bind=Q)
        a = st.selectbox("Attention", list(ATTENTION), index=list(ATTENTION).index(attn), key=f"cmp_attn_{i}",
                         bind=Q)
        k = st.selectbox("KV cache", list(DTYPES), index=list(DTYPES).index(kv), key=f"cmp_kv_{i}", bind=Q)
        w = st.selectbox("Weights", list(DTYPES), index=list(DTYPES).index("bf16"), key=f"cmp_w_{i}", bind=Q)
    m = presets[p].model
    label = f"{chr(65 + i)}: {m.name}"
    if ATTENTION[a] is not None:  # DeepSeek's latent sizes for MLA, on this model's layers
        short, fn = ATTENTION[a]
        variant = m.map_layers(fn, name=f"{m.name} ({short})")
        if variant.layers != m.layers:
            m, label = variant, f"{label}, {short}"
    chosen.append((f"{label}, KV {k}, W {w}", m, scenario.with_(kv_dtype=k, weights_dtype=w)))

results = []
for label, m, s in chosen:
    try:
        results.append((label, breakdown(m, s, gpu)))
    except KvdashError as e:
        st.error(f"{label}: {e}")
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
for label, b in results:
    row = {"scenario": label, "KV per token (B)": f"{b.kv_bytes_per_token:,}"}
    for c in b.components[:6]:
        diff = c.bytes - base[c.key]
        change = "" if b is base else f" ({'+' if diff >= 0 else '−'}{fmt_bytes(abs(diff), unit)})"
        row[f"{c.label} ({unit})"] = fmt_bytes(c.bytes, unit) + change
    row[f"total ({unit})"] = fmt_bytes(b.total, unit)
    row["vs A"] = "—" if b is base else f"{b.total / base.total:.2f}x"
    row["fits?"] = "fits" if b.fits else "does not fit"
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="cmp_table")
