"""Readers for families without a verbatim config in the corpus, checked by hand from their reference code."""

import json
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.hf_config import model_from_config
from kvdash.model import attention_shape
from kvdash.scenario import Scenario

CORPUS = Path(__file__).parent / "data" / "configs"


def test_recurrentgemma_2b():
    # google/recurrentgemma-2b's config.json as a public repository's test quotes it (the search index did
    # not name that repository, so it is not in the corpus). Its pattern is stored as "_block_types" and
    # repeats over the 26 layers: layers 2, 5, ..., 23 (8) are local attention (window 2,048), 18 RG-LRU.
    cfg = {"_block_types": ["recurrent", "recurrent", "attention"], "architectures": ["RecurrentGemmaForCausalLM"],
           "attention_bias": False, "attention_dropout": 0.0, "attention_window_size": 2048, "conv1d_width": 4,
           "embeddings_scale_by_sqrt_dim": True, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
           "hidden_size": 2560, "intermediate_size": 15360, "logits_soft_cap": 30.0, "lru_width": 2560,
           "model_type": "recurrent_gemma", "num_attention_heads": 10, "num_hidden_layers": 26,
           "num_key_value_heads": 1, "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
           "vocab_size": 256000}
    m = model_from_config(cfg)
    one = breakdown(m, Scenario(prompt_tokens=1))
    assert one.kv_bytes_per_token == 8 * 1 * (256 + 256) * 2 == 8192  # not 26 x 1,024 = 26,624
    # RG-LRU state: conv 2,560 x (4 - 1) + recurrent 2,560 values, 2 B each, in 18 layers
    assert one.state_bytes_per_seq == 18 * (2560 * 3 + 2560) * 2 == 368_640
    assert breakdown(m, Scenario(prompt_tokens=65_536))["kv_cache"] == 8192 * 2048 + 368_640
    # a different stored pattern is read, not replaced by the default
    attention_first = dict(cfg, _block_types=["attention", "recurrent"])
    assert breakdown(model_from_config(attention_first), Scenario(prompt_tokens=1)).kv_bytes_per_token == 13 * 1024


def test_recurrentgemma_9b_attention_layers():
    # 38 layers: attention at i % 3 == 2, 12 layers; 1 KV head of 256: 12,288 B per token (the issue's
    # hand number), not 38 x 1,024 = 38,912.
    cfg = {"model_type": "recurrent_gemma", "num_hidden_layers": 38, "vocab_size": 256000, "hidden_size": 4096,
           "intermediate_size": 24576, "num_attention_heads": 16, "num_key_value_heads": 1, "lru_width": 4096,
           "attention_window_size": 2048, "conv1d_width": 4}
    assert breakdown(model_from_config(cfg), Scenario(prompt_tokens=1)).kv_bytes_per_token == 12_288


def test_jamba_v01_pattern():
    # Jamba-v0.1: 32 layers, attention where i % 8 == 4 (4 layers), 8 KV heads x 128: 16,384 B per token
    # (the hand number), not 32 x 4,096 = 131,072. Mamba-1: d_inner 2 x 4096, d_state 16, d_conv 4.
    cfg = {"model_type": "jamba", "num_hidden_layers": 32, "hidden_size": 4096, "intermediate_size": 14336,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 65536, "attn_layer_period": 8,
           "attn_layer_offset": 4, "expert_layer_period": 2, "expert_layer_offset": 1, "num_experts": 16,
           "num_experts_per_tok": 2, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
           "mamba_dt_rank": 256}
    one = breakdown(model_from_config(cfg), Scenario(prompt_tokens=1))
    assert one.kv_bytes_per_token == 4 * 8 * 256 * 2 == 16_384
    assert one.state_bytes_per_seq == 28 * (8192 * 3 + 8192 * 16) * 2


def test_llava_next_mistral_sparse_text_config():
    # llava-hf/llava-v1.6-mistral-7b-hf as TensorRT-LLM's test copies it (its vision tower cut to 2 layers
    # there, 24 in the model): the text_config names only what differs from MistralConfig's defaults, so
    # 32 layers, 32 heads, 8 KV heads of 128 come from configuration_mistral.py; sliding_window is null.
    cfg = {"architectures": ["LlavaNextForConditionalGeneration"], "image_token_index": 32000,
           "model_type": "llava_next", "projector_hidden_act": "gelu",
           "text_config": {"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
                           "architectures": ["MistralForCausalLM"], "intermediate_size": 14336,
                           "max_position_embeddings": 32768, "model_type": "mistral",
                           "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
                           "sliding_window": None, "torch_dtype": "bfloat16", "vocab_size": 32064},
           "torch_dtype": "float16", "vision_config": {"hidden_size": 1024, "image_size": 336,
                                                       "intermediate_size": 4096, "model_type": "clip_vision_model",
                                                       "num_attention_heads": 16, "num_hidden_layers": 24,
                                                       "patch_size": 14, "projection_dim": 768}}
    m = model_from_config(cfg)
    a = attention_shape(m)
    assert (m.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, m.hidden_size) == (32, 32, 8, 128, 4096)
    assert breakdown(m, Scenario(prompt_tokens=65_536))["kv_cache"] == 32 * 8 * 256 * 2 * 65_536 == 8 * 2**30
    # the vision tower is a weights component of its own, labelled an estimate
    assert m.encoder_params > 300_000_000 and any("vision tower" in w for w in m.warnings)


def test_kimi_linear_kda_state_and_mla_cache():
    # Kimi-Linear-48B-A3B's shape (configuration_kimi_linear.py defaults): 27 layers, MLA at the 1-indexed
    # full_attn_layers 4, 8, ..., 24, 27 and Kimi Delta Attention elsewhere (32 heads of 128, conv kernel 4)
    full = [4, 8, 12, 16, 20, 24, 27]
    c = dict(model_type="kimi_linear", vocab_size=163_840, hidden_size=2304, intermediate_size=9216,
             moe_intermediate_size=1024, num_hidden_layers=27, num_attention_heads=32, num_experts=256,
             num_experts_per_token=8, num_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=512,
             qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128, q_lora_rank=None,
             linear_attn_config=dict(full_attn_layers=full, kda_layers=[i for i in range(1, 28) if i not in full],
                                     head_dim=128, num_heads=32, short_conv_kernel_size=4))
    m = model_from_config(c)
    assert [i + 1 for i, k in enumerate(m.kinds) if k == "mla"] == full
    # vLLM: 7 latent layers x (512 + 64) x 2 B per token; 20 KDA layers each a conv window of 3 x 4,096
    # channels x 3 past inputs x 2 B and 32 x 128 x 128 fp32 recurrent values (kda_state_shape / _dtype)
    b = breakdown(m, Scenario(prompt_tokens=1))
    assert b.kv_bytes_per_token == 7 * 1152 == 8064
    assert b.state_bytes_per_seq == 20 * (3 * 4096 * 3 * 2 + 32 * 128 * 128 * 4) == 43_417_600
    # transformers keeps the whole 4-input window (the oracle's number for this config: 43,909,120)
    hf = breakdown(m, Scenario(prompt_tokens=1, runtime="hf-sdpa"))
    assert hf.state_bytes_per_seq == 20 * (3 * 4096 * 4 * 2 + 32 * 128 * 128 * 4) == 43_909_120


def test_rwkv4_has_a_fixed_state_and_no_cache():
    # RWKV-4-Pile-169M's shape (RwkvConfig): hidden 768, 12 layers, vocabulary 50,277
    c = dict(model_type="rwkv", vocab_size=50_277, hidden_size=768, num_hidden_layers=12, attention_hidden_size=768,
             intermediate_size=3072, context_length=1024, tie_word_embeddings=False)
    m = model_from_config(c)
    b = breakdown(m, Scenario(prompt_tokens=1, runtime="hf-sdpa"))
    # RwkvModel.forward: five state tensors of (batch, hidden_size, layers), the first two (token shifts) in the
    # model's dtype, the WKV numerator, denominator and maximum in fp32: 768 x (2 x 2 + 3 x 4) B per layer
    assert b.kv_bytes_per_token == 0 and b.state_bytes_per_seq == 12 * 768 * 16 == 147_456
    # parameters by hand: embeddings and head 2 x 50,277 x 768; per layer 2 x 768 decay/first, 5 x 768 mixes,
    # key/value/receptance/output 4 x 768^2, the channel mix's receptance 768^2 and key/value 2 x 768 x 3,072,
    # two LayerNorms 4 x 768; the pre-LayerNorm and ln_out 2 x 1,536
    per_layer = 2 * 768 + 5 * 768 + 5 * 768 * 768 + 2 * 768 * 3072 + 4 * 768
    assert m.params == 2 * 50_277 * 768 + 12 * per_layer + 2 * 1536 == 169_342_464
    assert any("do not serve RWKV" in w for w in m.warnings)
    with pytest.raises(KvdashError, match="RWKV-5/6/7"):
        model_from_config(c | {"model_type": "rwkv6"})


def test_glm4_moe_reads_deepseeks_expert_layout():
    # GLM-4.7's shape (zai-org/GLM-4.7 config.json as its Hub page shows it): 92 layers, 96 query heads and 8 K/V
    # heads of an explicit 128 (5,120 / 96 is not an integer), q/k/v biases and q/k norms; 160 routed experts
    # of 1,536, 8 a token, one shared expert, the first 3 layers dense (Glm4MoeConfig, modeling_glm4_moe.py)
    c = dict(model_type="glm4_moe", hidden_size=5120, num_attention_heads=96, num_key_value_heads=8, head_dim=128,
             num_hidden_layers=92, intermediate_size=12_288, moe_intermediate_size=1536, n_routed_experts=160,
             num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=3, attention_bias=True,
             use_qk_norm=True, vocab_size=151_552, partial_rotary_factor=0.5, tie_word_embeddings=False)
    m = model_from_config(c)
    assert not m.warnings and m.moe_mask == (False,) * 3 + (True,) * 89
    assert m.shared_expert_intermediate_size == 1536 and m.router_bias
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 92 * 8 * (128 + 128) * 2 == 376_832
    names = {t.name for t in m.layers[0].tensors(5120)}
    assert {"q_bias", "k_bias", "v_bias", "q_norm", "k_norm"} <= names and "o_bias" not in names


def test_minimax_m2_norms_whole_projections_and_routes_every_layer():
    # MiniMax-M2's shape (amd/MiniMax-M2.7-BF16's config): 62 layers, 48 query and 8 K/V heads of 128,
    # 256 experts of 1,536, 8 a token, q/k RMSNorms over the whole projections (modeling_minimax_m2.py)
    c = dict(model_type="minimax_m2", hidden_size=3072, num_attention_heads=48, num_key_value_heads=8, head_dim=128,
             num_hidden_layers=62, intermediate_size=1536, num_local_experts=256, num_experts_per_tok=8,
             use_qk_norm=True, qk_norm_type="per_layer", use_routing_bias=True, vocab_size=200_064,
             attn_type_list=[1] * 62, rotary_dim=64, tie_word_embeddings=False)
    m = model_from_config(c)
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 62 * 8 * 256 * 2 == 253_952
    norms = {t.name: t.numel(1) for t in m.layers[0].tensors(3072) if t.name.endswith("_norm")}
    assert norms == {"q_norm": 48 * 128, "k_norm": 8 * 128} and m.router_bias and not m.warnings
    with pytest.raises(KvdashError, match="lightning"):
        model_from_config(c | {"attn_type_list": [0] + [1] * 61})


def test_hunyuan_reads_per_layer_lists_and_refuses_cross_layer_attention():
    # Hunyuan-A13B's shape (its release config.json, tests/data/configs/hunyuan-a13b-instruct.json): 32 layers of
    # 32 query and 8 K/V heads of attention_head_dim 128 with per-head q/k norms; every layer routes to 64
    # experts of 3,072, top 8, beside one shared MLP of 3,072 (use_mixed_mlp_moe); the lists are per layer
    c = dict(model_type="hunyuan", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
             attention_head_dim=128, num_hidden_layers=32, intermediate_size=3072, vocab_size=128_167,
             num_experts=64, moe_topk=[8] * 32, moe_intermediate_size=[3072] * 32, num_shared_expert=[1] * 32,
             use_mixed_mlp_moe=True, use_qk_norm=True, use_cla=False, cla_share_factor=2, tie_word_embeddings=True)
    m = model_from_config(c)
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 32 * 8 * 256 * 2 == 131_072
    # by hand: attention 4,096 x (4,096 + 2 x 1,024) + 4,096 x 4,096 and two 128-wide norms; experts
    # 64 x 3 x 4,096 x 3,072 and a router of 64 x 4,096; the shared MLP 3 x 4,096 x 3,072; two norms per layer;
    # the tied embedding 128,167 x 4,096 and the final norm
    layer = (4096 * 6144 + 4096 * 4096 + 256) + 64 * 3 * 4096 * 3072 + 64 * 4096 + 3 * 4096 * 3072 + 2 * 4096
    assert m.params == 32 * layer + 128_167 * 4096 + 4096 == 80_393_183_232
    with pytest.raises(KvdashError, match="cross-layer attention"):
        model_from_config(c | {"use_cla": True})
    with pytest.raises(KvdashError, match="'moe_topk' must be one"):
        model_from_config(c | {"moe_topk": [8] * 31 + [4]})


def test_mimo_v2_flash_has_its_own_sliding_geometry():
    # MiMo-V2-Flash (tests/data/configs/mimo-v2-flash.json; vLLM mimo_v2_flash.py): 9 full layers of 4 K/V heads
    # and 39 sliding layers of 8, keys 192 and values 128 wide, a 128-token window
    m = model_from_config(json.loads((CORPUS / "mimo-v2-flash.json").read_text())["config"])
    assert m.kinds.count("full") == 9 and m.kinds.count("sliding") == 39
    b = breakdown(m, Scenario(prompt_tokens=65_536))
    assert b.kv_bytes_per_token == 9 * 4 * 320 * 2 + 39 * 8 * 320 * 2 == 222_720
    assert b["kv_cache"] == 9 * 2560 * 65_536 + 39 * 5120 * 128 == 1_535_508_480
    assert m.moe_mask == (False,) + (True,) * 47 and not m.warnings


@pytest.mark.parametrize("model_type", ["deepseek_v4", "deepseek_ref"])  # deepseek_ref: SGLang's copy
def test_deepseek_v4_is_refused_by_name(model_type):
    with pytest.raises(KvdashError, match="DeepSeek-V4's compressed sparse attention"):
        model_from_config(dict(model_type=model_type, hidden_size=4096, num_attention_heads=64,
                               num_hidden_layers=43, vocab_size=129_280, compress_ratios=[0, 0] + [4, 128] * 20 + [4]))


def test_minimax_m3_caches_an_index_key_on_its_block_sparse_layers():
    # MiniMax-M3 (tests/data/configs/minimax-m3.json; vLLM models/minimax_m3): 60 GQA layers of 4 K/V heads of
    # 128, and on the 57 sparse layers one bf16 index key of 128 per token, replicated on every GPU
    cfg = json.loads((CORPUS / "minimax-m3.json").read_text())["config"]
    m = model_from_config(cfg)
    assert m.kinds.count("full") == 60 and sum(hasattr(s, "index_dim") for s in m.layers) == 57
    # vLLM's own cache group for the index keys is not modelled, and the model says so
    assert any("index keys in a cache group of their own" in w for w in m.warnings)
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 60 * 2048 + 57 * 256 == 137_472
    # tp 4: each GPU one K/V head of the four, the index key whole on each
    tp4 = breakdown(m, Scenario(prompt_tokens=1, tp=4)).kv_bytes_per_token
    assert tp4 == 60 * 2 * 128 * 2 + 57 * 256 == 45_312
    # hand count (the record's derivation): attention, indexer, norms, dense and MoE MLPs, embeddings
    attn, index = 6144 * 8192 * 2 + 2 * 6144 * 512 + 256, 6144 * 640 + 256
    moe = 128 * 3 * 6144 * 3072 + 128 * 6144 + 128 + 3 * 6144 * 3072
    assert m.params == (2 * 200_064 * 6144 + 6144 + 60 * (attn + 2 * 6144) + 57 * index + 3 * 3 * 6144 * 12_288
                        + 57 * moe) == 426_174_572_928
    # a decode at 65,536 reads the K/V of the 17 blocks it selects and every token's index key
    sparse = m.layers[-1]
    assert sparse.read_bytes(get_dtype("bf16"), 1, 65_536) == 2048 * 17 * 128 + 256 * 65_536
    # the same model in transformers' form (configuration_minimax_m3_vl.py: layer_types, index_* fields)
    flat = {k: v for k, v in cfg.items() if k not in ("sparse_attention_config", "moe_layer_freq")}
    flat |= dict(model_type="minimax_m3_vl_text", layer_types=["full_attention"] * 3 + ["minimax_m3_sparse"] * 57,
                 mlp_layer_types=["dense"] * 3 + ["sparse"] * 57, index_head_dim=128, index_n_heads=4)
    assert model_from_config(flat).layers == m.layers
    # an index value kept (sparse_disable_index_value 0) is cached too
    keep = cfg | {"sparse_attention_config": cfg["sparse_attention_config"] | {"sparse_disable_index_value": [0] * 60}}
    assert breakdown(model_from_config(keep), Scenario(prompt_tokens=1)).kv_bytes_per_token == 60 * 2048 + 57 * 512


def test_mimo_7b_is_a_qwen2_decoder():
    # MiMo-7B-Base's config (XiaomiMiMo, in AIConfigurator's model_configs): vLLM's MiMoForCausalLM extends
    # Qwen2ForCausalLM: q/k/v biases, no o_proj bias; its MTP layer loads only for speculative decoding
    c = dict(model_type="mimo", num_hidden_layers=36, hidden_size=4096, num_attention_heads=32,
             num_key_value_heads=8, head_dim=128, intermediate_size=11008, vocab_size=151_680, attention_bias=True,
             sliding_window=32768, max_window_layers=32, use_sliding_window=False, num_nextn_predict_layers=1,
             tie_word_embeddings=False)
    m = model_from_config(c)
    layer = 4096 * 4096 * 2 + 2 * 4096 * 1024 + 4096 + 2 * 1024 + 3 * 4096 * 11008 + 2 * 4096
    assert m.params == 36 * layer + 2 * 151_680 * 4096 + 4096 == 7_622_619_136
    assert [w for w in m.warnings if "not a family" in w] == []


def test_nemotron_h_block_list_stands_for_the_layer_count():
    # Nemotron-3 Ultra's config lists layers_block_type (108 entries) and no num_hidden_layers
    c = dict(model_type="nemotron_h", hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
             vocab_size=1000, intermediate_size=512, mamba_num_heads=8, mamba_head_dim=32, ssm_state_size=16,
             n_groups=2, conv_kernel=4, layers_block_type=["mamba", "attention", "mlp"])
    m = model_from_config(c)
    assert m.kinds == ("state", "full", "none")
    assert breakdown(m, Scenario(prompt_tokens=1)).kv_bytes_per_token == 2 * 2 * 64 * 2
