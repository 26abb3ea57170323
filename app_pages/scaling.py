"""Scaling: memory against context length, and a batch x context fit map for the chosen GPU."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.sweep import total_grid
from kvdash.units import GB, GiB
from ui.sidebar import require
from ui.style import SERIES, log_axis, tidy
from ui.text import plain

model, scenario, gpu, unit = require()
scale = GiB if unit == "GiB" else GB
st.title(f"{plain(model.name)}: how memory scales")
st.caption(f"Per GPU, batch {scenario.batch:,}, sizes in {unit}. Every point is kvdash's breakdown of that scenario.")

top = max(2048, model.max_position_embeddings or 131072)
contexts = np.unique(np.geomspace(max(16, scenario.shared_prefix_tokens or 16), top, 48).astype(int))


def kv_line(m, **changes):
    return [breakdown(m, scenario.with_(prompt_tokens=int(t), new_tokens=0, **changes))["kv_cache"] / scale
            for t in contexts]


HOVER = "%{x:,} tokens: %{y:,.3f} " + unit + "<extra>%{fullData.name}</extra>"
fig = go.Figure()
for i, dt in enumerate(["fp32", "bf16", "fp8", "int4"]):
    fig.add_scatter(x=contexts, y=kv_line(model, kv_dtype=dt), name=f"KV cache, {dt}", line_color=SERIES[i],
                    line_dash="solid" if dt == scenario.kv_dtype else "dot", hovertemplate=HOVER)
fig.add_scatter(x=contexts, y=[breakdown(model, scenario.with_(prompt_tokens=int(t), new_tokens=0), gpu).total / scale
                               for t in contexts], name=f"total ({scenario.kv_dtype} cache)", line_color="#000000",
                hovertemplate=HOVER)
# a line trace, not add_hline: shapes on log axes take log10 coordinates
fig.add_scatter(x=[contexts[0], contexts[-1]], y=[gpu.usable_bytes / scale] * 2, mode="lines",
                name=f"{gpu.name} usable", line=dict(color="#999999", dash="dash"), hovertemplate=HOVER)
now = breakdown(model, scenario.with_(new_tokens=0), gpu)
fig.add_scatter(x=[scenario.prompt_tokens] * 2, y=[now["kv_cache"] / scale, now.total / scale], mode="markers",
                name=f"the sidebar's scenario ({scenario.prompt_tokens:,} tokens)", hovertemplate=HOVER,
                marker=dict(symbol="star", size=14, color="#000000"))
fig.update_layout(xaxis=log_axis("tokens"), yaxis=log_axis(unit))
tidy(fig, f"Memory against context ({unit})", "KV cache per dtype, and the total")
st.plotly_chart(fig, width="stretch", key="scaling_dtypes")

variants = {"as configured": model}
for name, fn in (("every layer full attention", lambda spec: spec.as_full()),
                 ("multi-head (one KV head per query head)", lambda spec: spec.with_kv_heads(None)),
                 ("latent attention (MLA, 512 + 64)", lambda spec: spec.as_latent(512, 64))):
    variant = model.map_layers(fn)
    if variant.layers != model.layers:  # only the schemes that change something
        variants[name] = variant
if len(variants) > 1:
    fig2 = go.Figure()
    for i, (name, m) in enumerate(variants.items()):
        try:
            fig2.add_scatter(x=contexts, y=kv_line(m), name=name, line_color=SERIES[i], hovertemplate=HOVER)
        except KvdashError:
            continue
    fig2.update_layout(xaxis=log_axis("tokens"), yaxis=log_axis(unit))
    tidy(fig2, f"Other attention schemes ({unit})", "the KV cache of the same model")
    st.plotly_chart(fig2, width="stretch", key="scaling_variants")

st.subheader(f"What fits on one {gpu.name}" if scenario.tp * scenario.pp == 1 else
             f"What fits per {gpu.name} at tensor parallel {scenario.tp}"
             + (f", pipeline parallel {scenario.pp}" if scenario.pp > 1 else "")
             + f" ({scenario.tp * scenario.pp} GPUs)")
batches = np.unique(np.geomspace(1, 4096, 40).astype(int))
prompts = np.unique(np.geomspace(max(16, scenario.shared_prefix_tokens or 16), top, 40).astype(int))
try:
    grid = total_grid(model, scenario, batches, prompts, gpu) / scale
except KvdashError as e:
    st.error(str(e))
    st.stop()
limit = gpu.usable_bytes / scale
heat = go.Figure(go.Heatmap(z=np.log10(grid), x=prompts, y=batches, colorscale="Cividis",
                            colorbar=dict(title=f"log10 {unit}"),
                            customdata=grid, hovertemplate="batch %{y}, %{x} tokens: %{customdata:.2f} " + unit
                            + "<extra></extra>"))
# What does not fit is veiled and hatched, the boundary drawn white: no reading depends on which side of
# a contour a library shades. The hatched area is the polygon above the smallest batch that no longer fits
# at each prompt length (batch grows upward; memory grows with batch).
over = np.where(grid > limit, 1.0, np.nan)
heat.add_trace(go.Heatmap(z=over, x=prompts, y=batches, showscale=False, hoverinfo="skip", name="does not fit",
                          colorscale=[[0, "rgba(255,255,255,0.45)"], [1, "rgba(255,255,255,0.45)"]]))
first_over = [batches[np.argmax(col > limit)] if (col > limit).any() else None for col in grid.T]
edge = [(x, y) for x, y in zip(prompts, first_over, strict=True) if y is not None]
if edge:
    xs = [edge[0][0]] + [x for x, _ in edge] + [prompts[-1], edge[0][0]]
    ys = [batches[-1]] + [y for _, y in edge] + [batches[-1], batches[-1]]
    heat.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=0, shape="hv"), fill="toself",
                              fillcolor="rgba(0,0,0,0)", fillpattern=dict(shape="/", fgcolor="white", size=10),
                              hoverinfo="skip", name="does not fit (hatched)"))
heat.add_trace(go.Contour(z=grid, x=prompts, y=batches, showscale=False, hoverinfo="skip",
                          contours=dict(coloring="none", start=limit, end=limit, size=1, showlabels=False),
                          line=dict(color="white", width=3), name=f"{limit:.1f} {unit} usable"))
labels = []
if grid[0, 0] <= limit:
    labels.append(dict(x=np.log10(prompts[0]), y=np.log10(batches[0]), text="<b>fits</b>", xanchor="left",
                       yanchor="bottom"))
if grid[-1, -1] > limit:
    labels.append(dict(x=np.log10(prompts[-1]), y=np.log10(batches[-1]), text="<b>does not fit</b> (hatched)",
                       xanchor="right", yanchor="top"))
heat.add_trace(go.Scatter(x=[scenario.prompt_tokens], y=[scenario.batch], mode="markers", name="the sidebar's scenario",
                          marker=dict(symbol="star", size=16, color="#D55E00", line=dict(color="white", width=1.5)),
                          hovertemplate=f"the sidebar's scenario: batch {scenario.batch:,}, {scenario.prompt_tokens:,} "
                                        "tokens<extra></extra>"))
heat.update_layout(xaxis=log_axis("prompt tokens per sequence"), yaxis=log_axis("batch"),
                   annotations=[dict(a, showarrow=False, font=dict(size=15, color="black"),
                                     bgcolor="rgba(255,255,255,0.8)") for a in labels])
tidy(heat, "Per-GPU memory over batch × context", f"white line: {limit:.1f} {unit} usable; hatched: does not fit")
st.plotly_chart(heat, width="stretch", key="scaling_map")
