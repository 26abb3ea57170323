"""Warnings where the numbers stop holding, or hold only with care."""

from kvdash.breakdown import breakdown
from kvdash.gpus import get_gpu
from kvdash.hf_config import model_from_config
from kvdash.presets import get_preset, preset_model
from kvdash.scenario import Scenario


def test_context_beyond_the_trained_length():
    gpt2 = preset_model("gpt2")  # n_positions 1,024
    assert not breakdown(gpt2, Scenario(prompt_tokens=1000, new_tokens=24)).warnings
    w = breakdown(gpt2, Scenario(prompt_tokens=1000, new_tokens=25)).warnings
    assert len(w) == 1 and "1,025 tokens per sequence exceed the 1,024 the model was trained for" in w[0]


def test_unknown_trained_length_says_so():
    cfg = dict(get_preset("llama-3.1-8b").config)
    del cfg["max_position_embeddings"]
    w = breakdown(model_from_config(cfg), Scenario(prompt_tokens=100)).warnings
    assert any("does not say how long a context" in x and "unknown" in x for x in w)


def test_tensor_parallel_copies_of_the_cache():
    llama = preset_model("llama-3.1-8b")  # 8 KV heads
    assert not breakdown(llama, Scenario(tp=8)).warnings
    w = breakdown(llama, Scenario(tp=16)).warnings
    assert w == ["tp = 16 exceeds the 8 KV heads of the full attention layers: each GPU holds one KV head, so each "
                 "head's cache is stored on 2 GPUs"]
    assert any("latent (MLA) cache is not split" in x for x in breakdown(preset_model("deepseek-v3"),
                                                                         Scenario(tp=8)).warnings)


def test_a_tight_fit_is_flagged():
    # Llama-3.1-8B, a static batch, on an H100 (81,079 MiB = 85,017,493,504 B usable): 16,060,522,496 B of weights
    # + 545,259,520 B of overhead; per 8,192-token sequence 1,073,741,824 B of cache + 8,192 x 102,400 B
    # of prefill activations + 128,256 x 6 = 769,536 B of logits = 1,913,372,160 B.
    # Batch 35 leaves 1,443,685,888 B, under 5 % of usable.
    llama, h100 = preset_model("llama-3.1-8b"), get_gpu("nvidia-h100-sxm5")
    roomy = breakdown(llama, Scenario(batch=1, prompt_tokens=8192, runtime="static"), h100)
    assert roomy.fits and not roomy.warnings
    tight = breakdown(llama, Scenario(batch=35, prompt_tokens=8192, runtime="static"), h100)
    assert tight.fits and tight.headroom == 85_017_493_504 - 16_605_782_016 - 35 * 1_913_372_160
    assert any("CUDA-graph capture" in x for x in tight.warnings)
