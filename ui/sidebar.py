"""The shared sidebar: model, scenario, GPU and units, stored in session state for every page.

app.py draws it on every run, before st.navigation runs the page; pages call `selection()`.
Every input is bound to the URL (`bind="query-params"`), so a link reproduces the scenario;
invalid values in a link are dropped by Streamlit and reported here in a notice.
"""

from __future__ import annotations

import streamlit as st

from kvdash.dtypes import DTYPES, KV_DTYPES
from kvdash.errors import KvdashError
from kvdash.gpus import load_gpus
from kvdash.hf_config import MAX_CONFIG_BYTES, model_from_config, parse_config_text
from kvdash.model import MLA, SLIDING, ModelSpec
from kvdash.presets import load_presets
from kvdash.scenario import Scenario

Q = "query-params"
WEIGHT_CHOICES = ["checkpoint", *DTYPES]
EXPERTS_CHOICES = ["as the weights", *DTYPES]
EXPERT_SPLITS = ["sharded", "whole (EP)"]
SOURCES = ["preset", "config.json", "custom"]
# Widgets whose values travel in the URL, with the type their query parameter must parse as.
BOUND = {"source": str, "model": str, "batch": int, "context": int, "new": int, "wdtype": str, "edtype": str, "ep": str,
         "kvdtype": str,
         "tp": int, "pp": int, "block": int, "prefix": int, "gpu": str, "unit": str, "c_layers": int,
         "c_hidden": int, "c_heads": int, "c_kv": int, "c_hd": int, "c_inter": int, "c_vocab": int,
         "c_attn": str, "c_window": int, "c_latent": int, "c_rope": int, "c_experts": int, "c_topk": int,
         "c_expert_inter": int}


def weight_formats(model: ModelSpec, wdtype: str, edtype: str) -> dict:
    """The scenario's weight formats from the sidebar's choices ('checkpoint': as the config stores them)."""
    checkpoint = wdtype == WEIGHT_CHOICES[0]
    w = (model.weights_format or "bf16") if checkpoint else wdtype
    e = edtype if edtype != EXPERTS_CHOICES[0] else (model.experts_format if checkpoint else "")
    return {"weights_dtype": w, "moe_weights_dtype": "" if e == w else e}


def _custom_model() -> ModelSpec:
    """The 'custom' architecture from number inputs (defaults: a Llama-3.1-8B-like shape)."""
    n = st.number_input("Layers", 1, 10_000, 32, key="c_layers", bind=Q)
    hidden = st.number_input("Hidden size", 1, 1_000_000, 4096, key="c_hidden", bind=Q)
    heads = st.number_input("Attention heads", 1, 100_000, 32, key="c_heads", bind=Q)
    kv = st.number_input("KV heads", 1, 100_000, 8, key="c_kv", bind=Q)
    hd = st.number_input("Head dim", 1, 65_536, 128, key="c_hd", bind=Q)
    inter = st.number_input("MLP intermediate size", 1, 10_000_000, 14336, key="c_inter", bind=Q)
    vocab = st.number_input("Vocabulary", 1, 100_000_000, 128256, key="c_vocab", bind=Q)
    attn = st.selectbox("Attention", ["full", "sliding", "latent (MLA)"], key="c_attn", bind=Q)
    kw: dict = {}
    if attn == "sliding":
        kw.update(layer_types=(SLIDING,) * int(n),
                  sliding_window=int(st.number_input("Window (tokens)", 1, 1 << 30, 4096, key="c_window", bind=Q)))
    elif attn.startswith("latent"):
        kw.update(layer_types=(MLA,) * int(n), qk_nope_head_dim=int(hd),
                  kv_lora_rank=int(st.number_input("kv_lora_rank", 1, 1_000_000, 512, key="c_latent", bind=Q)),
                  qk_rope_head_dim=int(st.number_input("qk_rope_head_dim", 1, 65_536, 64, key="c_rope", bind=Q)))
    experts = st.number_input("Routed experts (0: dense)", 0, 100_000, 0, key="c_experts", bind=Q)
    if experts:
        kw.update(n_experts=int(experts),
                  experts_per_token=int(st.number_input("Experts per token", 1, 100_000, 2, key="c_topk", bind=Q)),
                  expert_intermediate_size=int(st.number_input("Expert FFN size", 1, 10_000_000, 14336,
                                                               key="c_expert_inter", bind=Q)))
    return ModelSpec(name="custom", n_layers=int(n), hidden_size=int(hidden), n_heads=int(heads),
                     n_kv_heads=int(kv), head_dim=int(hd), vocab_size=int(vocab), intermediate_size=int(inter),
                     **kw)


def _uploaded_model() -> ModelSpec:
    up = st.file_uploader("config.json", type=["json"], key="cfg_file", max_upload_size=1)
    text = st.text_area("…or paste it", key="cfg_text", height=120)
    if up is not None:
        data = up.getvalue()
        if len(data) > MAX_CONFIG_BYTES:
            raise KvdashError(f"config is {len(data):,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
        return model_from_config(parse_config_text(data), name=up.name.removesuffix(".json"))
    if text.strip():
        return model_from_config(parse_config_text(text))
    raise KvdashError("upload or paste a config.json to size it (the link cannot carry a file)")


def render_sidebar() -> None:
    presets, gpus = load_presets(), load_gpus()
    for k, v in st.session_state.pop("_pending_scenario", {}).items():  # a loaded scenario file
        st.session_state[k] = v
    first_run = "_link_checked" not in st.session_state
    link = {k: st.query_params.get(k) for k in BOUND if first_run and k in st.query_params}
    model, model_error = None, None
    with st.sidebar:
        st.header("Model")
        source = st.radio("Source", SOURCES, horizontal=True, key="source", bind=Q)
        try:
            if source == "preset":
                pid = st.selectbox("Preset", list(presets), index=list(presets).index("llama-3.1-8b"), key="model",
                                   bind=Q, help="the model's real config.json fields, with sources (data/models)")
                model = presets[pid].model
            elif source == "config.json":
                model = _uploaded_model()
            else:
                model = _custom_model()
        except KvdashError as e:
            model_error = str(e)
            st.error(model_error)
        st.header("Scenario")
        batch = st.number_input("Batch (concurrent sequences)", 1, 1 << 24, 1, key="batch", bind=Q)
        context = st.number_input("Prompt tokens per sequence", 1, 1 << 30, 8192, step=1024, key="context", bind=Q)
        new = st.number_input("Generated tokens per sequence", 0, 1 << 30, 0, step=256, key="new", bind=Q)
        c1, c2 = st.columns(2)
        wdtype = c1.selectbox("Weights", WEIGHT_CHOICES, key="wdtype", bind=Q,
                              help="checkpoint: as the config's quantization_config stores them (else bf16)")
        kvdtype = c2.selectbox("KV cache", list(KV_DTYPES), index=list(KV_DTYPES).index("bf16"), key="kvdtype",
                               bind=Q)
        edtype, ep = EXPERTS_CHOICES[0], False
        if model is not None and model.n_experts:
            edtype = st.selectbox("Routed experts' weights", EXPERTS_CHOICES, key="edtype", bind=Q,
                                  help="gpt-oss ships its experts in mxfp4 and the rest in bf16")
        c1, c2 = st.columns(2)
        tp = c1.number_input("Tensor parallel", 1, 1024, 1, key="tp", bind=Q)
        pp = c2.number_input("Pipeline parallel", 1, 1024, 1, key="pp", bind=Q)
        c1, c2 = st.columns(2)
        block = c1.selectbox("Paged blocks", [0, 16, 32, 64, 128], key="block", bind=Q,
                             help="0: a contiguous cache without block rounding")
        prefix = c2.number_input("Shared prefix", 0, 1 << 30, 0, key="prefix", bind=Q,
                                 help="prompt tokens common to every sequence, cached once")
        if model is not None and model.n_experts:
            ep = st.radio("Routed experts across the TP GPUs", EXPERT_SPLITS, horizontal=True, key="ep", bind=Q,
                          help="sharded: every expert split tp ways; whole: each GPU holds E / tp whole experts, "
                               "as vLLM's --enable-expert-parallel does") == EXPERT_SPLITS[1]
        st.header("Hardware")
        gpu_id = st.selectbox("GPU", list(gpus), index=list(gpus).index("nvidia-h100-sxm5"), key="gpu", bind=Q,
                              help="usable memory as the runtime sees it (data/gpus.csv)")
        unit = st.radio("Units", ["GiB", "GB"], horizontal=True, key="unit", bind=Q,
                        help="GiB = 2^30 bytes, GB = 10^9 bytes")
    if first_run:
        st.session_state["_link_checked"] = True
        bad = [k for k, raw in link.items() if str(st.session_state.get(k)) != raw]
        if bad:
            st.session_state["_link_notice"] = (
                "Some values in the link were not valid and were replaced by defaults: "
                + ", ".join(f"{k}={link[k]!r}" for k in bad))
    st.session_state["sel_model"] = model
    st.session_state["sel_gpu"] = gpus[gpu_id]
    st.session_state["sel_unit"] = unit
    try:
        if model_error:
            raise KvdashError(model_error)
        st.session_state["sel_scenario"] = Scenario(
            batch=int(batch), prompt_tokens=int(context), new_tokens=int(new),
            **weight_formats(model, wdtype, edtype), kv_dtype=kvdtype, tp=int(tp), pp=int(pp), block_size=int(block),
            shared_prefix_tokens=int(prefix), expert_parallel=bool(ep))
        st.session_state["sel_error"] = None
    except KvdashError as e:
        st.session_state["sel_scenario"] = None
        st.session_state["sel_error"] = str(e)


def selection():
    """(model or None, scenario or None, gpu, unit, error or None), as the sidebar set them this run.
    Shows the notice about an invalid link once, on the page the link opened."""
    s = st.session_state
    notice = s.pop("_link_notice", None)
    if notice:
        st.warning(notice)
    return s["sel_model"], s["sel_scenario"], s["sel_gpu"], s["sel_unit"], s["sel_error"]


def require():
    """(model, scenario, gpu, unit) for a page that needs a valid selection; otherwise it shows the
    problem in an error box and stops the page (the sidebar stays usable)."""
    model, scenario, gpu, unit, error = selection()
    if model is None or scenario is None:
        st.error(error or "choose a model in the sidebar")
        st.stop()
    return model, scenario, gpu, unit
