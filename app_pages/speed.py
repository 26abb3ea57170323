"""Speed: a serving engine at a concurrency (kvdash.serving), then the static batch the Live run measures
(kvdash.speed). Every number is predicted by a formula shown beside it; a user's own measured runs are drawn
where the scenario matches them, and can calibrate the engine's overheads for the session."""

from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.engines import ENGINES
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu, load_gpus
from kvdash.presets import load_presets
from kvdash.serving import engine_profile, serving
from kvdash.serving_fit import Observed, fit_profile, summary
from kvdash.serving_fit import errors as fit_errors
from kvdash.serving_runs import matching_runs, parse_runs
from kvdash.speed import RUNTIMES, generation_seconds, speed
from kvdash.step import matrix_rate
from ui.dimensions import whole_number
from ui.links import CONCURRENCIES
from ui.serving_view import terms_table
from ui.sidebar import require
from ui.style import LEGEND_BELOW, TITLE, figure, log_axis, seconds_axis, tidy
from ui.text import plain

model, scenario, gpu, unit = require()
st.title(f"{plain(model.name)}: how fast does it serve?")
st.caption("Predicted by the serving model (its terms below): every kernel of an engine step at the GPU's measured "
           "ceilings where kernel measurements exist, plus the engine's host overheads, fitted to measured H100 runs "
           "(BENCHMARKS.md reports its error there and on other GPUs). Load your own runs below to draw them beside "
           "the prediction and to calibrate the overheads to your cluster.")

if scenario.new_tokens:
    new_tokens = scenario.new_tokens
else:
    try:
        new_tokens = whole_number("New tokens per request (the sidebar says 0)", "speed_new", 256)
    except KvdashError as e:
        st.error(str(e))
        st.stop()
s = scenario.with_(new_tokens=int(new_tokens))
c1, c2 = st.columns(2)
if s.engine:  # the sidebar's runtime is the engine
    engine = s.engine
    c1.caption(f"Engine: **{engine}** (the sidebar's runtime)")
else:
    engine = c1.radio("Engine", list(ENGINES), horizontal=True, key="serving_engine", bind="query-params",
                      help="the sidebar's runtime is not a serving engine; choose one here")
concurrency = s.batch  # the requests in flight are the sidebar's batch: one scenario on every page
c2.caption(f"Requests in flight: **{concurrency:,}**, the sidebar's batch; the charts sweep 1 to "
           f"{CONCURRENCIES[-1]:,}.")
calibrated = st.session_state.setdefault("serving_calibrated", {})
profile = calibrated.get(engine) or engine_profile(engine)
isl, osl = s.prompt_tokens, int(new_tokens)
served = s.with_(runtime=engine) if s.engine else s.with_(runtime=engine, max_num_batched_tokens=0, max_num_seqs=0)


def serve(g, c):
    return serving(model, served.with_(batch=1), g, int(c), isl, osl, profile)


try:
    srv = serve(gpu, concurrency)
    sweep = [(c, serve(gpu, c)) for c in sorted({*CONCURRENCIES, concurrency})]
except KvdashError as e:
    st.error(str(e))
    st.stop()
cols = st.columns(4)
cols[0].metric(f"TTFT at {concurrency} in flight", f"{srv.ttft_s * 1e3:,.1f} ms")
cols[1].metric(f"TPOT at {concurrency} in flight", f"{srv.tpot_s * 1e3:,.2f} ms", srv.step.bound + "-bound",
               delta_color="off", delta_arrow="off")
cols[2].metric("Tokens/s per GPU", f"{srv.tokens_per_s_per_gpu:,.0f}")
cols[3].metric("Tokens/s per user", f"{srv.tokens_per_s_per_user:,.1f}")
for w in srv.warnings(gpu):
    st.warning(w, icon="⚠️")
if not srv.fits:
    st.warning(f"{srv.limited_by[0].upper()}{srv.limited_by[1:]} lets {srv.running:,} of the {concurrency:,} "
               f"requests run at once (KV pool {srv.pool_bytes / 2**30:,.2f} GiB per GPU, "
               f"{srv.request_bytes / 2**20:,.1f} MiB per request; max_num_seqs {srv.max_seqs:,}); the others "
               f"queue for a slot, {srv.wait_s:,.2f} s on average, which the TTFT includes.")
st.dataframe(terms_table(srv), hide_index=True, width="stretch", key="serving_terms")
rate = matrix_rate(gpu, s.weights_dtype) / 1e12
st.caption(f"{srv.cycle_text()[0].upper()}{srv.cycle_text()[1:]}. Peak: "
           f"{rate:,.1f} TFLOP/s for {s.weights_dtype} matrices on {gpu.name}, {gpu.bandwidth_gbps:,.0f} GB/s"
           + (f"; all-reduces over {gpu.link_gbps:,.0f} GB/s one way between the {s.tp} GPUs" if s.tp > 1 else "")
           + f". Engine profile: {profile.source}.")

hf_id = next((p.hf_id for p in load_presets().values() if p.model is model), "") or model.name
uploads = st.file_uploader("Your measured runs: `vllm bench serve --save-result` JSON files, or a CSV (concurrency, "
                           "isl, osl, ttft_ms, tpot_ms; optionally engine, gpu, tp, model)", type=["json", "jsonl",
                           "csv"], accept_multiple_files=True, key="speed_runs", max_upload_size=8)
loaded = []
for f in uploads or []:
    try:
        loaded += parse_runs(f.getvalue(), f.name)
    except KvdashError as e:
        st.error(str(e))
runs = matching_runs(loaded, engine, s.tp, isl, osl, gpu.id, model=hf_id)
if loaded and not runs:
    st.caption(f"None of your {len(loaded):,} runs matches this scenario ({engine}, tp {s.tp}, {isl:,} + {osl:,} "
               "tokens within 5 %, the sidebar's GPU and model where the file names them).")
MS = "%{x:,} in flight: %{customdata:,.2f} ms<extra>%{fullData.name}</extra>"  # hover in ms, the axis in s


def timed(name: str, xs: list, seconds: list, **kw) -> dict:
    return dict(type="scatter", name=name, x=xs, y=seconds, customdata=[t * 1e3 for t in seconds],
                hovertemplate=MS, **kw)


times = [t for r in [r for _, r in sweep] + runs for t in (r.tpot_s, r.ttft_s)]
lat = figure(dict(data=[
    timed("TPOT, predicted", [c for c, _ in sweep], [r.tpot_s for _, r in sweep], mode="lines+markers",
          line=dict(color="#0072B2")),
    timed("TTFT, predicted", [c for c, _ in sweep], [r.ttft_s for _, r in sweep], mode="lines+markers",
          line=dict(color="#D55E00", dash="dash")),
    *([timed(f"TPOT, measured ({engine} {runs[0].version or ''})", [r.concurrency for r in runs],
             [r.tpot_s for r in runs], mode="markers", marker=dict(color="#0072B2", symbol="diamond-open", size=11)),
       timed("TTFT, measured", [r.concurrency for r in runs], [r.ttft_s for r in runs], mode="markers",
             marker=dict(color="#D55E00", symbol="square-open", size=11))] if runs else []),
    timed(f"the sidebar's batch ({concurrency:,} in flight)", [concurrency, concurrency], [srv.tpot_s, srv.ttft_s],
          mode="markers", marker=dict(color="#000000", symbol="star", size=14)),
], layout=dict(title=TITLE | dict(text=f"Latency against concurrency<br><sup>{engine}, {gpu.name}</sup>"),
               margin=dict(t=80), xaxis=log_axis("requests in flight"),
               yaxis=seconds_axis("time (TPOT per output token, TTFT to the first)", min(times), max(times)),
               legend=LEGEND_BELOW)))
st.plotly_chart(lat, width="stretch", key="serving_latency")
if runs:
    observed = [Observed(model, served.with_(batch=1), gpu, r.concurrency, r.isl, r.osl, r.ttft_s, r.tpot_s)
                for r in runs]
    err = {w: summary(fit_errors(observed, profile, w)) for w in ("tpot", "ttft")}
    st.caption(f"{len(runs)} of your runs match: predicted / measured − 1, median / 90th percentile: TPOT "
               f"{err['tpot']}, TTFT {err['ttft']} ({profile.source}).")
    if st.button(f"Calibrate {engine}'s overheads to these runs", key="speed_calibrate",
                 help="fits the engine's host time per step, per layer and per running sequence to their TPOT, then "
                      "its queueing terms to their TTFT (kvdash.serving_fit); the GPU's kernels stay as measured. "
                      "For this session only."):
        with st.spinner("fitting"):
            fitted = fit_profile(observed, engine)
        calibrated[engine] = replace(fitted, source=f"calibrated to {len(runs)} of your runs on {gpu.name}")
        st.rerun()
if engine in calibrated and st.button(f"Back to {engine}'s fitted profile", key="speed_uncalibrate"):
    del calibrated[engine]
    st.rerun()

# The curve serving teams pick a point on: throughput per GPU against speed per user, for a few GPUs.
catalog = load_gpus()
default = [g for g in dict.fromkeys([gpu.id, "nvidia-h100-sxm5", "nvidia-h200-sxm", "nvidia-b200-hgx"])][:3]
# ids, as the sidebar's GPU: a bound multiselect writes its options' labels into the link
chosen = st.multiselect("GPUs on the curve", list(catalog), default=default, key="serving_gpus",
                        bind="query-params", max_selections=6)
curves = []
for i, gid in enumerate(chosen):
    g = get_gpu(gid)
    try:
        pts = sweep if gid == gpu.id else [(c, serve(g, c)) for c in CONCURRENCIES]
    except KvdashError as e:
        st.caption(f"{g.name}: {e}")
        continue
    colour = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000"][i % 6]
    held = [(c, r) for c, r in pts if r.fits]
    over = [(c, r) for c, r in pts if not r.fits]
    curves.append(dict(type="scatter", mode="lines+markers", name=f"{g.name}", x=[r.tokens_per_s_per_user
                       for _, r in held], y=[r.tokens_per_s_per_gpu for _, r in held], marker=dict(color=colour),
                       text=[f"C={c}" for c, _ in held], hovertemplate="%{text}: %{x:,.1f} tokens/s per user, "
                       "%{y:,.0f} per GPU<extra></extra>"))
    if over:
        curves.append(dict(type="scatter", mode="markers", name=f"{g.name}: more than its KV pool holds",
                           x=[r.tokens_per_s_per_user for _, r in over], y=[r.tokens_per_s_per_gpu for _, r in over],
                           marker=dict(color=colour, symbol="x-open", size=10), text=[f"C={c}" for c, _ in over],
                           hovertemplate="%{text}: the rest queue<extra></extra>"))
curves.append(dict(type="scatter", mode="markers", name=f"the sidebar's batch ({concurrency:,} in flight, {gpu.name})",
                   x=[srv.tokens_per_s_per_user], y=[srv.tokens_per_s_per_gpu],
                   marker=dict(color="#000000", symbol="star", size=14),
                   hovertemplate="%{x:,.1f} tokens/s per user, %{y:,.0f} per GPU<extra></extra>"))
if runs and gpu.id in chosen:
    curves.append(dict(type="scatter", mode="markers", name="your runs, measured (tokens/s from TPOT)",
                       x=[1 / r.tpot_s for r in runs], y=[r.concurrency / r.tpot_s / s.tp for r in runs],
                       marker=dict(color="#000000", symbol="diamond-open", size=11)))
curve = figure(dict(data=curves, layout=dict(
    title=TITLE | dict(text=f"Throughput per GPU against speed per user<br><sup>{CONCURRENCIES[0]} to "
                            f"{CONCURRENCIES[-1]} requests in flight, {engine}, predicted</sup>"), margin=dict(t=80),
    xaxis=dict(title=dict(text="tokens/s per user (1 / TPOT)"), rangemode="tozero"),
    yaxis=dict(title=dict(text="tokens/s per GPU"), rangemode="tozero"), legend=LEGEND_BELOW)))
st.plotly_chart(curve, width="stretch", key="serving_curve")

# The static batch: B sequences prefilled together, then decoded together (what the Live run measures).
st.header("A static batch (the Live run's view)")
st.caption("B sequences prefilled at once, then decoded together: a roofline model (formulas below), not "
           "measured. The Live run page compares it with real runs and calibrates it.")
choices = {engine: profile} | dict(RUNTIMES) | {f"fitted: {k}": v
                                                for k, v in st.session_state.get("calibrated", {}).items()}
labels = {"torch-graphs": "kvdash's decoder, CUDA graphs", "torch-eager": "kvdash's decoder, eager PyTorch"}
runtime = st.radio("Step costs", list(choices), format_func=lambda k: labels.get(k, k), horizontal=True,
                   key="speed_runtime", help=f"whose efficiencies and overheads time the steps: {engine}'s fitted "
                                             "profile (the serving section's, so both time a decode step alike), or "
                                             "the Live run's decoder (first-principles defaults; fitted ones appear "
                                             "after 'Fit to the stored runs' on Live run)")
params = choices[runtime]
static = served if runtime == engine else s.with_(runtime="static", max_num_batched_tokens=0, max_num_seqs=0)
try:
    report = speed(model, static, gpu, params)
except KvdashError as e:
    st.error(str(e))
    st.stop()

cols = st.columns(4)
cols[0].metric("Time to first token", f"{report.ttft_s * 1e3:,.1f} ms", report.prefill.bound + "-bound",
               delta_color="off", delta_arrow="off")
cols[1].metric("Time per output token", f"{report.tpot_s * 1e3:,.2f} ms", report.decode.bound + "-bound",
               delta_color="off", delta_arrow="off")
cols[2].metric("Throughput (batch)", f"{report.tokens_per_s:,.0f} tokens/s", f"{1 / report.tpot_s:,.0f} per sequence",
               delta_color="off", delta_arrow="off")
cols[3].metric("Request end to end", f"{report.e2e_s:,.2f} s")
knee = report.compute_bound_batch
st.write(f"Decode turns compute-bound at batch **{knee:,}** on {gpu.name}." if knee else
         f"Decode stays memory-bound at any batch at {s.context:,} tokens: each sequence's cache read grows "
         "with the batch as fast as the work does.")
st.caption(
    f"time(step) = {params.formula(gpu, static)} (kvdash.step, the serving section's step model; "
    f"costs: {params.source}). Decode step of {s.batch:,} at {s.prompt_tokens + (s.new_tokens - 1) // 2 + 1:,} "
    f"tokens (mid-generation): {report.decode.flops:,.0f} FLOP, {report.decode.bytes:,.0f} B. Prefill: "
    f"{report.prefill.flops:,.0f} FLOP, {report.prefill.bytes:,.0f} B.")

# Throughput and latency against batch: the roofline knee.
rows = []
for b in [2**i for i in range(0, 13)]:
    r = speed(model, static.with_(batch=b), gpu, params, knee=False)
    fits = breakdown(model, s.with_(batch=b), gpu).fits
    rows.append({"batch": b, "tokens/s": r.tokens_per_s, "ms per token": r.tpot_s * 1e3, "fits": fits})
df = pd.DataFrame(rows)
fig = go.Figure()
fits_df, no_fit = df[df["fits"]], df[~df["fits"]]
fig.add_scatter(x=fits_df["batch"], y=fits_df["tokens/s"], name="tokens/s (batch), fits", mode="lines+markers",
                line_color="#0072B2")
fig.add_scatter(x=fits_df["batch"], y=fits_df["ms per token"], name="ms per token, fits", mode="lines+markers",
                yaxis="y2", line_color="#D55E00", line_dash="dash")
if len(no_fit):  # drawn as open markers and named, never by colour alone
    fig.add_scatter(x=no_fit["batch"], y=no_fit["tokens/s"], name="tokens/s, does NOT fit in memory",
                    mode="markers", marker=dict(symbol="circle-open", color="#0072B2", size=9))
    fig.add_scatter(x=no_fit["batch"], y=no_fit["ms per token"], name="ms per token, does NOT fit in memory",
                    mode="markers", yaxis="y2", marker=dict(symbol="x-open", color="#D55E00", size=9))
if knee:  # a vertical line as a trace: shapes on log axes are easy to misplace
    fig.add_scatter(x=[knee, knee], y=[0, df["tokens/s"].max()], mode="lines",
                    name=f"compute-bound from batch {knee:,}", line=dict(color="#000000", dash="dot"))
fig.update_layout(xaxis=dict(type="log", title="batch (sequences)"),
                  yaxis=dict(title="tokens/s", rangemode="tozero"),
                  yaxis2=dict(title="ms per token", overlaying="y", side="right", rangemode="tozero"))
tidy(fig, "Decode throughput and latency against batch", f"{gpu.name}, predicted")
st.plotly_chart(fig, width="stretch")


@st.cache_data(max_entries=64)
def gpu_table(model_key, _model, _s, _params) -> pd.DataFrame:
    out = []
    for g in load_gpus().values():
        if not g.bf16_tflops or not breakdown(_model, _s, g).fits:
            continue
        r = speed(_model, _s, g, _params, knee=False)
        out.append({"GPU": g.name, "tokens/s": round(r.tokens_per_s), "TTFT ms": round(r.ttft_s * 1e3, 1),
                    "tokens/s per GB": round(r.tokens_per_s / g.memory_gb, 2)})
    return pd.DataFrame(out).sort_values("tokens/s", ascending=False) if out else pd.DataFrame()


gpus_df = gpu_table((model, static, params), model, static, params)
st.subheader("GPUs on which this scenario fits")
if gpus_df.empty:
    st.info("It fits none of the catalog's GPUs at this tensor-parallel degree.")
else:
    bar = go.Figure(go.Bar(x=gpus_df["tokens/s"], y=gpus_df["GPU"], orientation="h", marker_color="#009E73",
                           text=gpus_df["tokens/s per GB"].map(lambda v: f"{v:,.2f} tokens/s per GB")))
    bar.update_layout(height=28 * len(gpus_df) + 120, yaxis=dict(autorange="reversed"), xaxis_title="tokens/s")
    tidy(bar, "Predicted decode tokens/s", "label: tokens/s per GB of memory")
    st.plotly_chart(bar, width="stretch")
    st.dataframe(gpus_df, hide_index=True, width="stretch", key="speed_gpus")

# Generation time with and without a KV cache.
lengths = [64, 128, 256, 512, 1024, 2048, 4096, 8192]
gen = pd.DataFrame([{
    "new tokens": n,
    # 12 evenly spaced steps per curve: step time is smooth in the context, so the sum barely moves
    "with the cache": generation_seconds(model, static.with_(new_tokens=n), gpu, params, cache=True, samples=12),
    "without a cache": generation_seconds(model, static.with_(new_tokens=n), gpu, params, cache=False, samples=12),
} for n in lengths])
g2 = go.Figure()
g2.add_scatter(x=gen["new tokens"], y=gen["with the cache"], name="with the cache", line_color="#0072B2")
g2.add_scatter(x=gen["new tokens"], y=gen["without a cache"], name="without a cache (recompute the prefix)",
               line_color="#D55E00", line_dash="dash")
g2.update_layout(xaxis=dict(type="log", title="new tokens"), yaxis=dict(type="log", title="seconds"))
tidy(g2, "Time to generate, with and without a cache", f"after a {s.prompt_tokens:,}-token prompt, predicted")
st.plotly_chart(g2, width="stretch")
