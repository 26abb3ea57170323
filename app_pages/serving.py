"""Serving capacity: the KV budget a serving engine is left with for this model on the chosen GPU(s), and
whether the sidebar's batch fits in it."""

import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.launch import launch
from kvdash.presets import load_presets
from kvdash.startup import DEFAULT_FAMILY, FAMILIES, default_share, engine_startup
from kvdash.units import fmt_bytes
from ui.dimensions import whole_number
from ui.sidebar import require
from ui.text import plain

model, scenario, gpu, unit = require()
engine = scenario.engine or "vllm"  # the sidebar's engine; vLLM when the sidebar's runtime is not one
facts = engine_facts(engine)
st.title(f"Serving {plain(model.name)} with {facts.label} on {scenario.tp * scenario.pp} × {gpu.name}")
if not scenario.engine:
    st.caption(f"The sidebar's runtime ({scenario.runtime}) is not a serving engine: this page shows vLLM's budget.")
tokens_default, seqs_default = scenario.with_(runtime=engine, max_num_batched_tokens=0).step_limits(gpu)
c1, c2, c3 = st.columns(3)
version = DEFAULT_FAMILY
if engine == "vllm":
    version = c1.selectbox("vLLM version", list(FAMILIES), index=list(FAMILIES).index(DEFAULT_FAMILY),
                           key="serve_version", bind="query-params", format_func=lambda k: FAMILIES[k].label)
share = {"vllm": "gpu_memory_utilization", "sglang": "mem_fraction_static", "trtllm": "free_gpu_memory_fraction"}
share_default = default_share(engine, gpu, scenario.tp, scenario.pp, version)
util = c2.slider(share[engine], 0.10, 0.99, round(min(0.99, max(0.10, share_default)), 3), 0.001, format="%.3f",
                 key="serve_util", bind="query-params", help=f"{facts.label}'s default here: {share_default}")
block = c3.selectbox("block size", [16, 32, 64], key="serve_block", bind="query-params")
c1, c2, c3 = st.columns(3)
try:
    max_len = whole_number("max model length", "serve_len", min(scenario.context, 1 << 24), c1,
                           help="the longest sequence the engine admits: the sidebar's prompt and generated tokens"
                                + (f"; the model was trained for {model.max_position_embeddings:,}"
                                   if model.max_position_embeddings else ""))
    batched = whole_number(facts.budget_name, "serve_batched", tokens_default, c2)
    # 0: the engine's own rule (SGLang runs as many as its pool holds), and the command leaves the flag out
    own = facts.step_limits(gpu)[1]
    seqs = whole_number("max_num_seqs", "serve_seqs", min(seqs_default, 1 << 20) if own else 0, c3,
                        help="requests running at once; 0: as many as the KV pool holds" + (
                            "" if own else f" ({facts.label}'s default)"))
except KvdashError as e:
    st.error(str(e))
    st.stop()
s = scenario.with_(runtime=engine, max_num_batched_tokens=int(batched), max_num_seqs=int(seqs))
try:
    start = engine_startup(model, s, gpu, fraction=util, max_model_len=int(max_len), family=version,
                           block_size=int(block))
except KvdashError as e:
    st.error(str(e))
    st.stop()
cap, budget = start.capacity, start.kv_budget_bytes
for w in start.warnings:
    st.warning(w, icon="⚠️")
cols = st.columns(3)
cols[0].metric("KV budget per GPU", fmt_bytes(budget, unit))
cols[1].metric("GPU KV cache size", f"{cap.kv_cache_tokens:,} tokens")
cols[2].metric(f"Max concurrency at {cap.max_model_len:,} tokens", f"{cap.max_concurrency:.2f}x")
# the sidebar's own question: do its batch's sequences fit in this pool?
held = breakdown(model, s.with_(gpu_memory_utilization=0.0), gpu)["kv_cache"]
verdict = "fit" if held <= budget else "do NOT fit"
st.info(f"The sidebar's batch, {scenario.batch:,} sequences of {scenario.context:,} tokens, holds "
        f"{fmt_bytes(held, unit)} of cache per GPU: they **{verdict}** in this {fmt_bytes(budget, unit)} pool"
        + (f" (it holds {budget * scenario.batch // held:,} such sequences)" if held else "") + ".")
st.code("\n".join([f"# what {facts.label} would report at start-up (per kvdash)", *start.log_lines()]),
        language="text")
st.dataframe([{"term": term, "bytes": b, unit: fmt_bytes(b, unit), "how it is known": how}
              for term, b, how in start.terms()], hide_index=True, width="stretch", key="startup_terms")
st.markdown(
    f"- KV budget = {' − '.join(t for t, _, _ in start.terms()[1:-1])} taken from the requested memory = "
    f"**{budget:,} B** (kvdash.startup; vLLM's is within 1.5 % of 38 of 40 public start-up logs, BENCHMARKS.md)\n"
    f"- num_gpu_blocks = {budget:,} // {cap.page_bytes:,} B per layer-block // {cap.group_size} layers = "
    f"**{cap.gpu_blocks:,}** ({cap.n_groups} KV-cache group{'s' if cap.n_groups > 1 else ''})\n"
    f"- GPU KV cache size = {cap.gpu_blocks:,} // {cap.n_groups} × {cap.block_size} = "
    f"**{cap.kv_cache_tokens:,} tokens**\n"
    f"- Maximum concurrency = {cap.gpu_blocks:,} / {cap.blocks_per_request:,} blocks per "
    f"{cap.max_model_len:,}-token request = **{cap.max_concurrency:.2f}x**")
hf_id = next((p.hf_id for p in load_presets().values() if p.model is model), None) or "<your-model>"
cmd = launch(model, s, engine, hf_id, utilization=util, max_model_len=int(max_len), block_size=int(block),
             max_num_batched_tokens=int(batched), max_num_seqs=int(seqs))
st.subheader("The command that sets this up")
st.code(cmd.text(), language="bash")
for note in cmd.notes:
    st.warning(note[0].upper() + note[1:] + ".", icon="⚠️")
st.caption("CUDA graphs are captured after the cache is sized; they take 0.5 – 2 GiB of the (1 − utilization) "
           "headroom (vLLM's 0.8 – 0.31 logs).")
