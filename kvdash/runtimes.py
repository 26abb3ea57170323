"""Runtime profiles: how the program that runs the model lays out its transient memory.

The same model and scenario peak differently under a serving engine and under Hugging Face's
`generate()`. A profile says what the runtime keeps alive while a layer runs; each layer kind then says
what its own mixer allocates under that profile (`LayerSpec.act_bytes`, `key_bytes`, `cache_spec`, `mask`, ...).

- `engine`: vLLM / SGLang style. Fused (flash) attention that handles windows itself, no score matrix,
  no mask; prompts in chunks (the scenario's prefill chunk, e.g. max_num_batched_tokens); the residual
  stream fused with the norms (residual + normed copy); a paged cache allocated up front.
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


@dataclass(frozen=True)
class Runtime:
    key: str
    label: str
    hf: bool  # Hugging Face transformers (generate()), else a serving engine
    eager: bool  # scores materialised (eager attention) rather than a fused kernel
    hidden_copies: int  # residual-stream tensors of hidden_size alive while a layer runs
    summary: str

    def score_bytes(self, act_bytes: int) -> int:
        """Bytes per query-key score an eager softmax holds at once: the masked scores in the activation
        dtype, their fp32 copy and the fp32 softmax (transformers' eager_attention_forward)."""
        return act_bytes + 2 * FP32 if self.eager else 0

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


RUNTIMES = {
    "engine": Runtime("engine", "Serving engine (vLLM, SGLang)", hf=False, eager=False, hidden_copies=2,
                      summary="fused attention, prompt in chunks, paged cache"),
    "hf-sdpa": Runtime("hf-sdpa", "Hugging Face generate(), SDPA", hf=True, eager=False, hidden_copies=4,
                       summary="whole prompt at once, SDPA kernels, masks for windows, growing cache"),
    "hf-eager": Runtime("hf-eager", "Hugging Face generate(), eager attention", hf=True, eager=True,
                        hidden_copies=4, summary="whole prompt at once, B × heads × T × T scores in memory"),
}
DEFAULT_RUNTIME = "engine"


def get_runtime(key: str) -> Runtime:
    try:
        return RUNTIMES[key]
    except (KeyError, TypeError):
        raise KvdashError(f"runtime must be one of {', '.join(RUNTIMES)}, not {key!r}") from None
