"""The serving model on GPUs its overheads were not fitted on: AIConfigurator's measured aggregated runs on
H200, B200, B300 and GB200 (silicon_sample.csv of ai-dynamo/aiconfigurator, read in place where `fetch` put it;
never copied, never fitted or chosen on: BENCHMARKS.md's protocol for issue #19).

    python benchmarks/transfer.py GITDIR [--aic PREDICTIONS.csv] [--rows OUT.csv]

GITDIR is the fetched repository's git directory. An NVFP4 run of a mixture-of-experts model is sized as NVIDIA's
NVFP4 checkpoints store it, attention in bf16 (their hf_quant_config.json excludes every layer's self_attn:
nvidia/DeepSeek-R1-0528-NVFP4, GLM-4.7-NVFP4, MiniMax-M2.5-NVFP4; the FP4-v2 DeepSeek checkpoints quantize o_proj
as well); the CSV names only the base model.

Rows kept: aggregated serving, pipeline parallelism 1, no
attention data-parallelism, on a GPU other than the H100. A row is answered when kvdash sizes and times it
without refusing. `--aic` reads AIConfigurator's own predictions for the same rows (benchmarks/aic_baseline.py
writes them, run where aiconfigurator 0.12.0 is installed) and compares on the rows both answer.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from kvdash.errors import KvdashError  # noqa: E402
from kvdash.gpus import get_gpu  # noqa: E402
from kvdash.hf_config import model_from_config  # noqa: E402
from kvdash.scenario import Scenario  # noqa: E402
from kvdash.serving import serving  # noqa: E402
from kvdash.serving_fit import summary  # noqa: E402
from kvdash.serving_runs import kv_format  # noqa: E402

SAMPLE = "aic-core/src/aiconfigurator_core/systems/silicon_sample.csv"
CONFIGS = "aic-core/src/aiconfigurator_core/model_configs"
GPUS = {"h200_sxm": "nvidia-h200-sxm", "b200_sxm": "nvidia-b200-hgx", "b300_sxm": "nvidia-b300-hgx",
        "gb200": "nvidia-gb200", "gb300": "nvidia-gb300"}
FORMATS = {"fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4", "int4_wo": "int4"}
# the repository's config for a benchmarked name it does not keep under that name
ALIASES = {"zhipuai/GLM-5": "zai-org/GLM-5", "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
           "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B"}


def git(gitdir: str, *args) -> bytes:
    return subprocess.run(["git", "-C", gitdir, *args], check=True, capture_output=True).stdout


def transfer_rows(gitdir: str) -> pd.DataFrame:
    """The rows kept, each measurement once: the CSV lists some runs twice under two ids (a database dump and a
    dated collection: the same GPU, engine, model, load and TTFT and TPOT to the last digit)."""
    s = pd.read_csv(io.BytesIO(git(gitdir, "show", f"HEAD:{SAMPLE}")))
    keep = (s["mode"] == "agg") & s.system.isin(GPUS) & (s.pp_size == 1) & (s.attention_dp_size == 1)
    same = ["system", "backend", "model_path", "isl", "osl", "batch_size", "tp_size", "silicon_ttft_ms",
            "silicon_tpot_ms"]
    return s[keep].drop_duplicates(same).reset_index(drop=True)


def load_config(gitdir: str, model_path: str, cache: dict):
    name = ALIASES.get(model_path, model_path)
    if name not in cache:
        path = f"{CONFIGS}/{name.replace('/', '--')}_config.json"
        try:
            cache[name] = model_from_config(json.loads(git(gitdir, "show", f"HEAD:{path}")), name=model_path)
        except subprocess.CalledProcessError:
            cache[name] = KvdashError(f"no config {path} in the repository")
        except KvdashError as e:
            cache[name] = e
    return cache[name]


def predict(row, m) -> tuple[float, float]:
    weights = FORMATS.get(row.gemm_quant_mode, m.weights_format or "bf16")
    experts = FORMATS.get(row.moe_quant_mode, "") if m.n_experts else ""
    if weights == "nvfp4" and m.n_experts:  # NVIDIA's NVFP4 checkpoints of MoE models keep attention in bf16
        m = replace(m, weights_format="nvfp4", mixer_format="bf16")
    s = Scenario(tp=int(row.tp_size), weights_dtype=weights, moe_weights_dtype="" if experts == weights else experts,
                 expert_parallel=int(row.moe_ep_size) > 1, runtime=row.backend,
                 kv_dtype=kv_format(row.backend, str(row.gemm_quant_mode)))
    r = serving(m, s, get_gpu(GPUS[row.system]), int(row.batch_size), int(row.isl), int(row.osl))
    return r.ttft_s * 1e3, r.tpot_s * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gitdir")
    ap.add_argument("--aic", help="AIConfigurator's predictions (benchmarks/aic_baseline.py)")
    ap.add_argument("--rows", help="write every row's predictions to this CSV")
    args = ap.parse_args(argv)
    rows, cache, out = transfer_rows(args.gitdir), {}, []
    for row in rows.itertuples():
        m = load_config(args.gitdir, row.model_path, cache)
        ttft = tpot = None
        why = ""
        if isinstance(m, Exception):
            why = str(m).split("\n")[0][:80]
        else:
            try:
                ttft, tpot = predict(row, m)
            except KvdashError as e:
                why = str(e)[:80]
        out.append(dict(id=row.id, system=row.system, backend=row.backend, model=row.model_path, ttft_ms=ttft,
                        tpot_ms=tpot, measured_ttft_ms=row.silicon_ttft_ms, measured_tpot_ms=row.silicon_tpot_ms,
                        refused=why))
    res = pd.DataFrame(out)
    if args.rows:
        res.to_csv(args.rows, index=False)
    ok = res[res.ttft_ms.notna()]
    print(f"{len(res)} runs on {', '.join(sorted(res.system.unique()))}; kvdash answers {len(ok)}")
    print("\n| group | runs answered | TPOT median / p90 | TTFT median / p90 | TPOT signed median |")
    print("|---|---|---|---|---|")
    for label, sel in [("all", ok), *[(f"GPU {g}", ok[ok.system == g]) for g in sorted(ok.system.unique())],
                       *[(f"engine {e}", ok[ok.backend == e]) for e in sorted(ok.backend.unique())],
                       *[(f"model {x}", ok[ok.model == x]) for x in sorted(ok.model.unique())]]:
        tp = list(sel.tpot_ms / sel.measured_tpot_ms - 1)
        tt = list(sel.ttft_ms / sel.measured_ttft_ms - 1)
        print(f"| {label} | {len(sel)} | {summary(tp)} | {summary(tt)} | {statistics.median(tp) if tp else 0:+.1%} |")
    refused = res[res.ttft_ms.isna()].groupby(["model", "refused"]).size()
    if len(refused):
        print("\nnot answered:\n" + refused.to_string())
    if args.aic:
        aic = pd.read_csv(args.aic)
        both = ok.merge(aic[aic.aic_ttft_ms.notna()], on="id")
        print(f"\nAIConfigurator answers {int(aic.aic_ttft_ms.notna().sum())}; both answer {len(both)}")
        print("\n| on the rows both answer | TPOT median / p90 | TTFT median / p90 |\n|---|---|---|")
        for who, t, f in (("kvdash", "tpot_ms", "ttft_ms"), ("AIConfigurator 0.12.0", "aic_tpot_ms", "aic_ttft_ms")):
            print(f"| {who} | {summary(list(both[t] / both.measured_tpot_ms - 1))} | "
                  f"{summary(list(both[f] / both.measured_ttft_ms - 1))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
