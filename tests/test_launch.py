"""Launch commands (issue #21, item 4): the flags are the engines' own, as their documentation spells them
(vLLM's `vllm serve --help`, SGLang's server arguments page, trtllm-serve's options), and every setting the
sizing assumed reaches the command or a note says why it cannot."""

from kvdash.hf_config import model_from_config
from kvdash.launch import launch
from kvdash.presets import get_preset
from kvdash.scenario import Scenario

LLAMA = get_preset("llama-3.1-8b")
SETTINGS = dict(utilization=0.9, max_model_len=8192, block_size=16, max_num_batched_tokens=8192, max_num_seqs=256)


def test_vllm_command_carries_every_sized_setting():
    s = Scenario(batch=8, prompt_tokens=4096, new_tokens=1024, tp=2, weights_dtype="fp8", kv_dtype="fp8")
    cmd = launch(LLAMA.model, s, "vllm", "meta-llama/Llama-3.1-8B", **SETTINGS)
    assert cmd.text() == (
        "vllm serve meta-llama/Llama-3.1-8B \\\n    --tensor-parallel-size 2 \\\n    --gpu-memory-utilization 0.9 "
        "\\\n    --max-model-len 8192 \\\n    --block-size 16 \\\n    --max-num-batched-tokens 8192 \\\n"
        "    --max-num-seqs 256 \\\n    --quantization fp8 \\\n    --kv-cache-dtype fp8")
    assert cmd.notes == () and cmd.env == ()


def test_sglang_and_trtllm_spell_their_own_flags():
    s = Scenario(prompt_tokens=4096, tp=4, pp=2, kv_dtype="fp8")
    sg = launch(LLAMA.model, s, "sglang", "m/x", **SETTINGS).argv
    assert sg[:5] == ("python", "-m", "sglang.launch_server", "--model-path", "m/x")
    for pair in (("--tp-size", "4"), ("--pp-size", "2"), ("--mem-fraction-static", "0.9"), ("--context-length", "8192"),
                 ("--page-size", "16"), ("--chunked-prefill-size", "8192"), ("--max-running-requests", "256"),
                 ("--kv-cache-dtype", "fp8_e4m3")):
        assert " ".join(pair) in " ".join(sg)
    trt = launch(LLAMA.model, s, "trtllm", "m/x", **SETTINGS)
    assert trt.argv == ("trtllm-serve", "m/x", "--tp_size", "4", "--pp_size", "2",
                        "--kv_cache_free_gpu_memory_fraction", "0.9", "--max_seq_len", "8192", "--max_num_tokens",
                        "8192", "--max_batch_size", "256")
    assert trt.notes == ("in the YAML file given to --extra_llm_api_options: kv_cache_config: {tokens_per_block: 16, "
                         "dtype: fp8}",)


def test_a_length_beyond_the_trained_context_needs_the_override_and_says_so():
    s = Scenario(prompt_tokens=4096)
    cmd = launch(LLAMA.model, s, "vllm", "m/x", **SETTINGS | {"max_model_len": 16_777_216})
    assert cmd.env == ("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1",)
    assert cmd.text().startswith("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve m/x")
    assert any("16,777,216 tokens exceed the 131,072 the model was trained for" in n for n in cmd.notes)
    short = launch(LLAMA.model, Scenario(prompt_tokens=9000), "vllm", "m/x", **SETTINGS)
    assert any("9,000 tokens" in n and "would reject them" in n for n in short.notes)


def test_expert_parallelism_and_formats_the_engine_cannot_make():
    cfg = get_preset("qwen3-30b-a3b").config
    m = model_from_config(cfg)
    s = Scenario(prompt_tokens=1024, tp=4, expert_parallel=True, weights_dtype="int4")
    v = launch(m, s, "vllm", "Qwen/Qwen3-30B-A3B", **SETTINGS)
    assert "--enable-expert-parallel" in v.argv and "--quantization" not in v.argv
    assert any("weights in int4: the engine loads what the checkpoint stores (bf16)" in n for n in v.notes)
    assert ("--ep-size", "4") in launch(m, s, "sglang", "q", **SETTINGS).flags
    # a checkpoint already in fp8 needs no flag: the engine reads its quantization_config
    fp8 = model_from_config(cfg | {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}})
    assert "--quantization" not in launch(fp8, Scenario(prompt_tokens=1024, weights_dtype="fp8-block"), "vllm", "q",
                                          **SETTINGS).argv


def test_a_sequence_limit_of_zero_leaves_the_engines_own():
    # SGLang runs as many requests as its pool holds unless told otherwise: no --max-running-requests invented
    argv = launch(LLAMA.model, Scenario(prompt_tokens=1024), "sglang", "m/x", **SETTINGS | {"max_num_seqs": 0}).argv
    assert "--max-running-requests" not in argv and "--chunked-prefill-size" in argv


def test_speculation_with_mtp_modules_reaches_each_engines_command():
    """vLLM's --speculative-config (method "mtp"), SGLang's EAGLE worker over the NextN weights (num-steps k,
    top-k 1, k + 1 draft tokens), TensorRT-LLM's speculative_config in its YAML."""
    v3 = get_preset("deepseek-v3").model
    s = Scenario(prompt_tokens=4096, tp=8, weights_dtype="fp8-block", runtime="vllm", spec_tokens=2, spec_accepted=2.4)
    vllm = launch(v3, s, "vllm", "deepseek-ai/DeepSeek-V3", **SETTINGS).argv
    i = vllm.index("--speculative-config")
    assert vllm[i + 1] == '{"method": "mtp", "num_speculative_tokens": 2}'
    sg = launch(v3, s, "sglang", "deepseek-ai/DeepSeek-V3", **SETTINGS).argv
    for pair in (("--speculative-algorithm", "EAGLE"), ("--speculative-num-steps", "2"),
                 ("--speculative-eagle-topk", "1"), ("--speculative-num-draft-tokens", "3")):
        i = sg.index(pair[0])
        assert sg[i:i + 2] == pair
    trt = launch(v3, s, "trtllm", "deepseek-ai/DeepSeek-V3", **SETTINGS)
    assert any("speculative_config: {decoding_type: MTP, num_nextn_predict_layers: 2}" in n for n in trt.notes)
