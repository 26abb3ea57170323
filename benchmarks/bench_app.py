"""Server time of a dashboard redraw: how long each page's script takes to rerun after an input
moves (AppTest, in-process, no browser). Target (issue #3): well under 200 ms per redraw.
Run with `make bench`."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["memory", "gpus", "scaling", "compare", "serving", "speed", "learn"]


def main() -> None:
    print("| page | script time of a redraw after a batch-slider move, ms (median of 5) | worst "
          "| AppTest round trip, ms |")
    print("|---|---|---|---|")
    for page in PAGES:
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.switch_page(f"app_pages/{page}.py").run()  # first draw fills the per-process caches
        script, trips = [], []
        for batch in (2, 4, 8, 16, 32):  # a drag along the batch slider's stops
            at.select_slider(key="batch").set_value(batch)
            t0 = time.perf_counter()
            at.run()
            trips.append((time.perf_counter() - t0) * 1e3)
            assert not at.exception, at.exception
            script.append(at.session_state["_redraw_ms"])
        print(f"| {page} | {statistics.median(script):.0f} | {max(script):.0f} | {statistics.median(trips):.0f} |")


if __name__ == "__main__":
    main()
