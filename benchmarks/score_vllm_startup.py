"""kvdash's vLLM start-up budget against the public start-up logs in tests/data/vllm_logs (markdown table).

    python benchmarks/score_vllm_startup.py
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.startup import vllm_startup
from kvdash.units import GiB

LOGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "vllm_logs"


def main() -> None:
    print("| log | vLLM | preset | tp / pp | weights, kv | KV GiB logged | KV GiB kvdash | error | activation GiB "
          "logged / kvdash | tokens logged / kvdash |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    errors = []
    for path in sorted(LOGS.glob("*.json")):
        doc = json.loads(path.read_text())
        gpu = get_gpu(doc["gpu"])
        if doc["cuda_total_gib"]:
            gpu = replace(gpu, usable_bytes=int(doc["cuda_total_gib"] * GiB))
        for r in doc["runs"]:
            s = vllm_startup(preset_model(r["preset"]), gpu, utilization=r["utilization"], family=doc["vllm_family"],
                             max_model_len=r["max_model_len"], tp=r["tp"], pp=r["pp"],
                             weights_dtype=r["weights_dtype"], kv_dtype=r["kv_dtype"])
            log = r["logged"]
            err = s.rank0_kv_bytes / (log["kv_gib"] * GiB) - 1
            errors.append(abs(err))
            act = "–"
            if "activation_gib" in log:
                act = f"{log['activation_gib']:.2f} / {s.activation_peak_bytes / GiB:.2f}"
            note = " (explained)" if "why_not" in r else ""
            print(f"| [{r['log']}]({r['url']}) | {doc['vllm_version']} | {r['preset']} | {r['tp']} / {r['pp']} | "
                  f"{r['weights_dtype']}, {r['kv_dtype']} | {log['kv_gib']:.2f} | {s.rank0_kv_bytes / GiB:.2f} | "
                  f"{err:+.1%}{note} | {act} | {log['kv_tokens']:,} / {s.capacity.kv_cache_tokens:,} |")
    print(f"\n{len(errors)} runs: median |error| {statistics.median(errors):.2%}, worst {max(errors):.1%}")


if __name__ == "__main__":
    main()
