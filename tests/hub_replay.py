"""The Hugging Face Hub, replayed: a local server that answers as the Hub does, from recorded files, for kvdash.hub
(through huggingface_hub) in the tests and for the browser tests (HF_ENDPOINT). No test touches the network.

What the Hub does, and the replay with it (huggingface_hub's utils/_http.py hf_raise_for_status and
file_download.get_hf_file_metadata read these): `HEAD` or `GET /{repo}/resolve/{revision}/{path}`;
- a repository that does not exist, or that the caller may not see: 401 without a token, 404 with one, both
  `X-Error-Code: RepoNotFound`; a gated one: 401 without a token, 403 with one that has no access, `GatedRepo`;
  an unknown revision `RevisionNotFound`, a missing file `EntryNotFound` (404);
- a file: 200 with `X-Repo-Commit` and `ETag`; a large (LFS) file: a 302 to a storage host with `X-Linked-Size`
  and `X-Linked-Etag`, where the bytes are served (Range requests: 206). The storage host is another origin, so
  a client must not send it the token: `FakeHub.seen` records what each request carried, on the wire.

tests/data/hub/OWNER--NAME/ holds what was recorded for a repository (see its README.md). The machine that wrote
these tests could not reach the Hub, so the recordings are the repository's files as published in a public
GitHub mirror (config.json and model.safetensors.index.json, byte for byte), and the safetensors *headers* of
the shards are rebuilt here from the index's tensor names: shapes from the config (Llama's architecture), dtypes
from the bitsandbytes int8 layout the config declares. The index's own `total_size` (a recorded number) then
checks the rebuilt headers independently.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

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
    sizes = {"F32": 4, "I8": 1, "U8": 1, "BF16": 2, "F8_E4M3": 1}
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


def _sha(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()


@dataclass
class FakeHub:
    """The repositories it serves ({repo: {revision: {path: bytes}}}), which are gated or private (the tokens
    that may read them), a delay before every answer, and every request it saw."""

    repos: dict = field(default_factory=lambda: {LLAMA_INT8: {"main": recorded(LLAMA_INT8)}})
    gated: dict = field(default_factory=dict)  # repo -> tokens with access
    private: dict = field(default_factory=dict)  # repo -> tokens with access
    delay: float = 0.0
    seen: list = field(default_factory=list)  # (origin "hub" / "storage", method, path, Authorization or None)
    url: str = ""
    storage_url: str = ""

    def answer(self, method: str, path: str, auth: str | None, rng: str | None) -> tuple[int, dict, bytes]:
        parts = path.split("?")[0].lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b""
        repo, revision, file = f"{parts[0]}/{parts[1]}", unquote(parts[3]), "/".join(parts[4:])
        token = auth.removeprefix("Bearer ") if auth else None
        revisions = self.repos.get(repo)
        if revisions is None or (repo in self.private and token not in self.private[repo]):
            return (404 if token else 401), {"X-Error-Code": "RepoNotFound",
                                             "X-Error-Message": "Repository not found"}, b""
        if repo in self.gated and token not in self.gated[repo]:
            return (403 if token else 401), {"X-Error-Code": "GatedRepo", "X-Error-Message": (
                f"Access to model {repo} is restricted and you are not in the authorized list.")}, b""
        if revision not in revisions:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b""
        body = revisions[revision].get(file)
        if body is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}, b""
        etag = _sha(repo, revision, file)
        headers = {"X-Repo-Commit": _sha(repo, revision), "ETag": f'"{etag}"'}
        if file.endswith(".safetensors"):  # large files live on the storage host
            headers |= {"Location": f"{self.storage_url}/{repo}/{quote(revision, safe='')}/{file}?signed=1",
                        "X-Linked-Size": str(len(body)), "X-Linked-Etag": f'"{etag}"'}
            return 302, headers, b""
        return _ranged(body, rng, headers, method)

    def storage(self, method: str, path: str, rng: str | None) -> tuple[int, dict, bytes]:
        repo_a, repo_b, revision, *file = path.split("?")[0].lstrip("/").split("/")
        body = self.repos.get(f"{repo_a}/{repo_b}", {}).get(unquote(revision), {}).get("/".join(file))
        return (404, {}, b"") if body is None else _ranged(body, rng, {}, method)


def _ranged(body: bytes, rng: str | None, headers: dict, method: str) -> tuple[int, dict, bytes]:
    if rng:
        lo, _, hi = rng.removeprefix("bytes=").partition("-")
        lo, hi = int(lo), min(int(hi) if hi else len(body) - 1, len(body) - 1)
        headers = headers | {"Content-Range": f"bytes {lo}-{hi}/{len(body)}"}
        status, body = 206, body[lo:hi + 1]
    else:
        status = 200
    return status, headers | {"Content-Length": str(len(body))}, b"" if method == "HEAD" else body


def _handler(hub: FakeHub, origin: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            time.sleep(hub.delay)
            auth, rng = self.headers.get("Authorization"), self.headers.get("Range")
            hub.seen.append((origin, method, self.path, auth))
            status, headers, body = (hub.answer(method, self.path, auth, rng) if origin == "hub"
                                     else hub.storage(method, self.path, rng))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._reply("GET")

        def do_HEAD(self):
            self._reply("HEAD")

        def log_message(self, *args):  # quiet
            pass

    return Handler


def start_server(hub: FakeHub | None = None) -> tuple[str, FakeHub]:
    """A local replay of the Hub and of its storage host on two free loopback ports: (HF_ENDPOINT, hub). The
    hub's `shutdown()` stops both."""
    hub = hub or FakeHub()
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub, origin)) for origin in ("hub", "storage")]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    hub.url, hub.storage_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    hub.shutdown = lambda: [s.shutdown() for s in servers]
    return hub.url, hub
