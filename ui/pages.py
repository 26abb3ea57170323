"""The dashboard's pages, described once per process.

st.Page resolves its script's path on the disk each time it is built, which was a tenth of a Memory-page
rerun under a lecture hall's load (py-spy, benchmarks/load.py). The descriptions are built once; every run
gets its own shallow copies, because st.navigation marks the page it picks as runnable on the object itself
and two sessions' runs must not share that mark.
"""

from __future__ import annotations

import copy
import functools

import streamlit as st


@functools.cache
def _described() -> tuple:
    return (
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
    )


def pages() -> list:
    return [copy.copy(p) for p in _described()]
