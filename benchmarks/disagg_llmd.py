"""kvdash's disaggregated model against llm-d's published P/D run (issue #22): BENCHMARKS.md, "Disaggregated
serving against a published run".

The run, as llm-d publishes it (github.com/llm-d/llm-d, guides/pd-disaggregation): openai/gpt-oss-120b on 16 H200,
vLLM with the NixlConnector, block size 128, 8 prefill workers of tp 1 and 2 decode workers of tp 4
(modelserver/gpu/vllm/base/patch-prefill.yaml, patch-decode.yaml), 5,000 prompt + 250 output tokens at a
constant 45 requests/s for 120 s. Two reports of it:
- README.md @ 027a05326f3a2d2c344f9f4bcd009dd6c9b60c5d ("Benchmarking Report", GKE A3 Ultra, RoCE): 42.58
  requests/s served, mean TTFT 1.1568768 s, mean time per output token 5.698 ms; its aggregated baseline (16
  replicas of tp 1, "carried over from the original baseline measurement"): mean TTFT 532 ms, mean ITL 25 ms.
- benchmark-results/vllm-gpt-oss-120b-h200-multi-tier.md @ 3cfabd6a232bc9999b9cda114240a43e1b8c4f37 (vLLM
  v0.27.1, CoreWeave RDMA, "PD NIXL" arm): 44.27 requests/s, mean TTFT 0.518 s, mean latency 2.355 s, so a mean
  (2.355 - 0.518) / 249 = 7.38 ms per output token after the first.
llm-d calibrates a prefill worker of this fleet at 33,821 prompt tokens/s (`peakPrefillThroughput`, from the idle
TTFT of one chunk: its calibrate.sh).

Run: .venv/bin/python benchmarks/disagg_llmd.py
"""

import json
from dataclasses import replace
from pathlib import Path

from kvdash.disagg import disaggregated, md1_wait_s
from kvdash.gpus import get_gpu
from kvdash.hf_config import model_from_config
from kvdash.scenario import Scenario
from kvdash.traffic import at_rate

ROOT = Path(__file__).resolve().parent.parent
ISL, OSL = 5000, 250


def main() -> None:
    m = model_from_config(json.loads((ROOT / "tests/data/configs/gpt-oss-120b.json").read_text())["config"])
    h200 = get_gpu("nvidia-h200-sxm")
    base = Scenario(prompt_tokens=ISL, new_tokens=OSL, runtime="vllm", block_size=128,
                    moe_weights_dtype=m.experts_format)
    print("| run | rate served | measured TTFT | kvdash TTFT | error | measured TPOT | kvdash TPOT | error |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rate, ttft, tpot in (("README (GKE)", 42.58, 1.1568768, 5.698e-3),
                                   ("multi-tier, PD NIXL (vLLM v0.27.1)", 44.27, 0.518, (2.355 - 0.518) / 249)):
        d = disaggregated(m, replace(base, tp=1), replace(base, tp=4), h200, rate, ISL, OSL, 8, 2)
        print(f"| {name} | {rate:g}/s | {ttft * 1e3:,.0f} ms | {d.ttft_s * 1e3:,.0f} ms | {d.ttft_s / ttft - 1:+.0%} | "
              f"{tpot * 1e3:.2f} ms | {d.tpot_s * 1e3:.2f} ms | {d.tpot_s / tpot - 1:+.0%} |")
        print("|   parts |  |  | " + "; ".join(f"{n} {s * 1e3:,.1f} ms" for n, s, _ in d.terms())
              + f" (prefill load {d.prefill_load:.2f}; decode {d.decode.concurrency} in flight a worker) |||||")
    _, agg = at_rate(m, replace(base, tp=1), h200, 45.0 / 16, ISL, OSL)
    print(f"| aggregated baseline, 16 x tp1 at 45/s | | 532 ms | {agg.ttft_s * 1e3:,.0f} ms | "
          f"{agg.ttft_s / 0.532 - 1:+.0%} | 25 ms (ITL) | {agg.tpot_s * 1e3:.2f} ms | {agg.tpot_s / 0.025 - 1:+.0%} |")
    d = disaggregated(m, replace(base, tp=1), replace(base, tp=4), h200, 44.27, ISL, OSL, 8, 2)
    S = ISL / 33_821
    rho = 44.27 / 8 * S
    ttft = d.ttft_s - d.prefill_wait_s - d.prefill.service_s + md1_wait_s(rho, S) + S
    print(f"\nPrefill: kvdash {ISL / d.prefill.service_s:,.0f} prompt tokens/s a worker (S = "
          f"{d.prefill.service_s * 1e3:.1f} ms) against llm-d's calibrated 33,821 (S = {S * 1e3:.1f} ms). At llm-d's S "
          f"the M/D/1 queue at 44.27/s waits {md1_wait_s(rho, S) * 1e3:.0f} ms (load {rho:.2f}); with kvdash's "
          f"transfer and join, TTFT = {ttft * 1e3:.0f} ms against the measured 518 ms.")
    s = d.decode.step
    print(f"Decode step ({d.decode.concurrency} requests, tp 4): {d.decode.step_s * 1e3:.2f} ms = matrices "
          f"{s.gemm_s * 1e3:.2f} + experts {s.experts_s * 1e3:.2f} + attention {s.attention_s * 1e3:.2f} + all-reduces "
          f"{s.comm_s * 1e3:.2f} + overheads {s.overhead_s * 1e3:.2f} ms ({s.ceilings.source})")


if __name__ == "__main__":
    main()
