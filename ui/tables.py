"""Tables for st.dataframe, built straight as Arrow.

Streamlit converts a pandas DataFrame to Arrow on every rerun; building the frame and converting it was a
tenth of a Memory-page rerun under a lecture hall's load (py-spy, benchmarks/load.py). An Arrow table is
sent as it is.
"""

from __future__ import annotations

import pyarrow as pa

INT64_MAX = (1 << 63) - 1


def arrow_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts with the same keys, in column order) as an Arrow table. A column holding an integer beyond
    Arrow's int64 is shown exactly, as text, rather than rounded to a float."""
    columns = {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}
    for k, values in columns.items():
        if any(type(v) is int and abs(v) > INT64_MAX for v in values):
            columns[k] = [str(v) for v in values]
    return pa.table(columns)
