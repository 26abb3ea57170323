"""Shapes the live model runs: a few built-in sizes, or a scaled-down copy of any Llama-style model
(its layer shape kept, fewer layers). Pure: no torch here."""

from __future__ import annotations

from kvdash.errors import KvdashError
from kvdash.model import FULL, SLIDING, ModelSpec, attention_shape, decoder

SHAPES: dict[str, ModelSpec] = {
    "tiny": decoder(name="tiny (2 layers, 64 wide)", n_layers=2, hidden_size=64, n_heads=4, n_kv_heads=2,
                      head_dim=16, vocab_size=256, intermediate_size=128, tie_word_embeddings=True),
    "tiny-sliding": decoder(name="tiny sliding (window 8 on even layers)", n_layers=4, hidden_size=64,
                              n_heads=4, n_kv_heads=2, head_dim=16, vocab_size=256, intermediate_size=128,
                              tie_word_embeddings=True, layer_types=(SLIDING, FULL, SLIDING, FULL),
                              sliding_window=8),
    "small": decoder(name="small (12 layers, 768 wide, GQA 12/4)", n_layers=12, hidden_size=768, n_heads=12,
                       n_kv_heads=4, head_dim=64, vocab_size=32000, intermediate_size=2048,
                       tie_word_embeddings=True),
    "1b": decoder(name="Llama-3.2-1B shape (random weights)", n_layers=16, hidden_size=2048, n_heads=32,
                    n_kv_heads=8, head_dim=64, vocab_size=128256, intermediate_size=8192,
                    tie_word_embeddings=True, max_position_embeddings=131072),
}


def scaled_copy(m: ModelSpec, layers: int) -> ModelSpec:
    """The first `layers` layers of m (hybrid patterns kept), as a Llama-style block the live model
    runs: biases and QK-norm dropped; latent attention and experts are refused."""
    unsupported = sorted({spec.label for spec in m.layers if spec.live_window is None})
    if m.n_experts or unsupported:
        raise KvdashError(f"{m.name} uses {' and '.join(unsupported + ['experts'] * bool(m.n_experts))}, "
                          "which the live model does not run")
    if type(layers) is not int or not 1 <= layers <= m.n_layers:
        raise KvdashError(f"layers must be between 1 and {m.n_layers}")
    kinds = m.kinds[:layers]
    window = max(spec.live_window for spec in m.layers[:layers])  # 0: every kept layer is full
    attn = attention_shape(m)
    return decoder(
        name=f"{m.name}, first {layers} of {m.n_layers} layers",
        n_layers=layers, hidden_size=m.hidden_size, n_heads=attn.n_heads, n_kv_heads=attn.n_kv_heads,
        head_dim=attn.head_dim, vocab_size=m.vocab_size, intermediate_size=m.intermediate_size,
        layer_types=kinds if window else (), sliding_window=window,
        tie_word_embeddings=m.tie_word_embeddings, max_position_embeddings=m.max_position_embeddings,
    )


def nocache_positions(prompt: int, new: int, n: int) -> list[int]:
    """Positions at which a live run times the cacheless step: log-spaced from early in the text
    (recomputing grows with the prefix) to the last position."""
    last = prompt + new - 1
    lo = max(1, (last + 1) // 32)
    if last <= lo or n <= 1:
        return [last]
    return sorted({round(lo * (last / lo) ** (i / (n - 1))) for i in range(n)})


def estimate_run_seconds(spec: ModelSpec, batch: int, prompt: int, new: int, gpu, repeats: int = 5,
                         nocache_points: int = 6, dtype: str = "bf16") -> float:
    """Roughly how long a live run of this shape takes on `gpu` (a catalog row), from the speed model
    with the eager-PyTorch overhead (conservative): warm-up and timed prefills, the decode steps, and
    three cacheless forwards at each sampled position. The page uses it to keep runs under 30 s."""
    from kvdash.scenario import Scenario
    from kvdash.speed import RUNTIMES, decode_step, prefill_step

    p = RUNTIMES["torch-eager"]
    s = Scenario(batch=batch, prompt_tokens=prompt, new_tokens=new, weights_dtype=dtype, kv_dtype=dtype,
                 runtime="static")
    prefill = prefill_step(spec, s, gpu, p).seconds
    decode = decode_step(spec, s, gpu, p).seconds
    nocache = sum(4 * prefill_step(spec, s, gpu, p, tokens=pos + 1).seconds
                  for pos in nocache_positions(prompt, new, nocache_points))
    setup = 2.0 + 2 * spec.params / 100e9  # probe, and initialising the weights at ~100 GB/s
    return setup + (repeats + 1) * prefill + new * decode + nocache
