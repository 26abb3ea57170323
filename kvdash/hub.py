"""A model by its Hugging Face Hub id: its config.json and its checkpoint's tensor sizes, through
huggingface_hub, the Hub's own client (its error classes, HF_TOKEN and stored-login handling, HF_ENDPOINT mirrors,
its download cache; it never sends the token to a host other than the Hub's, such as the storage a large file
redirects to).

kvdash reads `config.json` (and `hf_quant_config.json` where a ModelOpt export keeps its quantization there),
then `model.safetensors.index.json` (a sharded checkpoint: its `metadata.total_size` is the exact byte count of
every tensor) or the single `model.safetensors`. Of a safetensors file it reads only
the header (huggingface_hub's parse_safetensors_file_metadata: a range request, never the weights), the shards'
headers in parallel with a progress callback. Answers are kept for the life of the process. Every failure is one
sentence naming its cause (KvdashError); uploading or pasting a config.json needs none of this. Nothing fetched is
executed: the config goes through the same hostile-input parser as an upload, sizes are checked before a file is
downloaded.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from urllib.parse import unquote

from kvdash.errors import KvdashError
from kvdash.hf_config import MAX_CONFIG_BYTES, parse_config_text

# owner/name as the Hub allows them, optionally @revision (a branch, tag, commit, or refs/pr/N)
REPO_ID = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,95})/([A-Za-z0-9][A-Za-z0-9_.-]{0,95})"
                     r"(?:@((?:refs/pr/\d{1,6})|[A-Za-z0-9_.-]{1,64}))?")
# the Hub's URL forms: a model page, a file or folder at a revision (/tree, /blob, /resolve), a short hf.co link
_HUB_URL = re.compile(r"(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?:models/)?([^/?#]+/[^/?#@]+)"
                      r"(?:/(?:tree|blob|resolve)/([^/?#]+))?(?:[/?#].*)?")
MAX_INDEX_BYTES = 16 << 20
MAX_SHARDS = 200
MAX_SHARD_HEADERS = 16  # beyond this many shards, the index's total_size alone (no dtype mix)
PARALLEL_HEADERS = 8
TIMEOUT_S = 10
# bytes per element of each safetensors dtype (sub-byte formats packed two to a byte)
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
               "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1}
CACHE_DIR = None  # huggingface_hub's download cache (HF_HOME); tests point it elsewhere
# huggingface_hub's telemetry adds to each request's user agent and fetches an "agent harness" registry from the
# Hub once a day; kvdash asks for a config and headers only. Off unless the environment says otherwise (it is
# read when huggingface_hub is first imported).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def parse_repo_id(text: str) -> tuple[str, str]:
    """('owner/name', revision) from what a user typed: an id, an id@revision, or any Hub URL of the model
    (its page, /tree/REV, /blob/REV/config.json, /resolve/..., hf.co/...)."""
    raw = str(text).strip()[:300]
    url = _HUB_URL.fullmatch(raw)
    if url:
        raw = url.group(1) + (f"@{unquote(url.group(2))}" if url.group(2) else "")
    raw = raw.strip("/")
    m = REPO_ID.fullmatch(raw)
    if not m or ".." in raw:
        raise KvdashError(f"{raw[:80]!r} is not a Hugging Face model id (owner/name, e.g. meta-llama/Llama-3.1-8B)")
    return f"{m.group(1)}/{m.group(2)}", m.group(3) or "main"


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


def load_checkpoint(text: str, token: str | None = None,
                    progress: Callable[[str], None] | None = None) -> Checkpoint:
    """config.json and tensor sizes of a Hub model (see the module docstring). Cached per process. `token`:
    None for huggingface_hub's own (HF_TOKEN, or a stored login), "" for none. `progress` hears a sentence as
    each shard's header arrives."""
    repo, revision = parse_repo_id(text)
    key = (repo, revision, os.environ.get("HF_ENDPOINT", ""), token)
    if key in _CACHE:
        return _CACHE[key]
    failed = _FAILED.get(key)
    if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
        raise KvdashError(failed[1])
    try:
        cp = _load(repo, revision, token, progress or (lambda _: None))
    except KvdashError as e:
        _FAILED[key] = (time.monotonic(), str(e))
        raise
    _CACHE[key] = cp
    return cp


class _Reader:
    """One repository at one revision through huggingface_hub, its errors as one sentence each."""

    def __init__(self, repo: str, revision: str, token: str | None):
        from huggingface_hub import HfApi, get_token

        self.repo, self.revision = repo, revision
        self.token = False if token == "" else token  # False: send none, not even a stored login
        self.has_token = bool(self.token) if self.token is not None else get_token() is not None
        self.api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=self.token)

    def _sentence(self, e: Exception, path: str) -> KvdashError:
        from huggingface_hub import errors as hf

        if isinstance(e, hf.GatedRepoError):
            return KvdashError(f"{self.repo} is gated: accept its licence on its Hub page with the account whose "
                               "token the server uses"
                               + ("" if self.has_token else " (no HF_TOKEN is set on the server)"))
        if isinstance(e, hf.RepositoryNotFoundError):
            return KvdashError(f"no model {self.repo!r} on the Hugging Face Hub: check the id"
                               + (" (or the server's HF_TOKEN cannot see it)" if self.has_token else
                                  " (a private model needs HF_TOKEN on the server)"))
        if isinstance(e, hf.RevisionNotFoundError):
            return KvdashError(f"{self.repo} has no revision {self.revision!r} (a branch, tag or commit)")
        if isinstance(e, hf.EntryNotFoundError):
            return KvdashError(f"{self.repo}@{self.revision} has no {path}")
        if isinstance(e, hf.HfHubHTTPError) and e.response is not None:
            status = e.response.status_code
            if status == 403:
                return KvdashError(f"the server's HF_TOKEN may not read {self.repo} (the token's permissions)")
            return KvdashError(f"the Hub answered {status} for {self.repo}/{path}")
        if isinstance(e, hf.SafetensorsParsingError):
            return KvdashError(f"{self.repo}/{path} has an unreadable safetensors header")
        return KvdashError(f"could not reach the Hugging Face Hub ({type(e).__name__}); upload or paste the "
                           "config.json instead")

    def size(self, path: str, missing_ok: bool = False) -> int | None:
        """The file's size from a HEAD request (None where it is missing and `missing_ok`)."""
        from huggingface_hub import errors as hf
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo, path, revision=self.revision, endpoint=self.api.endpoint)
        try:
            return get_hf_file_metadata(url, token=self.token, timeout=TIMEOUT_S).size or 0
        except Exception as e:
            if missing_ok and isinstance(e, hf.EntryNotFoundError):
                return None
            raise self._sentence(e, path) from None

    def text(self, path: str, limit: int, size: int | None = None) -> bytes:
        """A small file, after its size is checked: never more than `limit` bytes are downloaded."""
        from huggingface_hub import hf_hub_download

        n = self.size(path) if size is None else size
        if n > limit:
            raise KvdashError(f"{self.repo}/{path} is {n:,} bytes, larger than kvdash reads ({limit:,})")
        try:
            local = hf_hub_download(self.repo, path, revision=self.revision, token=self.token,
                                    endpoint=self.api.endpoint, cache_dir=CACHE_DIR, etag_timeout=TIMEOUT_S)
        except Exception as e:
            raise self._sentence(e, path) from None
        with open(local, "rb") as f:
            return f.read(limit + 1)

    def header(self, path: str) -> dict:
        """A safetensors file's header, as {tensor: {dtype, shape}} (huggingface_hub reads it by range)."""
        try:
            meta = self.api.parse_safetensors_file_metadata(self.repo, path, revision=self.revision,
                                                            token=self.token, timeout=TIMEOUT_S)
        except Exception as e:
            raise self._sentence(e, path) from None
        return {name: {"dtype": t.dtype, "shape": list(t.shape)} for name, t in meta.tensors.items()}


QUANT_FILE = "hf_quant_config.json"


def modelopt_quantization(text: bytes, repo: str) -> dict:
    """The quantization_config an hf_quant_config.json stands for: its "quantization" object (quant_algo,
    group_size, exclude_modules, ...), as ModelOpt's. Parsed as data only, like a config."""
    q = parse_config_text(text).get("quantization")
    if not isinstance(q, dict):
        raise KvdashError(f"{repo}/{QUANT_FILE} has no 'quantization' object: not ModelOpt's quantization file")
    return {**q, "quant_method": "modelopt"}


def _load(repo: str, revision: str, token: str | None, progress: Callable[[str], None]) -> Checkpoint:
    hub = _Reader(repo, revision, token)
    progress(f"reading {repo}'s config.json")
    config = parse_config_text(hub.text("config.json", MAX_CONFIG_BYTES))
    files = ["config.json"]
    # ModelOpt's exports before it wrote quantization_config into config.json keep it in hf_quant_config.json (as
    # vLLM's ModelConfig reads it when config.json has none)
    quant_size = None if "quantization_config" in config else hub.size(QUANT_FILE, missing_ok=True)
    if quant_size is not None:
        text = hub.text(QUANT_FILE, MAX_CONFIG_BYTES, quant_size)
        config = {**config, "quantization_config": modelopt_quantization(text, repo)}
        files.append(QUANT_FILE)
    dtypes: dict[str, int] = {}
    total = n = None
    progress(f"looking for {repo}'s safetensors checkpoint")
    index_size = hub.size("model.safetensors.index.json", missing_ok=True)
    if index_size is not None:
        try:
            idx = json.loads(hub.text("model.safetensors.index.json", MAX_INDEX_BYTES, index_size).decode("utf-8"))
            shards = sorted(set(idx["weight_map"].values()))
            size = (idx.get("metadata") or {}).get("total_size")
            total = int(size) if size else None
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise KvdashError(f"{repo}/model.safetensors.index.json is not a safetensors index") from None
        files.append("model.safetensors.index.json")
        if len(shards) > MAX_SHARDS or any(not re.fullmatch(r"[\w.-]{1,120}\.safetensors", s) for s in shards):
            raise KvdashError(f"{repo}'s index names shards kvdash will not fetch")
        if len(shards) <= MAX_SHARD_HEADERS or total is None:
            n = 0
            progress(f"reading {len(shards)} shard headers of {repo}, {min(len(shards), PARALLEL_HEADERS)} at a time")
            with ThreadPoolExecutor(PARALLEL_HEADERS) as pool:
                futures = [pool.submit(hub.header, shard) for shard in shards]
                for done, future in enumerate(as_completed(futures), 1):
                    sizes, count = tensor_sizes(future.result())
                    for d, b in sizes.items():
                        dtypes[d] = dtypes.get(d, 0) + b
                    n += count
                    progress(f"read {done} of {len(shards)} shard headers of {repo}")
            files.append(f"{len(shards)} shard header{'s' if len(shards) > 1 else ''}")
            summed = sum(dtypes.values())
            if total is not None and summed != total:
                raise KvdashError(f"{repo}: the index says {total:,} B of tensors but the headers add up to "
                                  f"{summed:,} B")
            total = summed
    elif hub.size("model.safetensors", missing_ok=True) is not None:
        progress(f"reading {repo}'s model.safetensors header")
        dtypes, n = tensor_sizes(hub.header("model.safetensors"))
        total = sum(dtypes.values())
        files.append("model.safetensors header")
    return Checkpoint(repo, revision, config, total, dtypes, n, tuple(files))
