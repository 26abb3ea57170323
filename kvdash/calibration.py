"""Compare the speed model with measured live runs, and fit its efficiencies and overhead to them.

A live run (kvdash.live, stored as JSON) records its shape, the GPU it ran on, and the measured
prefill (TTFT) and decode (TPOT) times. Its decode step is the static-shape one, which reads every
cache slot, so it is predicted at the run's full context. Runs are grouped by how the decode step
was launched (eager, CUDA graph, torch.compile + graph): the per-layer overhead differs by an order
of magnitude between them, so each mode gets its own fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvdash.errors import KvdashError
from kvdash.gpus import load_gpus
from kvdash.model import ModelSpec, decoder
from kvdash.scenario import Scenario
from kvdash.speed import decode_step, prefill_step
from kvdash.step import IDEAL, RUNTIMES, StepCosts, calibrate


@dataclass(frozen=True)
class Measured:
    label: str
    mode: str  # eager | graph | compile
    model: ModelSpec
    scenario: Scenario
    gpu: object
    ttft_s: float
    tpot_s: float


def mode_of(run: dict) -> str:
    shape = run["shape"]
    if shape.get("compile"):
        return "compile"
    return "graph" if shape.get("graph") else "eager"


def from_run(run: dict, label: str = "") -> Measured:
    """A stored live-run result as something the speed model can predict."""
    s, gpu_id = run["shape"], run.get("catalog_gpu")
    gpus = load_gpus()
    if gpu_id not in gpus:
        raise KvdashError(f"run {label or run.get('created')}: its GPU {run['device']['name']!r} is not in the catalog")
    kinds = tuple(s["layer_types"])
    m = decoder(name=s["name"], n_layers=s["n_layers"], hidden_size=s["hidden_size"], n_heads=s["n_heads"],
                n_kv_heads=s["n_kv_heads"], head_dim=s["head_dim"], vocab_size=s["vocab_size"],
                intermediate_size=s["intermediate_size"], layer_types=kinds, sliding_window=s["sliding_window"],
                tie_word_embeddings=s["tie_word_embeddings"])
    dtype = "bf16" if run["device"]["dtype"] == "bfloat16" else "fp32"
    sc = Scenario(batch=s["batch"], prompt_tokens=s["prompt_tokens"], new_tokens=s["new_tokens"],
                  weights_dtype=dtype, kv_dtype=dtype, runtime="static")
    return Measured(label or run.get("created", ""), mode_of(run), m, sc, gpus[gpu_id],
                    run["measured"]["ttft_s"], run["measured"]["tpot_s"])


def predicted_tpot(x: Measured, p: StepCosts) -> float:
    return decode_step(x.model, x.scenario, x.gpu, p, context=x.scenario.context).seconds


def predicted_ttft(x: Measured, p: StepCosts) -> float:
    return prefill_step(x.model, x.scenario, x.gpu, p).seconds


def default_params(mode: str) -> StepCosts:
    return RUNTIMES["torch-eager"] if mode == "eager" else RUNTIMES["torch-graphs"]


def fit(runs: list[Measured]) -> dict[str, StepCosts]:
    """Per launch mode: memory efficiency and per-layer overhead fitted to the decode steps, then
    the compute efficiency fitted to the prefills (with that overhead)."""
    out = {}
    for mode in sorted({x.mode for x in runs}):
        group = [x for x in runs if x.mode == mode]
        samples = [(x.tpot_s, predicted_tpot(x, IDEAL), x.model.n_layers) for x in group]
        p = calibrate(samples, default_params(mode))
        effs = []
        for x in group:
            step = prefill_step(x.model, x.scenario, x.gpu, IDEAL)
            spare = x.ttft_s - prefill_step(x.model, x.scenario, x.gpu, p).overhead_s
            if step.compute_s >= step.memory_s and spare > 0:
                effs.append(step.compute_s / spare)
        if effs:
            p = replace(p, compute_eff=min(1.0, max(0.01, sum(effs) / len(effs))))
        out[mode] = p
    return out


def errors(runs: list[Measured], params: dict[str, StepCosts] | None = None) -> list[dict]:
    """Predicted vs measured for each run: with `params` per mode, or the defaults."""
    rows = []
    for x in runs:
        p = (params or {}).get(x.mode) or default_params(x.mode)
        tpot, ttft = predicted_tpot(x, p), predicted_ttft(x, p)
        rows.append({"run": x.label, "mode": x.mode, "tpot_measured_s": x.tpot_s, "tpot_predicted_s": tpot,
                     "tpot_error": tpot / x.tpot_s - 1, "ttft_measured_s": x.ttft_s, "ttft_predicted_s": ttft,
                     "ttft_error": ttft / x.ttft_s - 1})
    return rows
