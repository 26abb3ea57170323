"""The Hugging Face Hub, replayed: recorded files served as the Hub serves them (GET with Range), as a
fetch function for kvdash.hub and as a local HTTP server (HF_ENDPOINT) for the browser tests. No test
touches the network.

tests/data/hub/OWNER--NAME/ holds what was recorded for a repository (see its README.md). The machine
that wrote these tests could not reach the Hub, so the recordings are the repository's files as
published in a public GitHub mirror (config.json and model.safetensors.index.json, byte for byte), and
the safetensors *headers* of the shards are rebuilt here from the index's tensor names: shapes from the
config (Llama's architecture), dtypes from the bitsandbytes int8 layout the config declares. The
index's own `total_size` (a recorded number) then checks the rebuilt headers independently.
"""

from __future__ import annotations

import json
import struct
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HUB = Path(__file__).resolve().parent / "data" / "hub"
LLAMA_INT8 = "IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM"


def _llama_shape(name: str, cfg: dict) -> tuple[str, list[int]]:
    """(safetensors dtype, shape) of a tensor of a bitsandbytes-int8 Llama checkpoint, by its name."""
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    rows = {"q_proj": h, "k_proj": kv, "v_proj": kv, "o_proj": h, "gate_proj": inter, "up_proj": inter,
            "down_proj": h}
    cols = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": inter}
    if name in ("lm_head.weight", "model.embed_tokens.weight"):
        return "F32", [vocab, h]  # torch_dtype float32: the unquantized tensors are stored in fp32
    if name.endswith("layernorm.weight") or name == "model.norm.weight":
        return "F32", [h]
    proj = name.split(".")[-2]
    if name.endswith(".weight"):
        return "I8", [rows[proj], cols[proj]]  # LLM.int8(): one signed byte per weight
    if name.endswith(".SCB"):
        return "F32", [rows[proj]]  # one fp32 scale per output row
    if name.endswith(".weight_format"):
        return "U8", []  # a scalar naming the layout
    raise ValueError(f"unknown tensor {name}")


def safetensors_header(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    sizes = {"F32": 4, "I8": 1, "U8": 1, "BF16": 2}
    meta, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        meta[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    body = json.dumps(meta).encode()
    return struct.pack("<Q", len(body)) + body


@lru_cache(maxsize=4)
def recorded(repo: str) -> dict[str, bytes]:
    """Path in the repository -> the bytes the Hub would serve (a shard: its header only)."""
    folder = HUB / repo.replace("/", "--")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".json"}
    cfg = json.loads(files["config.json"])
    index = json.loads(files["model.safetensors.index.json"])
    shards: dict[str, dict] = {}
    for name, shard in sorted(index["weight_map"].items()):
        shards.setdefault(shard, {})[name] = _llama_shape(name, cfg)
    files.update({shard: safetensors_header(t) for shard, t in shards.items()})
    return files


def serve(files: dict[str, bytes], path: str, headers: dict) -> tuple[int, bytes]:
    if path not in files:
        return 404, b""
    body = files[path]
    rng = headers.get("Range") or headers.get("range")
    if rng:
        lo, hi = (int(x) for x in rng.removeprefix("bytes=").split("-"))
        return 206, body[lo:hi + 1]
    return 200, body


def replay_fetch(url: str, headers: dict, repos=(LLAMA_INT8,), status: int | None = None) -> tuple[int, bytes]:
    """A kvdash.hub fetch answering from the recordings (`status` forces an answer, e.g. 401 gated)."""
    if status is not None:
        return status, b""
    for repo in repos:
        prefix = f"https://huggingface.co/{repo}/resolve/main/"
        if url.startswith(prefix):
            return serve(recorded(repo), url.removeprefix(prefix), headers)
    return 404, b""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        for repo in (LLAMA_INT8,):
            prefix = f"/{repo}/resolve/main/"
            if self.path.startswith(prefix):
                status, body = serve(recorded(repo), self.path.removeprefix(prefix), dict(self.headers))
                break
        else:
            status, body = 404, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def start_server() -> tuple[str, ThreadingHTTPServer]:
    """A local replay of the Hub on a free loopback port: (HF_ENDPOINT, server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
