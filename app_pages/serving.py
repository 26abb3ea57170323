"""Serving capacity: what a vLLM engine would report for this model on the chosen GPU(s)."""

import streamlit as st

from kvdash.capacity import engine_kv_budget, vllm_capacity
from kvdash.errors import KvdashError
from kvdash.presets import load_presets
from kvdash.serving import batch_limits, engine_profile
from kvdash.units import fmt_bytes
from ui.sidebar import require

model, scenario, gpu, unit = require()
st.title(f"Serving {model.name} with vLLM on {scenario.tp} × {gpu.name}")
c1, c2, c3, c4 = st.columns(4)
util = c1.slider("gpu_memory_utilization", 0.10, 0.99, 0.90, 0.01, key="serve_util", bind="query-params")
block = c2.selectbox("block size", [16, 32, 64], key="serve_block", bind="query-params")
max_len = c3.number_input("max model length", 1, 1 << 24,
                          min(model.max_position_embeddings or scenario.context, 1 << 24) or 8192, key="serve_len",
                          bind="query-params")
# vLLM's own default for this GPU (8,192 on 70 GiB+ GPUs other than A100s, else 2,048)
batched = c4.number_input("max_num_batched_tokens", 1, 1 << 20, batch_limits(engine_profile("vllm"), gpu)[0],
                          key="serve_batched", bind="query-params")
try:
    # vLLM profiles one forward pass of max_num_batched_tokens tokens to size the activation peak.
    profile = scenario.with_(batch=1, prompt_tokens=int(batched), new_tokens=0, shared_prefix_tokens=0, block_size=0)
    budget = engine_kv_budget(model, profile, gpu, util)
    cap = vllm_capacity(model, budget, block_size=int(block), max_model_len=int(max_len), tp=scenario.tp,
                        kv_dtype=scenario.kv_dtype, max_num_batched_tokens=int(batched))
except KvdashError as e:
    st.error(str(e))
    st.stop()
cols = st.columns(3)
cols[0].metric("KV budget per GPU", fmt_bytes(budget, unit))
cols[1].metric("GPU KV cache size", f"{cap.kv_cache_tokens:,} tokens")
cols[2].metric(f"Max concurrency at {cap.max_model_len:,} tokens", f"{cap.max_concurrency:.2f}x")
st.code("\n".join(["# what vLLM would log at start-up (per kvdash)", *cap.log_lines()]), language="text")
st.markdown(
    f"- KV budget = {util} × {gpu.usable_bytes:,} B usable − weights − activation peak of a "
    f"{int(batched):,}-token profile pass − logits − non-torch overhead = **{budget:,} B**\n"
    f"- num_gpu_blocks = {budget:,} // {cap.page_bytes:,} B per layer-block // {cap.group_size} layers = "
    f"**{cap.gpu_blocks:,}** ({cap.n_groups} KV-cache group{'s' if cap.n_groups > 1 else ''})\n"
    f"- GPU KV cache size = {cap.gpu_blocks:,} // {cap.n_groups} × {cap.block_size} = "
    f"**{cap.kv_cache_tokens:,} tokens**\n"
    f"- Maximum concurrency = {cap.gpu_blocks:,} / {cap.blocks_per_request:,} blocks per "
    f"{cap.max_model_len:,}-token request = **{cap.max_concurrency:.2f}x**")
hf_id = next((p.hf_id for p in load_presets().values() if p.model is model), None) or "<your-model>"
flags = [f"vllm serve {hf_id}", f"--tensor-parallel-size {scenario.tp}"]
if scenario.pp > 1:
    flags.append(f"--pipeline-parallel-size {scenario.pp}")
flags += [f"--gpu-memory-utilization {util}", f"--max-model-len {int(max_len)}", f"--block-size {int(block)}",
          f"--max-num-batched-tokens {int(batched)}"]
if scenario.kv_dtype in ("fp8",):
    flags.append("--kv-cache-dtype fp8")
if scenario.weights_dtype in ("fp16", "fp32"):
    flags.append(f"--dtype {'float16' if scenario.weights_dtype == 'fp16' else 'float32'}")
st.subheader("The command that sets this up")
st.code(" \\\n    ".join(flags), language="bash")
st.caption("Not modelled: CUDA-graph memory (vLLM subtracts it too; use a lower utilisation to leave room), "
           "and quantized checkpoints' own formats (choose the weight dtype in the sidebar).")
