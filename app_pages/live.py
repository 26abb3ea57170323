"""Live run: a small KV-cached decoder runs on this machine's GPU (or CPU), measured next to
kvdash's predictions. torch is imported only here, and only once the page checks it is installed."""

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from kvdash.calibration import default_params, errors, fit, from_run, mode_of, predicted_tpot, predicted_ttft
from kvdash.errors import KvdashError
from kvdash.gpus import gpu_for_device_name
from kvdash.live.device import MAX_SECONDS, available_ram, check_cpu_run, cpu_row
from kvdash.live.runner import run_exclusive, torch_status
from kvdash.live.shapes import SHAPES, estimate_run_seconds, scaled_copy
from kvdash.live.store import RunStore
from kvdash.units import fmt_bytes
from ui.sidebar import selection
from ui.style import tidy

MEASUREMENTS = Path(__file__).resolve().parent.parent / "data" / "measurements"
# Okabe-Ito colours, one per component in every chart.
COLOURS = {"Weights": "#0072B2", "KV cache": "#E69F00", "Prefill activations": "#009E73",
           "with the cache": "#0072B2", "without a cache": "#D55E00"}


@st.cache_resource
def device_status() -> dict:
    return torch_status()


@st.cache_data
def reference_runs() -> dict[str, dict]:
    out = {}
    for path in sorted(MEASUREMENTS.glob("*/*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        out[f"{path.parent.name} / {path.stem}"] = r
    return out


def comparison_table(r: dict) -> pd.DataFrame:
    p, m, c = r["predicted"], r["measured"], r["checks"]
    prefill = (f"measured / predicted = {c['prefill_ratio']:.3f}" if c["prefill_ratio"]
               else "needs a GPU's allocator to measure")
    rows = [
        ("Weights (B)", f"{p['weights_bytes']:,}", f"{m['weights_bytes']:,}",
         "exact" if c["weights_exact"] else "MISMATCH"),
        ("KV cache (B)", f"{p['kv_cache_bytes']:,}", f"{m['kv_cache_bytes']:,}",
         "exact" if c["kv_cache_exact"] else "MISMATCH"),
        ("Prefill activation peak (B)", f"{p['prefill_activation_bytes']:,}",
         f"{m['prefill_activation_bytes']:,}" if m["prefill_activation_bytes"] is not None else "n/a", prefill),
        ("Prefill, time to first token (ms)", f"floor {p['prefill_floor_s'] * 1e3:,.3f}", f"{m['ttft_s'] * 1e3:,.3f}",
         f"{c['prefill_vs_floor']:.2f} x the compute floor"),
        ("Decode step, time per token (ms)", f"floor {p['decode_floor_s'] * 1e3:,.3f}", f"{m['tpot_s'] * 1e3:,.3f}",
         f"{c['decode_vs_floor']:.2f} x the bandwidth floor"),
    ]
    if r.get("catalog_gpu"):  # the speed model's prediction for this run's GPU and launch mode
        x, params = from_run(r), default_params(mode_of(r))
        for label, pred, meas in (("TTFT", predicted_ttft(x, params), m["ttft_s"]),
                                  ("TPOT", predicted_tpot(x, params), m["tpot_s"])):
            rows.append((f"{label}, speed model: {params.name} (ms)", f"{pred * 1e3:,.3f}", f"{meas * 1e3:,.3f}",
                         f"predicted / measured = {pred / meas:.2f}"))
    return pd.DataFrame(rows, columns=["quantity", "kvdash (formula)", "measured", "comparison"])


def show_result(r: dict) -> None:
    d, s, m, c = r["device"], r["shape"], r["measured"], r["checks"]
    st.caption(f"Measured on **{d['name']}** ({d['dtype']}), torch {d['torch']}, CUDA {d['cuda'] or 'none'}, "
               f"{r['created']} · {s['name']}: {s['params']:,} parameters, batch {s['batch']}, "
               f"prompt {s['prompt_tokens']:,}, {s['new_tokens']:,} new tokens"
               + (", CUDA graph" if s.get("graph") else "") + (", torch.compile" if s.get("compile") else ""))
    cols = st.columns(4)
    cols[0].metric("Time to first token", f"{m['ttft_s'] * 1e3:,.2f} ms")
    cols[1].metric("Time per output token", f"{m['tpot_s'] * 1e3:,.3f} ms")
    cols[2].metric("Throughput", f"{m['tokens_per_s']:,.0f} tokens/s")
    cols[3].metric(f"Cache speed-up at position {c['longest_position']:,}", f"{c['cached_speedup_at_longest']:.1f}x")
    st.dataframe(comparison_table(r), hide_index=True, width="stretch")

    mem = go.Figure()
    names = ["Weights", "KV cache", "Prefill activations"]
    pred = [r["predicted"]["weights_bytes"], r["predicted"]["kv_cache_bytes"],
            r["predicted"]["prefill_activation_bytes"]]
    meas = [m["weights_bytes"], m["kv_cache_bytes"], m["prefill_activation_bytes"]]
    for label, values, pattern in (("predicted", pred, ""), ("measured", meas, "/")):
        # exact bytes on hover; on the bar only MiB, inside it, so neighbouring labels cannot overlap
        mem.add_bar(name=label, x=names, y=[v / 2**20 if v is not None else None for v in values],
                    marker_color=[COLOURS[n] for n in names], marker_pattern_shape=pattern,
                    text=[f"{v / 2**20:,.1f}" if v is not None else "n/a" for v in values], textposition="inside",
                    hovertext=[f"{label}: {v:,} B" if v is not None else f"{label}: n/a" for v in values],
                    hoverinfo="text")
    mem.update_layout(barmode="group", yaxis_title="MiB (2^20 B)", showlegend=True, uniformtext=dict(
        minsize=11, mode="hide"))
    tidy(mem, "Memory: predicted vs measured", "plain: predicted; hatched: measured; exact bytes on hover")
    st.plotly_chart(mem, width="stretch")

    lat = go.Figure()
    cached = m["decode_cached_s"]
    nocache = m["decode_nocache_s"]
    lat.add_scatter(x=[p for p, _ in cached], y=[t * 1e3 for _, t in cached], mode="lines+markers",
                    name="with the cache", line_color=COLOURS["with the cache"])
    lat.add_scatter(x=[p for p, _ in nocache], y=[t * 1e3 for _, t in nocache], mode="lines+markers",
                    name="without a cache (recompute the prefix)", line_color=COLOURS["without a cache"],
                    line_dash="dash")
    lat.update_layout(xaxis_title="position (tokens)", yaxis_title="ms per token (measured)")
    tidy(lat, "Time per new token against position", "measured")
    st.plotly_chart(lat, width="stretch")


selected_model = selection()[0]
st.title("Live run: predictions meet a real device")
st.write("A compact Llama-style decoder with a static KV cache runs here with random weights, and what the "
         "device allocated and how long each step took are shown beside kvdash's predictions.")
status = device_status()
if not status["torch"]:
    st.warning("PyTorch is not installed, so nothing can run here. Install it with `make run LIVE=1` (or "
               "`pip install -r requirements-live.txt`). Reference runs from real GPUs are below.")
elif not status["cuda"]:
    st.info("No GPU is attached: runs use the CPU in fp32 with small shapes. Reference runs from real GPUs "
            "are below.")
else:
    st.success(f"GPU: {status['device']} · torch {status['version']}")

if status["torch"]:
    cuda = status["cuda"]
    limits = dict(batch=32, prompt=8192, new=256, layers=16) if cuda else dict(batch=4, prompt=512, new=48, layers=2)
    source = st.radio("Shape", ["Built-in small shape", "Scaled-down copy of the selected model"],
                      horizontal=True, key="live_source")
    try:
        if source == "Built-in small shape":
            names = [k for k in SHAPES if cuda or k.startswith("tiny")]
            spec = SHAPES[st.selectbox("Built-in shape", names, format_func=lambda k: SHAPES[k].name,
                                       key="live_shape")]
        else:
            if selected_model is None:
                raise KvdashError("choose a model in the sidebar first")
            layers = st.slider("Layers", 1, min(selected_model.n_layers, limits["layers"]), 1, key="live_layers")
            spec = scaled_copy(selected_model, layers)
        c1, c2, c3 = st.columns(3)
        batch = c1.slider("Batch", 1, limits["batch"], 1, key="live_batch")
        prompt = c2.slider("Prompt tokens", 1, limits["prompt"], min(128, limits["prompt"]), key="live_prompt")
        new = c3.slider("New tokens", 1, limits["new"], min(32, limits["new"]), key="live_new")
        graph = st.checkbox("Capture the decode step in a CUDA graph", value=cuda, disabled=not cuda,
                            key="live_graph")
        from kvdash.live.bench import LiveConfig

        cfg = LiveConfig(spec=spec, batch=batch, prompt_tokens=prompt, new_tokens=new, graph=graph and cuda)
        # keep a run under 30 s as the speed model sees it, on a GPU from its catalog row, on the CPU from
        # its measured roofs; on the CPU also under half the free memory
        device_row = gpu_for_device_name(status["device"]) if cuda else cpu_row()
        if device_row is not None:
            eta = estimate_run_seconds(spec, batch, prompt, new, device_row, dtype="bf16" if cuda else "fp32")
            if cuda:
                if eta > MAX_SECONDS:
                    raise KvdashError(f"this run would take about {eta:,.0f} s on {device_row.name}; make it "
                                      f"smaller (fewer layers, tokens or sequences) to stay under {MAX_SECONDS} s")
                need = None
            else:
                need = check_cpu_run(spec, batch, prompt, new, eta, available_ram())
            st.caption(f"Estimated run time on {device_row.name}: {eta:,.0f} s (speed model, eager overhead"
                       + (f"; the CPU's roofs measured here: {device_row.bandwidth_gbps:,.1f} GB/s, "
                          f"{device_row.fp32_tflops * 1e3:,.0f} GFLOP/s fp32" if not cuda else "") + ")"
                       + (f"; about {fmt_bytes(need, 'GiB')} of memory" if need else ""))
    except KvdashError as e:
        st.error(str(e))
        cfg = None

    if cfg is not None and st.button("Run", type="primary", key="live_run"):
        bar = st.progress(0.0, text="starting")
        waiting = st.empty()
        try:
            result = run_exclusive(cfg, progress=lambda f, msg: bar.progress(f, text=msg),
                                   on_wait=lambda: waiting.info("Waiting for the device: another run is in "
                                                                "progress."))
            RunStore().add(result)
            st.session_state["live_result"] = result
            bar.progress(1.0, text="done")
        except KvdashError as e:
            st.error(str(e))
        waiting.empty()
    if st.session_state.get("live_result"):
        show_result(st.session_state["live_result"])

    history = RunStore().all()
    if history:
        st.subheader("Past runs on this machine")
        st.dataframe(pd.DataFrame([{
            "id": h["id"], "when": h["created"], "device": h["device"]["name"], "shape": h["shape"]["name"],
            "batch": h["shape"]["batch"], "prompt": h["shape"]["prompt_tokens"], "new": h["shape"]["new_tokens"],
            "KV cache exact": h["checks"]["kv_cache_exact"], "weights exact": h["checks"]["weights_exact"],
            "prefill measured/predicted": h["checks"]["prefill_ratio"],
            "decode / floor": round(h["checks"]["decode_vs_floor"], 2),
        } for h in history]), hide_index=True, width="stretch", key="live_history")

refs = reference_runs()
st.subheader("Calibrate the speed model")
st.write("Fits the speed model's bandwidth efficiency and per-layer overhead (per launch mode: eager, CUDA "
         "graph, torch.compile) and its compute efficiency to every stored run on a catalogued GPU, and shows "
         "the prediction error before and after. The Speed page can then use the fitted values.")
if st.button("Fit to the stored runs", key="live_fit"):
    stored = list(refs.items()) + [(f"history #{h['id']}", h) for h in RunStore().all()]
    runs = [from_run(r, label) for label, r in stored if r.get("catalog_gpu")]
    if not runs:
        st.warning("No stored run was measured on a GPU in the catalog.")
    else:
        fitted = fit(runs)
        st.session_state["calibrated"] = fitted
        before, after = errors(runs), errors(runs, fitted)
        st.dataframe(pd.DataFrame([{
            "run": b["run"], "mode": b["mode"], "TPOT measured ms": round(b["tpot_measured_s"] * 1e3, 3),
            "error before": f"{b['tpot_error']:+.1%}", "error after": f"{a['tpot_error']:+.1%}",
            "TTFT error before": f"{b['ttft_error']:+.1%}", "TTFT error after": f"{a['ttft_error']:+.1%}",
        } for b, a in zip(before, after, strict=True)]), hide_index=True, width="stretch", key="live_fit_table")
        st.dataframe(pd.DataFrame([{"mode": k, "memory efficiency": round(v.memory_eff, 3),
                                    "compute efficiency": round(v.compute_eff, 3),
                                    "overhead per layer µs": round(v.layer_overhead_s * 1e6, 1)}
                                   for k, v in fitted.items()]), hide_index=True, width="stretch")

if refs:
    st.subheader("Reference runs from real GPUs (measured, committed in data/measurements/)")
    pick = st.selectbox("Reference run", list(refs), key="live_reference")
    show_result(refs[pick])
