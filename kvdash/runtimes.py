"""Runtime profiles: how the program that runs the model lays out its transient memory.

The same model and scenario peak differently under a serving engine and under Hugging Face's
`generate()`. A profile says what the runtime keeps alive while a layer runs; each layer kind then says
what its own mixer allocates under that profile (`LayerSpec.act_bytes`, `key_bytes`, `cache_spec`, `mask`, ...).

- `vllm`, `sglang`, `trtllm`: a serving engine. Fused (flash) attention that handles windows itself, no
  score matrix, no mask; at most `max_num_batched_tokens` tokens a step (the engine's default on the GPU,
  kvdash.engines), prompts split into chunks to fit it; the residual stream fused with the norms (residual
  + normed copy); a paged cache allocated up front; the sampler after the forward, on fp32 logits of the
  whole vocabulary gathered on every GPU.
- `static`: a static batch as kvdash's live decoder runs it: the whole batch's prompts in one forward,
  fused attention, the LM head on the last position.
- `hf-sdpa` / `hf-eager`: transformers' generate(), read in transformers 5.24 (modeling_llama,
  masking_utils, integrations/sdpa_attention, cache_utils) and checked with torch.profiler on the CPU
  (benchmarks/measure_peaks.py): the whole prompt in one forward; four residual-stream tensors alive in a
  layer (the embedding output, the layer's input, the residual, the normed copy); masks built once per
  forward for each mask kind; K/V repeated to every query head when a mask is passed or head sizes differ;
  a DynamicCache that grows by torch.cat (a layer's old K or V still exists while the new one is built).
  Eager attention holds the masked scores in the activation dtype and, for the softmax, an fp32 copy and
  the fp32 result (`softmax(x, dtype=float32)` converts first): activation bytes + 8 per score.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvdash.errors import KvdashError

FP32 = 4
INDEX = 8  # int64 expert ids (top-k; Hugging Face's sort of the (token, expert) pairs)


@dataclass(frozen=True)
class Runtime:
    key: str
    label: str
    hf: bool  # Hugging Face transformers (generate()), else a serving engine
    eager: bool  # scores materialised (eager attention) rather than a fused kernel
    hidden_copies: int  # residual-stream tensors of hidden_size alive while a layer runs
    summary: str
    engine: str = ""  # the serving engine (kvdash.engines) whose step budget, sampler and non-torch memory apply

    @property
    def whole_batch(self) -> bool:
        """Every prompt of the batch in one forward (no per-step token budget)."""
        return not self.engine

    def score_bytes(self, act_bytes: int) -> int:
        """Bytes per query-key score an eager softmax holds at once: the masked scores in the activation
        dtype, their fp32 copy and the fp32 softmax (transformers' eager_attention_forward)."""
        return act_bytes + 2 * FP32 if self.eager else 0

    def routed_expert_bytes(self, h: int, e: int, a: int, gated: bool = True) -> int:
        """Activation bytes per routed (token, expert) pair inside a mixture-of-experts block, `e` the expert's
        intermediate size on this GPU.
        Engines and the static batch: vLLM's fused-MoE workspace (fused_moe.fused_experts_impl, read at
        13cb3e44): intermediate_cache13 of max(gate-up width, hidden) values, reused for the down output,
        beside intermediate_cache2 of e values.
        Hugging Face (transformers 5's grouped_mm experts): the gathered input (h) beside the gate-up output
        (2e), its activation and the product (e each); then the input, the down output and two fp32 weighted
        copies (routing weights are fp32; the second copy restores the token order)."""
        if self.hf:
            return max((h + 4 * e) * a, h * (2 * a + 2 * FP32))
        return (max(2 * e if gated else e, h) + e) * a

    def routing_bytes(self, n_experts: int, k: int) -> int:
        """Bytes per token of the router: fp32 logits for every expert, top-k int64 ids and fp32 weights;
        Hugging Face also sorts the (token, expert) pairs (int64 values and a permutation, permuted weights)."""
        out = n_experts * FP32 + k * (INDEX + FP32)
        return out + k * (2 * INDEX + FP32) if self.hf else out

    def decode_expert_copy_bytes(self, k: int, expert_matrix_bytes: int) -> int:
        """Bytes per token in a decode step of copies of the routed experts' weights: generate() on a GPU decodes
        with batched_mm, which gathers each routed expert's gate-up and down matrices per token
        (gate_up_proj[expert_ids], then down_proj[...] while the first is still referenced); fused kernels read
        the weights in place."""
        return k * expert_matrix_bytes if self.hf else 0

    @property
    def cache_regrows(self) -> bool:
        """Hugging Face's DynamicCache grows by torch.cat: a layer's old K or V exists while the new one is built
        (engines and the static batch allocate their cache up front)."""
        return self.hf

    def norm_bytes_per_token(self, hidden: int) -> int:
        """An RMSNorm computed in fp32 (Hugging Face): the upcast copy and its square / normalised copy."""
        return 2 * FP32 * hidden if self.hf else 0

    def position_bytes_per_token(self, rotary_dim: int, a: int) -> int:
        """Hugging Face builds int64 position ids and the rotary cos and sin for every token of the forward."""
        return INDEX + 2 * rotary_dim * a if self.hf else 0

    def logits_bytes_per_seq(self, vocab_per_gpu: int, a: int) -> int:
        """A static batch's or generate()'s logits of the last position: the LM head's output in the activation
        dtype and its fp32 copy for sampling (an fp32 model's .float() is a no-op; generate() copies
        regardless). Engines count their sampler as a phase of the activation peak instead (kvdash.breakdown)."""
        if self.engine:
            return 0
        return vocab_per_gpu * (a + FP32 if self.hf or a < FP32 else a)

    def mask_bytes_per_pair(self, kinds: set[str], act_bytes: int) -> tuple[int, int, int]:
        """Bytes per (query, key) position for the masks of one forward, given the layers' mask kinds
        ("causal", "sliding", "chunked"): (per sequence for the whole forward, once for the batch for the
        whole forward, per sequence while a masked layer's attention runs).
        Eager: one additive float mask per kind and sequence, all alive for the forward
        (masking_utils.eager_mask). SDPA, unpadded batch: a causal mask is skipped (is_causal); each other
        kind keeps one bool mask broadcast over the batch, and inside each masked call torch makes an
        additive float mask for every sequence (convert_boolean_attn_mask).
        Engines: none (the kernels take windows and causality as parameters)."""
        if not self.hf or not kinds:
            return 0, 0, 0
        if self.eager:
            return len(kinds) * act_bytes, 0, 0
        masked = kinds - {"causal"}
        return 0, len(masked), act_bytes if masked else 0


_ENGINE = "fused attention, at most max_num_batched_tokens tokens a step, paged cache, sampler after the forward"
RUNTIMES = {
    "vllm": Runtime("vllm", "vLLM", hf=False, eager=False, hidden_copies=2, summary=_ENGINE, engine="vllm"),
    "sglang": Runtime("sglang", "SGLang", hf=False, eager=False, hidden_copies=2, summary=_ENGINE, engine="sglang"),
    "trtllm": Runtime("trtllm", "TensorRT-LLM", hf=False, eager=False, hidden_copies=2, summary=_ENGINE,
                      engine="trtllm"),
    "static": Runtime("static", "static batch (kvdash's live decoder)", hf=False, eager=False, hidden_copies=2,
                      summary="fused attention, the whole batch's prompts in one forward, logits of the last position"),
    "hf-sdpa": Runtime("hf-sdpa", "Hugging Face generate(), SDPA", hf=True, eager=False, hidden_copies=4,
                       summary="whole prompt at once, SDPA kernels, masks for windows, growing cache"),
    "hf-eager": Runtime("hf-eager", "Hugging Face generate(), eager attention", hf=True, eager=True,
                        hidden_copies=4, summary="whole prompt at once, B × heads × T × T scores in memory"),
}
DEFAULT_RUNTIME = "vllm"


def get_runtime(key: str) -> Runtime:
    try:
        return RUNTIMES[key]
    except (KeyError, TypeError):
        raise KvdashError(f"runtime must be one of {', '.join(RUNTIMES)}, not {key!r}") from None
