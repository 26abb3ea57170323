"""Scaling: memory against context length, and a batch x context fit map for the chosen GPU."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.sweep import total_grid
from kvdash.units import GB, GiB
from ui.sidebar import require
from ui.style import SERIES

model, scenario, gpu, unit = require()
scale = GiB if unit == "GiB" else GB
st.title(f"{model.name}: how memory scales")
st.caption(f"Per GPU, batch {scenario.batch:,}, sizes in {unit}. Every point is kvdash's breakdown of that scenario.")

top = max(2048, model.max_position_embeddings or 131072)
contexts = np.unique(np.geomspace(max(16, scenario.shared_prefix_tokens or 16), top, 48).astype(int))


def kv_line(m, **changes):
    return [breakdown(m, scenario.with_(prompt_tokens=int(t), new_tokens=0, **changes))["kv_cache"] / scale
            for t in contexts]


fig = go.Figure()
for i, dt in enumerate(["fp32", "bf16", "fp8", "int4"]):
    fig.add_scatter(x=contexts, y=kv_line(model, kv_dtype=dt), name=f"KV cache, {dt}", line_color=SERIES[i],
                    line_dash="solid" if dt == scenario.kv_dtype else "dot")
fig.add_scatter(x=contexts, y=[breakdown(model, scenario.with_(prompt_tokens=int(t), new_tokens=0)).total / scale
                               for t in contexts], name=f"total ({scenario.kv_dtype} cache)", line_color="#000000")
# a line trace, not add_hline: shapes on log axes take log10 coordinates
fig.add_scatter(x=[contexts[0], contexts[-1]], y=[gpu.usable_bytes / scale] * 2, mode="lines",
                name=f"{gpu.name} usable", line=dict(color="#999999", dash="dash"))
fig.update_layout(title=f"KV cache and total memory against context ({unit})", xaxis=dict(type="log", title="tokens"),
                  yaxis=dict(type="log", title=unit))
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
            fig2.add_scatter(x=contexts, y=kv_line(m), name=name, line_color=SERIES[i])
        except KvdashError:
            continue
    fig2.update_layout(title=f"KV cache of the same model under other attention schemes ({unit})",
                       xaxis=dict(type="log", title="tokens"), yaxis=dict(type="log", title=unit))
    st.plotly_chart(fig2, width="stretch", key="scaling_variants")

st.subheader(f"What fits on one {gpu.name}")
batches = np.unique(np.geomspace(1, 4096, 40).astype(int))
prompts = np.unique(np.geomspace(max(16, scenario.shared_prefix_tokens or 16), top, 40).astype(int))
try:
    grid = total_grid(model, scenario, batches, prompts) / scale
except KvdashError as e:
    st.error(str(e))
    st.stop()
limit = gpu.usable_bytes / scale
heat = go.Figure(go.Heatmap(z=np.log10(grid), x=prompts, y=batches, colorscale="Cividis",
                            colorbar=dict(title=f"log10 {unit}"),
                            customdata=grid, hovertemplate="batch %{y}, %{x} tokens: %{customdata:.2f} " + unit
                            + "<extra></extra>"))
heat.add_trace(go.Contour(z=grid, x=prompts, y=batches, showscale=False, line=dict(color="white", width=3),
                          contours=dict(type="constraint", operation="<", value=limit),
                          name=f"fits {gpu.name}", hoverinfo="skip"))
heat.update_layout(title=f"Total per-GPU memory over batch × context; the white line is {limit:.1f} {unit} "
                         "(inside: fits)",
                   xaxis=dict(type="log", title="prompt tokens per sequence"), yaxis=dict(type="log", title="batch"))
st.plotly_chart(heat, width="stretch", key="scaling_map")
