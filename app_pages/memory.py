"""Memory: where the GPU memory goes for the scenario in the sidebar."""

import pandas as pd
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.solvers import max_batch, max_context
from kvdash.units import fmt_bytes, to_unit
from ui.sidebar import selection

model, scenario, gpu, unit, error = selection()
st.title(f"{model.name}: where the memory goes")
st.caption(f"{model.params:,} parameters · {model.attention_label} · per GPU · sizes in {unit}")

try:
    if scenario is None:
        raise KvdashError(error)
    b = breakdown(model, scenario, gpu)
except KvdashError as e:
    st.error(str(e))
    st.stop()

cols = st.columns(5)
cols[0].metric(f"Total ({unit})", fmt_bytes(b.total, unit))
cols[1].metric(f"Weights ({unit})", fmt_bytes(b["weights"], unit))
cols[2].metric(f"KV cache ({unit})", fmt_bytes(b["kv_cache"], unit))
cols[3].metric("KV per token", f"{b.kv_bytes_per_token:,} B")
cols[4].metric(f"Fits {gpu.name}?", "fits" if b.fits else "does not fit",
               f"headroom {fmt_bytes(b.headroom, unit)}", delta_color="normal" if b.fits else "inverse")

table = pd.DataFrame(
    [{"component": c.label, "bytes": c.bytes, unit: round(to_unit(c.bytes, unit), 3), "formula": c.formula,
      "basis": c.basis} for c in b.components]
    + [{"component": "Total", "bytes": b.total, unit: round(to_unit(b.total, unit), 3), "formula": "sum of the above",
        "basis": "formula"}]
)
st.dataframe(table, hide_index=True, width="stretch", key="breakdown")
st.write(
    f"Largest batch at {scenario.context:,} tokens: **{max_batch(model, scenario, gpu):,}** · "
    f"longest context at batch {scenario.batch:,}: **{max_context(model, scenario, gpu):,} tokens** "
    f"(model trained to {model.max_position_embeddings:,}) · usable memory {fmt_bytes(gpu.usable_bytes, unit)} "
    f"({gpu.usable_basis})"
)
