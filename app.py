"""kvdash dashboard: the entry point. Shared inputs live in the sidebar (they survive page switches);
each page reads the selection and only arranges numbers from kvdash's breakdown table.

Run with `make run`. torch is imported only by the Live run page, and only when it runs.
The page scripts live in app_pages/, not pages/: a pages/ folder switches Streamlit into its legacy
multipage mode whenever a deep link is a server's first request, which skips this entry point.
"""

import time

import streamlit as st

from ui.guard import run_guarded
from ui.pages import pages
from ui.sidebar import render_sidebar

started = time.perf_counter()

st.set_page_config(page_title="kvdash", layout="wide")
# On a touch screen plotly's toolbar stays shown and covers every chart's title: hidden there (a mouse keeps it)
st.markdown("<style>@media (hover: none) {.modebar-container {display: none !important;}}</style>",
            unsafe_allow_html=True)
render_sidebar()
page = st.navigation(pages())
st.set_page_config(page_title=f"{page.title} · kvdash")  # each tab says which page it shows
run_guarded(page)  # errors become an error box; the sidebar and navigation stay
# Server time of this redraw, read by benchmarks/bench_app.py (a page that stops early skips it).
st.session_state["_redraw_ms"] = (time.perf_counter() - started) * 1e3
