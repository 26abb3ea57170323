"""Mixed-precision weights from the per-tensor table, against hand calculations and published sizes."""

import json
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.dtypes import get_dtype
from kvdash.errors import KvdashError
from kvdash.hf_config import model_from_config
from kvdash.presets import get_preset, preset_model
from kvdash.scenario import Scenario
from kvdash.weights import weight_table

CONFIGS = Path(__file__).parent / "data" / "configs"


def corpus(rid: str) -> dict:
    return json.loads((CONFIGS / f"{rid}.json").read_text())["config"]


def test_gpt_oss_120b_reads_mxfp4_experts_and_matches_its_checkpoint():
    m = model_from_config(corpus("gpt-oss-120b"))
    # quantization_config: mxfp4, with the attention, router, embeddings and head left in bf16
    assert (m.weights_format, m.experts_format) == ("", "mxfp4")
    # experts: 36 layers x 128 x 3 x 2880 x 2880 values, 4 bits each + one byte per 32 values
    experts = 36 * 128 * 3 * 2880 * 2880
    expected = experts // 2 + experts // 32 + 2 * (m.params - experts)
    b = breakdown(m, Scenario(weights_dtype="bf16", moe_weights_dtype="mxfp4"))
    assert b["weights"] == expected == 65_248_815_744
    # the model card: "60.8 GiB" for the 120b checkpoint
    assert abs(b["weights"] / (60.8 * 2**30) - 1) < 0.01


def test_gpt_oss_20b_matches_its_checkpoint_files():
    m = model_from_config(corpus("gpt-oss-20b"))
    experts = 24 * 32 * 3 * 2880 * 2880
    b = breakdown(m, Scenario(moe_weights_dtype="mxfp4"))
    assert b["weights"] == experts // 2 + experts // 32 + 2 * (m.params - experts) == 13_761_264_768
    # the three safetensors files of openai/gpt-oss-20b add up to 13,761,316,904 bytes (their git-LFS
    # pointers); the difference is the files' JSON headers
    assert abs(b["weights"] / 13_761_316_904 - 1) < 0.01


def test_deepseek_fp8_counts_one_fp32_scale_per_128_by_128_block():
    m = model_from_config(corpus("deepseek-r1-0528"))
    assert (m.weights_format, m.experts_format) == ("fp8-block", "fp8-block")

    def fp8(rows, cols):  # 1 B per value + 4 B per started 128 x 128 tile
        return rows * cols + -(-rows // 128) * -(-cols // 128) * 4

    # DeepSeek-V3's checkpoint shapes: MLA (q_lora 1536, kv_lora 512, rope 64, 128 heads of 128 + 64 / 128),
    # 3 dense layers (18,432), 58 MoE layers of 256 routed experts + 1 shared (2,048 each)
    attn = fp8(1536, 7168) + fp8(128 * 192, 1536) + fp8(576, 7168) + fp8(128 * 256, 512) + fp8(7168, 128 * 128)
    dense = 2 * fp8(18432, 7168) + fp8(7168, 18432)
    expert = 2 * fp8(2048, 7168) + fp8(7168, 2048)
    assert fp8(576, 7168) == 576 * 7168 + 5 * 56 * 4  # the latent projection: 576 rows start 5 row-blocks
    matrices = 61 * attn + 3 * dense + 58 * 257 * expert
    vectors = (61 * (1536 + 512 + 2 * 7168)  # q_a and kv_a norms, two layer norms
               + 58 * (256 * 7168 + 256)  # routers and their correction biases
               + 2 * 129280 * 7168 + 7168)  # embedding, head, final norm
    b = breakdown(m, Scenario(weights_dtype="fp8-block"))
    assert b["weights"] == matrices + 2 * vectors


def test_awq_int4_counts_scales_and_zeros():
    # Llama-3.1-8B as an AWQ checkpoint (quant_method awq, 4 bits, group 128, zero_point): every matrix
    # stores 4-bit values, an fp16 scale and a packed 4-bit zero per 128 inputs of each output row.
    cfg = dict(get_preset("llama-3.1-8b").config,
               quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                    "version": "gemm"})
    m = model_from_config(cfg)
    assert m.weights_format == "awq-int4"
    linear = 6_979_321_856  # 32 x (2 x 4096^2 + 2 x 4096 x 1024 + 3 x 4096 x 14336)
    other = 2 * 128_256 * 4096 + 65 * 4096
    groups = linear // 128  # every input dimension (4096, 14336) is a multiple of 128
    b = breakdown(m, Scenario(weights_dtype="awq-int4"))
    assert b["weights"] == linear // 2 + groups * 2 + groups // 2 + 2 * other == 5_727_854_592


def test_gptq_adds_a_group_index_per_input_and_reads_its_group_size():
    cfg = dict(get_preset("llama-3.1-8b").config,
               quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True})
    m = model_from_config(cfg)
    assert m.weights_format == "gptq-int4-g32"
    d = get_dtype(m.weights_format)
    # q_proj 4096 x 4096: 8,388,608 B of values, 4096 x 128 groups of (2 B scale + 0.5 B zero), 4096 x 4 B g_idx
    assert d.matrix_bytes(4096, 4096) == 4096 * 4096 // 2 + 4096 * 128 * 2 + 4096 * 128 // 2 + 4096 * 4


def test_nvfp4_scales_and_per_tensor_scalars():
    d = get_dtype("nvfp4")
    # 4-bit values, one fp8 scale per 16 inputs, an fp32 global scale and an fp32 input scale
    assert d.matrix_bytes(4096, 14336) == 4096 * 14336 // 2 + 4096 * 14336 // 16 + 8


def test_experts_take_their_own_format():
    m = preset_model("mixtral-8x7b")
    experts = 32 * 8 * 3 * 4096 * 14336
    both = breakdown(m, Scenario(weights_dtype="bf16"))["weights"]
    mixed = breakdown(m, Scenario(weights_dtype="bf16", moe_weights_dtype="int4"))["weights"]
    assert both - mixed == 2 * experts - (experts // 2 + experts // 128 * 2)


def test_weight_formats_are_not_kv_formats():
    with pytest.raises(KvdashError, match="weight format"):
        Scenario(kv_dtype="mxfp4")
    with pytest.raises(KvdashError, match="unknown dtype"):
        Scenario(weights_dtype="mxfp4-g0")


def test_weight_table_adds_up_to_the_breakdown():
    m = preset_model("qwen3-30b-a3b")
    s = Scenario(weights_dtype="fp8", moe_weights_dtype="int4")
    rows = weight_table(m, 1, "fp8", "int4")
    assert sum(r["bytes"] for r in rows) == breakdown(m, s)["weights"]
    assert sum(r["count"] * (r["shape"][0] * (r["shape"][1] if len(r["shape"]) > 1 else 1)) for r in rows) == m.params
    experts = [r for r in rows if r["role"] == "expert"]
    assert {r["format"] for r in experts} == {"int4"} and all(r["count"] == 48 * 128 for r in experts)


def test_expert_parallel_holds_whole_experts():
    # Qwen3-30B-A3B on 4 GPUs: 48 MoE layers of 128 experts (2048 <-> 768, gated). Sharded, each GPU holds a
    # quarter of every expert; with expert parallelism 32 whole experts per layer: the same bf16 bytes.
    m = preset_model("qwen3-30b-a3b")
    per_gpu = 48 * 32 * 3 * 2048 * 768
    sharded = breakdown(m, Scenario(tp=4)).stage
    whole = breakdown(m, Scenario(tp=4, expert_parallel=True)).stage
    assert sharded.expert_bytes == whole.expert_bytes == 2 * per_gpu
    # In int4 they differ: a sharded down_proj row keeps 768 / 4 = 192 inputs, 2 groups of 128 (one partial),
    # so 4 shards hold 8 scales where the whole row holds 768 / 128 = 6.
    def int4(rows, cols):
        return rows * cols // 2 + rows * -(-cols // 128) * 2
    shard = 48 * 128 * (2 * int4(768 // 4, 2048) + int4(2048, 768 // 4))
    full = 48 * 32 * (2 * int4(768, 2048) + int4(2048, 768))
    assert breakdown(m, Scenario(tp=4, weights_dtype="int4")).stage.expert_bytes == shard
    assert breakdown(m, Scenario(tp=4, weights_dtype="int4", expert_parallel=True)).stage.expert_bytes == full
    assert shard > full  # partial groups cost scales
    with pytest.raises(KvdashError, match="expert count"):  # 8 experts cannot split over 16 GPUs
        breakdown(preset_model("mixtral-8x7b"), Scenario(tp=16, expert_parallel=True))
    with pytest.raises(KvdashError, match="mixture-of-experts"):
        breakdown(preset_model("llama-3.1-8b"), Scenario(tp=2, expert_parallel=True))


def test_modules_left_unquantized_in_some_layers_are_warned_not_guessed():
    base = dict(get_preset("llama-3.1-8b").config)
    # one layer's attention and an MLP projection left in 16-bit: kvdash cannot size that per layer, so it
    # keeps the checkpoint's format for the matrices and says which modules it did not model
    cfg = base | {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                          "modules_to_not_convert": ["model.layers.0.self_attn", "mlp.gate_proj",
                                                                     "lm_head", "model.norm"]}}
    m = model_from_config(cfg)
    assert m.weights_format == "awq-int4"
    assert any("model.layers.0.self_attn, mlp.gate_proj unquantized" in w for w in m.warnings)
    # every layer's attention left unquantized (gpt-oss's pattern) is modelled: the matrices stay 16-bit
    every = base | {"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert":
                                            ["model.layers.*.self_attn", "model.layers.*.mlp.router"]}}
    m = model_from_config(every)
    assert (m.weights_format, m.experts_format) == ("", "mxfp4") and not m.warnings
    # Kimi-K2.5's ignore list leaves attention, shared experts and dense MLPs unquantized: only its routed experts are
    # int4; Laguna-XS.2-FP8's leaves only the attention (and the router): its other matrices stay fp8-block
    kimi, laguna = (model_from_config(json.loads((CONFIGS / f"{n}.json").read_text())["config"])
                    for n in ("kimi-k2.5", "laguna-xs.2-fp8"))
    assert (kimi.weights_format, kimi.experts_format, kimi.mixer_format) == ("", "int4-g32", "")
    assert not any("unquantized" in w for w in kimi.warnings + laguna.warnings)
    assert (laguna.weights_format, laguna.experts_format, laguna.mixer_format) == ("fp8-block", "fp8-block", "bf16")


def test_nvfp4_checkpoints_that_keep_attention_in_bf16_are_sized_so():
    # NVIDIA's ModelOpt NVFP4 exports leave every layer's attention unquantized: exclude_modules lists
    # "model.layers.N.self_attn*" for each N (nvidia/DeepSeek-R1-0528-NVFP4, GLM-4.7-NVFP4, MiniMax-M2.5-NVFP4
    # hf_quant_config.json); here Llama-3.1-8B's 32 layers in that form
    from kvdash.report import formulas
    from kvdash.step import layer_ops

    base = json.loads(json.dumps(get_preset("llama-3.1-8b").config))
    q = {"quant_algo": "NVFP4", "group_size": 16, "producer": {"name": "modelopt"},
         "exclude_modules": ["lm_head", *(f"model.layers.{i}.self_attn*" for i in range(32))]}
    m = model_from_config(base | {"quantization_config": q})
    assert (m.weights_format, m.mixer_format) == ("nvfp4", "bf16") and not m.warnings
    # attention: 32 x (2 x 4,096 x 4,096 + 2 x 1,024 x 4,096) = 1,342,177,280 values at 2 B; each MLP matrix
    # (14,336 x 4,096 values) in NVFP4: half a byte a value, a byte per 16, 8 B a tensor = 33,030,152 B, 3 x 32 of
    # them; embeddings, LM head and 65 norms in bf16
    attention, mlp = 1_342_177_280 * 2, 96 * (58_720_256 // 2 + 58_720_256 // 16 + 8)
    sixteen = (2 * 128_256 * 4096 + 65 * 4096) * 2
    b = breakdown(m, Scenario(weights_dtype="nvfp4"))
    assert b["weights"] == attention + mlp + sixteen == 7_957_127_936
    assert "1,342,177,280 × 2 B (bf16) [attention, unquantized in the checkpoint]" in formulas(b)["weights"]
    # the step times those matrices as 16-bit GEMMs (fused q/k/v, o_proj), the MLP's as NVFP4 ones
    assert [(n, k, f) for n, k, _, f in layer_ops(m, 1, 1, "nvfp4", "nvfp4")[0].gemms] == [
        (6144, 4096, "bf16"), (4096, 4096, "bf16"), (28_672, 4096, "nvfp4"), (4096, 14_336, "nvfp4")]
    # a format chosen for the model applies to every matrix; one layer's attention listed alone stays a warning
    assert breakdown(m, Scenario(weights_dtype="fp8"))["weights"] == breakdown(
        preset_model("llama-3.1-8b"), Scenario(weights_dtype="fp8"))["weights"]
    some = model_from_config(base | {"quantization_config": q | {"exclude_modules": ["model.layers.0.self_attn*"]}})
    assert (some.weights_format, some.mixer_format) == ("nvfp4", "") and any("unquantized" in w for w in some.warnings)
    # a hostile layer index (thousands of digits) is warned about like any other entry, never turned into an int
    hostile = f"model.layers.{'9' * 5000}.self_attn*"
    odd = model_from_config(base | {"quantization_config": q | {"exclude_modules": [hostile]}})
    assert odd.mixer_format == "" and any("unquantized" in w for w in odd.warnings)


def test_a_checkpoint_that_quantizes_some_of_the_attention_keeps_the_rest_16_bit():
    # nvidia/DeepSeek-R1-0528-FP4-v2 "additionally quantizes the wo module in attention layers" (its model card): its
    # exclude list names q_a_proj, q_b_proj, kv_a_proj_with_mqa and kv_b_proj for each of the 61 layers
    cfg = json.loads(json.dumps(get_preset("deepseek-v3").config))
    cfg.pop("quantization_config", None)
    names = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj")
    q = {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head", *(
        f"model.layers.{i}.self_attn.{n}" for i in range(62) for n in names)]}  # 62: the MTP layer's too
    v2 = model_from_config(cfg | {"quantization_config": q})
    assert (v2.weights_format, v2.mixer_format, v2.mixer_tensors) == ("nvfp4", "bf16", tuple(sorted(names)))
    assert not any("unquantized" in w for w in v2.warnings)
    whole = model_from_config(cfg | {"quantization_config": q | {"exclude_modules": [
        f"model.layers.{i}.self_attn*" for i in range(61)]}})
    assert (whole.mixer_format, whole.mixer_tensors) == ("bf16", ())
    # the difference is o_proj, 7,168 x (128 heads x 128) = 117,440,512 values a layer: 2 B each in bf16, against
    # half a byte, a byte per 16 and 8 B a tensor in NVFP4 (66,060,296 B): 168,820,728 B x 61 layers
    s = Scenario(weights_dtype="nvfp4")
    assert breakdown(whole, s)["weights"] - breakdown(v2, s)["weights"] == 61 * (
        117_440_512 * 2 - (117_440_512 // 2 + 117_440_512 // 16 + 8)) == 10_298_064_408


def _compressed_tensors(weights: dict, fmt: str) -> dict:
    """llm-compressor's quantization_config for one scheme on every Linear but the LM head."""
    return dict(quant_method="compressed-tensors", format=fmt, ignore=["lm_head"],
                config_groups=dict(group_0=dict(targets=["Linear"], weights=weights, input_activations=None)))


def test_compressed_tensors_w4a16_w8a8_and_fp8_dynamic():
    base = json.loads(json.dumps(get_preset("llama-3.1-8b").config))
    # Llama-3.1-8B's 32 layers of linear weights: 32 x (4,096 x 6,144 + 4,096 x 4,096 + 3 x 4,096 x 14,336)
    # = 6,979,321,856 values; embeddings and the LM head (left in bf16) 2 x 128,256 x 4,096; norms 65 x 4,096
    linear, sixteen = 6_979_321_856, (2 * 128_256 * 4096 + 65 * 4096) * 2
    rows = 32 * (6144 + 4096 + 2 * 14_336 + 4096)  # output channels of those matrices
    w4 = dict(num_bits=4, type="int", symmetric=True, strategy="group", group_size=128)
    m = model_from_config(base | {"quantization_config": _compressed_tensors(w4, "pack-quantized")})
    # W4A16: half a byte per value and one bf16 scale per 128 inputs (was bf16 with a "null bits" warning)
    assert m.weights_format == "int4" and not m.warnings
    w4_bytes = linear // 2 + linear // 128 * 2 + sixteen
    assert breakdown(m, Scenario(weights_dtype=m.weights_format))["weights"] == w4_bytes
    # asymmetric: a packed int4 zero per group as well
    asym = model_from_config(base | {"quantization_config": _compressed_tensors(w4 | {"symmetric": False},
                                                                                 "pack-quantized")})
    assert asym.weights_format == "int4-asym"
    # W8A8 int8 and FP8-dynamic: a byte per value and one fp32 scale per output channel
    for kind, fmt, name in (("int", "int-quantized", "int8-channel"), ("float", "float-quantized", "fp8-channel")):
        w8 = dict(num_bits=8, type=kind, symmetric=True, strategy="channel")
        m8 = model_from_config(base | {"quantization_config": _compressed_tensors(w8, fmt)})
        assert m8.weights_format == name
        assert breakdown(m8, Scenario(weights_dtype=name))["weights"] == linear + rows * 4 + sixteen


def test_modelopt_hf_quant_config_form_is_read():
    # modelopt writes quant_algo without quant_method (e.g. Qwen3-32B-FP8-Static-PerTensor's config in
    # AIConfigurator's model_configs: quant_algo FP8, producer modelopt); MIXED_PRECISION stays unread, and says so
    from kvdash.hf_config import model_from_config
    base = json.loads((CONFIGS / "qwen3-8b.json").read_text())["config"]
    fp8 = model_from_config(base | {"quantization_config": {"quant_algo": "FP8", "producer": {"name": "modelopt"}}})
    assert fp8.weights_format == "fp8" and not fp8.warnings
    mixed = model_from_config(base | {"quantization_config": {"quant_algo": "MIXED_PRECISION"}})
    assert mixed.weights_format == "" and any("not modelled" in w for w in mixed.warnings)
