"""How the serving model's numbers are made, shown the same way on every page that shows them (Speed, Plan)."""

from __future__ import annotations

from ui.tables import arrow_table


def terms_table(report):
    """The step's terms (kvdash.serving.ServingReport.terms): seconds in a decode-only step and in a step with
    prompt tokens, in ms, each with its formula."""
    return arrow_table([{"term": name, "decode-only step, ms": round(sec * 1e3, 3),
                         "step with prompt tokens, ms": round(mix * 1e3, 3), "formula": text}
                        for name, sec, mix, text in report.terms()])
