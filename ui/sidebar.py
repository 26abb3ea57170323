"""The shared sidebar: model, scenario, GPU and units, stored in session state for every page.

app.py draws it on every run, before st.navigation runs the page; pages call `selection()`.
"""

from __future__ import annotations

import streamlit as st

from kvdash.dtypes import DTYPES
from kvdash.errors import KvdashError
from kvdash.gpus import load_gpus
from kvdash.presets import load_presets
from kvdash.scenario import Scenario


@st.cache_data
def preset_names() -> dict[str, str]:
    return {p.id: p.name for p in load_presets().values()}


@st.cache_data
def gpu_names() -> dict[str, str]:
    return {g.id: g.name for g in load_gpus().values()}


def render_sidebar() -> None:
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
    st.session_state["sel_model"] = load_presets()[preset_id].model
    st.session_state["sel_gpu"] = load_gpus()[gpu_id]
    st.session_state["sel_unit"] = unit
    try:
        st.session_state["sel_scenario"] = Scenario(batch=int(batch), prompt_tokens=int(context),
                                                    weights_dtype=weights_dtype, kv_dtype=kv_dtype, tp=int(tp))
        st.session_state["sel_error"] = None
    except KvdashError as e:
        st.session_state["sel_scenario"] = None
        st.session_state["sel_error"] = str(e)


def selection():
    """(model, scenario or None, gpu, unit, error or None), as the sidebar set them this run."""
    s = st.session_state
    return s["sel_model"], s["sel_scenario"], s["sel_gpu"], s["sel_unit"], s["sel_error"]
