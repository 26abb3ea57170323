"""GPUs: the scenario on every GPU in the catalog, and the article's GPU tiers against the numbers."""

import pandas as pd
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.gpus import load_gpus
from kvdash.presets import preset_model
from kvdash.prices import reference_price
from kvdash.runtimes import get_runtime
from kvdash.scenario import Scenario
from kvdash.solvers import gpus_needed, max_batch, max_context
from kvdash.units import fmt_bytes, to_unit
from ui.sidebar import require
from ui.style import file_name, scenario_lines
from ui.text import plain

model, scenario, gpu, unit = require()
st.title(f"{plain(model.name)} on every GPU")
st.caption(f"Batch {scenario.batch:,} × {scenario.context:,} tokens, weights {scenario.weights_dtype}, "
           f"KV cache {scenario.kv_dtype}, tensor parallel {scenario.tp} · the activation peak of "
           f"{get_runtime(scenario.runtime).label}"
           + (" at each GPU's default token budget" if scenario.engine and not scenario.max_num_batched_tokens else "")
           + f" (sidebar: Runtime) · sizes in {unit}")

gpus = load_gpus()
vendors = sorted({g.vendor for g in gpus.values()})
c1, c2 = st.columns(2)
chosen = c1.multiselect("Vendors", vendors, default=vendors, key="gpus_vendors")
lo, hi = c2.slider("Marketed memory (GB)", 0, 300, (0, 300), key="gpus_memory")

rows = []
for g in gpus.values():
    if g.vendor not in chosen or not lo <= g.memory_gb <= hi:
        continue
    b = breakdown(model, scenario, g)
    needed = gpus_needed(model, scenario.with_(tp=1), g)
    rows.append({  # what a reader looks for first on the left: a phone shows these without scrolling
        "GPU": g.name, "fits?": "fits" if b.fits else "does not fit",
        f"headroom ({unit})": round(to_unit(b.headroom, unit), 2),
        f"largest batch at {scenario.context:,} tokens": max_batch(model, scenario, g),
        f"longest context at batch {scenario.batch:,}": max_context(model, scenario, g),
        # text throughout: a column of numbers and words would not serialise to Arrow (Streamlit falls back)
        "GPUs needed (tensor parallel)": f"{needed:,}" if needed else "more than 64",
        f"usable ({unit})": round(to_unit(g.usable_bytes, unit), 2),
        "$ per GPU-hour (lowest listed on demand)": (f"{p.usd_per_gpu_hour:,.2f} ({p.provider}, {p.seen})"
                                                      if (p := reference_price(g.id)) else "none listed"),
        "vendor": g.vendor,
        "usable memory from": g.usable_basis,
    })
table = pd.DataFrame(rows)
if table.empty:
    st.info("No GPU matches the filters.")
else:
    st.dataframe(table, hide_index=True, width="stretch", key="gpus_table")
    st.download_button("GPU table as CSV", scenario_lines(model.name, scenario, gpu) + table.to_csv(index=False),
                       file_name("kvdash-gpus", model.name, f"b{scenario.batch}", f"t{scenario.context}") + ".csv",
                       "text/csv", key="dl_gpus")

st.subheader("The article's GPU tiers, checked")
st.write("The article kvdash grew from recommends GPUs by model size. Here each tier's models run at batch 1 "
         "with a 512-token context in bf16, on the GPUs it names:")
tiers = [
    ("Small/medium (up to 1-2B)", ["gpt2-xl", "llama-3.2-1b"], ["nvidia-rtx-3090", "nvidia-v100-sxm2-32gb"]),
    ("Large (10-20B)", ["opt-13b", "phi-4"], ["nvidia-a100-sxm4-40gb", "nvidia-rtx-6000-ada"]),
    ("Very large (50B+)", ["llama-3.1-70b", "qwen2.5-72b"], ["nvidia-a100-sxm4-80gb", "nvidia-h100-sxm5"]),
]
tier_rows = []
small = Scenario(prompt_tokens=512)
for tier, model_ids, gpu_ids in tiers:
    for mid in model_ids:
        m = preset_model(mid)
        for gid in gpu_ids:
            b = breakdown(m, small, gpus[gid])
            tier_rows.append({"tier": tier, "model": m.name, "parameters": f"{m.params / 1e9:.1f} B",
                              "GPU": gpus[gid].name, f"needs ({unit})": fmt_bytes(b.total, unit),
                              "verdict": "fits" if b.fits else
                              f"does not fit: needs {gpus_needed(m, small, gpus[gid]) or 'over 64'} GPUs"})
st.dataframe(pd.DataFrame(tier_rows), hide_index=True, width="stretch", key="gpus_tiers")
st.caption("In 16-bit weights a 70B model needs about 141 GB for its weights alone, so the article's "
           "'A100 80GB or H100' tier takes two such GPUs (or 4-bit weights) — the numbers say what the tiers do not.")
