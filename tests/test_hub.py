"""A model by its Hub id, through huggingface_hub, against a local replay of the Hub (tests/hub_replay.py) that
answers as the Hub does (its error codes, its redirect of large files to a storage host): no network."""

import json
import struct
import time

import pytest

import kvdash.hub as hub
from kvdash.errors import KvdashError
from kvdash.hub import load_checkpoint, parse_repo_id, tensor_sizes
from tests.hub_replay import LLAMA_INT8, FakeHub, recorded, safetensors_header, start_server

TINY = {"config.json": b'{"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 100}',
        "model.safetensors": safetensors_header({"wte.weight": ("F32", [100, 64]), "h.0.ln_1.bias": ("F32", [64])})}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A fresh replayed Hub as HF_ENDPOINT, an empty download cache and no remembered answers."""
    url, server = start_server(FakeHub(repos={LLAMA_INT8: {"main": recorded(LLAMA_INT8)},
                                              "someone/tiny": {"v1": TINY, "refs/pr/3": TINY},
                                              "meta-llama/Llama-3.1-8B": {"main": recorded(LLAMA_INT8)}},
                                       gated={"meta-llama/Llama-3.1-8B": {"hf_granted"}}))
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    yield server
    server.shutdown()


def test_a_sharded_mixed_precision_checkpoint_is_read_from_its_headers(fake):
    said = []
    cp = load_checkpoint(LLAMA_INT8, token="", progress=said.append)
    assert cp.config["model_type"] == "llama" and cp.name == "Llama-3.1-8B-Computer-Networks-LLM"
    # the recorded index's total_size; the headers (rebuilt from the config's shapes) must add up to it
    assert cp.tensor_bytes == 11_188_584_672
    assert cp.dtype_bytes == {"I8": 6_979_321_856, "F32": 5_505_024 + 4_202_692_608 + 1_064_960, "U8": 224}
    assert cp.n_tensors == 32 * (7 * 3 + 2) + 3  # 7 matrices x (weight, SCB, format) + 2 norms; embed, head, norm
    assert cp.files == ("config.json", "model.safetensors.index.json", "6 shard headers")
    assert "11,188,584,672 B of tensors" in cp.summary() and "I8 62%" in cp.summary()
    assert said[-1] == f"read 6 of 6 shard headers of {LLAMA_INT8}"
    # only headers were read from the storage host: ranges, never a whole shard
    assert all(method == "GET" for origin, method, *_ in fake.seen if origin == "storage")
    # and nothing but the files: no telemetry or registry request on the side (kvdash.hub turns telemetry off)
    assert all("/resolve/" in path for origin, _, path, _ in fake.seen if origin == "hub")


def test_a_single_file_checkpoint_at_a_revision_from_any_hub_url_form(fake):
    cp = load_checkpoint("https://huggingface.co/someone/tiny/tree/v1", token="")
    assert (cp.repo, cp.revision) == ("someone/tiny", "v1")
    assert cp.tensor_bytes == (100 * 64 + 64) * 4 and cp.n_tensors == 2
    assert load_checkpoint("someone/tiny@refs/pr/3", token="").tensor_bytes == cp.tensor_bytes


@pytest.mark.parametrize(("text", "repo", "revision"), [
    ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "main"),
    ("meta-llama/Llama-3.1-8B@v1.0", "meta-llama/Llama-3.1-8B", "v1.0"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "main"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/", "meta-llama/Llama-3.1-8B", "main"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main", "meta-llama/Llama-3.1-8B", "main"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/tree/refs%2Fpr%2F12", "meta-llama/Llama-3.1-8B", "refs/pr/12"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/blob/abc123/config.json", "meta-llama/Llama-3.1-8B", "abc123"),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json", "meta-llama/Llama-3.1-8B", "main"),
    ("huggingface.co/meta-llama/Llama-3.1-8B?library=transformers", "meta-llama/Llama-3.1-8B", "main"),
    ("https://hf.co/meta-llama/Llama-3.1-8B#files", "meta-llama/Llama-3.1-8B", "main"),
    ("https://huggingface.co/models/meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "main"),
])
def test_every_hub_url_form_names_the_model(text, repo, revision):
    assert parse_repo_id(text) == (repo, revision)


@pytest.mark.parametrize(("text", "token", "says"), [
    # a typo: the Hub answers 401 RepoNotFound without a token, 404 with one; never "gated"
    ("meta-llama/Llama-3.1-8b-typo", "", "no model 'meta-llama/Llama-3.1-8b-typo' on the Hugging Face Hub: check"),
    ("meta-llama/Llama-3.1-8b-typo", "hf_x", "or the server's HF_TOKEN cannot see it"),
    ("meta-llama/Llama-3.1-8B", "", "is gated: accept its licence"),  # 401 GatedRepo
    ("meta-llama/Llama-3.1-8B", "hf_other", "is gated: accept its licence"),  # 403 GatedRepo: a token, no access
    ("someone/tiny@v2", "", "has no revision 'v2'"),  # not "no model"
])
def test_hub_failures_name_their_cause(fake, text, token, says):
    with pytest.raises(KvdashError, match=says):
        load_checkpoint(text, token=token)


def test_a_gated_model_with_access_reads_and_the_token_never_leaves_the_hub(fake):
    cp = load_checkpoint("meta-llama/Llama-3.1-8B", token="hf_granted")
    assert cp.tensor_bytes == 11_188_584_672
    hub_auth = {auth for origin, _, path, auth in fake.seen if origin == "hub" and "/resolve/" in path}
    storage_auth = {auth for origin, *_, auth in fake.seen if origin == "storage"}
    assert hub_auth == {"Bearer hf_granted"}  # the Hub gets the token ...
    assert storage_auth == {None}  # ... the storage host the shards redirect to never does (checked on the wire)


def test_no_token_is_sent_when_none_is_set(fake):
    load_checkpoint("someone/tiny@v1", token="")
    assert {auth for *_, auth in fake.seen} == {None}


def test_headers_are_read_in_parallel(fake):
    fake.delay = 0.4  # every answer of the Hub and of its storage takes 0.4 s
    t0 = time.perf_counter()
    load_checkpoint(LLAMA_INT8, token="")
    # config (HEAD, HEAD, GET), index (HEAD, HEAD, GET): 6 answers one after another, then 6 shards x (Hub
    # redirect, storage range) = 12 answers in series, or 2 when they run side by side
    assert time.perf_counter() - t0 < (6 + 2 + 3) * 0.4  # series would take (6 + 12) x 0.4 = 7.2 s


@pytest.mark.parametrize("text", ["", "llama", "a/b/c", "../etc/passwd", "owner/na me", "x" * 400,
                                  "owner/name@bad/rev", "https://example.com/a/b"])
def test_bad_ids_are_refused(text):
    with pytest.raises(KvdashError, match="not a Hugging Face model id"):
        parse_repo_id(text)


def test_hostile_headers_are_refused_not_trusted(fake):
    with pytest.raises(KvdashError, match="does not size"):
        tensor_sizes({"w": {"dtype": "Q4_K", "shape": [2, 2]}})
    with pytest.raises(KvdashError, match="bad shape"):
        tensor_sizes({"w": {"dtype": "F32", "shape": [-1, 2]}})
    fake.repos["a/b"] = {"main": {"config.json": json.dumps({"model_type": "llama"}).encode(),
                                  "model.safetensors": struct.pack("<Q", 1 << 40)}}
    with pytest.raises(KvdashError, match="unreadable safetensors header"):
        load_checkpoint("a/b", token="")
    fake.repos["a/big"] = {"main": {"config.json": b" " * (hub.MAX_CONFIG_BYTES + 1)}}
    with pytest.raises(KvdashError, match="larger than kvdash reads"):
        load_checkpoint("a/big", token="")


def test_answers_are_cached_per_process(fake):
    first = load_checkpoint(LLAMA_INT8, token="")
    n = len(fake.seen)
    assert load_checkpoint(LLAMA_INT8, token="") is first and len(fake.seen) == n


def _modelopt_nvfp4_repo() -> dict:
    """A two-layer Llama as ModelOpt's older NVFP4 exports lay it out (written for this test, not recorded): the
    quantization in hf_quant_config.json, none in config.json; each layer's attention left in bf16 (exclude_modules);
    an NVFP4 matrix stored as packed 4-bit values (U8, two a byte), an F8_E4M3 scale per 16 inputs, and two fp32
    scalars (weight_scale_2, input_scale)."""
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 100,
           "torch_dtype": "bfloat16", "tie_word_embeddings": False, "max_position_embeddings": 2048}
    quant = {"producer": {"name": "modelopt"}, "quantization": {
        "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head", "model.layers.0.self_attn*",
                                                                      "model.layers.1.self_attn*"]}}
    t = {"model.embed_tokens.weight": ("BF16", [100, 64]), "lm_head.weight": ("BF16", [100, 64]),
         "model.norm.weight": ("BF16", [64])}
    for i in range(2):
        p = f"model.layers.{i}."
        t |= {p + "input_layernorm.weight": ("BF16", [64]), p + "post_attention_layernorm.weight": ("BF16", [64])}
        for name, rows in (("q_proj", 64), ("k_proj", 32), ("v_proj", 32), ("o_proj", 64)):
            t[f"{p}self_attn.{name}.weight"] = ("BF16", [rows, 64])
        for name, rows, cols in (("gate_proj", 128, 64), ("up_proj", 128, 64), ("down_proj", 64, 128)):
            q = f"{p}mlp.{name}."
            t |= {q + "weight": ("U8", [rows, cols // 2]), q + "weight_scale": ("F8_E4M3", [rows, cols // 16]),
                  q + "weight_scale_2": ("F32", []), q + "input_scale": ("F32", [])}
    return {"config.json": json.dumps(cfg).encode(), "hf_quant_config.json": json.dumps(quant).encode(),
            "model.safetensors": safetensors_header(t)}


def test_a_modelopt_export_s_hf_quant_config_is_read(fake):
    from kvdash.breakdown import breakdown
    from kvdash.hf_config import model_from_config
    from kvdash.scenario import Scenario

    fake.repos["someone/tiny-nvfp4"] = {"main": _modelopt_nvfp4_repo()}
    cp = load_checkpoint("someone/tiny-nvfp4", token="")
    assert cp.files == ("config.json", "hf_quant_config.json", "model.safetensors header")
    m = model_from_config(cp.config)
    assert (m.weights_format, m.mixer_format) == ("nvfp4", "bf16") and not m.warnings
    # by hand: a layer's attention (64 + 32 + 32 + 64) x 64 x 2 B = 24,576; its three NVFP4 matrices of 8,192 values
    # 3 x (4,096 + 512 + 8) = 13,848; two norms 256; embeddings and head 2 x 100 x 64 x 2 B; the final norm 128
    assert cp.tensor_bytes == 2 * (24_576 + 13_848 + 256) + 25_600 + 128 == 103_088
    assert breakdown(m, Scenario(weights_dtype="nvfp4"))["weights"] == cp.tensor_bytes
    # a file without ModelOpt's "quantization" object is refused in words
    fake.repos["someone/odd-quant"] = {"main": _modelopt_nvfp4_repo() | {"hf_quant_config.json": b'{"x": 1}'}}
    with pytest.raises(KvdashError, match="no 'quantization' object"):
        load_checkpoint("someone/odd-quant", token="")


def test_the_cli_sizes_a_hub_model(fake, capsys):
    from kvdash.cli import main

    assert main(["size", "--hub", LLAMA_INT8, "--context", "1000", "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    # Llama-3.1-8B's shape: 8 KV heads x (128 + 128) x 2 B x 32 layers per token, 8,030,261,248 parameters
    assert (data["model"], data["params"], data["kv_bytes_per_token"]) == (
        "Llama-3.1-8B-Computer-Networks-LLM", 8_030_261_248, 131_072)
    assert "11,188,584,672 B of tensors" in out.err  # what was read, on stderr beside the JSON
    assert main(["size", "--hub", "meta-llama/Llama-3.1-8B"]) == 2
    assert "is gated" in capsys.readouterr().err


def test_the_sidebar_reads_a_hub_id_and_compares_the_checkpoint(fake):
    from tests.test_app import run_app

    at = run_app(source="Hub id", hub=LLAMA_INT8)
    assert not at.exception
    assert at.title[0].value.startswith("Llama-3.1-8B-Computer-Networks-LLM")  # the id's name, not a file's
    assert any("11,188,584,672 B of tensors" in c.value for c in at.sidebar.caption)
    # measured beside computed: bf16 Llama-3.1-8B weights are 16,060,522,496 B, the int8 checkpoint 43.5 % less
    assert any("16,060,522,496 B (+43.54%)" in w.value for w in at.warning)
    at = run_app(source="Hub id", hub="meta-llama/Llama-3.1-8B")
    assert not at.exception and any("is gated" in e.value for e in at.error)


def test_a_failed_lookup_is_not_retried_on_every_redraw(fake, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: clock[0])
    for _ in range(3):  # three redraws within the minute: one question to the Hub
        with pytest.raises(KvdashError, match="is gated"):
            load_checkpoint("meta-llama/Llama-3.1-8B", token="")
    asked = len(fake.seen)
    clock[0] += hub.RETRY_AFTER_S + 1  # a minute later it asks again
    with pytest.raises(KvdashError):
        load_checkpoint("meta-llama/Llama-3.1-8B", token="")
    assert len(fake.seen) > asked
