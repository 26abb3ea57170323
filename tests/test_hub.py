"""A model by its Hub id, against recorded responses (tests/hub_replay.py): no network."""

import json
import struct
from functools import partial

import pytest

from kvdash.errors import KvdashError
from kvdash.hub import load_checkpoint, parse_repo_id, tensor_sizes
from tests.hub_replay import LLAMA_INT8, replay_fetch, safetensors_header


def test_a_sharded_mixed_precision_checkpoint_is_read_from_its_headers():
    cp = load_checkpoint(LLAMA_INT8, fetch=replay_fetch, token="")
    assert cp.config["model_type"] == "llama" and cp.name == "Llama-3.1-8B-Computer-Networks-LLM"
    # the recorded index's total_size; the headers (rebuilt from the config's shapes) must add up to it
    assert cp.tensor_bytes == 11_188_584_672
    assert cp.dtype_bytes == {"I8": 6_979_321_856, "F32": 5_505_024 + 4_202_692_608 + 1_064_960, "U8": 224}
    assert cp.n_tensors == 32 * (7 * 3 + 2) + 3  # 7 matrices x (weight, SCB, format) + 2 norms; embed, head, norm
    assert cp.files == ("config.json", "model.safetensors.index.json", "6 shard headers")
    assert "11,188,584,672 B of tensors" in cp.summary() and "I8 62%" in cp.summary()


def test_a_single_file_checkpoint_at_a_revision():
    calls = []
    files = {"config.json": b'{"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 100}',
             "model.safetensors": safetensors_header({"wte.weight": ("F32", [100, 64]),
                                                      "h.0.ln_1.bias": ("F32", [64])})}

    def fetch(url, headers):
        calls.append(url)
        path = url.rsplit("/", 1)[1]
        if path not in files:
            return 404, b""
        lo, hi = (int(x) for x in headers["Range"].removeprefix("bytes=").split("-")) if "Range" in headers \
            else (0, len(files[path]) - 1)
        return 200, files[path][lo:hi + 1]

    cp = load_checkpoint("https://huggingface.co/someone/tiny@v1", fetch=fetch, token="")
    assert (cp.repo, cp.revision) == ("someone/tiny", "v1")
    assert cp.tensor_bytes == (100 * 64 + 64) * 4 and cp.n_tensors == 2
    assert calls[0] == "https://huggingface.co/someone/tiny/resolve/v1/config.json"


@pytest.mark.parametrize(("status", "says"), [(401, "gated or private"), (403, "HF_TOKEN"), (404, "no model"),
                                              (500, "answered 500")])
def test_hub_failures_are_one_sentence(status, says):
    with pytest.raises(KvdashError, match=says):
        load_checkpoint(LLAMA_INT8, fetch=partial(replay_fetch, status=status), token="")


def test_the_token_is_sent_only_when_set():
    seen = []

    def fetch(url, headers):
        seen.append(headers.get("Authorization"))
        return 401, b""

    with pytest.raises(KvdashError):
        load_checkpoint(LLAMA_INT8, fetch=fetch, token="hf_secret")
    assert seen == ["Bearer hf_secret"]


@pytest.mark.parametrize("text", ["", "llama", "a/b/c", "../etc/passwd", "owner/na me", "x" * 400,
                                  "owner/name@bad/rev", "https://example.com/a/b"])
def test_bad_ids_are_refused(text):
    with pytest.raises(KvdashError, match="not a Hugging Face model id"):
        parse_repo_id(text)


def test_hostile_headers_are_refused_not_trusted():
    with pytest.raises(KvdashError, match="does not size"):
        tensor_sizes({"w": {"dtype": "Q4_K", "shape": [2, 2]}})
    with pytest.raises(KvdashError, match="bad shape"):
        tensor_sizes({"w": {"dtype": "F32", "shape": [-1, 2]}})
    huge = struct.pack("<Q", 1 << 40)

    def fetch(url, headers):
        if url.endswith("config.json"):
            return 200, json.dumps({"model_type": "llama"}).encode()
        if url.endswith("index.json"):
            return 404, b""
        return 206, huge

    with pytest.raises(KvdashError, match="beyond the format's limit"):
        load_checkpoint("a/b", fetch=fetch, token="")


def test_answers_are_cached_per_process(monkeypatch):
    import kvdash.hub as hub

    calls = []
    monkeypatch.setattr(hub, "urllib_fetch", lambda url, headers: calls.append(url) or replay_fetch(url, headers))
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    first = hub.load_checkpoint(LLAMA_INT8, token="")
    n = len(calls)
    assert n == 2 + 12 and hub.load_checkpoint(LLAMA_INT8, token="") is first and len(calls) == n  # 6 x 2 ranges


def test_the_cli_sizes_a_hub_model(monkeypatch, capsys):
    import kvdash.hub as hub
    from kvdash.cli import main

    monkeypatch.setattr(hub, "urllib_fetch", replay_fetch)
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert main(["size", "--hub", LLAMA_INT8, "--context", "1000", "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    # Llama-3.1-8B's shape: 8 KV heads x (128 + 128) x 2 B x 32 layers per token, 8,030,261,248 parameters
    assert (data["model"], data["params"], data["kv_bytes_per_token"]) == (
        "Llama-3.1-8B-Computer-Networks-LLM", 8_030_261_248, 131_072)
    assert "11,188,584,672 B of tensors" in out.err  # what was read, on stderr beside the JSON
    monkeypatch.setattr(hub, "urllib_fetch", partial(replay_fetch, status=401))
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    assert main(["size", "--hub", "meta-llama/Llama-3.1-8B"]) == 2
    assert "gated or private" in capsys.readouterr().err


def test_the_sidebar_reads_a_hub_id_and_compares_the_checkpoint(monkeypatch):
    import kvdash.hub as hub
    from tests.test_app import run_app

    monkeypatch.setattr(hub, "urllib_fetch", replay_fetch)
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    at = run_app(source="Hub id", hub=LLAMA_INT8)
    assert not at.exception
    assert at.title[0].value.startswith("Llama-3.1-8B-Computer-Networks-LLM")  # the id's name, not a file's
    assert any("11,188,584,672 B of tensors" in c.value for c in at.sidebar.caption)
    # measured beside computed: bf16 Llama-3.1-8B weights are 16,060,522,496 B, the int8 checkpoint 43.5 % less
    assert any("16,060,522,496 B (+43.54%)" in w.value for w in at.warning)
    monkeypatch.setattr(hub, "urllib_fetch", partial(replay_fetch, status=401))
    at = run_app(source="Hub id", hub="meta-llama/Llama-3.1-8B")
    assert not at.exception and any("gated or private" in e.value for e in at.error)


def test_a_failed_lookup_is_not_retried_on_every_redraw(monkeypatch):
    import kvdash.hub as hub

    calls = []
    monkeypatch.setattr(hub, "urllib_fetch", lambda url, headers: calls.append(url) or (401, b""))
    monkeypatch.setattr(hub, "_CACHE", {})
    monkeypatch.setattr(hub, "_FAILED", {})
    clock = [1000.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: clock[0])
    for _ in range(3):  # three redraws within the minute: one request to the Hub
        with pytest.raises(KvdashError, match="gated or private"):
            hub.load_checkpoint("meta-llama/Llama-3.1-8B", token="")
    assert len(calls) == 1
    clock[0] += hub.RETRY_AFTER_S + 1  # a minute later it asks again
    with pytest.raises(KvdashError):
        hub.load_checkpoint("meta-llama/Llama-3.1-8B", token="")
    assert len(calls) == 2
