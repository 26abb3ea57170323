"""Every page inside one error boundary: a failing core call shows an error box, the sidebar stays."""

import importlib

import pytest
from streamlit.testing.v1 import AppTest

from kvdash.errors import KvdashError

from .test_app import APP

CORE = importlib.import_module("kvdash.breakdown")  # the module (kvdash.breakdown is also the function)
PAGES = ["memory", "gpus", "scaling", "compare", "serving", "speed", "learn", "live"]


def _boom(*args, **kwargs):
    raise RuntimeError("a bug deep in the core, with /some/server/path in its message")


@pytest.mark.parametrize("page", PAGES)
def test_a_failing_core_call_shows_an_error_box_and_keeps_the_sidebar(monkeypatch, page):
    monkeypatch.setattr(CORE, "stages", _boom)  # every breakdown, sweep and solver fails
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("unexpected problem (reference" in e for e in errors)
    assert not any("/some/server/path" in e for e in errors)  # the message and traceback stay on the server
    assert at.sidebar.select_slider(key="batch").value == 1  # the sidebar is still there and works
    at.sidebar.select_slider(key="batch").set_value(2).run()
    assert not at.exception


def test_a_library_sentence_is_shown_as_is(monkeypatch):
    def refuse(*args, **kwargs):
        raise KvdashError("tp = 3 must divide the 32 attention heads")

    monkeypatch.setattr(CORE, "stages", refuse)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page("app_pages/learn.py")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["tp = 3 must divide the 32 attention heads"]
