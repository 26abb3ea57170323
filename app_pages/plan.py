"""Plan: the configurations that serve a request rate within TTFT and TPOT targets (kvdash.plan: aggregated
replicas and disaggregated prefill and decode pools, issue #22), each from the same serving model as the Speed
page, ranked by cost or GPUs, with the commands that start the first and its memory and step terms."""

import pandas as pd
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.disagg import disaggregated
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu, load_gpus
from kvdash.launch import launch, pool_launch, router_command
from kvdash.plan import MODES, default_gpus, pareto_front, plan_for
from kvdash.presets import load_presets
from kvdash.prices import parse_overrides, reference_price
from kvdash.serving import pool_startup, serving
from kvdash.startup import default_share
from kvdash.traffic import parse_lengths
from kvdash.units import fmt_bytes
from ui.links import (
    PLAN_BURSTS,
    PLAN_LINKS,
    PLAN_MODES,
    PLAN_RANKS,
    PLAN_RATES,
    PLAN_TPOT_MS,
    PLAN_TRAFFIC,
    PLAN_TTFT_MS,
    PLAN_USERS,
    WEIGHT_CHOICES,
)
from ui.serving_view import terms_table
from ui.sidebar import require
from ui.style import LEGEND_BELOW, TITLE, figure, log_axis
from ui.text import plain

Q = "query-params"
model, scenario, gpu, unit = require()
st.title(f"Plan {plain(model.name)} for its traffic")
try:  # the plan searches its own parallelism, but a sidebar scenario that is not valid is said so, as elsewhere
    breakdown(model, scenario, gpu)
except KvdashError as e:
    st.error(f"The sidebar's scenario: {e}")
    st.stop()
st.caption("Every GPU × engine × tensor-parallel degree (and expert parallelism for a mixture of experts) × weight "
           "and KV format that serves the traffic within both targets, ranked as chosen below: aggregated replicas "
           "(each prefills and decodes) and disaggregated pools "
           "(prefill workers hand each prompt's cache to decode workers over a link). Each number is the Speed page's "
           "serving model at the requests in flight the rate implies (Little's law), speculating as the sidebar says; "
           "a prefill worker queues its prompts as an M/D/1 queue (kvdash.disagg).")
catalog = load_gpus()
c1, c2, c3 = st.columns(3)
traffic = st.radio("Traffic", PLAN_TRAFFIC, horizontal=True, key="plan_traffic", bind=Q,
                   help="a steady rate of requests (Poisson arrivals), or a fixed concurrency: users who each send "
                        "their next request when the last one ends (planned as aggregated replicas)")
users = 0
if traffic == PLAN_TRAFFIC[0]:
    rate = c1.select_slider("Requests per second (steady)", PLAN_RATES, value=10.0, key="plan_rate", bind=Q)
else:
    users, rate = c1.select_slider("Users (requests always in flight)", PLAN_USERS, value=64, key="plan_users",
                                   bind=Q), 0.0
ttft_ms = c2.select_slider("TTFT target (ms)", PLAN_TTFT_MS, value=1000, key="plan_ttft", bind=Q)
tpot_ms = c3.select_slider("TPOT target (ms)", PLAN_TPOT_MS, value=50, key="plan_tpot", bind=Q)
load = f"{rate:g} requests/s" if not users else f"{users:,} users in a closed loop"
c1, c2, c3 = st.columns(3)
typed_isl = c1.text_input("Prompt lengths", key="plan_isl", bind=Q,
                          placeholder=f"{scenario.prompt_tokens} (the sidebar's)",
                          help="tokens: 1024, a uniform range 512-2048, or values with shares 512:0.7,4096:0.3; "
                               "planned at the mean, and the longest must fit")
typed_osl = c2.text_input("Output lengths", key="plan_osl", bind=Q,
                          placeholder=f"{scenario.new_tokens or 256} (the sidebar's)", help="as the prompt lengths")
burst = c3.select_slider("Burst (x the rate)", PLAN_BURSTS, value=1.0, key="plan_burst", bind=Q,
                         help="the pools are sized for this many times the rate (a peak to absorb within the targets); "
                              "the cost stays per the rate's tokens")
try:
    isl_d = parse_lengths(typed_isl or str(scenario.prompt_tokens), "prompt lengths")
    osl_d = parse_lengths(typed_osl or str(scenario.new_tokens or 256), "output lengths")
except KvdashError as e:
    st.error(str(e))
    st.stop()
isl, osl = isl_d.planned, osl_d.planned
varies = len(isl_d.values) > 1 or len(osl_d.values) > 1
longest = (isl_d.longest, osl_d.longest) if varies else (0, 0)
prefix = min(scenario.shared_prefix_tokens, isl)
if prefix < scenario.shared_prefix_tokens:
    st.warning(f"The sidebar's shared prefix ({scenario.shared_prefix_tokens:,} tokens) is longer than the planned "
               f"prompt ({isl:,}): planned with every prompt token in the prefix cache.", icon="⚠️")
asked = None if st.session_state.get("wdtype", WEIGHT_CHOICES[0]) == WEIGHT_CHOICES[0] else scenario.weights_dtype
st.caption((f"Prompts of {isl_d.text()} tokens and outputs of {osl_d.text()}, planned at the means ({isl:,} + {osl:,}; "
            f"a prompt's attention grows with its square, which the mean does not show), the longest "
            f"({isl_d.longest:,} + {osl_d.longest:,}) fitting every pool" if varies else
            f"Requests of {isl:,} prompt tokens and {osl:,} output tokens")
           + ("" if scenario.new_tokens or typed_osl else " (the sidebar says 0 generated tokens: 256 assumed)")
           + (f"; pools sized for {burst:g} × the rate" if burst != 1 else "")
           + (f"; weights {scenario.weights_dtype} (the sidebar's); " if asked else
              f"; weights as the checkpoint stores them ({scenario.weights_dtype}) and the lighter formats each GPU's "
              "tensor cores run (fp8; NVFP4 on Blackwell), which means quantizing the checkpoint; ")
           + (f"the first {prefix:,} tokens of each prompt ({prefix / isl:.0%}) in the prefix cache (the sidebar's "
              "shared prefix): held once, not prefilled." if prefix else
              "no prefix-cache hits (the sidebar's shared prefix sets them)."))
# ids, as the sidebar's GPU: a bound multiselect writes its options' labels into the link
chosen = st.multiselect("GPUs", list(catalog), default=[g.id for g in default_gpus(catalog)], key="plan_gpus",
                        bind=Q, help="by default the GPUs whose kernels kvdash has measured")
c1, c2, c3 = st.columns([1, 1, 1])
mode = c1.radio("Serve", PLAN_MODES, key="plan_mode", bind=Q, disabled=bool(users),
                help="a fixed concurrency is planned as aggregated replicas" if users else None)
link = c2.select_slider("Cache link between pools (GB/s a GPU, one way)", PLAN_LINKS, value=50.0, key="plan_link",
                        bind=Q, disabled=mode == PLAN_MODES[1],
                        help="50: one 400 Gb/s network port per GPU, as HGX/DGX H100, H200 and B200 pair them (an "
                             "assumption); pools inside one NVLink domain move the cache faster")
rank = c3.radio("Rank by", PLAN_RANKS, key="plan_rank", bind=Q)
typed = st.text_input("Your prices per GPU-hour (GPU=USD, comma-separated)", key="plan_prices", bind=Q,
                      placeholder="nvidia-h100-sxm5=2.5, nvidia-b200-hgx=5",
                      help="over kvdash's reference: the lowest dated on-demand price of the providers it lists")
try:
    prices = parse_overrides([p for p in typed.split(",") if p.strip()])
except KvdashError as e:
    st.error(str(e))
    st.stop()
listed = [(g, reference_price(g)) for g in chosen]
st.caption(plain("Prices per GPU-hour: " + "; ".join(
    f"{catalog[g].name} ${prices[g]:,.2f} (yours)" if g in prices else
    f"{catalog[g].name} {p.label}" if p else f"{catalog[g].name}: none listed (type yours)" for g, p in listed)
    + ". Cost = GPUs × price over the tokens the rate brings in an hour: the GPUs' on-demand bill only (no "
    "storage, network or idle capacity); data/gpu_prices.csv has each price's source.", 4000))


try:
    with st.spinner("searching the configurations (the first time only)"):
        options, left_out = plan_for(model, float(rate), isl, osl, ttft_ms / 1e3, tpot_ms / 1e3, tuple(chosen),
                                     asked, prefix, tuple(sorted(prices.items())),
                                     "gpus" if rank == PLAN_RANKS[1] else "cost", scenario.spec_tokens,
                                     scenario.spec_accepted, MODES if mode == PLAN_MODES[0] else (mode,), float(link),
                                     scenario.spec_method, scenario.spec_draft_vocab, scenario.spec_draft,
                                     float(burst), longest, users)
except KvdashError as e:
    st.error(str(e))
    st.stop()
if not options:
    st.error(f"No configuration of the {len(left_out):,} searched serves {load} within TTFT "
             f"{ttft_ms:,} ms and TPOT {tpot_ms:,} ms on at most 64 GPUs.")
    st.dataframe(pd.DataFrame([{"configuration": k, "why not": v} for k, v in left_out]), hide_index=True,
                 width="stretch", key="plan_left_out")
    st.stop()
rows = [{"GPUs": o.gpus, "GPU": catalog[o.gpu].name, "engine": o.engine, "pools (workers × tp)": o.layout,
         "weights": o.weights_dtype + (f" (experts {o.experts_dtype})" if o.experts_dtype else ""), "KV": o.kv_dtype,
         "in flight per replica or decode worker": o.concurrency, "TTFT ms": round(o.ttft_s * 1e3, 1),
         "TPOT ms": round(o.tpot_s * 1e3, 2), "tokens/s per GPU": round((o.served_rate or rate) * osl / o.gpus),
         "tokens/s per user": round(1 / o.tpot_s, 1),
         "$ per GPU-hour": None if o.usd_per_gpu_hour is None else round(o.usd_per_gpu_hour, 3),
         "$ per M output tokens": None if o.usd_per_m_output is None else round(o.usd_per_m_output, 4),
         "$ per M tokens (in + out)": None if o.usd_per_m_tokens is None else round(o.usd_per_m_tokens, 4)}
        for o in options]
best = options[0]
cols = st.columns(5)
cols[0].metric("First option", f"{best.gpus:,} GPUs", f"{catalog[best.gpu].name}", delta_color="off",
               delta_arrow="off")
cols[1].metric("TTFT at the rate", f"{best.ttft_s * 1e3:,.0f} ms")
cols[2].metric("TPOT at the rate", f"{best.tpot_s * 1e3:,.2f} ms")
priced = best.usd_per_gpu_hour is not None
cols[3].metric("Cost per M output tokens", f"${best.usd_per_m_output:,.3f}" if priced else "unknown")
cols[4].metric("Cost per hour", f"${best.gpus * best.usd_per_gpu_hour:,.2f}" if priced else "unknown")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="plan_table")

sized = f" (pools for {burst:g}×)" if burst != 1 else ""
# tokens/s per GPU against tokens/s per user, one point per option; the TPOT target is a speed per user floor
front = pareto_front(options)
fig = figure(dict(data=[dict(
    type="scatter", mode="markers", name=engine, x=[r["tokens/s per user"] for r in rows if r["engine"] == engine],
    y=[r["tokens/s per GPU"] for r in rows if r["engine"] == engine],
    text=[f"{r['GPU']}, {r['pools (workers × tp)']}, weights {r['weights']}, KV {r['KV']}, {r['GPUs']} GPUs"
          for r in rows if r["engine"] == engine],
    marker=dict(symbol=["diamond" if r["pools (workers × tp)"].startswith("prefill") else "circle" for r in rows
                        if r["engine"] == engine]),
    hovertemplate="%{text}: %{x:,.1f} tokens/s per user, %{y:,.0f} per GPU<extra>%{fullData.name}</extra>")
    for engine in ENGINES if any(r["engine"] == engine for r in rows)] + [dict(
    type="scatter", mode="lines", name=f"TPOT target: {1e3 / tpot_ms:,.0f} tokens/s per user",
    x=[1e3 / tpot_ms] * 2, y=[1, max(r["tokens/s per GPU"] for r in rows) * 1.5],
    line=dict(dash="dash", color="#999999"), hoverinfo="skip"), dict(
    type="scatter", mode="lines", name="Pareto front: no option has fewer GPUs and a lower TPOT",
    x=[1 / o.tpot_s for o in front], y=[(o.served_rate or rate) * osl / o.gpus for o in front],
    line=dict(color="#000000"),
    line_shape="hv", hoverinfo="skip")],
    layout=dict(title=TITLE | dict(text=f"The options at {load}{sized}<br><sup>each point a configuration "
                                        "meeting both targets (◆ disaggregated)</sup>"), margin=dict(t=80),
                xaxis=log_axis("tokens/s per user (1 / TPOT)"), yaxis=log_axis("tokens/s per GPU"),
                legend=LEGEND_BELOW)))
st.plotly_chart(fig, width="stretch", key="plan_chart")

st.subheader(f"The command{'s' if best.disaggregated else ''} for the first option "
             f"({'the fewest GPUs' if rank == PLAN_RANKS[1] else 'the cheapest'})")
s = best.scenario(isl, osl)
g = get_gpu(best.gpu)
tokens, seqs = engine_facts(best.engine).step_limits(g)  # 0 sequences: as many as the pool holds
hf_id = next((p.hf_id for p in load_presets().values() if p.model is model), None) or "<your-model>"


def command(sc):
    return launch(model, sc, best.engine, hf_id, utilization=default_share(best.engine, g, sc.tp),
                  max_model_len=max(isl_d.longest + osl_d.longest, isl + osl), block_size=16,
                  max_num_batched_tokens=tokens, max_num_seqs=seqs)


if best.disaggregated:
    pre, dec = command(best.prefill_scenario(isl, osl)), command(s)
    st.markdown(f"On each of {best.prefill_replicas:,} prefill workers ({best.prefill_tp} GPU"
                f"{'s' if best.prefill_tp > 1 else ''} each):")
    st.code(pool_launch(pre, best.engine, "prefill").text(), language="bash")
    st.markdown(f"On each of {best.replicas:,} decode workers ({best.tp} GPU{'s' if best.tp > 1 else ''} each):")
    st.code(pool_launch(dec, best.engine, "decode").text(), language="bash")
    st.markdown("The front end that sends each request to a prefill worker, then to a decode worker:")
    st.code(router_command(best.engine, best.prefill_replicas, best.replicas), language="bash")
    notes = dict.fromkeys(pool_launch(pre, best.engine, "prefill").notes
                          + pool_launch(dec, best.engine, "decode").notes)
else:
    cmd = command(s)
    st.code(cmd.text(), language="bash")
    st.caption(f"One replica; run {best.replicas:,} of them behind a load balancer. The engine's default memory "
               "share and step limits on this GPU.")
    notes = dict.fromkeys(cmd.notes)
for note in notes:
    st.warning(note[0].upper() + note[1:] + ".", icon="⚠️")

# the first option's working: its KV pool and the step terms at the requests in flight the rate implies
st.subheader("Why: the first option's memory and steps")
report = serving(model, s, g, best.concurrency, isl, osl) if not best.disaggregated else None
if best.disaggregated:
    peak = float(rate) * burst  # the rate the pools were sized for
    d = disaggregated(model, best.prefill_scenario(isl, osl), s, g, peak, isl, osl, best.prefill_replicas,
                      best.replicas, best.link_gbps)
    st.caption(f"Prefill: each of {best.prefill_replicas:,} workers of {best.prefill_tp} {g.name} computes a prompt "
               f"in {d.prefill.service_s * 1e3:,.1f} ms and is loaded at {d.prefill_load:.0%} "
               f"({peak:g} / {best.prefill_replicas:,} requests/s × that time). Its cache, "
               f"{fmt_bytes(d.prefill.cache_bytes, unit)} per GPU, crosses to a decode worker in "
               f"{d.transfer_s * 1e3:,.2f} ms at {best.link_gbps:g} GB/s. Decode: each of {best.replicas:,} workers "
               f"of {best.tp} {g.name} runs {d.decode.concurrency:,} requests (its KV pool of "
               f"{fmt_bytes(d.decode.pool_bytes, unit)} per GPU holds {d.decode.running_max:,} at most; at most "
               f"{best.max_in_flight:,} meet the TPOT target), a step of {d.decode.step_s * 1e3:,.2f} ms "
               f"yielding {d.decode.accepted:g} token{'s' if d.decode.accepted != 1 else ''} a request. The rate "
               f"needs prefill and decode GPUs {best.prefill_replicas * best.prefill_tp:,} : "
               f"{best.replicas * best.tp:,}.")
    st.dataframe(pd.DataFrame([{"part of the TTFT": name, "ms": round(sec * 1e3, 3), "formula": text}
                               for name, sec, text in d.terms()]), hide_index=True, width="stretch",
                 key="plan_ttft_terms")
else:
    start = pool_startup(model, s.resolved(g), g)  # the start-up the serving model reads its pool from
    st.caption(f"Per GPU of {best.tp} {g.name}: weights {fmt_bytes(start.weights_bytes, unit)}; the engine's "
               f"default memory share ({start.fraction}) leaves a KV pool of {fmt_bytes(report.pool_bytes, unit)} "
               f"(Serving capacity shows its terms); each request adds {fmt_bytes(report.request_bytes, unit)} of "
               "cache" + (f" beyond the {prefix:,}-token prefix held once" if prefix else "")
               + f", so the pool holds {report.running:,} at once of the {best.concurrency:,} in flight at the rate "
               f"(at most {best.max_in_flight:,} meet the targets). {report.cycle_text()[0].upper()}"
               f"{report.cycle_text()[1:]}.")
    st.dataframe(terms_table(report), hide_index=True, width="stretch", key="plan_terms")
