"""Learn: why the KV cache exists and what it costs, step by step. The worked example and the animation
need nothing from the sidebar, so the page teaches even while the sidebar shows an error. Lecture mode
hides the sidebar, sets every text (charts included) to 22 px or more, and steps through the slides with
Back and Next buttons."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.presets import preset_model
from kvdash.report import formulas
from kvdash.scenario import Scenario
from ui.sidebar import selection
from ui.style import TITLE
from ui.text import plain

model, scenario, gpu, unit, error = selection()
lecture = st.toggle("Lecture mode", key="lecture", bind="query-params",
                    help="large type everywhere, sidebar hidden, one slide at a time with Back and Next")
FONT = 22 if lecture else 14  # px, chart text included
st.markdown(f"<style>.big p, .big li {{font-size: {max(FONT, 20) + 2}px; line-height: 1.5;}}</style>",
            unsafe_allow_html=True)
if lecture:
    st.markdown(f"""<style>
        [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {{display: none;}}
        .stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label,
        .stMainBlockContainer button, [data-testid="stCaptionContainer"] {{font-size: {FONT}px !important;}}
        .stMainBlockContainer h1 {{font-size: 48px;}} .stMainBlockContainer h2 {{font-size: 36px;}}
        .stMainBlockContainer {{padding-top: 1rem !important; padding-bottom: 0 !important;}}
        [data-testid="stHeader"] {{display: none;}}
        </style>""", unsafe_allow_html=True)
SLIDE_HEIGHT = 720  # px: a projector's 1280 x 720; each slide fits it without scrolling (tests/test_e2e.py)

art = preset_model("article-example")
PER_LAYER = art.layers[0].bytes_per_token(get_dtype("fp32"))
ART_TOTAL = breakdown(art, Scenario(prompt_tokens=512, kv_dtype="fp32", weights_dtype="fp32"))["kv_cache"]


def _title(title: str, *lines: str) -> dict:
    """A chart title with its explanation: a smaller subtitle on a screen; in lecture mode every line at the
    lecture size (a <sup> would shrink it below 22 px)."""
    rest = "<br>".join(lines)
    text = title if not lines else f"{title}<br>{rest}" if lecture else f"{title}<br><sup>{rest}</sup>"
    # plotly places a multi-line title's first line above the top of its box: a pad of one line keeps it in
    return TITLE | dict(text=text, font=dict(size=FONT + 4), pad=dict(t=FONT + 12))


def _lecture_type(fig: go.Figure) -> go.Figure:
    """Every text of the chart at the page's size: ticks, axis titles, subplot titles, the Play button and
    the slider (Streamlit's chart theme otherwise sets ticks to 12 px)."""
    fig.update_xaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_yaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_annotations(font_size=FONT)
    for menu in fig.layout.updatemenus or ():
        menu.font.size = FONT
    for slider in fig.layout.sliders or ():
        slider.font.size = FONT
        slider.currentvalue.font.size = FONT
    return fig


def why() -> None:
    st.header("Why a KV cache?")
    st.markdown(
        "<div class='big'><p>A transformer writes text one token at a time. Like an author who re-reads the whole "
        "book before every new sentence, a model without a cache recomputes the keys and values of every earlier "
        "token at every step. The <b>KV cache</b> is the author's notebook: each token's keys and values are "
        "written down once and looked up from then on. The notebook costs memory, and that memory is what "
        "kvdash measures.</p></div>", unsafe_allow_html=True)


def worked_example() -> None:
    st.header("The worked example, exactly")
    steps = [
        ("Bytes per token per layer", "1024 dimensions × 2 (a key and a value) × 4 bytes (fp32)",
         f"{PER_LAYER:,} B = 8 KiB"),
        ("One layer, 512 tokens", f"512 tokens × {PER_LAYER:,} B", f"{512 * PER_LAYER:,} B = 4 MiB"),
        ("48 layers", f"48 × {512 * PER_LAYER:,} B", f"{ART_TOTAL:,} B = 192 MiB"),
    ]
    for i, (title, formula, result) in enumerate(steps, 1):
        st.markdown(f"<div class='big'><p><b>Step {i}. {title}:</b> {formula} = <b>{result}</b></p></div>",
                    unsafe_allow_html=True)
    st.caption("The article writes 8 KB, 4 MB and 192 MB; the numbers are KiB and MiB (powers of two). Its '52 "
               "billion parameters' cannot have 1024 dimensions and 48 layers; kvdash reproduces the cache "
               "arithmetic exactly.")


@st.cache_resource  # one validated figure per process and mode; never mutated after this
def growth_animation(per_token_mib: float, font: int, lecture: bool, tokens: int = 48) -> go.Figure:
    """Two aligned panels, token by token: the memory the cache holds (MiB, grows by a fixed amount), and
    the keys and values computed for the new token (tokens processed: 1 with a cache, all of them without)."""
    def traces(t: int) -> list[go.Bar]:
        return [
            go.Bar(x=["cache held"], y=[t * per_token_mib], marker_color="#E69F00", xaxis="x", yaxis="y",
                   text=[f"{t * per_token_mib:,.1f} MiB"], textposition="outside"),
            # named on the axis and labelled, so colour is not the only cue (no hatching: plotly.js fails
            # to animate pattern fills)
            go.Bar(x=["with a cache", "without a cache"], y=[1, t], marker_color=["#0072B2", "#D55E00"],
                   xaxis="x2", yaxis="y2", text=["1", f"{t}"], textposition="outside"),
        ]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.12,
                        # two short lines each: side by side on a phone, one line each would collide
                        subplot_titles=("Memory the<br>cache holds", "Tokens processed<br>for the next token"))
    for tr, col in zip(traces(1), (1, 2), strict=True):
        fig.add_trace(tr, row=1, col=col)
    fig.frames = [go.Frame(name=str(t), data=traces(t), traces=[0, 1]) for t in range(1, tokens + 1)]
    fig.update_yaxes(title_text="MiB", range=[0, tokens * per_token_mib * 1.2], row=1, col=1)
    fig.update_yaxes(title_text="tokens processed", range=[0, tokens * 1.2], row=1, col=2)
    fig.update_layout(
        showlegend=False, font=dict(size=font), height=400 if lecture else 440 + 10 * font,
        margin=dict(t=(120 if lecture else 110 + 2 * font), b=120),
        title=_title("Token by token", "the cache grows by a fixed amount;", "without it, the work per token grows"),
        updatemenus=[dict(type="buttons", x=0, y=-0.12, xanchor="left", yanchor="top", buttons=[dict(
            label="Play", method="animate", args=[None, dict(frame=dict(duration=150, redraw=True),
                                                              fromcurrent=True)])])],
        sliders=[dict(x=0.1, len=0.9, y=-0.12, currentvalue=dict(prefix="token "), steps=[
            dict(method="animate", label=str(t), args=[[str(t)], dict(mode="immediate",
                                                                      frame=dict(duration=0, redraw=True))])
            for t in range(1, tokens + 1)])],
    )
    return _lecture_type(fig)


def animation() -> None:
    st.header("Watch the cache grow")
    st.plotly_chart(growth_animation(48 * PER_LAYER / 2**20, FONT, lecture), width="stretch", key="learn_anim")


def selected_model() -> None:
    if model is None or scenario is None:
        st.header("The same steps for your model")
        st.info(f"Choose a valid model in the sidebar to see its steps ({error or 'none chosen'}).")
        return
    st.header(f"The same steps for {plain(model.name)}")
    try:
        b = breakdown(model, scenario.with_(new_tokens=0))
    except KvdashError as e:
        st.error(str(e))
        return
    kv = get_dtype(scenario.kv_dtype)
    B, T, S, bs = scenario.batch, scenario.prompt_tokens, scenario.shared_prefix_tokens, scenario.block_size
    steps = [f"<li>Layers: {model.n_layers} ({', '.join(f'{n} {short}' for short, n in b.stage.counts.items())})"
             "</li>"]
    for spec, bpt in b.stage.caches:  # each kind holds its own tokens: every token, a window, a chunk
        held, n = spec.held(B, T, S, bs), bpt // spec.bytes_per_token(kv, scenario.tp)
        steps.append(f"<li>{n} {spec.short} layers: {held:,} token slots ({spec.held_rule(bs)}) × "
                     f"{bpt:,} B per token ({n} × {spec.describe(kv, scenario.tp)}) = "
                     f"<b>{held * bpt:,} B</b></li>")
    if b.state_bytes_per_seq:
        steps.append(f"<li>Fixed per sequence (recurrent state, cross-attention): {B:,} × "
                     f"{b.state_bytes_per_seq:,} B = <b>{B * b.state_bytes_per_seq:,} B</b></li>")
    steps.append(f"<li>KV cache in all: <b>{b['kv_cache']:,} B</b>; weights {b['weights']:,} B — the cache is "
                 f"{b['kv_cache'] / max(1, b['weights']):.1%} of them</li>")
    st.markdown(f"<div class='big'><ul>{''.join(steps)}</ul></div>", unsafe_allow_html=True)
    st.caption(formulas(b)["kv_cache"])


@st.fragment
def summary() -> None:
    """One slide a lecturer can download (the chart's camera button): the same chart at 1280 x 720, three times
    the pixels (3,840 x 2,160) for print. A fragment: choosing the format redraws this slide only."""
    head, choice = st.columns([3, 2], vertical_alignment="bottom")
    head.header("One slide")
    fmt = choice.radio("Download format (the chart's camera button)", ["svg", "png"], horizontal=True,
                       key="learn_format")
    lengths = [512, 2048, 8192, 32768, 131072]
    mib = [n * 48 * PER_LAYER / 2**20 for n in lengths]
    fig = go.Figure(go.Bar(x=[f"{n:,}" for n in lengths], y=mib, marker_color="#E69F00",
                           text=[f"{v:,.0f} MiB" for v in mib], textposition="outside"))
    fig.update_layout(
        title=_title("The KV cache grows with the context", "per token: layers × 2 (K, V) × dimensions × bytes",
                     "the article's model: 48 × 2 × 1024 × 4 B = 384 KiB"),
        # the lengths are names on the axis (categories): a linear axis made 512 and 2,048 slivers
        xaxis=dict(type="category", title="tokens in the context"), yaxis=dict(title="MiB", range=[0, max(mib) * 1.2]),
        font=dict(size=FONT), uniformtext=dict(minsize=FONT, mode="show"),
        height=430 if lecture else 520 + 10 * FONT, margin=dict(t=140))
    fig.update_traces(textfont_size=FONT)
    st.plotly_chart(_lecture_type(fig), width="stretch", key="learn_summary", config={
        "toImageButtonOptions": {"format": fmt, "filename": "kvdash-kv-cache", "width": 1280, "height": 720,
                                 "scale": 3}})


SLIDES = [why, worked_example, animation, selected_model, summary]


def turn(by: int) -> None:
    st.session_state["learn_slide"] = min(len(SLIDES) - 1, max(0, st.session_state.get("learn_slide", 0) + by))


@st.fragment
def lecture_slides() -> None:
    """The slide shown, with Back and Next. A fragment: a click redraws the slide only, not the sidebar and the
    page around it (a lecture hall's clicks cost a fraction of a full rerun)."""
    at = st.session_state.get("learn_slide", 0)
    back, where, forward = st.columns([1, 4, 1])
    back.button("◀ Back", key="learn_back", on_click=turn, args=(-1,), disabled=at == 0, width="stretch")
    forward.button("Next ▶", key="learn_next", on_click=turn, args=(1,), disabled=at == len(SLIDES) - 1,
                   width="stretch")
    where.progress((at + 1) / len(SLIDES), text=f"slide {at + 1} of {len(SLIDES)}")
    SLIDES[at]()


if lecture:
    lecture_slides()
else:
    st.title("Learn: the KV cache")
    for slide in SLIDES:
        slide()
