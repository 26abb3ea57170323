"""Names from a config or a link shown as plain text: Streamlit renders headings as Markdown."""

from __future__ import annotations

import re
import unicodedata

# Markdown's and Streamlit's inline specials (LaTeX between $, emoji shortcodes between :, HTML's <), and
# what starts a list at the head of a line ("- x", "+ x", "1. x", "1) x")
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~$:<>])")
_LIST = re.compile(r"^([-+])|^(\d+)([.)])")


def _clean(text: str, limit: int) -> str:
    kept = "".join(c for c in str(text) if unicodedata.category(c) not in ("Cc", "Cf"))
    return kept if len(kept) <= limit else kept[: limit - 1].rstrip() + "…"


# GitHub-flavoured Markdown links bare URLs and e-mail addresses whatever is escaped; an invisible word
# joiner after the scheme (or before the @) keeps them text
_AUTOLINK = re.compile(r"(?i)(https?|ftp|www|mailto)(?=\\?[:.])|(?=@)")


def plain(text: str, limit: int = 80) -> str:
    """`text` as Markdown that renders as itself: control and bidi-override characters dropped (a
    right-to-left override must not reverse the heading), cut to `limit` characters with an ellipsis, every
    Markdown special escaped and no bare URL turned into a link."""
    text = _LIST.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}",
                     _SPECIAL.sub(r"\\\1", _clean(text, limit)))
    return _AUTOLINK.sub(lambda m: (m.group(1) or "") + "\u2060", text)


def label(text: str, limit: int = 60) -> str:
    """`text` for a Plotly label, which reads a subset of HTML: cleaned and cut as `plain` does, with
    <, > and & as entities so a name cannot open a tag."""
    return _clean(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
