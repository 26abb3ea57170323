"""AIConfigurator's own predictions for the transfer rows (benchmarks/transfer.py), to compare kvdash with on
the rows both answer. Run it with a Python where aiconfigurator 0.12.0 is installed (it ships its kernel data;
it needs no network for the models it bundles), not in kvdash's environment:

    python3 -m venv AICVENV && AICVENV/bin/pip install aiconfigurator==0.12.0
    AICVENV/bin/python benchmarks/aic_baseline.py GITDIR OUT.csv [EVERY]

EVERY > 1 estimates every EVERY-th row only (about 1 s a row on two cores; the comparison is then on that
sample). Rows already in OUT.csv are kept and skipped, so an interrupted run resumes.

Each row is estimated for aggregated serving with the row's system, engine, lengths, concurrency, tensor and
expert parallelism and weight formats, at the engine version 0.12.0 queries by default (its current kernel
data: TensorRT-LLM 1.3.0rc20, SGLang 0.5.14, vLLM 0.24.0; the runs' own versions are mostly older than any it
keeps). A row it cannot estimate is written without predictions.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import ALIASES, transfer_rows


def main(argv=None) -> int:
    args = argv or sys.argv[1:]
    gitdir, out, every = args[0], Path(args[1]), int(args[2]) if len(args) > 2 else 1
    warnings.filterwarnings("ignore")
    from aiconfigurator.cli.api import cli_estimate  # only in AIConfigurator's environment

    logging.getLogger("aiconfigurator").setLevel(logging.ERROR)
    rows = transfer_rows(gitdir).iloc[::every]
    done = set(pd.read_csv(out).id) if out.exists() else set()
    for n, row in enumerate(rows.itertuples()):
        if row.id in done:
            continue
        def mode(v):
            return None if pd.isna(v) else str(v)
        try:
            r = cli_estimate(ALIASES.get(row.model_path, row.model_path), row.system, mode="agg",
                             backend_name=row.backend, isl=int(row.isl), osl=int(row.osl),
                             batch_size=int(row.batch_size), tp_size=int(row.tp_size),
                             moe_tp_size=int(row.moe_tp_size), moe_ep_size=int(row.moe_ep_size),
                             gemm_quant_mode=mode(row.gemm_quant_mode), moe_quant_mode=mode(row.moe_quant_mode))
            res = dict(id=row.id, aic_ttft_ms=r.ttft, aic_tpot_ms=r.tpot, aic_error="")
        except Exception as e:  # a row it cannot estimate is a row it does not answer
            res = dict(id=row.id, aic_ttft_ms=None, aic_tpot_ms=None, aic_error=str(e).split("\n")[0][:120])
        pd.DataFrame([res]).to_csv(out, mode="a", header=not out.exists(), index=False)
        print(f"{n + 1}/{len(rows)}", file=sys.stderr, end="\r")
    return 0


if __name__ == "__main__":
    sys.exit(main())
