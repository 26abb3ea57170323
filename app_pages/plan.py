"""Plan: the configurations that serve a request rate within TTFT and TPOT targets (kvdash.plan, aggregated
serving, the first step of issue #22), each from the same serving model as the Speed page, with the command that
starts the chosen one."""

import pandas as pd
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu, load_gpus
from kvdash.launch import launch
from kvdash.plan import default_gpus, plan_for
from kvdash.presets import load_presets
from kvdash.startup import default_share
from ui.links import PLAN_RATES, PLAN_TPOT_MS, PLAN_TTFT_MS
from ui.sidebar import require
from ui.style import LEGEND_BELOW, TITLE, figure, log_axis
from ui.text import plain

Q = "query-params"
model, scenario, gpu, unit = require()
st.title(f"Plan {plain(model.name)} for a request rate")
try:  # the plan searches its own parallelism, but a sidebar scenario that is not valid is said so, as elsewhere
    breakdown(model, scenario, gpu)
except KvdashError as e:
    st.error(f"The sidebar's scenario: {e}")
    st.stop()
st.caption("Every GPU × engine × tensor-parallel degree × KV format that serves the rate within both targets, "
           "fewest GPUs first, aggregated serving (each replica prefills and decodes). Each number is the Speed "
           "page's serving model at the requests in flight the rate implies (Little's law). Not searched yet: "
           "disaggregated pools, speculative decoding, prefix caching, prices.")
catalog = load_gpus()
c1, c2, c3 = st.columns(3)
rate = c1.select_slider("Requests per second (steady)", PLAN_RATES, value=10.0, key="plan_rate", bind=Q)
ttft_ms = c2.select_slider("TTFT target (ms)", PLAN_TTFT_MS, value=1000, key="plan_ttft", bind=Q)
tpot_ms = c3.select_slider("TPOT target (ms)", PLAN_TPOT_MS, value=50, key="plan_tpot", bind=Q)
isl, osl = scenario.prompt_tokens, scenario.new_tokens or 256
st.caption(f"Requests of {isl:,} prompt tokens (the sidebar's) and {osl:,} output tokens"
           + ("" if scenario.new_tokens else " (the sidebar says 0 generated tokens: 256 assumed)")
           + f"; weights {scenario.weights_dtype}.")
chosen = st.multiselect("GPUs", list(catalog), default=[g.id for g in default_gpus(catalog)], key="plan_gpus",
                        bind=Q, format_func=lambda i: catalog[i].name,
                        help="by default the GPUs whose kernels kvdash has measured")


try:
    with st.spinner(f"searching {len(chosen) * len(ENGINES) * 8:,} configurations (the first time only)"):
        options, left_out = plan_for(model, float(rate), isl, osl, ttft_ms / 1e3, tpot_ms / 1e3, tuple(chosen),
                                     scenario.weights_dtype)
except KvdashError as e:
    st.error(str(e))
    st.stop()
if not options:
    st.error(f"No configuration of the {len(left_out):,} searched serves {rate:g} requests/s within TTFT "
             f"{ttft_ms:,} ms and TPOT {tpot_ms:,} ms on at most 64 GPUs.")
    st.dataframe(pd.DataFrame([{"configuration": k, "why not": v} for k, v in left_out]), hide_index=True,
                 width="stretch", key="plan_left_out")
    st.stop()
rows = [{"GPUs": o.gpus, "GPU": catalog[o.gpu].name, "engine": o.engine, "tp": o.tp, "KV": o.kv_dtype,
         "replicas": o.replicas, "in flight per replica": o.concurrency, "TTFT ms": round(o.ttft_s * 1e3, 1),
         "TPOT ms": round(o.tpot_s * 1e3, 2), "tokens/s per GPU": round(rate * osl / o.gpus),
         "tokens/s per user": round(1 / o.tpot_s, 1)} for o in options]
best = options[0]
cols = st.columns(4)
cols[0].metric("Fewest GPUs", f"{best.gpus:,} GPUs")
cols[1].metric("on", f"{catalog[best.gpu].name}")
cols[2].metric("TTFT at the rate", f"{best.ttft_s * 1e3:,.0f} ms")
cols[3].metric("TPOT at the rate", f"{best.tpot_s * 1e3:,.2f} ms")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="plan_table")

# tokens/s per GPU against tokens/s per user, one point per option; the TPOT target is a speed per user floor
fig = figure(dict(data=[dict(
    type="scatter", mode="markers", name=engine, x=[r["tokens/s per user"] for r in rows if r["engine"] == engine],
    y=[r["tokens/s per GPU"] for r in rows if r["engine"] == engine],
    text=[f"{r['GPU']}, tp {r['tp']}, KV {r['KV']}, {r['GPUs']} GPUs" for r in rows if r["engine"] == engine],
    hovertemplate="%{text}: %{x:,.1f} tokens/s per user, %{y:,.0f} per GPU<extra>%{fullData.name}</extra>")
    for engine in ENGINES if any(r["engine"] == engine for r in rows)] + [dict(
    type="scatter", mode="lines", name=f"TPOT target: {1e3 / tpot_ms:,.0f} tokens/s per user",
    x=[1e3 / tpot_ms] * 2, y=[1, max(r["tokens/s per GPU"] for r in rows) * 1.5],
    line=dict(dash="dash", color="#999999"), hoverinfo="skip")],
    layout=dict(title=TITLE | dict(text=f"The options at {rate:g} requests/s<br><sup>each point a configuration "
                                        "meeting both targets</sup>"), margin=dict(t=80),
                xaxis=log_axis("tokens/s per user (1 / TPOT)"), yaxis=log_axis("tokens/s per GPU"),
                legend=LEGEND_BELOW)))
st.plotly_chart(fig, width="stretch", key="plan_chart")

st.subheader("The command for the option with the fewest GPUs")
s = best.scenario(isl, osl, scenario.weights_dtype)
tokens, seqs = engine_facts(best.engine).step_limits(get_gpu(best.gpu))  # 0 sequences: as many as the pool holds
hf_id = next((p.hf_id for p in load_presets().values() if p.model is model), None) or "<your-model>"
cmd = launch(model, s, best.engine, hf_id, utilization=default_share(best.engine, get_gpu(best.gpu), best.tp),
             max_model_len=isl + osl, block_size=16, max_num_batched_tokens=tokens, max_num_seqs=seqs)
st.code(cmd.text(), language="bash")
st.caption(f"One replica; run {best.replicas:,} of them behind a load balancer. The engine's default memory share "
           "and step limits on this GPU.")
for note in cmd.notes:
    st.warning(note[0].upper() + note[1:] + ".", icon="⚠️")
