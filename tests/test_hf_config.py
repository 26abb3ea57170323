"""config.json import, family by family, including the traps listed in formulas.md."""

import json
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.hf_config import MAX_CONFIG_BYTES, load_config_file, model_from_config, parse_config_text
from kvdash.model import FULL, MLA, SLIDING, attention_shape
from kvdash.params import total_params
from kvdash.presets import get_preset, preset_model
from kvdash.scenario import Scenario

CORPUS = Path(__file__).resolve().parent / "data" / "configs"


def window(m):
    """The window of the model's sliding layers."""
    return next(spec.window for spec in m.layers if spec.kind == SLIDING)


def cfg(preset: str) -> dict:
    return json.loads(json.dumps(get_preset(preset).config))  # a private, mutable copy


def kv_at(model, tokens: int, dtype: str = "bf16") -> int:
    return breakdown(model, Scenario(prompt_tokens=tokens, kv_dtype=dtype))["kv_cache"]


def test_llama_reads_explicit_head_dim_and_gqa():
    m = model_from_config(cfg("llama-3.2-1b"))
    a = attention_shape(m)
    assert (m.n_layers, a.n_heads, a.n_kv_heads, a.head_dim) == (16, 32, 8, 64)
    assert m.tie_word_embeddings is True
    assert set(m.kinds) == {FULL}


def test_qwen25_disabled_window_is_ignored():
    c = cfg("qwen2.5-7b")
    assert c["sliding_window"] == 131072 and c["use_sliding_window"] is False
    m = model_from_config(c)
    assert set(m.kinds) == {FULL}
    # 200k tokens all held: 28 layers x 4 KV heads x 128 x 2 x 2 B = 57,344 B per token
    assert kv_at(m, 200_000) == 200_000 * 57_344


def test_qwen_window_applies_from_max_window_layers_when_enabled():
    c = cfg("qwen2.5-7b") | {"use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 20}
    m = model_from_config(c)
    assert m.kinds == (FULL,) * 20 + (SLIDING,) * 8
    per_layer = 4 * 128 * 2 * 2
    assert kv_at(m, 10_000) == 20 * per_layer * 10_000 + 8 * per_layer * 4096


def test_qwen2_has_qkv_bias_and_qwen3_has_qk_norm():
    q2 = model_from_config(cfg("qwen2.5-0.5b"))
    q3 = model_from_config(cfg("qwen3-8b"))
    a2, a3 = attention_shape(q2), attention_shape(q3)
    assert a2.qkv_bias and not a2.o_bias and not a2.qk_norm
    assert a3.qk_norm and not a3.qkv_bias


def test_gemma2_even_layers_slide():
    m = model_from_config(cfg("gemma-2-9b"))
    assert m.kinds[:4] == (SLIDING, FULL, SLIDING, FULL)
    assert m.count(SLIDING) == m.count(FULL) == 21 and window(m) == 4096
    # 8 KV heads x (256 + 256) x 2 B = 8,192 B per token per layer; at 8,192 tokens the 21 global
    # layers hold 8,192 tokens and the 21 local ones 4,096.
    assert kv_at(m, 8192) == 21 * 8192 * 8192 + 21 * 8192 * 4096 == 2_113_929_216


def test_gemma3_nested_text_config_and_pattern():
    c = cfg("gemma-3-27b")
    assert "text_config" in c
    m = model_from_config(c)
    assert m.n_layers == 62 and attention_shape(m).head_dim == 128 and window(m) == 1024
    full = [i for i, k in enumerate(m.kinds) if k == FULL]
    assert full == list(range(5, 62, 6))  # every 6th layer is global: 10 of 62
    assert m.vocab_size == 262_208


def test_layer_types_wins_over_pattern():
    c = cfg("gemma-3-27b")
    c["text_config"]["layer_types"] = ["full_attention"] * 2 + ["sliding_attention"] * 60
    m = model_from_config(c)
    assert m.kinds == (FULL,) * 2 + (SLIDING,) * 60


# Command-R7B's shape (CohereLabs/c4ai-command-r7b-12-2024): 32 layers, 8 KV heads of 128, window 4,096
COMMAND_R7B = dict(model_type="cohere2", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                   num_hidden_layers=32, vocab_size=256_000, intermediate_size=14_336, sliding_window=4096,
                   sliding_window_pattern=4, max_position_embeddings=131_072)


def test_an_integer_sliding_window_pattern_slides_three_layers_in_four():
    # configuration_cohere2.py without layer_types: "sliding_attention" if (i + 1) % pattern else "full_attention"
    m = model_from_config(COMMAND_R7B)
    assert m.kinds[:8] == (SLIDING, SLIDING, SLIDING, FULL) * 2 and m.count(FULL) == 8 and not m.warnings
    # 8 KV heads x (128 + 128) x 2 B = 4,096 B per token per layer: 8 full layers x 131,072 tokens, 24 sliding
    # layers x 4,096 tokens
    assert kv_at(m, 131_072) == 8 * 131_072 * 4096 + 24 * 4096 * 4096 == 4_697_620_480
    # the pattern's default is 4 in Cohere2Config; 0 (EXAONE-4's value without a window) slides nothing
    no_pattern = {k: v for k, v in COMMAND_R7B.items() if k != "sliding_window_pattern"}
    assert model_from_config(no_pattern).kinds == m.kinds
    exaone = dict(COMMAND_R7B, model_type="exaone4", sliding_window=None)
    assert set(model_from_config(exaone).kinds) == {FULL}
    # Cohere2Config.__post_init__ overwrites head_dim with hidden_size // num_attention_heads
    assert attention_shape(model_from_config(COMMAND_R7B | {"head_dim": 96})).head_dim == 128


def test_an_exaone4_string_pattern_repeats_and_ends_global():
    # Exaone4Config's docstring: "LLLG" = layers 0-2 local, 3 global, repeated; the final layer always global
    m = model_from_config(dict(COMMAND_R7B, model_type="exaone4", num_hidden_layers=30, sliding_window_pattern="LLLG"))
    assert m.kinds == (SLIDING, SLIDING, SLIDING, FULL) * 7 + (SLIDING, FULL)
    with pytest.raises(KvdashError, match="sliding_window_pattern"):
        model_from_config(dict(COMMAND_R7B, model_type="exaone4", sliding_window_pattern="LLXG"))


def test_an_unknown_family_with_a_bare_window_is_sized_all_full_and_says_so():
    # no per-layer pattern: sliding every layer would err towards less memory, so every layer attends in full
    c = {k: v for k, v in COMMAND_R7B.items() if k != "sliding_window_pattern"} | {"model_type": "newfamily"}
    m = model_from_config(c)
    assert set(m.kinds) == {FULL} and kv_at(m, 131_072) == 32 * 131_072 * 4096
    assert any("no per-layer pattern" in w and "more cache" in w for w in m.warnings)
    # with a pattern it is read like Cohere2's
    assert model_from_config(c | {"sliding_window_pattern": 4}).kinds == model_from_config(COMMAND_R7B).kinds


def test_hugging_face_glm_format_takes_glm_config_defaults():
    # GlmForCausalLM (THUDM/glm-4-9b-chat-hf's shape) in Llama's field names; configuration_glm.py's defaults
    # where a field is absent: head_dim 128 (not 4096 / 32), 2 K/V heads, q/k/v biases
    c = dict(model_type="glm", architectures=["GlmForCausalLM"], hidden_size=4096, num_attention_heads=32,
             num_hidden_layers=40, intermediate_size=13_696, vocab_size=151_552, partial_rotary_factor=0.5,
             max_position_embeddings=131_072, tie_word_embeddings=False)
    m = model_from_config(c)
    a = attention_shape(m)
    assert (a.n_kv_heads, a.head_dim) == (2, 128) and not m.warnings
    assert kv_at(m, 1) == 40 * 2 * (128 + 128) * 2 == 40_960  # per token: 40 layers x 2 heads x K/V x 2 B
    # GLM-4-0414 (Glm4ForCausalLM) adds two norms per layer: 2 x 4,096 more parameters per layer
    g4 = model_from_config(c | {"model_type": "glm4", "architectures": ["Glm4ForCausalLM"]})
    assert total_params(g4) - total_params(m) == 40 * 2 * 4096


def test_an_mpt_copy_in_standard_field_names_reads_as_mpt():
    # MptConfig.attribute_map: hidden_size -> d_model, num_attention_heads -> n_heads, num_hidden_layers ->
    # n_layers; a copy written with the standard names is the same model
    native = json.loads((CORPUS / "mpt-7b-instruct.json").read_text())["config"]
    renamed = {k: v for k, v in native.items() if k not in ("d_model", "n_heads", "n_layers")}
    renamed |= dict(hidden_size=native["d_model"], num_attention_heads=native["n_heads"],
                    num_hidden_layers=native["n_layers"])
    a, b = model_from_config(native), model_from_config(renamed)
    assert total_params(a) == total_params(b) and kv_at(a, 4096) == kv_at(b, 4096) == 4096 * 32 * 4096 * 2 * 2


def test_mistral_v01_slides_everywhere_and_v03_does_not():
    v1, v3 = preset_model("mistral-7b-v0.1"), preset_model("mistral-7b-v0.3")
    assert set(v1.kinds) == {SLIDING} and window(v1) == 4096
    assert set(v3.kinds) == {FULL}
    per_token = 32 * 8 * 128 * 2 * 2
    assert kv_at(v1, 8192) == per_token * 4096
    assert kv_at(v3, 8192) == per_token * 8192


def test_falcon_multi_query_and_new_architecture():
    f7, f40 = preset_model("falcon-7b"), preset_model("falcon-40b")
    a7, a40 = attention_shape(f7), attention_shape(f40)
    assert (a7.n_kv_heads, a7.head_dim, f7.norms_per_layer) == (1, 64, 1)
    assert (a40.n_kv_heads, a40.head_dim, f40.norms_per_layer) == (8, 64, 2)
    # Falcon-7B by hand: embedding 65,024 x 4,544 (tied) + 32 layers x (fused QKV 4,544 x (71 + 2) x 64
    # + dense 4,544^2 + MLP 2 x 4 x 4,544^2 + one LayerNorm 2 x 4,544) + final LayerNorm 2 x 4,544.
    layer = 4544 * 73 * 64 + 4544**2 + 8 * 4544**2 + 2 * 4544
    assert f7.params == 65024 * 4544 + 32 * layer + 2 * 4544 == 6_921_720_704


def test_falcon_legacy_refinedweb_keys():
    legacy = {"model_type": "RefinedWeb", "n_embed": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60,
              "new_decoder_architecture": True, "vocab_size": 65024, "parallel_attn": True, "bias": False}
    assert model_from_config(legacy).params == preset_model("falcon-40b").params


def test_falcon_without_multi_query_is_mha():
    c = cfg("falcon-7b") | {"multi_query": False}
    assert attention_shape(model_from_config(c)).n_kv_heads == 71


def test_deepseek_latent_cache_replicated_under_tp():
    m = preset_model("deepseek-v3")
    assert set(m.kinds) == {MLA} and m.layers[0].kv_lora_rank == 512 and m.layers[0].qk_rope_head_dim == 64
    assert m.moe_mask[:3] == (False, False, False) and all(m.moe_mask[3:])
    for tp in (1, 8, 16):
        b = breakdown(m, Scenario(prompt_tokens=1, tp=tp))
        assert b.kv_bytes_per_token == 61 * (512 + 64) * 2


def test_deepseek_v2_lite_without_q_lora():
    m = preset_model("deepseek-v2-lite")
    assert m.layers[0].q_lora_rank == 0 and m.n_shared_experts == 2 and m.shared_expert_intermediate_size == 2 * 1408


def test_gpt2_null_n_inner_means_4x():
    m = model_from_config(cfg("gpt2"))
    assert m.intermediate_size == 4 * 768 and m.learned_pos_embeddings == 1024 and not m.gated_mlp


def test_opt_positions_offset_and_biases():
    m = preset_model("opt-13b")
    assert m.learned_pos_embeddings == 2048 + 2 and m.layers[0].qkv_bias and m.mlp_bias and m.norm == "layer"


def test_mixtral_and_qwen_moe():
    mx = preset_model("mixtral-8x7b")
    assert (mx.n_experts, mx.experts_per_token, mx.expert_intermediate_size) == (8, 2, 14336)
    q = preset_model("qwen3-30b-a3b")
    assert (q.n_experts, q.experts_per_token, q.expert_intermediate_size) == (128, 8, 768)


def test_qwen2_moe_shared_expert_and_sparse_step():
    c = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 4,
         "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936, "num_experts": 60,
         "num_experts_per_tok": 4, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
         "decoder_sparse_step": 2, "mlp_only_layers": []}
    m = model_from_config(c)
    assert m.moe_mask == (False, True, False, True)
    assert m.shared_expert_gate and m.shared_expert_intermediate_size == 5632


def test_gpt_neox_and_generic_fallback():
    neox = {"model_type": "gpt_neox", "hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
            "intermediate_size": 2048, "vocab_size": 50304}
    m = model_from_config(neox)
    assert m.norm == "layer" and not m.gated_mlp and m.layers[0].qkv_bias
    unknown = {"model_type": "brand_new", "hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
               "num_key_value_heads": 2, "intermediate_size": 4096, "vocab_size": 1000}
    g = model_from_config(unknown)
    assert (attention_shape(g).n_kv_heads, attention_shape(g).head_dim) == (2, 128)


def test_phi3_window_makes_layers_slide():
    m = preset_model("phi-3-mini")
    assert set(m.kinds) == {SLIDING} and window(m) == 2047


def test_string_and_file_inputs(tmp_path):
    text = json.dumps(cfg("llama-3.1-8b"))
    path = tmp_path / "config.json"
    path.write_text(text)
    assert model_from_config(text).params == model_from_config(load_config_file(path)).params == 8_030_261_248


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"model_type": "llama"}, "config is missing"),
        (cfg("llama-3.1-8b") | {"num_hidden_layers": "32"}, "'num_hidden_layers' must be an integer"),
        (cfg("llama-3.1-8b") | {"num_hidden_layers": True}, "'num_hidden_layers' must be an integer"),
        (cfg("llama-3.1-8b") | {"num_hidden_layers": -1}, "'num_hidden_layers' = -1 is out of range"),
        (cfg("llama-3.1-8b") | {"num_hidden_layers": 10**12}, "out of range"),
        (cfg("llama-3.1-8b") | {"num_key_value_heads": 5}, "multiple of num_key_value_heads"),
        (cfg("llama-3.1-8b") | {"hidden_size": 4097, "head_dim": None}, "not divisible"),
        (cfg("llama-3.1-8b") | {"tie_word_embeddings": "yes"}, "'tie_word_embeddings' must be true or false"),
        (cfg("llama-3.1-8b") | {"layer_types": ["full_attention"] * 3}, "'layer_types' lists 3 layers"),
        (cfg("llama-3.1-8b") | {"layer_types": ["weird"] * 32}, "'layer_types[0]'"),
        (cfg("llama-3.1-8b") | {"vocab_size": float("nan")}, "'vocab_size' must be an integer"),
        (cfg("gpt2") | {"n_embd": [768]}, "'n_embd' must be an integer"),
        (cfg("gemma-3-27b") | {"text_config": "nope"}, "'text_config' must be an object"),
        (cfg("mixtral-8x7b") | {"num_experts_per_tok": 9}, "experts_per_token"),
        (cfg("deepseek-v3") | {"kv_lora_rank": 0}, "'kv_lora_rank' = 0 is out of range"),
    ],
)
def test_bad_configs_name_the_field(config, needle):
    with pytest.raises(KvdashError) as e:
        model_from_config(config)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "must be a JSON object"),
        ("42", "must be a JSON object"),
        ("[" * 100 + "]" * 100, "nests deeper"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"a": "' + "x" * (MAX_CONFIG_BYTES + 1) + '"}', "the limit is"),
    ],
)
def test_bad_text(text, needle):
    with pytest.raises(KvdashError, match=needle):
        parse_config_text(text)


def test_missing_and_oversized_files(tmp_path):
    with pytest.raises(KvdashError, match="cannot read config file"):
        load_config_file(tmp_path / "absent.json")
    with pytest.raises(KvdashError, match="is not a file"):
        load_config_file(tmp_path)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(KvdashError, match="the limit is"):
        load_config_file(big)


def test_a_utf8_byte_order_mark_is_accepted():
    cfg = '{"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 100}'
    assert parse_config_text(b"\xef\xbb\xbf" + cfg.encode()) == parse_config_text("\ufeff" + cfg) == json.loads(cfg)


@pytest.mark.parametrize(("record", "name"), [
    # the gpt-oss model card (arXiv 2508.10925, Table 1): 20.91 B and 116.83 B parameters in total
    ("gpt-oss-20b", "gpt_oss, 20.9 B parameters"), ("gpt-oss-120b", "gpt_oss, 116.8 B parameters")])
def test_a_config_without_its_name_is_named_by_type_and_size(record, name):
    """The Hub's config.json carries no _name_or_path: the two gpt-oss models must not look the same."""
    cfg = json.loads((CORPUS / f"{record}.json").read_text())["config"]
    assert "_name_or_path" not in cfg and model_from_config(cfg).name == name
    assert model_from_config(cfg | {"_name_or_path": "openai/x"}).name == "openai/x"


def test_an_explicit_null_pattern_is_an_absent_one():
    # Gemma-3 without a pattern uses Gemma3TextConfig's 6 (five sliding, one full); a re-save may write null
    # (found by the fuzz test: a null made the reader crash)
    c = json.loads((CORPUS / "gemma-3-1b-it.json").read_text())["config"]
    c = {k: v for k, v in c.items() if k not in ("layer_types", "sliding_window_pattern", "_sliding_window_pattern")}
    kinds = model_from_config(c).kinds
    assert kinds == model_from_config(c | {"sliding_window_pattern": None}).kinds
    assert kinds[:6] == ("sliding",) * 5 + ("full",)
