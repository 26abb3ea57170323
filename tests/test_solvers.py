"""Solvers and sweeps against hand calculations."""

import numpy as np
import pytest

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.model import FULL, LINEAR, decoder
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.solvers import gpus_needed, kv_tokens_for_budget, max_batch, max_context, valid_tp_degrees
from kvdash.sweep import fit_grid, total_grid

GiB = 1 << 30
USABLE_H100 = 81_079 * 2**20  # 85,017,493,504 B
FIXED_8B = 2 * 8_030_261_248 + 520 * 2**20  # bf16 weights + runtime constant = 16,605,782,016 B


def test_max_batch_by_hand(llama8b, h100):
    # A static batch (the Live run's): per sequence at 8,192 tokens: KV 8,192 x 131,072 + activations
    # 8,192 x 102,400 (the whole batch's prompts in one forward) + logits 128,256 x (2 + 4) B
    per_seq = 8192 * 131_072 + 8192 * 102_400 + 128_256 * 6
    assert per_seq == 1_913_372_160
    expected = (USABLE_H100 - FIXED_8B) // per_seq  # 68,411,711,488 / 1,913,372,160 = 35.75
    assert max_batch(llama8b, Scenario(prompt_tokens=8192, runtime="static"), h100) == expected == 35
    # vLLM on an H100 runs steps of at most 8,192 tokens: one step's activation (8,192 x 102,400 B) whatever the
    # batch, and 0.25 GiB outside torch; the rest holds 8,192 x 131,072 B of cache per sequence
    fixed = FIXED_8B + 2**28 + 8192 * 102_400
    assert max_batch(llama8b, Scenario(prompt_tokens=8192), h100) == (USABLE_H100 - fixed) // (8192 * 131_072) == 62


def test_max_context_by_hand(llama8b, h100):
    # static batch of 4: (131,072 KV + 102,400 activation) B per token per sequence, plus 4 x 769,536 B logits
    expected = (USABLE_H100 - FIXED_8B - 4 * 769_536) // (4 * 233_472)
    assert max_context(llama8b, Scenario(batch=4, runtime="static"), h100) == expected == 73_251
    # generated tokens count: the prompt shrinks so that prompt + generated stays the same
    assert max_context(llama8b, Scenario(batch=4, new_tokens=1000, runtime="static"), h100) <= expected + 1000
    # vLLM: beyond 2,048 tokens per sequence its step is full (8,192 x 102,400 B); only the cache grows
    fixed = FIXED_8B + 2**28 + 8192 * 102_400
    assert max_context(llama8b, Scenario(batch=4), h100) == (USABLE_H100 - fixed) // (4 * 131_072) == 128_372


def test_nothing_fits_gives_zero(h100):
    m405 = preset_model("llama-3.1-405b")
    assert max_batch(m405, Scenario(), h100) == 0
    assert max_context(m405, Scenario(), h100) == 0


def test_kv_tokens_for_budget(llama8b):
    assert kv_tokens_for_budget(llama8b, 10 * GiB) == 10 * GiB // 131_072 == 81_920
    assert kv_tokens_for_budget(llama8b, 10 * GiB, kv_dtype="fp8", tp=2) == 10 * GiB // (131_072 // 4)
    with pytest.raises(KvdashError):
        kv_tokens_for_budget(llama8b, -1)


def test_gpus_needed(h100):
    m70 = preset_model("llama-3.1-70b")
    # 70,553,706,496 parameters x 2 B = 141 GB of weights: more than one 80 GB card, half fits.
    assert 2 * m70.params > USABLE_H100 > m70.params
    assert gpus_needed(m70, Scenario(), h100) == 2
    assert valid_tp_degrees(m70, 16) == [1, 2, 4, 8, 16]
    assert gpus_needed(preset_model("llama-3.1-405b"), Scenario(), get_gpu("nvidia-rtx-3090"), limit=8) is None


def test_linear_state_layers_hold_a_fixed_state():
    m = decoder(name="hybrid", n_layers=4, hidden_size=1024, n_heads=8, n_kv_heads=2, head_dim=128,
                  vocab_size=1000, intermediate_size=4096, layer_types=(LINEAR, FULL, LINEAR, FULL),
                  linear_state_elems=1000, linear_layer_params=123)
    for tokens in (10, 10_000):
        b = breakdown(m, Scenario(batch=3, prompt_tokens=tokens))
        # 2 full layers x 2 KV heads x 256 x 2 B per token, + 2 state layers x 1000 x 2 B per sequence
        assert b["kv_cache"] == 3 * tokens * 2 * 2 * 256 * 2 + 3 * 2 * 1000 * 2
    attention = 1024 * 1024 + 2 * 1024 * 256 + 1024 * 1024
    assert m.params == 2 * 123 + 2 * attention + 4 * (3 * 1024 * 4096 + 2 * 1024) + 2 * 1000 * 1024 + 1024


def test_fit_grid_matches_breakdown(llama8b):
    gpus = [get_gpu("nvidia-rtx-4090"), get_gpu("nvidia-h100-sxm5")]
    batches, prompts = [1, 8, 64], [512, 8192, 100_000]
    fits = fit_grid(llama8b, Scenario(), batches, prompts, gpus)
    for g, gpu in enumerate(gpus):
        for i, b in enumerate(batches):
            for j, p in enumerate(prompts):
                assert fits[g, i, j] == breakdown(llama8b, Scenario(batch=b, prompt_tokens=p), gpu).fits


@pytest.mark.parametrize(
    ("batches", "prompts", "needle"),
    [([], [1], "non-empty"), ([0], [1], "between 1"), ([1.5], [1], "integers"), ([[1]], [1], "1-D"),
     ([1 << 24], [1 << 30], "too large")],
)
def test_sweep_rejects_bad_axes(llama8b, batches, prompts, needle):
    with pytest.raises(KvdashError, match=needle):
        total_grid(llama8b, Scenario(runtime="hf-eager"), np.array(batches), np.array(prompts))
