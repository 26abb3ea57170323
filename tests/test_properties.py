"""Properties that must hold for any architecture and scenario (hypothesis)."""

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kvdash.breakdown import breakdown
from kvdash.model import FULL, MLA, SLIDING, attention_shape
from kvdash.params import layer_params
from kvdash.scenario import MAX_BATCH, MAX_TOKENS
from kvdash.solvers import max_batch, max_context, total_bytes_fn
from kvdash.sweep import total_grid

from .strategies import hybrid_models, models, scenarios

SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(models(), scenarios(), st.integers(1, 50), st.integers(1, 5000))
def test_memory_grows_with_batch_and_context(m, s, extra_batch, extra_tokens):
    base = breakdown(m, s)
    more_batch = breakdown(m, s.with_(batch=s.batch + extra_batch))
    longer = breakdown(m, s.with_(prompt_tokens=s.prompt_tokens + extra_tokens))
    assert more_batch["kv_cache"] >= base["kv_cache"] and more_batch.total >= base.total
    assert longer["kv_cache"] >= base["kv_cache"] and longer.total >= base.total


@SETTINGS
@given(models(kinds=(FULL, SLIDING)), scenarios())
def test_gqa_never_exceeds_mha(m, s):
    mha = m.map_layers(lambda spec: spec.with_kv_heads(None))  # as many K/V heads as query heads
    assert breakdown(m, s)["kv_cache"] <= breakdown(mha, s)["kv_cache"]


@SETTINGS
@given(models(kinds=(FULL, SLIDING)), scenarios())
def test_sliding_never_exceeds_full(m, s):
    full = m.map_layers(lambda spec: spec.as_full())
    assert breakdown(m, s)["kv_cache"] <= breakdown(full, s)["kv_cache"]


@SETTINGS
@given(models(kinds=(FULL, SLIDING, MLA), moe=True), scenarios(), st.sampled_from([2, 4, 8]))
def test_tensor_parallel_shards_add_up(m, s, tp):
    # Make every split exact: tp divides the KV heads, the vocabulary and the MLP widths.
    attn = attention_shape(m)
    kv = max(getattr(attn, "n_kv_heads", attn.n_heads), tp) // tp * tp
    m = m.map_layers(lambda spec: replace(spec, n_heads=2 * kv, **({"n_kv_heads": kv} if hasattr(spec, "n_kv_heads")
                                                                   else {})))
    m = replace(m, vocab_size=m.vocab_size * tp, intermediate_size=m.intermediate_size * tp,
                expert_intermediate_size=m.expert_intermediate_size * tp)
    s = s.with_(shared_prefix_tokens=0)
    one, shard = breakdown(m, s), breakdown(m, s.with_(tp=tp))
    mla_layers = m.count(MLA)
    if not mla_layers:  # standard caches split exactly; latent caches are replicated
        assert shard["kv_cache"] * tp == one["kv_cache"]
    # Weight matrices split exactly, except MLA's down-projections, which every GPU holds whole.
    mla = next((spec for spec in m.layers if spec.kind == MLA), None)
    replicated = mla_layers * m.hidden_size * (mla.q_lora_rank + mla.kv_lora_rank + mla.qk_rope_head_dim) if mla else 0
    whole = sum(p.linear for p in layer_params(m, 1))
    assert tp * sum(p.linear for p in layer_params(m, tp)) == whole + (tp - 1) * replicated


@settings(max_examples=100, deadline=None)
@given(st.one_of(models(), hybrid_models()), scenarios(), st.data())
def test_sweep_equals_breakdown(m, s, data):
    batches = sorted(set(data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=5))))
    prompts = sorted(set(data.draw(st.lists(st.integers(s.shared_prefix_tokens or 1, 30_000), min_size=1,
                                            max_size=5))))
    grid = total_grid(m, s, batches, prompts)
    for i, b in enumerate(batches):
        for j, p in enumerate(prompts):
            assert int(grid[i, j]) == breakdown(m, s.with_(batch=b, prompt_tokens=p)).total
    assert grid.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(models(), scenarios(), st.sampled_from(["nvidia-rtx-4090", "nvidia-h100-sxm5", "amd-mi300x"]))
def test_solvers_find_the_boundary(m, s, gpu_id):
    from kvdash.gpus import get_gpu

    gpu = get_gpu(gpu_id)
    total = total_bytes_fn(m, s, gpu)
    b = max_batch(m, s, gpu)
    if b:  # the largest that fits: one more does not (unless the search hit its cap)
        assert total(b, s.prompt_tokens) <= gpu.usable_bytes
        assert b == MAX_BATCH or gpu.usable_bytes < total(b + 1, s.prompt_tokens)
    else:
        assert total(1, s.prompt_tokens) > gpu.usable_bytes
    t = max_context(m, s, gpu)
    if t:
        p = t - s.new_tokens
        assert total(s.batch, p) <= gpu.usable_bytes
        assert p == MAX_TOKENS or gpu.usable_bytes < total(s.batch, p + 1)


@settings(max_examples=150, deadline=None)
@given(hybrid_models(), scenarios(), st.integers(1, 50), st.integers(1, 5000))
def test_hybrid_memory_grows_with_batch_and_context(m, s, extra_batch, extra_tokens):
    s = s.with_(block_size=s.block_size if s.block_size in (0, 16, 32) else 0)
    base = breakdown(m, s)
    assert breakdown(m, s.with_(batch=s.batch + extra_batch))["kv_cache"] >= base["kv_cache"]
    assert breakdown(m, s.with_(prompt_tokens=s.prompt_tokens + extra_tokens))["kv_cache"] >= base["kv_cache"]
    # never more than if every attention layer held every token (state and sources aside)
    full = m.map_layers(lambda spec: spec.as_full())
    assert base["kv_cache"] - base.state_bytes_per_seq * s.batch <= breakdown(full, s)["kv_cache"]
