"""kvdash dashboard: pick a model and a scenario, see where the GPU memory goes.

Run with `make run`. Every number comes from kvdash's one breakdown table; this page only
arranges it. torch is never imported here.
"""

import pandas as pd
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.dtypes import DTYPES
from kvdash.errors import KvdashError
from kvdash.gpus import load_gpus
from kvdash.presets import load_presets
from kvdash.scenario import Scenario
from kvdash.solvers import max_batch, max_context
from kvdash.units import fmt_bytes, to_unit

st.set_page_config(page_title="kvdash: inference memory", layout="wide")


@st.cache_data
def preset_names() -> dict[str, str]:
    return {p.id: p.name for p in load_presets().values()}


@st.cache_data
def gpu_names() -> dict[str, str]:
    return {g.id: g.name for g in load_gpus().values()}


presets, gpus = preset_names(), gpu_names()
with st.sidebar:
    st.header("Scenario")
    preset_id = st.selectbox("Model", list(presets), index=list(presets).index("llama-3.1-8b"),
                             format_func=presets.get, key="model")
    batch = st.number_input("Batch (concurrent sequences)", 1, 1 << 20, 1, key="batch")
    context = st.number_input("Context per sequence (tokens)", 1, 1 << 30, 8192, step=1024, key="context")
    weights_dtype = st.selectbox("Weights dtype", list(DTYPES), index=list(DTYPES).index("bf16"), key="wdtype")
    kv_dtype = st.selectbox("KV-cache dtype", list(DTYPES), index=list(DTYPES).index("bf16"), key="kvdtype")
    tp = st.number_input("Tensor-parallel GPUs", 1, 64, 1, key="tp")
    gpu_id = st.selectbox("GPU", list(gpus), index=list(gpus).index("nvidia-h100-sxm5"),
                          format_func=gpus.get, key="gpu")
    unit = st.radio("Units", ["GiB", "GB"], horizontal=True, key="unit",
                    help="GiB = 2^30 bytes, GB = 10^9 bytes")

model = load_presets()[preset_id].model
gpu = load_gpus()[gpu_id]
st.title(f"{model.name}: where the memory goes")
st.caption(f"{model.params:,} parameters · {model.attention_label} · per GPU · sizes in {unit}")

try:
    scenario = Scenario(batch=int(batch), prompt_tokens=int(context), weights_dtype=weights_dtype,
                        kv_dtype=kv_dtype, tp=int(tp))
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
