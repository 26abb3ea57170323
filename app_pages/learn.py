"""Learn: why the KV cache exists and what it costs, step by step, in large type for a lecture hall."""

import plotly.graph_objects as go
import streamlit as st

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from ui.sidebar import require

model, scenario, gpu, unit = require()
st.markdown("<style>.big p, .big li {font-size: 1.45rem; line-height: 1.5;}</style>", unsafe_allow_html=True)

st.title("Why a KV cache?")
with st.container(key="big_intro"):
    st.markdown(
        "<div class='big'><p>A transformer writes text one token at a time. Like an author who re-reads the whole "
        "book before every new sentence, a model without a cache recomputes the keys and values of every earlier "
        "token at every step. The <b>KV cache</b> is the author's notebook: each token's keys and values are "
        "written down once and looked up from then on. The notebook costs memory, and that memory is what "
        "kvdash measures.</p></div>", unsafe_allow_html=True)

st.header("The worked example, exactly")
art = preset_model("article-example")
per_layer = art.layers[0].bytes_per_token(get_dtype("fp32"))
total = breakdown(art, Scenario(prompt_tokens=512, kv_dtype="fp32", weights_dtype="fp32"))["kv_cache"]
steps = [
    ("Bytes per token per layer", "1024 dimensions × 2 (a key and a value) × 4 bytes (fp32)",
     f"{per_layer:,} B = 8 KiB"),
    ("One layer, 512 tokens", f"512 tokens × {per_layer:,} B", f"{512 * per_layer:,} B = 4 MiB"),
    ("48 layers", f"48 × {512 * per_layer:,} B", f"{total:,} B = 192 MiB"),
]
for i, (title, formula, result) in enumerate(steps, 1):
    st.markdown(f"<div class='big'><p><b>Step {i}. {title}:</b> {formula} = <b>{result}</b></p></div>",
                unsafe_allow_html=True)
st.caption("The article writes 8 KB, 4 MB and 192 MB; the numbers are KiB and MiB (powers of two). Its '52 billion "
           "parameters' cannot have 1024 dimensions and 48 layers; kvdash reproduces the cache arithmetic exactly.")

st.header("Watch the cache grow")


@st.cache_resource  # one validated figure per process; it is never mutated after this
def growth_animation(per_token_mib: float, tokens: int = 48) -> go.Figure:
    """Token by token, the cache grows by a fixed amount, and the work per new token is flat with a
    cache and grows without one."""
    def bars(t: int) -> list[dict]:
        return [
            {"type": "bar", "x": ["cache (MiB)"], "y": [t * per_token_mib], "marker": {"color": "#E69F00"}},
            {"type": "bar", "x": ["work per token, with cache"], "y": [1], "marker": {"color": "#0072B2"}},
            {"type": "bar", "x": ["work per token, without cache"], "y": [t], "marker": {"color": "#D55E00"},
             "marker_pattern_shape": "/"},
        ]
    frames = [{"name": str(t), "data": bars(t)} for t in range(1, tokens + 1)]
    return go.Figure({
        "data": bars(1), "frames": frames,
        "layout": {
            "showlegend": False, "yaxis": {"title": {"text": "MiB · tokens processed"}, "range": [0, tokens * 1.1]},
            "title": {"text": "Token by token: the cache grows by a fixed amount; without it, the work per token "
                              "grows with the text"},
            "updatemenus": [{"type": "buttons", "buttons": [{"label": "Play", "method": "animate",
                                                             "args": [None, {"frame": {"duration": 150}}]}]}],
            "sliders": [{"steps": [{"method": "animate", "args": [[f["name"]], {"mode": "immediate"}],
                                    "label": f["name"]} for f in frames], "currentvalue": {"prefix": "token "}}],
        },
    })


st.plotly_chart(growth_animation(48 * per_layer / 2**20), width="stretch", key="learn_anim")

st.header(f"The same steps for {model.name}")
b = breakdown(model, scenario.with_(new_tokens=0))
kv = get_dtype(scenario.kv_dtype)
B, T, S, bs = scenario.batch, scenario.prompt_tokens, scenario.shared_prefix_tokens, scenario.block_size
counts = dict(b.stage.groups)
steps = [f"<li>Layers: {model.n_layers} ({', '.join(f'{n} {short}' for short, n in b.stage.counts.items())})</li>"]
for spec, bpt in b.stage.caches:  # each kind holds its own tokens: every token, a window, a chunk
    held = spec.held(B, T, S, bs)
    steps.append(f"<li>{counts[spec]} {spec.short} layers: {held:,} token slots ({spec.held_rule(bs)}) × "
                 f"{bpt:,} B per token ({counts[spec]} × {spec.describe(kv, scenario.tp)}) = "
                 f"<b>{held * bpt:,} B</b></li>")
if b.state_bytes_per_seq:
    steps.append(f"<li>Fixed per sequence (recurrent state, cross-attention): {B:,} × {b.state_bytes_per_seq:,} B = "
                 f"<b>{B * b.state_bytes_per_seq:,} B</b></li>")
steps.append(f"<li>KV cache in all: <b>{b['kv_cache']:,} B</b>; weights {b['weights']:,} B — the cache is "
             f"{b['kv_cache'] / max(1, b['weights']):.1%} of them</li>")
st.markdown(f"<div class='big'><ul>{''.join(steps)}</ul></div>", unsafe_allow_html=True)
st.caption(next(c.formula for c in b.components if c.key == "kv_cache"))
