"""Memory: where the GPU memory goes for the scenario in the sidebar."""

import json

import streamlit as st

from kvdash.breakdown import activation_dtype, breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.hf_config import MAX_CONFIG_BYTES
from kvdash.report import activation_split, formulas
from kvdash.solvers import max_batch, max_context
from kvdash.speculative import drafted, method
from kvdash.startup import engine_startup
from kvdash.units import fmt_bytes, to_unit
from kvdash.weights import weight_table
from ui.links import scenario_values
from ui.sidebar import BOUND, require
from ui.style import COMPONENT_COLOURS, COMPONENT_PATTERNS, KIND_COLOURS, figure, file_name, scenario_lines
from ui.tables import arrow_table
from ui.text import plain


# Figures are built as one dict each, not trace by trace: plotly validates every add_bar, add_vline and
# update_layout call, which cost a rerun 5x the time of one dict (benchmarks/load.py); ui.style.figure keeps
# the figures of recent dicts.
def layer_strip(m, s):
    """The layer stack as a strip of cells coloured by kind: which layers hold what."""
    kv, act = get_dtype(s.kv_dtype), activation_dtype(get_dtype(s.weights_dtype))
    data = []
    for spec, _ in m.layer_groups:
        at = [i for i, x in enumerate(m.layers) if x == spec]
        per_token, per_seq = spec.bytes_per_token(kv, s.tp), spec.bytes_per_seq(kv, act, s.tp, s.block_size)
        holds = (f"{per_token:,} B per token" if per_token else f"{per_seq:,} B per sequence" if per_seq
                 else "no cache")
        # a width per bar: plotly may size a trace's bars by the gap between its own layers, so alternating kinds
        # (gpt-oss, Gemma-2) could draw twice as wide, over their neighbours
        data.append(dict(type="bar", x=at, y=[1] * len(at), width=[0.9] * len(at), name=f"{len(at)} × {spec.short}",
                         marker=dict(color=KIND_COLOURS.get(spec.kind, "#999999")),
                         hovertemplate=f"layer %{{x}}: {spec.short}, {holds}<extra></extra>"))
    return figure(dict(data=data, layout=dict(
        barmode="overlay", bargap=0.05, height=170, title=dict(text=f"The {m.n_layers} layers by kind"),
        xaxis=dict(title=dict(text="layer"), range=[-0.5, m.n_layers - 0.5]), yaxis=dict(visible=False),
        legend=dict(orientation="h", y=-0.6), margin=dict(l=10, r=10, t=40, b=10))))


def breakdown_bar(b, gpu, unit: str):
    """The components stacked against the GPU's usable memory (a dashed line)."""
    usable = to_unit(gpu.usable_bytes, unit)
    data = [dict(type="bar", name=c.label, x=[to_unit(c.bytes, unit)], y=["this scenario"], orientation="h",
                 marker=dict(color=COMPONENT_COLOURS[c.key], pattern=dict(shape=COMPONENT_PATTERNS[c.key])),
                 hovertemplate=f"{c.label}: {c.bytes:,} B<extra></extra>") for c in b.components if c.bytes]
    return figure(dict(data=data, layout=dict(
        barmode="stack", height=320, title=dict(text=f"Breakdown against the GPU ({unit})"),
        xaxis=dict(title=dict(text=unit)), legend=dict(orientation="h", y=-0.45), margin=dict(l=10, r=10, t=60, b=10),
        shapes=[dict(type="line", x0=usable, x1=usable, y0=0, y1=1, yref="paper",
                     line=dict(dash="dash", color="black"))],
        annotations=[dict(x=usable, y=1, yref="paper", yanchor="bottom", showarrow=False,
                          text=f"{gpu.name}: {fmt_bytes(gpu.usable_bytes, unit)} usable")])))


def composition(b, unit: str):
    shown = [c for c in b.components if c.bytes]
    return figure(dict(data=[dict(
        type="treemap", labels=[c.label for c in shown], parents=[""] * len(shown),
        values=[to_unit(c.bytes, unit) for c in shown], marker=dict(colors=[COMPONENT_COLOURS[c.key] for c in shown]),
        texttemplate="%{label}<br>%{value:.2f} " + unit + "<br>%{percentRoot:.1%}")],
        layout=dict(height=320, title=dict(text=f"Composition ({unit})"), margin=dict(l=10, r=10, t=60, b=10))))


model, scenario, gpu, unit = require()
st.title(f"{plain(model.name)}: where the memory goes")
try:  # the drafter's parameters (a refused drafter is said below, by the breakdown)
    extra = drafted(model, scenario).params - model.params if scenario.spec_tokens else 0
except KvdashError:
    extra = 0
label = {"mtp": f"its {model.mtp_layers} MTP module(s)", "eagle": "an EAGLE head (16-bit)",
         "eagle3": "an EAGLE-3 head (16-bit)", "draft": f"the draft model {scenario.spec_draft}"}[method(scenario)]
drafter = f" + {extra:,} of {label}, loaded to speculate {scenario.spec_tokens} token(s) a step" if extra else ""
st.caption(f"{model.params:,} parameters{drafter} ({model.active_params:,} active per token) · "
           f"{model.attention_label} · "
           f"per GPU{' of ' + str(scenario.tp * scenario.pp) if scenario.tp * scenario.pp > 1 else ''} · "
           f"sizes in {unit} ({'2^30' if unit == 'GiB' else '10^9'} bytes)")
try:
    b = breakdown(model, scenario, gpu)
except KvdashError as e:
    st.error(str(e))
    st.stop()
for w in b.warnings:
    st.warning(w, icon="⚠️")
checkpoint = st.session_state.get("sel_checkpoint")
if checkpoint is not None and checkpoint.tensor_bytes:
    # measured (the checkpoint's tensor bytes, from the Hub) beside computed (kvdash, one GPU)
    ours = breakdown(model, scenario.with_(tp=1, pp=1, expert_parallel=False), gpu)["weights"]
    diff = ours / checkpoint.tensor_bytes - 1
    text = (f"The checkpoint on the Hub holds {checkpoint.tensor_bytes:,} B of tensors (measured from its "
            f"safetensors files); kvdash's weights row on one GPU is {ours:,} B ({diff:+.2%}), computed from the "
            f"config in the sidebar's weight formats.")
    if abs(diff) > 0.02:
        st.warning(text + " They differ: the checkpoint stores some tensors in formats kvdash does not read "
                   "from this config (or the sidebar asks for others); the measured bytes are the checkpoint's.",
                   icon="⚠️")
    else:
        st.info(text)

cols = st.columns(5)
# the unit travels with each value (auto-scaled within the chosen GiB or GB system), never in the label
cols[0].metric("Total", fmt_bytes(b.total, unit))
cols[1].metric("Weights", fmt_bytes(b["weights"], unit))
cols[2].metric("KV cache", fmt_bytes(b["kv_cache"], unit))
cols[3].metric("KV per token", f"{b.kv_bytes_per_token:,} B",
               f"+ {fmt_bytes(b.state_bytes_per_seq, unit)} fixed per sequence" if b.state_bytes_per_seq else None,
               delta_color="off", delta_arrow="off")
# the delta starts with its sign, so a negative headroom gets a down arrow (and red)
cols[4].metric(f"On {gpu.name}", "fits" if b.fits else "does not fit", f"{fmt_bytes(b.headroom, unit)} headroom")

left, right = st.columns([3, 2])
left.plotly_chart(breakdown_bar(b, gpu, unit), width="stretch", key="memory_bar")
right.plotly_chart(composition(b, unit), width="stretch", key="memory_treemap")

st.plotly_chart(layer_strip(model, scenario), width="stretch", key="memory_layers")

text = formulas(b)
table = arrow_table(
    [{"component": c.label, "bytes": c.bytes, unit: round(to_unit(c.bytes, unit), 3), "formula": text[c.key],
      "basis": c.basis} for c in b.components]
    + [{"component": "Total", "bytes": b.total, unit: round(to_unit(b.total, unit), 3), "formula": "sum of the above",
        "basis": "formula"}]
)
st.dataframe(table, hide_index=True, width="stretch", key="breakdown")
# how the activation peak splits under the chosen runtime, and which term decides it at this prompt length
phase, terms = activation_split(b)
counted = [(label, n) for label, n, used, _ in terms if used and n]
top_label, top_bytes = max(counted, key=lambda t: t[1]) if counted else ("nothing", 0)
st.subheader(f"Activation peak under {b.stage.runtime.label}")
st.caption(f"{b.stage.runtime.summary}. At its peak ({phase}) the largest term is the **{top_label}**: "
           f"{fmt_bytes(top_bytes, unit)} of {fmt_bytes(b['activation'], unit)}. In a forward, of the mixer, MLP, "
           "fp32-norm and cache-regrowth terms only the largest is alive at once; the others add up."
           + (" An engine's peak is the largest of its prefill step, a decode step and its sampler."
              if scenario.engine else ""))
split = arrow_table([{"term": label, "bytes": n, unit: round(to_unit(n, unit), 3),
                      "in the peak": "yes" if used else "no (a smaller alternative)", "formula": how}
                     for label, n, used, how in terms if n])
st.dataframe(split, hide_index=True, width="stretch", key="activation_split")
trained = f"{model.max_position_embeddings:,}" if model.max_position_embeddings else "an unknown length"
largest, longest = max_batch(model, scenario, gpu), max_context(model, scenario, gpu)
# a 0 names its cause: the weights alone, or the workload at this length / batch
nothing = ("none: the weights alone exceed the usable memory" if b["weights"] > gpu.usable_bytes
           else "none: {} does not fit")
st.write(
    f"Largest batch at {scenario.context:,} tokens: **"
    + (f"{largest:,}" if largest else nothing.format(f"one sequence of {scenario.context:,} tokens")) + "** · "
    f"longest context at batch {scenario.batch:,}: **"
    + (f"{longest:,} tokens" if longest else nothing.format(f"a batch of {scenario.batch:,} at even one token"))
    + "** "
    f"(model trained to {trained}) · usable memory {fmt_bytes(gpu.usable_bytes, unit)} "
    f"({gpu.usable_basis}); the same whatever batch and context the sidebar asks at"
)
if scenario.engine:  # what the engine itself would reserve, and so hold: its start-up budget (Serving capacity)
    try:
        start = engine_startup(model, scenario, gpu)
        per_seq = breakdown(model, scenario.with_(batch=1), gpu)["kv_cache"]
        st.caption(f"The largest batch above is what fits the whole GPU at this workload's own peak. "
                   f"{b.stage.runtime.label} at its default memory share ({start.fraction}) reserves its profile "
                   "pass's peak and leaves a "
                   f"{fmt_bytes(start.kv_budget_bytes, unit)} KV pool per GPU: it holds "
                   f"**{start.kv_budget_bytes // per_seq if per_seq else 0:,}** sequences of {scenario.context:,} "
                   "tokens at once (Serving capacity shows its terms).")
    except KvdashError as e:
        st.caption(f"{b.stage.runtime.label} at its default memory share: {e}")

# computed only while open (a closed expander's content is still run and sent otherwise: a tenth of a rerun)
weights_box = st.expander("Weight table: every tensor, grouped by layer kind", key="weights_open", on_change="rerun")
if weights_box.open:
    rows = weight_table(model, scenario.tp, scenario.weights_dtype, scenario.experts_dtype, scenario.ep)
    with weights_box:
        st.caption(f"Per GPU of {scenario.tp} (tensor-parallel shards), all layers; matrices in their format with "
                   "their scales, vectors and embeddings in 16-bit. The total is the weights row above when the "
                   "model sits on one pipeline stage.")
        st.dataframe(arrow_table([{"layers": r["group"], "tensor": r["tensor"],
                                    "shape": " × ".join(map(str, r["shape"])),
                                    "shard": " × ".join(map(str, r["shard"])), "count": r["count"],
                                    "format": r["format"], "bytes": f"{r['bytes']:,}"} for r in rows]),
                     hide_index=True, width="stretch", key="weight_table")

c1, c2, c3 = st.columns(3)
name = file_name("kvdash", model.name, f"b{scenario.batch}", f"t{scenario.context}", scenario.kv_dtype, gpu.id)
# the files are written when clicked (a callable), not on every rerun; a click does not rerun the page (a rerun
# racing the file's request could replace the callable before the browser fetched it)
c1.download_button("Breakdown as CSV",
                   lambda: scenario_lines(model.name, scenario, gpu) + table.to_pandas().to_csv(index=False),
                   f"{name}.csv", "text/csv", key="dl_breakdown", on_click="ignore",
                   help="the scenario heads the file as '# key: value' lines (pandas: read_csv(f, comment='#'))")
state = {k: st.session_state[k] for k in BOUND if k in st.session_state}
if state.get("source") == "config.json" and st.session_state.get("sel_config"):
    state["config"] = st.session_state["sel_config"]  # the file itself travels with the scenario: it loads back
c2.download_button("Scenario as JSON", lambda: json.dumps(state, indent=2), f"{name}.json", "application/json",
                   key="dl_scenario", on_click="ignore")
loaded = c3.file_uploader("Load a scenario JSON", type=["json"], key="load_scenario", max_upload_size=1)
if loaded is not None and st.session_state.get("_loaded_name") != loaded.file_id:
    st.session_state["_loaded_name"] = loaded.file_id
    try:
        data = json.loads(loaded.getvalue()[:MAX_CONFIG_BYTES + 65536])
        values = scenario_values(data)
        if isinstance(data, dict) and isinstance(data.get("config"), dict):  # an uploaded config, saved with it
            values |= {"cfg_text": json.dumps(data["config"], indent=2), "cfg_last": "text", "source": "config.json"}
        # Widgets already drawn this run cannot change: the sidebar applies these on the next run.
        st.session_state["_pending_scenario"] = values
        st.rerun()
    except (ValueError, UnicodeDecodeError) as e:
        st.error(f"could not load that scenario: {e}; nothing was changed")
