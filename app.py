"""kvdash dashboard: the entry point. Shared inputs live in the sidebar (they survive page switches);
each page reads the selection and only arranges numbers from kvdash's breakdown table.

Run with `make run`. torch is imported only by the Live run page, and only when it runs.
The page scripts live in app_pages/, not pages/: a pages/ folder switches Streamlit into its legacy
multipage mode whenever a deep link is a server's first request, which skips this entry point.
"""

import time

import streamlit as st

from ui.guard import run_guarded
from ui.sidebar import render_sidebar

started = time.perf_counter()

st.set_page_config(page_title="kvdash", layout="wide")
# On a touch screen plotly's toolbar stays shown and covers every chart's title: hidden there (a mouse keeps it)
st.markdown("<style>@media (hover: none) {.modebar-container {display: none !important;}}</style>",
            unsafe_allow_html=True)
render_sidebar()
page = st.navigation([
    # the default page is served at "/" (its url_path is only reserved); a hidden alias serves /memory
    st.Page("app_pages/memory.py", title="Memory", url_path="home", default=True),
    st.Page("app_pages/gpus.py", title="GPUs", url_path="gpus"),
    st.Page("app_pages/scaling.py", title="Scaling", url_path="scaling"),
    st.Page("app_pages/compare.py", title="Compare", url_path="compare"),
    st.Page("app_pages/serving.py", title="Serving capacity", url_path="serving"),
    st.Page("app_pages/speed.py", title="Speed", url_path="speed"),
    st.Page("app_pages/plan.py", title="Plan", url_path="plan"),
    st.Page("app_pages/live.py", title="Live run", url_path="live"),
    st.Page("app_pages/learn.py", title="Learn", url_path="learn"),
    st.Page("app_pages/memory.py", title="Memory", url_path="memory", visibility="hidden"),
])
st.set_page_config(page_title=f"{page.title} · kvdash")  # each tab says which page it shows
run_guarded(page)  # errors become an error box; the sidebar and navigation stay
# Server time of this redraw, read by benchmarks/bench_app.py (a page that stops early skips it).
st.session_state["_redraw_ms"] = (time.perf_counter() - started) * 1e3
