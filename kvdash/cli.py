"""`python -m kvdash` / `kvdash`: the sizing library from the command line.

    kvdash size (--preset NAME | --config FILE | --hub ID) [--batch B] [--context T] [--weights-dtype D]
        [--kv-dtype D] [--tp N] [--pp N] [--gpu ID] [--block-size N] [--runtime R] [--max-num-batched-tokens N]
        [--json] ...
    kvdash capacity (--preset NAME | --config FILE | --hub ID) (--kv-budget-gib X | --gpu ID
                    [--engine vllm|sglang|trtllm] [--gpu-memory-utilization U]) [--block-size 16]
        [--max-model-len L] [--tp N] [--kv-dtype D] [--json]
    kvdash speed (--preset NAME | --config FILE | --hub ID) --gpu ID [--batch B] [--context T] [--new-tokens N]
        [--tp N] [--engine vllm|sglang|trtllm|torch-graphs|torch-eager] [--json]
    kvdash serving (--preset NAME | --config FILE | --hub ID) --gpu ID --concurrency C --isl I --osl O [--tp N] [--ep N]
        [--weights-dtype D] [--moe-weights-dtype D] [--kv-dtype D] [--engine vllm|sglang|trtllm]
        [--max-num-batched-tokens N] [--json]
    kvdash plan (--preset NAME | --config FILE | --hub ID) --rate R --isl I --osl O --ttft-ms X --tpot-ms Y
        [--gpus ID,...] [--engine E] [--max-gpus N] [--weights-dtype D] [--json]
    kvdash presets | kvdash gpus

Bad input exits with status 2 and one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys

from kvdash.breakdown import breakdown
from kvdash.capacity import DEFAULT_BLOCK_SIZE, DEFAULT_MAX_NUM_BATCHED_TOKENS, gib_to_bytes, vllm_capacity
from kvdash.dtypes import DTYPES, KV_DTYPES
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu, load_gpus
from kvdash.hf_config import load_config_file, model_from_config
from kvdash.model import ModelSpec
from kvdash.presets import load_presets, preset_model
from kvdash.report import breakdown_dict, formulas
from kvdash.runtimes import DEFAULT_RUNTIME, RUNTIMES
from kvdash.scenario import Scenario
from kvdash.serving import serving
from kvdash.solvers import max_batch, max_context
from kvdash.speed import speed, step_costs
from kvdash.startup import DEFAULT_FAMILY, FAMILIES, engine_startup
from kvdash.step import RUNTIMES as STATIC_COSTS
from kvdash.units import fmt_bytes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + message by default)
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    print(f"kvdash: error: {message}", file=sys.stderr)
    return 2


def _model_args(p: argparse.ArgumentParser) -> None:
    _source_args(p)
    p.add_argument("--tp", type=int, default=1, metavar="N", help="tensor-parallel degree (default 1)")
    p.add_argument("--kv-dtype", default="bf16", choices=list(KV_DTYPES), help="KV-cache dtype (default bf16)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _source_args(p: argparse.ArgumentParser) -> None:
    """Where the model comes from: a preset, a config.json file or a Hub id (one of them)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", metavar="NAME", help="a preset id (see `kvdash presets`)")
    src.add_argument("--config", metavar="FILE", help="a Hugging Face config.json")
    src.add_argument("--hub", metavar="ID", help="a Hugging Face model id (owner/name[@revision]); reads its "
                                                 "config.json and safetensors headers; HF_TOKEN for gated models")


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights-dtype", metavar="D", help="format of the weight matrices: " + ", ".join(DTYPES)
                   + " (grouped formats take -gN); default: as the checkpoint stores them (its "
                   "quantization_config), else bf16")
    p.add_argument("--moe-weights-dtype", metavar="D", help="format of the routed experts (default: as the "
                   "checkpoint, else as --weights-dtype)")
    p.add_argument("--expert-parallel", action="store_true",
                   help="split the routed experts whole across the --tp GPUs (vLLM's --enable-expert-parallel)")


def _weight_formats(args, m: ModelSpec) -> dict:
    """--weights-dtype / --moe-weights-dtype, falling back to the checkpoint's formats."""
    w = args.weights_dtype or m.weights_format or "bf16"
    e = args.moe_weights_dtype or ("" if args.weights_dtype else m.experts_format)
    return {"weights_dtype": w, "moe_weights_dtype": "" if e == w else e, "expert_parallel": args.expert_parallel}


def _limit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-num-batched-tokens", type=int, default=0, metavar="N",
                   help="a serving engine's tokens per step (default: the engine's default for --gpu, else for its "
                        "largest GPUs)")
    p.add_argument("--max-num-seqs", type=int, default=0, metavar="N",
                   help="a serving engine's sequences per step (default: as the engine sets it)")
    _spec_args(p)


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec-tokens", type=int, default=0, metavar="K",
                   help="speculative decoding: K drafted tokens a step (default 0: none); the drafter's weights and "
                        "cache are counted")
    p.add_argument("--spec-method", choices=("mtp", "eagle", "eagle3", "draft"), default="",
                   help="the drafter: the model's multi-token-prediction modules (default), an EAGLE-1 or EAGLE-3 "
                        "head shaped like a dense, full-attention target's layer, or a draft model (--spec-draft)")
    p.add_argument("--spec-draft", default="", metavar="PRESET",
                   help="with --spec-method draft: the draft model, a preset id of the same vocabulary (vLLM only)")
    p.add_argument("--spec-accepted", type=float, default=0.0, metavar="T",
                   help="tokens a speculative step yields on average, 1 to K + 1 (defaults where a source measured "
                        "one: MTP 1.85 at K = 1, EAGLE 1.89 / 2.08 at K = 2 / 4, EAGLE-3 3.53 at K = 7, a draft model "
                        "2.79 / 3.12 at K = 3 / 4; other K need yours)")
    p.add_argument("--spec-draft-vocab", type=int, default=0, metavar="V",
                   help="an EAGLE-3 head's draft vocabulary (default 32,000, as published Llama heads)")


def _spec(args) -> dict:
    """The scenario's speculative-decoding fields from the command line."""
    return {"spec_tokens": args.spec_tokens, "spec_accepted": args.spec_accepted, "spec_method": args.spec_method,
            "spec_draft_vocab": args.spec_draft_vocab, "spec_draft": args.spec_draft}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kvdash", description="Inference memory of transformer models, exact to the byte.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    size = sub.add_parser("size", help="memory breakdown of a scenario")
    _model_args(size)
    size.add_argument("--batch", type=int, default=1, metavar="B", help="concurrent sequences (default 1)")
    size.add_argument("--context", type=int, default=1024, metavar="T",
                      help="tokens held per sequence (default 1024)")
    _weights_args(size)
    size.add_argument("--pp", type=int, default=1, metavar="N", help="pipeline-parallel degree (default 1)")
    size.add_argument("--gpu", metavar="ID", help="a GPU id (see `kvdash gpus`): adds fit and headroom")
    size.add_argument("--block-size", type=int, default=0, metavar="N",
                      help="paged KV blocks of N tokens (default: none, no rounding)")
    size.add_argument("--shared-prefix", type=int, default=0, metavar="T", help="prompt tokens cached once")
    size.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=list(RUNTIMES),
                      help="what runs the model: a serving engine (vllm, sglang, trtllm: fused attention, at most "
                           "max_num_batched_tokens a step), a static batch (kvdash's live decoder) or Hugging Face "
                           f"generate() with SDPA or eager attention; decides the activation peak (default "
                           f"{DEFAULT_RUNTIME})")
    _limit_args(size)
    size.add_argument("--units", default="GiB", choices=["GiB", "GB"], help="display units (default GiB)")

    cap = sub.add_parser("capacity", help="what vLLM reports at start-up: its KV budget, blocks and tokens")
    _model_args(cap)
    budget = cap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--kv-budget-gib", type=float, metavar="X",
                        help="KV-cache memory per GPU, in GiB (vLLM's 'Available KV cache memory')")
    budget.add_argument("--gpu", metavar="ID", help="compute the budget from scratch on this GPU (see `kvdash gpus`)")
    cap.add_argument("--engine", default="vllm", choices=list(ENGINES),
                     help="with --gpu: the engine whose start-up rule sizes the budget (default vllm)")
    cap.add_argument("--gpu-memory-utilization", type=float, metavar="U",
                     help="with --gpu: the engine's memory share: vLLM's gpu_memory_utilization (default: the "
                          "version's, 0.9 or 0.92), SGLang's mem_fraction_static (default: its rule for the GPU), "
                          "TensorRT-LLM's free_gpu_memory_fraction (default 0.9)")
    cap.add_argument("--max-num-seqs", type=int, metavar="N",
                     help="with --gpu: default as the engine sets it for the GPU")
    cap.add_argument("--enforce-eager", action="store_true", help="with --gpu: no CUDA graphs")
    cap.add_argument("--reserve-cuda-graphs", action="store_true",
                     help="with --gpu: vLLM estimates CUDA-graph memory before sizing the cache "
                          "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1)")
    cap.add_argument("--vllm-version", default=DEFAULT_FAMILY, choices=list(FAMILIES),
                     help=f"with --gpu: the vLLM release family (default {DEFAULT_FAMILY})")
    _weights_args(cap)
    cap.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE, metavar="N")
    cap.add_argument("--pp", type=int, default=1, metavar="N", help="pipeline-parallel degree (default 1)")
    cap.add_argument("--max-model-len", type=int, metavar="L", help="default: the model's max positions")
    cap.add_argument("--max-num-batched-tokens", type=int, metavar="N",
                     help="scheduler token budget per step (default: 8192 with --kv-budget-gib; with --gpu, "
                          "vLLM's default for that GPU)")

    spd = sub.add_parser("speed", help="roofline prediction of prefill and decode time")
    _model_args(spd)
    spd.add_argument("--gpu", required=True, metavar="ID", help="a GPU id (see `kvdash gpus`)")
    spd.add_argument("--batch", type=int, default=1, metavar="B", help="concurrent sequences (default 1)")
    spd.add_argument("--context", type=int, default=1024, metavar="T", help="prompt tokens (default 1024)")
    spd.add_argument("--new-tokens", type=int, default=256, metavar="N", help="generated tokens (default 256)")
    _weights_args(spd)
    spd.add_argument("--engine", default="vllm", choices=[*ENGINES, *STATIC_COSTS],
                     help="whose step costs time the steps: a serving engine's fitted profile (default vllm), or "
                          "kvdash's live decoder with CUDA graphs or eager PyTorch (first-principles defaults)")

    srv = sub.add_parser("serving", help="TTFT, TPOT and throughput of an engine at a concurrency")
    _model_args(srv)
    _weights_args(srv)
    srv.add_argument("--gpu", required=True, metavar="ID", help="a GPU id (see `kvdash gpus`)")
    srv.add_argument("--concurrency", type=int, required=True, metavar="C", help="requests in flight at all times")
    srv.add_argument("--isl", type=int, required=True, metavar="I", help="prompt tokens per request")
    srv.add_argument("--osl", type=int, required=True, metavar="O", help="output tokens per request")
    srv.add_argument("--ep", type=int, default=1, metavar="N",
                     help="expert parallelism: split the routed experts over N GPUs (N = --tp; default 1)")
    srv.add_argument("--engine", default="vllm", choices=list(ENGINES), help="engine profile (default vllm)")
    _limit_args(srv)

    pln = sub.add_parser("plan", help="the configurations that serve a request rate within TTFT and TPOT targets")
    _source_args(pln)
    load = pln.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, metavar="R", help="requests per second, steady (Poisson arrivals)")
    load.add_argument("--concurrency", type=int, metavar="C",
                      help="instead of a rate: C users, each sending its next request when the last one ends "
                           "(aggregated replicas only)")
    pln.add_argument("--isl", required=True, metavar="I",
                     help="prompt tokens per request: 1024, a uniform range 512-2048, or values with shares "
                          "512:0.7,4096:0.3 (planned at the mean; the longest must fit)")
    pln.add_argument("--osl", required=True, metavar="O", help="output tokens per request, as --isl")
    pln.add_argument("--burst", type=float, default=1.0, metavar="B",
                     help="size the pools for B x the rate, a peak to absorb within the targets (default 1); the "
                          "cost stays per the rate's tokens")
    pln.add_argument("--ttft-ms", type=float, required=True, metavar="X", help="time-to-first-token target")
    pln.add_argument("--tpot-ms", type=float, required=True, metavar="Y", help="time-per-output-token target")
    pln.add_argument("--gpus", metavar="ID,...", help="GPU ids to consider (default: those with measured kernels)")
    pln.add_argument("--engine", action="append", choices=list(ENGINES), help="engines to consider (default all)")
    pln.add_argument("--max-gpus", type=int, default=64, metavar="N", help="at most this many GPUs (default 64)")
    pln.add_argument("--weights-dtype", metavar="D",
                     help="one weight format (default: the checkpoint's and the lighter ones each GPU's tensor cores "
                          "run, fp8 and NVFP4)")
    pln.add_argument("--prefix-hit", type=float, default=0.0, metavar="H",
                     help="share of each prompt already in the prefix cache, 0 to 1 (default 0): its whole blocks "
                          "are held once and not prefilled")
    pln.add_argument("--price", action="append", metavar="GPU=USD",
                     help="your price per GPU-hour for a GPU id, repeatable (default: the lowest dated on-demand "
                          "price kvdash lists, data/gpu_prices.csv)")
    _spec_args(pln)
    pln.add_argument("--mode", choices=("both", "aggregated", "disaggregated"), default="both",
                     help="aggregated replicas (each prefills and decodes), disaggregated prefill and decode pools, "
                          "or both (default)")
    pln.add_argument("--kv-link-gbps", type=float, default=None, metavar="G",
                     help="GB/s one way per GPU that a prompt's cache crosses between pools (default 50: one "
                          "400 Gb/s network port per GPU)")
    pln.add_argument("--rank", choices=("cost", "gpus"), default="cost",
                     help="order: cost per million output tokens (default; unknown prices last) or fewest GPUs")
    pln.add_argument("--top", type=int, default=10, metavar="K", help="options to print (default 10)")
    pln.add_argument("--json", action="store_true", help="print one JSON object")

    sub.add_parser("presets", help="list the preset models")
    sub.add_parser("gpus", help="list the GPU catalog")
    return parser


def _load_model(args) -> ModelSpec:
    if args.preset:
        return preset_model(args.preset)
    if getattr(args, "hub", None):
        from kvdash.hub import load_checkpoint  # only this path talks to the network

        cp = load_checkpoint(args.hub)
        print(f"# {cp.summary()}", file=sys.stderr)
        return model_from_config(cp.config, name=cp.name)
    return model_from_config(load_config_file(args.config))


def _cmd_size(args) -> int:
    m = _load_model(args)
    s = Scenario(batch=args.batch, prompt_tokens=args.context, **_weight_formats(args, m),
                 kv_dtype=args.kv_dtype, tp=args.tp, pp=args.pp, block_size=args.block_size,
                 shared_prefix_tokens=args.shared_prefix, runtime=args.runtime,
                 max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
                 **_spec(args))
    gpu = get_gpu(args.gpu) if args.gpu else None
    b = breakdown(m, s, gpu)
    if args.json:
        out = breakdown_dict(b)
        if gpu is not None:
            out["max_batch"] = max_batch(m, s, gpu)
            out["max_context"] = max_context(m, s, gpu)
        print(json.dumps(out, indent=2))
        return 0
    u, s = args.units, b.scenario
    where = f"per GPU ({s.tp} x tensor, {s.pp} x pipeline; stage {b.stage.index})" if b.n_gpus > 1 else "one GPU"
    print(f"{m.name}: {m.params:,} parameters ({m.attention_label})")
    experts = f", experts {s.experts_dtype}" if s.experts_dtype != s.weights_dtype else ""
    print(f"batch {s.batch:,} x {s.context:,} tokens, weights {s.weights_dtype}{experts}, KV cache {s.kv_dtype}, "
          f"{where}")
    if s.engine:
        print(f"runtime {b.stage.runtime.label}: at most {s.max_num_batched_tokens:,} tokens and {s.max_num_seqs:,} "
              f"sequences a step ({engine_facts(s.engine).limits_basis(gpu)} unless set)")
    else:
        print(f"runtime {b.stage.runtime.label}: {b.stage.runtime.summary}")
    print(f"KV cache per token: {b.kv_bytes_per_token:,} B; fixed per sequence: {b.state_bytes_per_seq:,} B")
    for row in b.layer_summary():
        print(f"  {row['layers']:>4} x {row['label']:<28} {row['formula']}")
    for w in b.warnings:
        print(f"warning: {w}")
    print()
    width = max(len(c.label) for c in b.components)
    text = formulas(b)
    for c in b.components:
        print(f"  {c.label:<{width}}  {c.bytes:>18,} B  {fmt_bytes(c.bytes, u):>12}  {text[c.key]}")
    print(f"  {'Total':<{width}}  {b.total:>18,} B  {fmt_bytes(b.total, u):>12}")
    if gpu is not None:
        verdict = "fits" if b.fits else "does NOT fit"
        print(f"\n{gpu.name}: {fmt_bytes(gpu.usable_bytes, u)} usable ({gpu.usable_basis}): {verdict}, "
              f"headroom {fmt_bytes(b.headroom, u)}")
        print(f"largest batch at {s.context:,} tokens: {max_batch(m, s, gpu):,}; "
              f"longest context at batch {s.batch:,}: {max_context(m, s, gpu):,} tokens")
    return 0


def _cmd_capacity(args) -> int:
    m = _load_model(args)
    if args.gpu:
        return _startup(args, m)
    c = vllm_capacity(m, gib_to_bytes(args.kv_budget_gib), block_size=args.block_size,
                      max_model_len=args.max_model_len, tp=args.tp, pp=args.pp, kv_dtype=args.kv_dtype,
                      model_dtype=m.default_dtype,
                      max_num_batched_tokens=args.max_num_batched_tokens or DEFAULT_MAX_NUM_BATCHED_TOKENS)
    if args.json:
        print(json.dumps(c.to_dict(), indent=2))
        return 0
    print(f"{m.name}, KV budget {c.kv_budget_bytes:,} B ({args.kv_budget_gib} GiB) per GPU, "
          f"blocks of {c.block_size} tokens ({c.page_bytes:,} B per layer)")
    print(f"num_gpu_blocks = {c.kv_budget_bytes:,} // {c.page_bytes:,} // {c.group_size} layers = {c.gpu_blocks:,}")
    for line in c.log_lines():
        print(line)
    return 0


def _positive(name: str, v) -> int:
    if v is not None and (type(v) is not int or not 1 <= v <= 1 << 24):
        raise KvdashError(f"{name} must be an integer from 1 to 16,777,216, not {v!r}")
    return v or 0


def _startup(args, m: ModelSpec) -> int:
    s = Scenario(runtime=args.engine, tp=args.tp, pp=args.pp, kv_dtype=args.kv_dtype, **_weight_formats(args, m),
                 max_num_batched_tokens=_positive("max_num_batched_tokens", args.max_num_batched_tokens),
                 max_num_seqs=_positive("max_num_seqs", args.max_num_seqs))
    st = engine_startup(m, s, get_gpu(args.gpu), fraction=args.gpu_memory_utilization,
                        max_model_len=args.max_model_len, enforce_eager=args.enforce_eager,
                        reserve_cuda_graphs=args.reserve_cuda_graphs, family=args.vllm_version,
                        block_size=args.block_size)
    if args.json:
        print(json.dumps({"model": m.name, "gpu": args.gpu, **st.to_dict()}, indent=2))
        return 0
    label = st.family.label if st.family else engine_facts(args.engine).source
    print(f"{m.name} on {args.gpu}, {label}: per GPU")
    for term, b, how in st.terms():
        print(f"  {term:<16} {b:>17,} B  {b / 2**30:8.2f} GiB  {how}")
    for line in st.log_lines():
        print(line)
    for w in st.warnings:
        print(f"warning: {w}")
    return 0


def _cmd_speed(args) -> int:
    m = _load_model(args)
    runtime = args.engine if args.engine in ENGINES else "static"
    s = Scenario(batch=args.batch, prompt_tokens=args.context, new_tokens=args.new_tokens,
                 **_weight_formats(args, m), kv_dtype=args.kv_dtype, tp=args.tp, runtime=runtime)
    gpu = get_gpu(args.gpu)
    p = step_costs(args.engine)
    r = speed(m, s, gpu, p)
    if args.json:
        print(json.dumps(r.to_dict() | {"engine": p.name, "source": p.source, "memory_eff": p.memory_eff,
                                        "cache_eff": p.cache_eff, "compute_eff": p.compute_eff,
                                        "step_overhead_s": p.step_overhead_s, "layer_overhead_s": p.layer_overhead_s,
                                        "seq_overhead_s": p.seq_overhead_s}, indent=2))
        return 0
    print(f"{m.name} on {gpu.name} x {s.tp}: a static batch of {s.batch:,}, prompt {s.prompt_tokens:,}, "
          f"{s.new_tokens:,} new tokens; step costs {p.name} ({p.source})")
    print(f"  step time = {p.formula(gpu, s)}")
    for name, st in (("prefill", r.prefill), ("decode", r.decode)):
        print(f"  {name:<8} {st.seconds * 1e3:>10.3f} ms  {st.bound}-bound: {st.flops:,.0f} FLOP, {st.bytes:,.0f} B "
              f"(compute {st.compute_s * 1e3:.3f} ms, memory {st.memory_s * 1e3:.3f} ms, "
              f"overhead {st.overhead_s * 1e3:.3f} ms)")
    print(f"time to first token {r.ttft_s * 1e3:.2f} ms; time per output token {r.tpot_s * 1e3:.3f} ms; "
          f"{r.tokens_per_s:,.0f} tokens/s in aggregate; request end to end {r.e2e_s:.3f} s")
    knee = r.compute_bound_batch
    print(f"decode turns compute-bound at batch {knee:,}" if knee else
          "decode stays memory-bound at any batch at this context (the cache read grows with the batch)")
    return 0


def _cmd_serving(args) -> int:
    m = _load_model(args)
    if args.ep not in (1, args.tp):
        raise KvdashError(f"--ep {args.ep}: expert parallelism splits the experts over the --tp GPUs "
                          "(data-parallel attention is not modelled), so N must be 1 or the --tp degree")
    args.expert_parallel = args.ep > 1
    s = Scenario(batch=args.concurrency, prompt_tokens=args.isl, new_tokens=args.osl, **_weight_formats(args, m),
                 kv_dtype=args.kv_dtype, tp=args.tp, runtime=args.engine,
                 max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
                 **_spec(args))
    gpu = get_gpu(args.gpu)
    r = serving(m, s, gpu, args.concurrency, args.isl, args.osl)
    profile = r.profile
    fits = {"fits": r.fits, "max_concurrency_that_fits": r.running if not r.fits else None}
    if args.json:
        print(json.dumps(r.to_dict() | fits | {"gpu": gpu.id, "n_gpus": r.n_gpus, "warnings": r.warnings(gpu)},
                         indent=2))
        return 0
    print(f"{m.name} on {r.n_gpus} x {gpu.name}, {args.engine} ({profile.source}): {args.concurrency:,} requests of "
          f"{args.isl:,} + {args.osl:,} tokens in flight")
    print(f"KV pool {fmt_bytes(r.pool_bytes, 'GiB')} per GPU ({fmt_bytes(r.request_bytes, 'GiB')} per request; "
          f"`kvdash capacity --gpu {gpu.id} --engine {args.engine}` shows its terms); {r.running:,} requests run at "
          f"once; steps of at most {r.budget:,} tokens, {r.max_seqs:,} requests")
    print(r.cycle_text())
    print(f"  {'term':<12} {'decode step':>12} {'with prompts':>13}")
    for name, sec, mix, text in r.terms():
        print(f"  {name:<12} {sec * 1e3:>9.3f} ms {mix * 1e3:>10.3f} ms  {text}")
    print(f"TTFT {r.ttft_s * 1e3:,.1f} ms; TPOT {r.tpot_s * 1e3:,.2f} ms; request {r.request_latency_s:,.2f} s; "
          f"{r.tokens_per_s_per_gpu:,.0f} tokens/s per GPU, {r.tokens_per_s_per_user:,.1f} per user")
    for w in r.warnings(gpu):
        print(f"warning: {w}")
    if not r.fits:
        print(f"does NOT fit: {r.limited_by} lets {r.running:,} of the {args.concurrency:,} requests run at once; "
              f"the others queue, {r.wait_s:,.1f} s each on average (in the TTFT)")
    return 0


def _cmd_plan(args) -> int:
    from dataclasses import asdict

    from kvdash.disagg import DEFAULT_LINK_GBPS
    from kvdash.plan import MODES, default_gpus, plan
    from kvdash.prices import parse_overrides
    from kvdash.traffic import parse_lengths

    m = _load_model(args)
    catalog = load_gpus()
    gpus = [get_gpu(g.strip()) for g in args.gpus.split(",")] if args.gpus else default_gpus(catalog)
    if not 0 <= args.prefix_hit <= 1:
        raise KvdashError(f"--prefix-hit is a share of the prompt, 0 to 1, not {args.prefix_hit:g}")
    isl_d, osl_d = parse_lengths(args.isl, "--isl"), parse_lengths(args.osl, "--osl")
    args.isl, args.osl = isl_d.planned, osl_d.planned
    varies = len(isl_d.values) > 1 or len(osl_d.values) > 1
    prefix = int(args.prefix_hit * args.isl)
    options, left_out = plan(m, args.rate or 0.0, args.isl, args.osl, args.ttft_ms / 1e3, args.tpot_ms / 1e3, gpus,
                             engines=tuple(args.engine or ENGINES), weights_dtype=args.weights_dtype,
                             max_gpus=args.max_gpus, prefix_tokens=prefix, prices=parse_overrides(args.price),
                             rank=args.rank, **_spec(args),
                             modes=MODES if args.mode == "both" else (args.mode,),
                             link_gbps=DEFAULT_LINK_GBPS if args.kv_link_gbps is None else args.kv_link_gbps,
                             burst=args.burst, longest=(isl_d.longest, osl_d.longest) if varies else (0, 0),
                             users=args.concurrency or 0)
    if args.json:
        print(json.dumps({"options": [asdict(o) | {"gpus": o.gpus, "layout": o.layout} for o in options],
                          "left_out": left_out}, indent=2))
        return 0 if options else 1
    cached = f" ({prefix:,} of each prompt in the prefix cache)" if prefix else ""
    if args.concurrency:
        args.mode = "aggregated"  # a fixed concurrency plans aggregated replicas (kvdash.plan)
    link = ("" if args.mode == "aggregated" else
            f"; disaggregated pools move each prompt's cache at {args.kv_link_gbps or DEFAULT_LINK_GBPS:g} GB/s a GPU"
            + ("" if args.kv_link_gbps else " (assumed: one 400 Gb/s port per GPU; --kv-link-gbps sets yours)"))
    lengths = (f" (prompts {isl_d.text()}, outputs {osl_d.text()}: planned at the means; the longest fits)"
               if varies else "")
    burst = f", pools sized for {args.burst:g} x that" if args.burst != 1 else ""
    load = f"{args.rate:,g} requests/s" if args.rate else f"{args.concurrency:,} users in a closed loop"
    print(f"{m.name}: {load}{burst} of {args.isl:,} + {args.osl:,} tokens{lengths}{cached}, "
          f"TTFT <= {args.ttft_ms:,g} ms, TPOT <= {args.tpot_ms:,g} ms; "
          f"{args.mode.replace('both', 'aggregated or disaggregated')} serving" + link
          + (f"; speculating {args.spec_tokens} tokens a step with "
             + {"": "its MTP modules", "mtp": "its MTP modules", "eagle": "an EAGLE head",
                "eagle3": "an EAGLE-3 head", "draft": f"the draft model {args.spec_draft}"}[args.spec_method]
             if args.spec_tokens else "")
          + "; cost: the GPUs' on-demand bill over the tokens served")
    if not options:
        print(f"no configuration of {len(left_out):,} meets the targets on at most {args.max_gpus:,} GPUs")
        return 1
    print(f"  {'GPUs':>5}  {'GPU':<30} {'engine':<7} {'pools (workers x tp)':<32} {'weights':<9} {'KV':<5} "
          f"{'in flight':>9} {'TTFT ms':>8} {'TPOT ms':>8} {'$/GPU-h':>8} {'$/M out':>8}")
    for o in options[:args.top]:
        price = (f"{o.usd_per_gpu_hour:>8.2f} {o.usd_per_m_output:>8.3f}" if o.usd_per_gpu_hour is not None
                 else f"{'?':>8} {'?':>8}")
        print(f"  {o.gpus:>5}  {o.gpu:<30} {o.engine:<7} {o.layout:<32} {o.weights_dtype:<9} {o.kv_dtype:<5} "
              f"{o.concurrency:>9} {o.ttft_s * 1e3:>8.1f} {o.tpot_s * 1e3:>8.2f} {price}")
    print("  (in flight: requests per replica, or per decode worker)")
    print(f"({len(options):,} options meet the targets; {len(left_out):,} configurations do not, --json lists why)")
    return 0


def _cmd_presets(args) -> int:
    for p in load_presets().values():
        m = p.model
        print(f"{p.id:<18} {m.params / 1e9:>8.2f} B params  {m.attention_label}")
    return 0


def _cmd_gpus(args) -> int:
    for g in load_gpus().values():
        print(f"{g.id:<30} {fmt_bytes(g.usable_bytes, 'GiB'):>12}  {g.bandwidth_gbps:>7,.0f} GB/s  {g.name}")
    return 0


_COMMANDS = {"size": _cmd_size, "capacity": _cmd_capacity, "speed": _cmd_speed, "serving": _cmd_serving,
             "plan": _cmd_plan, "presets": _cmd_presets,
             "gpus": _cmd_gpus}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    except KvdashError as e:
        return _fail(str(e))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
