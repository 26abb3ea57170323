"""The CLI contract: JSON fields, readable tables, and one-line errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvdash.cli import main
from kvdash.presets import get_preset


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_size_json_fields(capsys):
    rc, out, _ = run(capsys, "size", "--preset", "llama-3.1-8b", "--batch", "2", "--context", "4096", "--json")
    d = json.loads(out)
    assert rc == 0
    for key in ("params", "weights_bytes", "kv_cache_bytes", "kv_bytes_per_token", "activation_bytes",
                "overhead_bytes", "total_bytes"):
        assert isinstance(d[key], int), key
    assert d["params"] == 8_030_261_248
    assert d["kv_cache_bytes"] == 2 * 4096 * 131_072
    assert d["total_bytes"] == sum(c["bytes"] for c in d["components"])
    assert "fits" not in d


def test_size_with_gpu_and_tp(capsys):
    rc, out, _ = run(capsys, "size", "--preset", "llama-3.1-70b", "--context", "8192", "--tp", "4",
                     "--gpu", "nvidia-h100-sxm5", "--json")
    d = json.loads(out)
    assert rc == 0 and d["per_gpu"] is True and d["n_gpus"] == 4
    assert d["kv_cache_bytes"] == 8192 * 327_680 // 4
    assert d["gpu_usable_bytes"] == 81_079 * 2**20 and d["fits"] is True
    assert d["max_batch"] >= 1


def test_sliding_and_latent_in_json(capsys):
    _, out, _ = run(capsys, "size", "--preset", "mistral-7b-v0.1", "--context", "10000", "--json")
    assert json.loads(out)["kv_cache_bytes"] == 4096 * 131_072  # every layer holds min(T, 4096)
    _, out, _ = run(capsys, "size", "--preset", "deepseek-v3", "--context", "1000", "--tp", "8", "--json")
    assert json.loads(out)["kv_cache_bytes"] == 1000 * 70_272  # the latent is replicated per GPU


def test_block_size_rounds_only_when_asked(capsys):
    _, out, _ = run(capsys, "size", "--preset", "llama-3.1-8b", "--context", "1000", "--json")
    assert json.loads(out)["kv_cache_bytes"] == 1000 * 131_072
    _, out, _ = run(capsys, "size", "--preset", "llama-3.1-8b", "--context", "1000", "--block-size", "16", "--json")
    assert json.loads(out)["kv_cache_bytes"] == 1008 * 131_072


def test_config_file(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(get_preset("qwen3-8b").config))
    rc, out, _ = run(capsys, "size", "--config", str(path), "--json")
    assert rc == 0 and json.loads(out)["params"] == 8_190_735_360


def test_readable_table(capsys):
    rc, out, _ = run(capsys, "size", "--preset", "llama-3.1-8b", "--gpu", "nvidia-rtx-4090")
    assert rc == 0
    assert "KV cache" in out and "131,072 B/token" in out and "GiB" in out
    assert "fits" in out and "largest batch" in out


def test_units_switch(capsys):
    _, out, _ = run(capsys, "size", "--preset", "gpt2", "--units", "GB")
    assert " GB" in out or " MB" in out
    assert "GiB" not in out.split("\n", 3)[3]


def test_lists(capsys):
    rc, out, _ = run(capsys, "presets")
    assert rc == 0 and "llama-3.1-8b" in out
    rc, out, _ = run(capsys, "gpus")
    assert rc == 0 and "nvidia-h200-sxm" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["size"], "--preset"),
        (["size", "--preset", "nope"], "unknown preset"),
        (["size", "--preset", "gpt2", "--batch", "x"], "invalid int"),
        (["size", "--preset", "gpt2", "--batch", "0"], "batch"),
        (["size", "--preset", "gpt2", "--context", "-5"], "prompt_tokens"),
        (["size", "--preset", "gpt2", "--tp", "5"], "must divide"),
        (["size", "--preset", "gpt2", "--gpu", "h100"], "did you mean"),
        (["size", "--preset", "gpt2", "--kv-dtype", "fp4"], "invalid choice"),
        (["size", "--config", "/no/such/file.json"], "cannot read config"),
        (["capacity", "--preset", "gpt2"], "--kv-budget-gib"),
        (["capacity", "--preset", "gpt2", "--kv-budget-gib", "-1", "--max-model-len", "10"], "KV budget"),
        (["capacity", "--preset", "gpt2", "--kv-budget-gib", "nan"], "KV budget"),
        (["bogus"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("kvdash: error:")
    assert needle in err


def test_bad_config_file(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(get_preset("llama-3.1-8b").config | {"hidden_size": "big"}))
    rc, _, err = run(capsys, "size", "--config", str(path))
    assert rc == 2 and "'hidden_size' must be an integer" in err


def test_an_encoder_only_config_is_refused_in_one_line(capsys, tmp_path):
    # BAAI/bge-base-en-v1.5's shape (BertModel): an embedding model keeps no KV cache
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(model_type="bert", architectures=["BertModel"], hidden_size=768,
                                    num_attention_heads=12, num_hidden_layers=12, intermediate_size=3072,
                                    vocab_size=30_522, max_position_embeddings=512, type_vocab_size=2)))
    rc, out, err = run(capsys, "size", "--config", str(path))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "encoder-only" in err and "no KV cache" in err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "kvdash", "size", "--preset", "gpt2", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["params"] == 124_439_808
    bad = subprocess.run([sys.executable, "-m", "kvdash", "size", "--preset", "gpt2", "--tp", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"hybrid_override_pattern": "M*M*"}, "'hybrid_override_pattern' changes the memory of a nemotron_h model"),
        ({"attention_chunk_size": 8192}, "'attention_chunk_size'"),
        ({"quantization_config": "fp8"}, "'quantization_config' must be an object"),
        ({"model_type": "nemotron_h", "hybrid_override_pattern": "MX"}, "'hybrid_override_pattern' must have"),
        ({"model_type": "jamba", "attn_layer_period": 0}, "'attn_layer_period' = 0 is out of range"),
        ({"model_type": "qwen3_next", "layer_types": ["mamba"] * 32, "linear_num_key_heads": 16,
          "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128},
         "not a known layer type"),
        ({"model_type": "mllama", "cross_attention_layers": [99]}, "must list layer indices"),
        ({"model_type": "gemma4_text", "attention_k_eq_v": True}, "'layer_types'"),
    ],
)
def test_hostile_hybrid_configs_exit_2_with_one_line(capsys, tmp_path, change, needle):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(get_preset("llama-3.1-8b").config | change))
    rc, out, err = run(capsys, "size", "--config", str(path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and needle in err


def test_size_json_reports_state_layers_and_warnings(capsys, tmp_path):
    corpus = Path(__file__).parent / "data" / "configs"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(json.loads((corpus / "ai21-jamba-1-5-mini.json").read_text())["config"]))
    rc, out, _ = run(capsys, "size", "--config", str(path), "--context", "65536", "--json")
    d = json.loads(out)
    # Jamba-1.5-Mini by hand (see the corpus record): 4 attention layers x 8 KV heads x 256 x 2 B per token;
    # 28 Mamba layers x (8,192 x 3 conv + 8,192 x 16 recurrent) x 2 B per sequence
    assert rc == 0 and d["kv_bytes_per_token"] == 4 * 8 * 256 * 2 == 16_384
    assert d["state_bytes_per_seq"] == 28 * (8192 * 3 + 8192 * 16) * 2 == 8_716_288
    assert {(r["label"], r["layers"]) for r in d["layers"]} == {("full", 4), ("Mamba", 28)}
    assert d["warnings"] == []
