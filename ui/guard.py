"""One error boundary around every page: the sidebar and navigation are drawn before it, so they stay.

A KvdashError is the library's sentence about the inputs (what is wrong and how to fix it): shown as
is. Anything else is a bug: the page shows a short reference and the server log keeps the traceback,
so no path or stack reaches the browser.
"""

from __future__ import annotations

import logging
import uuid

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from kvdash.errors import KvdashError

log = logging.getLogger("kvdash.dashboard")


def run_guarded(page) -> None:
    try:
        page.run()
    except ScriptControlException:  # st.stop() and st.rerun() are control flow, not errors
        raise
    except KvdashError as e:
        st.error(str(e))
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("page %r failed, reference %s", getattr(page, "title", page), ref)
        st.error(f"This page hit an unexpected problem (reference {ref}, logged on the server). The sidebar "
                 "still works: change an input or pick another page.")
