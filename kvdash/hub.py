"""A model by its Hugging Face Hub id: its config.json and its checkpoint's tensor sizes, over HTTP.

kvdash asks the Hub for `config.json`, then for `model.safetensors.index.json` (a sharded checkpoint:
its `metadata.total_size` is the exact byte count of every tensor) or the single `model.safetensors`.
Of a safetensors file it reads only the header, as hf-mem does: 8 bytes of length, then the JSON that
names every tensor's dtype and shape (two range requests, never the weights). `HF_TOKEN` is sent for
gated models. Answers are kept for the life of the process. Every failure is one sentence
(KvdashError); uploading or pasting a config.json needs none of this. Nothing fetched is executed:
the config goes through the same hostile-input parser as an upload, headers through json.loads.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from kvdash.errors import KvdashError
from kvdash.hf_config import MAX_CONFIG_BYTES, parse_config_text

ENDPOINT = "https://huggingface.co"  # HF_ENDPOINT overrides it, as in huggingface_hub (a mirror, or a replay)
# owner/name as the Hub allows them, optionally @revision (a branch, tag or commit)
REPO_ID = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,95})/([A-Za-z0-9][A-Za-z0-9_.-]{0,95})(?:@([A-Za-z0-9_.-]{1,64}))?")
MAX_INDEX_BYTES = 16 << 20
MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit on a header
MAX_SHARD_HEADERS = 16  # beyond this many shards, the index's total_size alone (no dtype mix)
TIMEOUT_S = 10
# bytes per element of each safetensors dtype (sub-byte formats packed two to a byte)
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
               "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1}

# (status, body) for a GET of `url` with these headers; the real one is urllib, tests replay recordings
Fetch = Callable[[str, dict], tuple[int, bytes]]


def parse_repo_id(text: str) -> tuple[str, str]:
    """('owner/name', revision) from what a user typed: an id, an id@revision, or a Hub URL."""
    raw = str(text).strip()[:300]
    raw = re.sub(r"^https?://(www\.)?huggingface\.co/", "", raw).strip("/")
    m = REPO_ID.fullmatch(raw)
    if not m or ".." in raw:
        raise KvdashError(f"{raw[:80]!r} is not a Hugging Face model id (owner/name, e.g. meta-llama/Llama-3.1-8B)")
    return f"{m.group(1)}/{m.group(2)}", m.group(3) or "main"


def urllib_fetch(url: str, headers: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"User-Agent": "kvdash", **headers})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            return r.status, r.read(MAX_HEADER_BYTES + 8)
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise KvdashError(f"could not reach the Hugging Face Hub ({reason}); upload or paste the config.json "
                          "instead") from None


@dataclass(frozen=True)
class Checkpoint:
    repo: str
    revision: str
    config: dict
    tensor_bytes: int | None = None  # exact bytes of every tensor in the checkpoint; None: not safetensors
    dtype_bytes: dict[str, int] = field(default_factory=dict)  # of them, per dtype (from the headers)
    n_tensors: int | None = None
    files: tuple[str, ...] = ()  # what was read

    @property
    def name(self) -> str:
        return self.repo.split("/", 1)[1]

    def summary(self) -> str:
        if self.tensor_bytes is None:
            return f"{self.repo}: config.json read; no safetensors checkpoint found to check the weights against"
        mix = ", ".join(f"{d} {b / self.tensor_bytes:.0%}" for d, b in
                        sorted(self.dtype_bytes.items(), key=lambda kv: -kv[1]))
        return (f"{self.repo}: {self.tensor_bytes:,} B of tensors"
                + (f" in {self.n_tensors:,} tensors ({mix})" if self.n_tensors else "")
                + f", read from {', '.join(self.files)}")


class _Hub:
    def __init__(self, repo: str, revision: str, fetch: Fetch, token: str | None):
        endpoint = os.environ.get("HF_ENDPOINT", ENDPOINT).rstrip("/")
        self.base = f"{endpoint}/{repo}/resolve/{revision}/"
        self.repo, self.fetch = repo, fetch
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, limit: int, headers: dict | None = None, missing_ok: bool = False) -> bytes | None:
        status, body = self.fetch(self.base + path, {**self.auth, **(headers or {})})
        if status in (200, 206):
            if len(body) > limit:
                raise KvdashError(f"{self.repo}/{path} is larger than kvdash reads ({limit:,} bytes)")
            return body
        if status == 404 and missing_ok:
            return None
        if status in (401, 403):
            raise KvdashError(f"{self.repo} is gated or private: accept its licence on the Hub and set HF_TOKEN")
        if status == 404:
            raise KvdashError(f"no model {self.repo!r} on the Hugging Face Hub (or it has no {path})")
        raise KvdashError(f"the Hub answered {status} for {self.repo}/{path}")

    def header(self, path: str, missing_ok: bool = False) -> dict | None:
        """The JSON header of a safetensors file: its first 8 bytes are the header's length (u64, LE).
        None where the file is missing and `missing_ok`."""
        head = self.get(path, 8, {"Range": "bytes=0-7"}, missing_ok=missing_ok)
        if head is None:
            return None
        if len(head) != 8:
            raise KvdashError(f"{self.repo}/{path} is not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if not 0 < n <= MAX_HEADER_BYTES:
            raise KvdashError(f"{self.repo}/{path} has a {n:,}-byte header, beyond the format's limit")
        body = self.get(path, n, {"Range": f"bytes=8-{7 + n}"})
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KvdashError(f"{self.repo}/{path} has an unreadable header") from None
        if not isinstance(data, dict):
            raise KvdashError(f"{self.repo}/{path} has an unreadable header")
        return data


def tensor_sizes(header: dict) -> tuple[dict[str, int], int]:
    """({dtype: bytes}, tensor count) of one safetensors header: each tensor's elements x its dtype's
    size (4-bit dtypes unknown to DTYPE_BYTES refuse, rather than guess)."""
    out: dict[str, int] = {}
    n = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(t, dict) or not isinstance(t.get("shape"), list):
            raise KvdashError(f"tensor {name[:80]!r} has no shape in the safetensors header")
        dtype = str(t.get("dtype"))
        if dtype not in DTYPE_BYTES:
            raise KvdashError(f"tensor {name[:80]!r} has dtype {dtype[:20]!r}, which kvdash does not size")
        count = 1
        for d in t["shape"]:
            if type(d) is not int or d < 0:
                raise KvdashError(f"tensor {name[:80]!r} has a bad shape")
            count *= d
        out[dtype] = out.get(dtype, 0) + count * DTYPE_BYTES[dtype]
        n += 1
    return out, n


_CACHE: dict[tuple[str, str], Checkpoint] = {}
# A failed lookup is remembered for a minute: every slider move reruns the sidebar, and an unreachable Hub
# must not cost each redraw a 10-second timeout.
_FAILED: dict[tuple[str, str], tuple[float, str]] = {}
RETRY_AFTER_S = 60.0


def load_checkpoint(text: str, fetch: Fetch | None = None, token: str | None = None) -> Checkpoint:
    """config.json and tensor sizes of a Hub model (see the module docstring). Cached per process."""
    repo, revision = parse_repo_id(text)
    key = (repo, revision)
    if fetch is None:
        if key in _CACHE:
            return _CACHE[key]
        failed = _FAILED.get(key)
        if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
            raise KvdashError(failed[1])
        try:
            cp = _load(repo, revision, urllib_fetch, token)
        except KvdashError as e:
            _FAILED[key] = (time.monotonic(), str(e))
            raise
        _CACHE[key] = cp
        return cp
    return _load(repo, revision, fetch, token)


def _load(repo: str, revision: str, fetch: Fetch, token: str | None) -> Checkpoint:
    hub = _Hub(repo, revision, fetch, token if token is not None else os.environ.get("HF_TOKEN"))
    config = parse_config_text(hub.get("config.json", MAX_CONFIG_BYTES))
    files = ["config.json"]
    dtypes: dict[str, int] = {}
    total = n = None
    index = hub.get("model.safetensors.index.json", MAX_INDEX_BYTES, missing_ok=True)
    if index is not None:
        try:
            idx = json.loads(index.decode("utf-8"))
            shards = sorted(set(idx["weight_map"].values()))
            size = (idx.get("metadata") or {}).get("total_size")
            total = int(size) if size else None
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise KvdashError(f"{repo}/model.safetensors.index.json is not a safetensors index") from None
        files.append("model.safetensors.index.json")
        if len(shards) > 200 or any(not re.fullmatch(r"[\w.-]{1,120}\.safetensors", s) for s in shards):
            raise KvdashError(f"{repo}'s index names shards kvdash will not fetch")
        if len(shards) <= MAX_SHARD_HEADERS or total is None:
            n = 0
            for shard in shards:
                sizes, count = tensor_sizes(hub.header(shard))
                for d, b in sizes.items():
                    dtypes[d] = dtypes.get(d, 0) + b
                n += count
            files.append(f"{len(shards)} shard header{'s' if len(shards) > 1 else ''}")
            summed = sum(dtypes.values())
            if total is not None and summed != total:
                raise KvdashError(f"{repo}: the index says {total:,} B of tensors but the headers add up to "
                                  f"{summed:,} B")
            total = summed
    elif (single := hub.header("model.safetensors", missing_ok=True)) is not None:
        dtypes, n = tensor_sizes(single)
        total = sum(dtypes.values())
        files.append("model.safetensors header")
    return Checkpoint(repo, revision, config, total, dtypes, n, tuple(files))
