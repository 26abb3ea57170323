"""Score kvdash's predicted peak against measured peaks (benchmarks/measure_peaks.py output).

    python benchmarks/score_peaks.py DIR [DIR ...]

Prints, per runtime, each case's predicted and measured bytes over the weights and their ratio, and
the median and worst |1 - ratio|. The prediction is the breakdown's cache + activation peak + logits
for the measured scenario (prompt, one generated token) under the run's runtime profile.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from kvdash.breakdown import breakdown
from kvdash.hf_config import model_from_config
from kvdash.scenario import Scenario

RUNTIME_OF = {"sdpa": "hf-sdpa", "eager": "hf-eager"}


def unscored(row: dict) -> str:
    """Why a run measures something kvdash does not model (it models GPUs), or "" when it is scored:
    on a CPU, SDPA runs latent attention (value head != key head) with the math kernel, which stores fp32
    scores, where GPU kernels do not; and generate() keeps MoE layers on grouped_mm in CPU decode steps,
    where on a GPU it switches to batched_mm (kvdash counts the GPU's expert-weight copies)."""
    if row["device"] != "cpu":
        return ""
    if row["attn_implementation"] == "sdpa" and row["config"]["model_type"] == "deepseek_v3":
        return "CPU math kernel"
    moe = row["config"].get("num_experts") or row["config"].get("n_routed_experts")
    if moe and row["new_tokens"] > 1:
        return "CPU keeps grouped_mm in decode"
    return ""


def scored(row: dict) -> bool:
    return not unscored(row)


def predicted_peak(row: dict) -> int:
    m = model_from_config(row["config"], name=row["name"])
    s = Scenario(batch=row["batch"], prompt_tokens=row["prompt_tokens"], new_tokens=row["new_tokens"],
                 runtime=RUNTIME_OF[row["attn_implementation"]])
    b = breakdown(m, s)
    return b["kv_cache"] + b["activation"] + b["logits"]


def load(dirs: list[Path]) -> list[dict]:
    return [json.loads(p.read_text()) for d in dirs for p in sorted(d.glob("*.json")) if p.name != "versions.json"]


def score(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        pred = predicted_peak(r)
        out.append(dict(case=f"{r['name']} B={r['batch']} P={r['prompt_tokens']} N={r['new_tokens']}",
                        device=r["device"], scored=scored(r), why=unscored(r),
                        runtime=RUNTIME_OF[r["attn_implementation"]], predicted=pred,
                        measured=r["measured_peak_bytes"], ratio=pred / r["measured_peak_bytes"]))
    return out


def main() -> None:
    rows = score(load([Path(a) for a in sys.argv[1:]]))
    for rt in sorted({r["runtime"] for r in rows}):
        sel = [r for r in rows if r["runtime"] == rt]
        print(f"\n{rt}\n| case | device | predicted (B) | measured (B) | predicted / measured |")
        print("|---|---|---:|---:|---:|")
        for r in sel:
            note = f" (not scored: {r['why']})" if r["why"] else ""
            print(f"| {r['case']} | {r['device']} | {r['predicted']:,} | {r['measured']:,} | {r['ratio']:.3f}{note} |")
        errs = [abs(1 - r["ratio"]) for r in sel if r["scored"]]
        print(f"\nmedian |1 - ratio| {statistics.median(errs):.1%}, worst {max(errs):.1%} ({len(errs)} cases scored)")


if __name__ == "__main__":
    main()
