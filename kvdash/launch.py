"""The command that starts a serving engine as kvdash sized it: every flag that decides its memory, taken from
the scenario, and, as notes, what a flag cannot say (a weight format the engine cannot make at load time, a
length beyond the trained context).

Flags as the engines document them: vLLM's `vllm serve` (engine/arg_utils.py; VLLM_ALLOW_LONG_MAX_MODEL_LEN
lifts its refusal of a max_model_len beyond the config's), SGLang's `python -m sglang.launch_server`
(server_args.py; `--quantization fp8` quantizes a 16-bit checkpoint at load time, `--kv-cache-dtype fp8_e4m3`;
SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN), TensorRT-LLM's `trtllm-serve` (its KV-cache dtype and block size
live in the YAML given to --extra_llm_api_options).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from kvdash.model import ModelSpec
from kvdash.scenario import Scenario

_SIXTEEN = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class _Flags:
    command: tuple[str, ...]  # up to the model id
    tp: str
    pp: str
    ep: str | None  # None: expert parallelism is --ep-size = tp
    share: str
    length: str
    block: str | None
    tokens: str
    seqs: str
    kv: str | None
    kv_fp8: str
    quantize: str | None  # the flag that quantizes 16-bit weights to fp8 at load time
    dtype: str | None
    long_env: str | None


FLAGS = {
    "vllm": _Flags(("vllm", "serve"), "--tensor-parallel-size", "--pipeline-parallel-size", "--enable-expert-parallel",
                   "--gpu-memory-utilization", "--max-model-len", "--block-size", "--max-num-batched-tokens",
                   "--max-num-seqs", "--kv-cache-dtype", "fp8", "--quantization", "--dtype",
                   "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"),
    "sglang": _Flags(("python", "-m", "sglang.launch_server", "--model-path"), "--tp-size", "--pp-size", None,
                     "--mem-fraction-static", "--context-length", "--page-size", "--chunked-prefill-size",
                     "--max-running-requests", "--kv-cache-dtype", "fp8_e4m3", "--quantization", "--dtype",
                     "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"),
    "trtllm": _Flags(("trtllm-serve",), "--tp_size", "--pp_size", None, "--kv_cache_free_gpu_memory_fraction",
                     "--max_seq_len", None, "--max_num_tokens", "--max_batch_size", None, "fp8", None, None, None),
}


# Speculative decoding, k drafted tokens a step, as each engine takes it: vLLM's --speculative-config (method "mtp",
# "eagle" or "eagle3", an EAGLE head's repository as "model"; docs features/speculative_decoding), SGLang's EAGLE
# worker over the NextN weights or an EAGLE head (--speculative-algorithm EAGLE / EAGLE3 with
# --speculative-draft-model-path; server_args.py), one draft token per step (top-k 1, a chain), TensorRT-LLM in its
# YAML (a note)
HEAD = "<eagle-head-repo>"  # the EAGLE head's repository: the user's to name


def _speculative(engine: str, method: str, k: int, draft_id: str = "") -> list[tuple[str, ...]]:
    if engine == "vllm" and method == "draft":  # a draft model: method "draft_model" (config/speculative.py)
        return [("--speculative-config", json.dumps({"method": "draft_model", "model": draft_id,
                                                     "num_speculative_tokens": k}))]
    if engine == "vllm":
        config = {"method": method, **({"model": HEAD} if method != "mtp" else {}), "num_speculative_tokens": k}
        return [("--speculative-config", json.dumps(config))]
    if engine == "sglang":
        head = [("--speculative-draft-model-path", HEAD)] if method != "mtp" else []
        return [("--speculative-algorithm", "EAGLE3" if method == "eagle3" else "EAGLE"), *head,
                ("--speculative-num-steps", str(k)), ("--speculative-eagle-topk", "1"),
                ("--speculative-num-draft-tokens", str(k + 1))]
    return []


@dataclass(frozen=True)
class Launch:
    env: tuple[str, ...]
    head: tuple[str, ...]  # the command and the model id
    flags: tuple[tuple[str, ...], ...]  # each flag with its value
    notes: tuple[str, ...]  # what the command does not do as kvdash sized it, and why

    @property
    def argv(self) -> tuple[str, ...]:
        return (*self.head, *(a for flag in self.flags for a in flag))

    def text(self) -> str:
        """The shell command, one flag and its value per line."""
        lines = [" ".join(shlex.quote(a) for a in (*self.env, *self.head)),
                 *(" ".join(shlex.quote(a) for a in flag) for flag in self.flags)]
        return " \\\n    ".join(lines)


def launch(model: ModelSpec, s: Scenario, engine: str, model_id: str, *, utilization: float, max_model_len: int,
           block_size: int, max_num_batched_tokens: int, max_num_seqs: int) -> Launch:
    """The `engine` command serving `model_id` as scenario `s` is sized (its tp, pp, expert parallelism,
    weight and KV formats) with the engine settings given (max_num_seqs 0: the engine's own, no flag)."""
    f = FLAGS[engine]
    flags: list[tuple[str, ...]] = [(f.tp, str(s.tp))]
    env, notes, yaml = [], [], {}  # yaml: TensorRT-LLM's kv_cache_config entries
    if s.pp > 1:
        flags.append((f.pp, str(s.pp)))
    if s.expert_parallel:
        flags.append((f.ep,) if f.ep else (f.tp.replace("tp", "ep"), str(s.tp)))
    flags += [(f.share, f"{utilization:g}"), (f.length, str(max_model_len))]
    trained = model.max_position_embeddings
    if trained and max_model_len > trained:
        notes.append(f"{max_model_len:,} tokens exceed the {trained:,} the model was trained for: the engine refuses "
                     "them unless told otherwise" + (f" ({f.long_env})" if f.long_env else "") +
                     ", and answers past the trained length are not guaranteed")
        if f.long_env:
            env.append(f.long_env)
    if s.context > max_model_len:
        notes.append(f"the scenario's sequences ({s.context:,} tokens, prompt and generated) are longer than "
                     f"{max_model_len:,}: the engine would reject them")
    if f.block:
        flags.append((f.block, str(block_size)))
    else:
        yaml["tokens_per_block"] = str(block_size)
    flags.append((f.tokens, str(max_num_batched_tokens)))
    if max_num_seqs:  # 0: the engine's own (SGLang: as many as the pool holds)
        flags.append((f.seqs, str(max_num_seqs)))
    _weights(model, s, f, flags, notes)
    if s.kv_dtype == "fp8":
        if f.kv:
            flags.append((f.kv, f.kv_fp8))
        else:
            yaml["dtype"] = "fp8"
    elif s.kv_dtype != _kv_default(model, s):
        notes.append(f"a {s.kv_dtype} KV cache: the engine keeps it in the model's dtype ({_kv_default(model, s)}) "
                     "or fp8, not in this format")
    if yaml:
        notes.append("in the YAML file given to --extra_llm_api_options: kv_cache_config: {"
                     + ", ".join(f"{k}: {v}" for k, v in yaml.items()) + "}")
    if s.spec_tokens:
        method = s.spec_method or "mtp"
        draft_id = ""
        if method == "draft":
            from kvdash.presets import load_presets

            draft_id = load_presets()[s.spec_draft].hf_id
        flags += _speculative(engine, method, s.spec_tokens, draft_id)
        if engine == "trtllm" and method == "mtp":
            notes.append("in the same YAML file: speculative_config: {decoding_type: MTP, num_nextn_predict_layers: "
                         f"{s.spec_tokens}}}")
        elif engine == "trtllm":
            notes.append(f"an {method.upper()} head goes in the same YAML file's speculative_config (kvdash has not "
                         "read TensorRT-LLM's keys for it: see its speculative-decoding docs)")
        if method in ("eagle", "eagle3"):
            notes.append(f"{HEAD}: the {method.upper()} head's repository, trained for this model")
    return Launch(tuple(env), (*f.command, model_id), tuple(flags), tuple(notes))


def _kv_default(model: ModelSpec, s: Scenario) -> str:
    """The KV cache's dtype when no flag sets it: the dtype the weights compute in."""
    return s.weights_dtype if s.weights_dtype in _SIXTEEN else model.default_dtype


def _weights(model: ModelSpec, s: Scenario, f: _Flags, flags: list, notes: list) -> None:
    """The flag that makes the engine hold the weights as sized, or a note where none can."""
    stored = model.weights_format or model.default_dtype
    want = s.weights_dtype
    if want != stored:
        if want in _SIXTEEN and stored in _SIXTEEN:
            if f.dtype:
                flags.append((f.dtype, _SIXTEEN[want]))
            else:
                notes.append(f"weights in {want}: the engine computes in the checkpoint's {stored}")
        elif want == "fp8" and stored in _SIXTEEN and f.quantize:
            flags.append((f.quantize, "fp8"))  # quantized at load time, one scale per tensor
        else:
            notes.append(f"weights in {want}: the engine loads what the checkpoint stores ({stored}); serve a "
                         f"checkpoint saved in {want} (kvdash sized {want})")
    if s.moe_weights_dtype and s.moe_weights_dtype != (model.experts_format or stored):
        notes.append(f"routed experts in {s.moe_weights_dtype}: the engine loads what the checkpoint stores "
                     f"({model.experts_format or stored}); serve a checkpoint saved that way")


# Disaggregated prefill and decode as each engine takes it (read 2026-12): vLLM's NixlConnector
# (docs/features/nixl_connector_usage.md: --kv-transfer-config, VLLM_NIXL_SIDE_CHANNEL_HOST, and the proxy
# tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, which sends each prompt to a prefiller with
# max_tokens 1, then streams the answer from a decoder), SGLang's --disaggregation-mode with the NIXL transfer
# backend and sglang_router's --pd-disaggregation (server_args.py, docs/advanced_features/pd_disaggregation.md),
# TensorRT-LLM's `trtllm-serve disaggregated` over a YAML (examples/disaggregated/README.md)
_NIXL = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})
ROLES = ("prefill", "decode")


def pool_launch(base: Launch, engine: str, role: str) -> Launch:
    """`base` (launch() for one pool's scenario) as a worker of that pool."""
    if role not in ROLES:
        raise ValueError(role)
    if engine == "vllm":
        return Launch(("VLLM_NIXL_SIDE_CHANNEL_HOST=$THIS_HOST_IP", *base.env), base.head,
                      (*base.flags, ("--kv-transfer-config", _NIXL)), base.notes)
    if engine == "sglang":
        return Launch(base.env, base.head, (*base.flags, ("--disaggregation-mode", role),
                                            ("--disaggregation-transfer-backend", "nixl")), base.notes)
    return Launch(base.env, base.head, base.flags, (*base.notes, "in the same YAML file: cache_transceiver_config: "
                                                    "{backend: DEFAULT} (NIXL)" + ("; disable_overlap_scheduler: "
                                                    "true" if role == "prefill" else "")))


def router_command(engine: str, prefill_workers: int, decode_workers: int) -> str:
    """The front end that sends each request to a prefill worker, then to a decode worker (one address per worker:
    PREFILL_1..P, DECODE_1..D)."""
    pre = [f"PREFILL_{i}" for i in range(1, prefill_workers + 1)]
    dec = [f"DECODE_{i}" for i in range(1, decode_workers + 1)]
    if engine == "vllm":
        return ("python tests/v1/kv_connector/nixl_integration/toy_proxy_server.py --port 8000 \\\n    "
                f"--prefiller-hosts {' '.join(pre)} --prefiller-ports {' '.join(['8000'] * len(pre))} \\\n    "
                f"--decoder-hosts {' '.join(dec)} --decoder-ports {' '.join(['8000'] * len(dec))}")
    if engine == "sglang":
        return ("python -m sglang_router.launch_router --pd-disaggregation --port 8000 \\\n    "
                + " ".join(f"--prefill http://{p}:30000" for p in pre) + " \\\n    "
                + " ".join(f"--decode http://{d}:30000" for d in dec))
    return ("trtllm-serve disaggregated -c disagg_config.yaml  # context_servers: {num_instances: "
            f"{prefill_workers}, urls: [{', '.join(f'{p}:8000' for p in pre)}]}}, generation_servers: "
            f"{{num_instances: {decode_workers}, urls: [{', '.join(f'{d}:8000' for d in dec)}]}}")
