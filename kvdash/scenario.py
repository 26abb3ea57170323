"""An inference scenario: what runs, on how many GPUs, stored how."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvdash.dtypes import KV_DTYPES, get_dtype
from kvdash.engines import engine_facts
from kvdash.errors import KvdashError
from kvdash.model import ModelSpec
from kvdash.runtimes import DEFAULT_RUNTIME, get_runtime
from kvdash.units import MiB

#: CUDA context plus library workspaces, outside PyTorch's allocator. Measured with
#: torch.cuda.mem_get_info on an H100 SXM (PyTorch 2.11, CUDA 13, 2026-11): about 520 MiB;
#: an H200 showed about 620 MiB. A measured constant, not a formula.
DEFAULT_RUNTIME_OVERHEAD = 520 * MiB

MAX_TOKENS = 1 << 30  # a billion tokens of context: far past any model, small enough to be exact
MAX_BATCH = 1 << 24


@dataclass(frozen=True)
class Scenario:
    batch: int = 1  # concurrent sequences
    prompt_tokens: int = 1024
    new_tokens: int = 0  # generated tokens per sequence
    weights_dtype: str = "bf16"
    moe_weights_dtype: str = ""  # the routed experts' format; "" = as weights_dtype (gpt-oss: mxfp4 experts)
    kv_dtype: str = "bf16"
    tp: int = 1  # tensor-parallel degree
    pp: int = 1  # pipeline-parallel degree
    expert_parallel: bool = False  # routed experts split whole across the tp GPUs (vLLM's --enable-expert-parallel)
    block_size: int = 0  # paged KV blocks of this many tokens; 0 = contiguous, no rounding
    shared_prefix_tokens: int = 0  # prompt tokens common to every sequence, cached once
    runtime: str = DEFAULT_RUNTIME  # what runs the model (kvdash.runtimes): vllm, sglang, trtllm, static, hf-*
    # a serving engine's step: at most this many tokens, this many sequences at once; 0 = the engine's
    # default on the GPU (kvdash.engines; `resolved` fills them in)
    max_num_batched_tokens: int = 0
    max_num_seqs: int = 0
    runtime_overhead_bytes: int = DEFAULT_RUNTIME_OVERHEAD
    gpu_memory_utilization: float = 0.0  # a serving engine's share of the GPU; 0 = not set
    # speculative decoding (kvdash.speculative): k draft tokens a step (0: off), the tokens a step yields on average
    # (0: the sourced default for the drafter and k, where one exists), the drafter ("": the model's MTP modules;
    # "eagle", "eagle3": an EAGLE head; "draft": a draft model, the preset `spec_draft`) and an EAGLE-3 head's draft
    # vocabulary (0: the default)
    spec_tokens: int = 0
    spec_accepted: float = 0.0
    spec_method: str = ""
    spec_draft_vocab: int = 0
    spec_draft: str = ""

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("batch", 1, MAX_BATCH),
            ("prompt_tokens", 1, MAX_TOKENS),
            ("new_tokens", 0, MAX_TOKENS),
            ("tp", 1, 1024),
            ("pp", 1, 1024),
            ("block_size", 0, 1 << 20),
            ("shared_prefix_tokens", 0, MAX_TOKENS),
            ("max_num_batched_tokens", 0, MAX_TOKENS),
            ("max_num_seqs", 0, MAX_BATCH),
            ("runtime_overhead_bytes", 0, 1 << 50),
            ("spec_tokens", 0, 16),
        ):
            v = getattr(self, name)
            if type(v) is not int:
                raise KvdashError(f"{name} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise KvdashError(f"{name} = {v:,} is out of range ({lo:,} to {hi:,})")
        get_dtype(self.weights_dtype)
        if self.moe_weights_dtype:
            get_dtype(self.moe_weights_dtype)
        if not get_dtype(self.kv_dtype).kv:
            raise KvdashError(f"{self.kv_dtype} is a weight format; the KV cache takes one of {', '.join(KV_DTYPES)}")
        if not get_runtime(self.runtime).engine and (self.max_num_batched_tokens or self.max_num_seqs):
            raise KvdashError(f"max_num_batched_tokens and max_num_seqs are a serving engine's step limits; the "
                              f"{self.runtime} runtime runs the whole batch at once")
        if self.shared_prefix_tokens > self.prompt_tokens:
            raise KvdashError(
                f"shared_prefix_tokens ({self.shared_prefix_tokens:,}) cannot exceed "
                f"prompt_tokens ({self.prompt_tokens:,})"
            )
        a = self.spec_accepted
        if not isinstance(a, (int, float)) or isinstance(a, bool) or not (
                a == 0 or (self.spec_tokens and 1 <= a <= self.spec_tokens + 1)):
            raise KvdashError(f"a speculative step yields 1 to {self.spec_tokens + 1} tokens (0: the default), not "
                              f"{a!r}" if self.spec_tokens else "spec_accepted needs spec_tokens (draft tokens a step)")
        if self.spec_method not in ("", "mtp", "eagle", "eagle3", "draft") or (
                self.spec_method and not self.spec_tokens):
            raise KvdashError(f"speculate with mtp, eagle, eagle3 or draft and some draft tokens, not "
                              f"{self.spec_method!r}")
        if not isinstance(self.spec_draft, str) or bool(self.spec_draft) != (self.spec_method == "draft"):
            raise KvdashError("a draft model (spec_draft, a preset id) goes with spec_method draft, and only with it")
        if type(self.spec_draft_vocab) is not int or not 0 <= self.spec_draft_vocab <= 100_000_000 or (
                self.spec_draft_vocab and self.spec_method != "eagle3"):
            raise KvdashError(f"a draft vocabulary is an EAGLE-3 head's: 1 to 100,000,000 tokens, not "
                              f"{self.spec_draft_vocab!r}")
        if type(self.expert_parallel) is not bool:
            raise KvdashError(f"expert_parallel must be true or false, not {self.expert_parallel!r}")
        u = self.gpu_memory_utilization
        if not isinstance(u, (int, float)) or isinstance(u, bool) or not 0 <= u <= 1:
            raise KvdashError(f"gpu_memory_utilization must be between 0 and 1, not {u!r}")

    @property
    def context(self) -> int:
        """Tokens each sequence holds at the end: prompt plus generated."""
        return self.prompt_tokens + self.new_tokens

    @property
    def ep(self) -> int:
        """GPUs the routed experts are split across, whole: the tensor-parallel group under expert parallelism."""
        return self.tp if self.expert_parallel else 1

    @property
    def experts_dtype(self) -> str:
        return self.moe_weights_dtype or self.weights_dtype

    def with_(self, **changes) -> Scenario:
        return replace(self, **changes)

    @property
    def engine(self) -> str:
        """The serving engine that runs the scenario ("" for a static batch or Hugging Face)."""
        return get_runtime(self.runtime).engine

    def step_limits(self, gpu=None) -> tuple[int, int]:
        """(tokens one step processes at most, sequences it runs at once) as set, else the engine's defaults on
        `gpu` (without one: on its largest GPUs); (0, 0) for a runtime that runs the whole batch in one forward."""
        if not self.engine:
            return 0, 0
        tokens, seqs = engine_facts(self.engine).step_limits(gpu)
        tokens = self.max_num_batched_tokens or tokens
        seqs = self.max_num_seqs or seqs or MAX_BATCH  # 0: as many as the KV pool holds (SGLang)
        # vLLM caps max_num_seqs at max_num_batched_tokens (a step must fit one token of each)
        return tokens, min(seqs, tokens) if self.engine == "vllm" and not self.max_num_seqs else seqs

    def resolved(self, gpu) -> Scenario:
        """The scenario with the engine's step limits on `gpu` filled in where they are unset."""
        if not self.engine:
            return self
        tokens, seqs = self.step_limits(gpu)
        return replace(self, max_num_batched_tokens=tokens, max_num_seqs=seqs)


def check_parallel(m: ModelSpec, s: Scenario) -> None:
    """Reject tensor/pipeline degrees the engines refuse (vLLM's rules, each layer kind its own)."""
    for spec, _ in m.layer_groups:
        spec.check_tp(s.tp)
    if s.expert_parallel and (not m.n_experts or m.n_experts % s.tp):
        raise KvdashError(f"expert parallelism splits the routed experts across the {s.tp} GPUs: it needs a "
                          f"mixture-of-experts model whose expert count ({m.n_experts}) tp divides")
    if s.pp > m.n_layers:
        raise KvdashError(f"pp = {s.pp} exceeds the {m.n_layers} layers")
