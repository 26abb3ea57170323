"""Hypothesis strategies: valid model descriptions and scenarios of every attention kind."""

from hypothesis import strategies as st

from kvdash.model import FULL, MLA, SLIDING, ModelSpec, decoder
from kvdash.scenario import Scenario


@st.composite
def models(draw, kinds=(FULL, SLIDING, MLA), moe=True) -> ModelSpec:
    n_layers = draw(st.integers(1, 10))
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([32, 64, 80, 128]))
    kind_list = tuple(draw(st.lists(st.sampled_from(kinds), min_size=n_layers, max_size=n_layers)))
    kw = {}
    if MLA in kind_list:
        kw.update(kv_lora_rank=draw(st.sampled_from([64, 512])), qk_rope_head_dim=draw(st.sampled_from([16, 64])),
                  qk_nope_head_dim=draw(st.sampled_from([32, 128])), q_lora_rank=draw(st.sampled_from([0, 256])))
    if SLIDING in kind_list:
        kw["sliding_window"] = draw(st.integers(1, 5000))
    if moe and draw(st.booleans()):
        n_exp = draw(st.integers(2, 16))
        kw.update(n_experts=n_exp, experts_per_token=draw(st.integers(1, n_exp)),
                  expert_intermediate_size=draw(st.sampled_from([128, 768])))
    return decoder(
        name="hypothesis",
        n_layers=n_layers,
        hidden_size=draw(st.sampled_from([256, 1024, 4096])),
        n_heads=heads,
        n_kv_heads=kv,
        head_dim=head_dim,
        vocab_size=draw(st.sampled_from([1000, 32000, 128256])),
        intermediate_size=draw(st.sampled_from([512, 4096, 11008])),
        layer_types=kind_list,
        tie_word_embeddings=draw(st.booleans()),
        qkv_bias=draw(st.booleans()),
        **kw,
    )


@st.composite
def scenarios(draw, max_tp: int = 1) -> Scenario:
    prompt = draw(st.integers(1, 20_000))
    runtime = draw(st.sampled_from(["vllm", "sglang", "trtllm", "static", "hf-sdpa", "hf-eager"]))
    return Scenario(
        batch=draw(st.integers(1, 64)),
        prompt_tokens=prompt,
        new_tokens=draw(st.integers(0, 5000)),
        weights_dtype=draw(st.sampled_from(["fp32", "bf16", "fp8", "int8", "int4"])),
        kv_dtype=draw(st.sampled_from(["fp32", "bf16", "fp8", "int8", "int4"])),
        block_size=draw(st.sampled_from([0, 0, 16, 32])),
        shared_prefix_tokens=draw(st.integers(0, prompt)),
        runtime=runtime,
        max_num_batched_tokens=draw(st.sampled_from([0, 512, 2048])) if runtime in ("vllm", "sglang", "trtllm") else 0,
    )


@st.composite
def hybrid_models(draw) -> ModelSpec:
    """Stacks mixing every layer kind: full, sliding, chunked, latent, cross-attention, state, none."""
    from kvdash.layers import (
        ChunkedLocal,
        CrossAttention,
        FullAttention,
        LatentAttention,
        NoCache,
        SlidingWindow,
        mamba2,
    )

    kv = draw(st.sampled_from([1, 2, 4]))
    heads, hd = 2 * kv * draw(st.sampled_from([1, 2])), draw(st.sampled_from([32, 64]))
    hidden = 512
    attn = dict(n_heads=heads, n_kv_heads=kv, head_dim=hd)
    pool = [
        FullAttention(**attn),
        SlidingWindow(**attn, window=draw(st.integers(1, 3000))),
        ChunkedLocal(**attn, chunk=draw(st.sampled_from([64, 256, 1024]))),
        CrossAttention(**attn, source_len=draw(st.integers(1, 2000))),
        LatentAttention(n_heads=heads, kv_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32),
        mamba2(hidden, 1024, 16, 4, 16, 2),
        NoCache(),
    ]
    n = draw(st.integers(1, 8))
    specs = tuple(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    return ModelSpec(name="hybrid", hidden_size=hidden, vocab_size=1000, intermediate_size=1024, layer_specs=specs)
