"""Dimension inputs: a slider to drag (the demo on a projector) or, with "Precise values" on, a number box.

Both are bound to the same URL key and take their range from ui/links.py. The slider's steps are a
ladder (powers of two, or 1-1.5-2 steps where sizes span decades, or every integer for small counts),
and the value in force is always one of its stops, so a link or an exact entry such as 14,336 shows on
the slider as it is instead of being rounded to a stop.
"""

from __future__ import annotations

import streamlit as st

from kvdash.errors import KvdashError
from ui.links import FIELDS

Q = "query-params"
PRECISE = "precise"  # the toggle's key


def _powers(lo: int, hi: int) -> list[int]:
    return [1 << i for i in range(lo.bit_length() - 1, hi.bit_length()) if lo <= 1 << i <= hi]


def _one_half(lo: int, hi: int) -> list[int]:
    """Powers of two and the halfway 1.5 x steps: 1,024, 1,536, 2,048, 3,072, ..."""
    return sorted({v for p in _powers(1, hi) for v in (p, p + p // 2) if lo <= v <= hi})


# Stops per URL key (a value outside its field's range is never offered).
LADDERS: dict[str, list[int]] = {
    "batch": _powers(1, 4096),
    "context": _powers(128, 1 << 20),
    "new": [0, *_powers(16, 1 << 17)],
    "tp": _powers(1, 64),
    "pp": _powers(1, 16),
    "prefix": [0, *_powers(128, 1 << 20)],
    "c_layers": [*range(1, 129), 160, 192, 256],
    "c_hidden": _one_half(256, 65536),
    "c_heads": [*range(1, 129), 160, 192, 256],
    "c_kv": [*range(1, 129)],  # the sidebar offers only the divisors of the query heads
    "c_ctx": [0, *_powers(512, 1 << 24)],
    "c_hd": [32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 512],
    "c_inter": _one_half(512, 1 << 18),
    "c_vocab": _one_half(1024, 1 << 18),
    "c_window": _powers(128, 1 << 20),
    "c_latent": _powers(64, 4096),
    "c_rope": [16, 32, 64, 128],
    "c_experts": [0, *_powers(1, 1024)],
    "c_topk": [*range(1, 17)],
    "c_expert_inter": _one_half(128, 1 << 17),
}


def precise_toggle(where=st) -> bool:
    return where.toggle("Precise values", key=PRECISE, help="number boxes instead of sliders, for exact values")


def whole_number(label: str, key: str, default: int, where=st, **kw) -> int:
    """A URL-bound whole number typed as text and read by the link's own rule (ui/links.py Field.parse:
    131,072, 1e6 and 1.5e3 are whole numbers; 2.5 and out-of-range values are refused, never rounded or
    clamped). A value it refuses raises KvdashError naming the input, so the page stops with an error box
    instead of computing the previous value."""
    f = FIELDS[key]
    if key in st.session_state and not isinstance(st.session_state[key], str):
        st.session_state[key] = str(st.session_state[key])  # a slider's or a loaded scenario's integer
    kw.pop("step", None)
    raw = where.text_input(label, str(default), key=key, bind=Q, **kw)
    try:
        return f.parse(raw)
    except ValueError as e:
        raise KvdashError(f"{label}: {raw.strip()[:40]!r} is {e}") from None


def dimension(label: str, key: str, default: int, seed: dict, where=st, ladder=None, **kw) -> int:
    """A URL-bound integer: a text box read as a whole number when "Precise values" is on (whole_number),
    else a slider over `ladder` (by default LADDERS[key]). `seed` holds the link's parsed values (the first
    run only), so a linked value is a stop too."""
    f = FIELDS[key]
    precise = bool(st.session_state.get(PRECISE))
    current = st.session_state.get(key, seed.get(key, default))
    if isinstance(current, str):  # the text box's last entry
        try:
            current = f.parse(current)
        except ValueError:
            current = default
    kinds = st.session_state.setdefault("_dimension_kinds", {})
    if kinds.get(key, precise) != precise and key in st.session_state:
        st.session_state[key] = str(current) if precise else current  # the other widget takes over the value
    kinds[key] = precise
    if precise:
        return whole_number(label, key, default, where, **kw)
    stops = sorted({v for v in (LADDERS[key] if ladder is None else ladder) if f.lo <= v <= f.hi}
                   | {int(current), default})
    kw.pop("step", None)
    if key in st.session_state and not isinstance(st.session_state[key], int):
        st.session_state[key] = int(current)
    return int(where.select_slider(label, stops, value=default, key=key, bind=Q, **kw))
