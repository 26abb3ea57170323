"""Public numbers: per-token KV sizes (shared/reference/formulas.md) and official parameter counts
(keras-hub preset metadata, model cards; recorded with their source in data/models/*.json)."""

import re

import pytest

from kvdash.breakdown import breakdown
from kvdash.presets import load_presets, preset_model
from kvdash.scenario import Scenario

GiB = 1 << 30


@pytest.mark.parametrize(
    ("preset", "dtype", "per_token"),
    [
        ("llama-3.1-8b", "bf16", 131_072),  # 32 layers x 8 KV heads x 128 x 2 x 2 B
        ("llama-3.1-70b", "bf16", 327_680),  # 80 x 8 x 128 x 2 x 2
        ("llama-2-7b", "bf16", 524_288),  # 32 x 32 x 128 x 2 x 2
        ("opt-13b", "fp16", 819_200),  # "800 KB" in the vLLM paper: 40 x 5120 x 2 x 2
        ("deepseek-v3", "bf16", 70_272),  # 61 x (512 + 64) x 2, latent not per-head K/V
        ("deepseek-v2-lite", "bf16", 31_104),  # 27 x (512 + 64) x 2
        ("falcon-7b", "bf16", 8_192),  # multi-query: 32 x 1 x 64 x 2 x 2
        ("falcon-40b", "bf16", 122_880),  # 60 x 8 x 64 x 2 x 2
        ("qwen2.5-7b", "bf16", 57_344),  # 28 x 4 x 128 x 2 x 2
        ("qwen3-4b", "bf16", 147_456),  # 36 x 8 x 128 x 2 x 2 (head_dim 128, not 2560/32)
        ("gemma-2-9b", "bf16", 344_064),  # 42 x 8 x 256 x 2 x 2 (before windows saturate)
        ("gpt2", "fp16", 36_864),  # 12 x 768 x 2 x 2
    ],
)
def test_kv_bytes_per_token(preset, dtype, per_token):
    b = breakdown(preset_model(preset), Scenario(prompt_tokens=1, kv_dtype=dtype))
    assert b.kv_bytes_per_token == per_token


def test_llama2_7b_4096_tokens_is_2_gib():
    b = breakdown(preset_model("llama-2-7b"), Scenario(prompt_tokens=4096))
    assert b["kv_cache"] == 2 * GiB


# Exact official counts (keras-hub preset metadata 'params', commit 71453d08).
EXACT = {
    "gpt2": 124_439_808,
    "gpt2-xl": 1_557_611_200,
    "llama-2-7b": 6_738_415_616,
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.2-3b": 3_212_749_824,  # tied count; keras lists 3,606,752,256 with a separate LM head
    "mistral-7b-v0.1": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "gemma-2-9b": 9_241_705_984,
    "gemma-2-27b": 27_227_128_320,
    "phi-3-mini": 3_821_079_552,
}


@pytest.mark.parametrize(("preset", "official"), EXACT.items())
def test_exact_official_parameter_counts(preset, official):
    assert preset_model(preset).params == official


def test_gemma3_text_count_within_0_1_percent():
    # keras gemma3_27b_text: 27,009,002,240 with a 262,144 vocabulary; transformers' default is
    # 262,208, which adds 64 x 5376 = 344,064 parameters.
    m = preset_model("gemma-3-27b")
    assert m.params == 27_009_002_240 + 64 * 5376
    assert abs(m.params - 27_009_002_240) / 27_009_002_240 < 0.001


def _rounded(text: str) -> tuple[float, float]:
    """'7.61B' -> (7.61e9, one unit in the last digit). Cards truncate as often as they round
    (Qwen2.5-7B has 7,615,616,512 and says 7.61B), so a whole unit is the honest tolerance."""
    num = re.match(r"([\d.]+)B", text).group(1)
    decimals = len(num.split(".")[1]) if "." in num else 0
    return float(num) * 1e9, 10.0 ** (9 - decimals)


def _card_totals():
    for p in load_presets().values():
        text = (p.official_params or {}).get("text")
        if text and "nominal" not in text:
            yield p.id, text


@pytest.mark.parametrize(("preset", "text"), list(_card_totals()))
def test_model_card_totals_within_their_rounding(preset, text):
    value, unit = _rounded(text)
    assert abs(preset_model(preset).params - value) <= unit, (preset, text)


@pytest.mark.parametrize(
    ("preset", "activated"),
    [("qwen3-30b-a3b", "3.3B"), ("qwen3-235b-a22b", "22B"), ("deepseek-v3", "37B"), ("deepseek-v2-lite", "2.4B")],
)
def test_moe_activated_parameters(preset, activated):
    # Vendors differ on whether the input-embedding lookup counts as "activated" (Qwen includes it,
    # DeepSeek does not), so the official figure must lie between the two readings.
    m = preset_model(preset)
    value, unit = _rounded(activated)
    embedding = m.vocab_size * m.hidden_size
    assert m.active_params - embedding - unit <= value <= m.active_params + unit
    assert m.active_params < m.params / 5


def test_every_preset_has_a_source_and_builds():
    presets = load_presets()
    assert len(presets) >= 25
    for p in presets.values():
        assert p.sources, p.id
        assert p.model.params > 0
