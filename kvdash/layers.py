"""One frozen spec per layer kind: everything kind-specific about a layer's token mixer lives here.

In the spirit of vLLM's `kv_cache_interface.py`: a model is a list of layer specs, and the breakdown,
sweeps, solvers, capacity, speed model, dashboard variants and live decoder ask each spec; no other
module tests a kind. Adding a kind means one class here plus the config reader.

Every answer is per GPU of a `tp`-way tensor-parallel group:

- `bytes_per_token(kv, tp)`: cache bytes one held token costs (0: nothing grows with the context);
- `held(B, T, S, bs)`: token slots held for B sequences of T tokens sharing an S-token prefix, in
  paged blocks of `bs` tokens (0: contiguous), at the peak of the sequences' life;
- `bytes_per_seq(kv, act, tp, bs)`: fixed bytes per sequence (recurrent state, cross-attention K/V);
- `vllm_*`: the page one block of this layer takes in vLLM and the blocks a request reserves;
- `attention_pairs(queries, context)`, `flops_per_pair(tp)`, `attention_flops` and `read_bytes`: the score
  work and the cache a decode reads, for the speed model;
- `tensors(hidden)`: the mixer's weight tensors (kvdash.params counts and shards them);
- `act_bytes(tp, a, rt)`, `score_heads(tp)`, `mask`, `regrow_bytes_per_token(kv, tp)`, `cache_spec(rt)`: the
  activation terms under a runtime profile (kvdash.runtimes) and the cache that runtime keeps;
- `check_tp(tp)`: the tensor-parallel degrees engines accept.

`held` and the other length functions take `mn`/`mx` so the sweeps evaluate them on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from kvdash.dtypes import DType
from kvdash.errors import KvdashError
from kvdash.units import cdiv


@dataclass(frozen=True)
class Tensor:
    """One weight tensor of a layer (llm.c-style table row): [rows, cols] with cols the input features
    (a vector has cols = 1), how tensor parallelism shards it, and its role, which decides its dtype:
    "linear" matrices take the weights' format, "mixer" ones (a layer's token mixer: attention) the mixer's
    (kvdash.params sets it), "expert" matrices the experts' format, "vector"
    (norms, biases, convolutions, gates), "embed" and "draft" (a speculative head's matrices) stay in 16-bit,
    "index" is an int64 buffer."""

    name: str
    rows: int
    cols: int = 1
    split: str | None = None  # "rows" (column-parallel), "cols" (row-parallel) or None (replicated)
    unit: int = 1  # rows never shard below this (one K/V head: replicated when tp exceeds the heads)
    role: str = "linear"

    def shard(self, tp: int) -> tuple[int, int]:
        """[rows, cols] on one GPU of a tp-way group."""
        if self.split == "rows":
            return max(self.unit, cdiv(self.rows, tp)), self.cols
        if self.split == "cols":
            return self.rows, cdiv(self.cols, tp)
        return self.rows, self.cols

    def numel(self, tp: int = 1) -> int:
        r, c = self.shard(tp)
        return r * c

    @property
    def matrix(self) -> bool:
        return self.role in ("linear", "mixer", "expert", "draft")


# ---- token slots held, for ints or numpy arrays --------------------------------------------------
def held_full(B, T, S: int, bs: int):
    """Token slots per full/latent layer: a shared prefix once, the rest per sequence.

    Paged caches share only whole blocks of the prefix and round each sequence up to blocks.
    """
    if bs:
        shared = S // bs * bs
        return shared + B * cdiv(T - shared, bs) * bs
    return S + B * (T - S)


def held_sliding(B, T, S: int, W: int, bs: int, mn=min, mx=max):
    """Token slots per sliding layer at the peak of the sequences' life: each keeps its last min(t, W)
    tokens; prefix tokens still inside that window are stored once.

    Paged caches hold whole blocks: every block touching the window (an engine frees a block only once
    all its tokens have left the window, as vLLM's SlidingWindowManager does), the prefix's whole blocks
    once. The block count then depends on how the window straddles block edges, so it can shrink as t
    grows; the peak over t <= T is taken at one of three lengths (see _window_blocks_peak)."""
    if bs:
        return _window_blocks_peak(B, T, S // bs, W, bs, mn, mx) * bs
    overlap = mx(0, S - mx(0, T - W))  # unpaged, the count only grows with t: the peak is at T
    return overlap + B * (mn(T, W) - overlap)


def _window_blocks(B, t, n_shared: int, W: int, bs: int, mn, mx):
    """Blocks held by B sequences of t tokens: the blocks touching positions [t - W, t), with the
    first n_shared (prefix) blocks stored once."""
    first = mx(0, t - W) // bs
    count = (t - 1) // bs - first + 1
    shared = mn(count, mx(0, n_shared - first))
    return shared + B * (count - shared)


def _window_blocks_peak(B, T, n_shared: int, W: int, bs: int, mn, mx):
    """Peak of _window_blocks over t = 1..T. Up to t = W it only grows. Past W, with offset a = t - W,
    a sequence touches (a % bs + W - 1) // bs + 1 blocks, largest when a % bs = bs - 1, while the
    shared blocks only leave the window; so the peak is at t = min(T, W), at t = T, or at the last
    t <= T with a % bs = bs - 1 (clamped into 1..T when there is none)."""
    worst = mn(T, mx(1, W + (T - W + 1) // bs * bs - 1))
    peak = mx(_window_blocks(B, mn(T, W), n_shared, W, bs, mn, mx),
              _window_blocks(B, T, n_shared, W, bs, mn, mx))
    return mx(peak, _window_blocks(B, worst, n_shared, W, bs, mn, mx))


def _chunk_slots(B, t, S: int, C: int, bs: int, mn, mx):
    """Slots held by B sequences of t tokens under chunked attention: the tokens of the current chunk
    [c, t), c = the chunk's start; prefix tokens (whole prefix blocks when paged) inside it stored once."""
    c = (t - 1) // C * C
    if bs:  # chunks start on block edges (checked): blocks c/bs .. (t-1)/bs
        count = cdiv(t - c, bs)
        shared = mn(count, mx(0, S // bs - c // bs))
        return (shared + B * (count - shared)) * bs
    overlap = mn(t - c, mx(0, S - c))
    return overlap + B * (t - c - overlap)


def held_chunked(B, T, S: int, C: int, bs: int, mn=min, mx=max):
    """Token slots per chunked-local layer (Llama-4's `attention_chunk_size`) at the peak over t <= T.

    Within a chunk the count only grows; a later chunk shares fewer prefix tokens, so the peak is at T
    or at the end of the last complete chunk before it."""
    last_end = mx(1, T // C * C)
    return mx(_chunk_slots(B, T, S, C, bs, mn, mx), _chunk_slots(B, mn(T, last_end), S, C, bs, mn, mx))


def _growing_pairs(queries: int, context: int, window: int) -> int:
    """Query-key pairs when `queries` tokens end at `context` and position p sees min(p + 1, window) keys."""
    start = context - queries
    growing = max(0, min(context, window) - start)  # queries that still see their whole prefix
    return growing * (2 * start + growing + 1) // 2 + (queries - growing) * window


def _chunk_pairs_upto(n: int, C: int) -> int:
    """Sum over positions p < n of p % C + 1: the keys a chunked-local query at p sees."""
    r = n % C
    return n // C * (C * (C + 1) // 2) + r * (r + 1) // 2


def _require(value, lo: int, hi: int, what: str) -> None:
    """An integer in [lo, hi], or a KvdashError that names `what`."""
    if type(value) is not int or not lo <= value <= hi:
        raise KvdashError(f"{what} must be an integer from {lo:,} to {hi:,}, not {value!r}")


def _bytes_text(kv: DType) -> str:
    return f"{kv.bits // 8} B" if kv.bits % 8 == 0 else f"{kv.bits}/8 B"


# ---- the specs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """A layer's token mixer. The defaults describe a layer that holds nothing and does no attention."""

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""  # what the dashboard calls this kind
    grows: ClassVar[bool] = False  # does its cache grow with the context?
    kernel: ClassVar[str] = ""  # the kernels that run its attention (kvdash.kernels): "attention", "latent" or ""
    mask: ClassVar[str] = ""  # the attention mask Hugging Face builds for it ("causal", "sliding", "chunked")
    hf_read: ClassVar[bool] = False  # were transformers' allocations for this kind read and measured (runtimes)?

    def bytes_per_token(self, kv: DType, tp: int = 1) -> int:
        return 0

    def held(self, B, T, S: int, bs: int, mn=min, mx=max):
        return 0

    def bytes_per_seq(self, kv: DType, act: DType, tp: int = 1, bs: int = 0) -> int:
        return 0

    def held_rule(self, bs: int) -> str:
        """Which tokens `held` counts, in words."""
        return "none"

    def attention_pairs(self, queries: int, context: int) -> int:
        return 0

    def attention_flops(self, queries: float, context: int, tp: int, decode: bool = False) -> float:
        """FLOPs on one GPU of `queries` queries ending at `context` (the speed model's attention work)."""
        return self.flops_per_pair(tp, decode) * self.attention_pairs(queries, context)

    def read_bytes(self, kv: DType, tp: int, context: int) -> float:
        """Cache bytes one decode at `context` reads (its held tokens; a sparse layer only those it selects)."""
        return self.bytes_per_token(kv, tp) * self.held(1, context, 0, 0)

    def flops_per_pair(self, tp: int, decode: bool = False) -> int:
        """FLOPs per query-key pair on one GPU (QK^T and PV); `decode`: as a decode kernel runs it (an
        engine's latent attention decodes with absorbed weights, kvdash.engines)."""
        return 0

    def query_group(self, tp: int) -> int:
        """Query heads on one GPU that read each cached K/V vector in a decode: a decode-attention kernel's
        work per byte it reads, which its measured speed depends on (kvdash.kernels)."""
        return 1

    def tensors(self, hidden: int) -> tuple[Tensor, ...]:
        """The mixer's weight tensors (unsharded)."""
        return ()

    def act_bytes(self, tp: int, a: int, rt=None) -> int:
        """Activation bytes per token alive inside the mixer at its peak, `a` bytes per activation value,
        under runtime `rt` (a kvdash.runtimes.Runtime; None: a serving engine)."""
        return 0

    def score_heads(self, tp: int) -> int:
        return 0

    def key_bytes(self, tp: int, a: int, rt=None, decode: bool = False) -> int:
        """Activation bytes per key of one sequence the mixer holds while it attends (copies of the cached
        K/V, such as Hugging Face's repeat_kv), in a prefill or a decode step; 0 when kernels read the cache
        in place."""
        return 0

    def pair_bytes(self, tp: int, a: int, rt=None) -> int:
        """Activation bytes per (query, key) pair of the mixer's own score tensors, beyond attention's scores
        (kvdash.runtimes counts those); 0 for most kinds."""
        return 0

    def regrow_bytes_per_token(self, kv: DType, tp: int = 1) -> int:
        """Bytes per held token of the larger of this layer's K and V: a growing cache (torch.cat) holds
        the old and the new copy of one of them at once."""
        return 0

    def eagle_head(self) -> LayerSpec | None:
        """The attention of an EAGLE head built on this layer's widths (a plain Llama layer's), or None where
        published heads are not shaped like it (kvdash.speculative)."""
        return None

    def cache_spec(self, rt=None) -> LayerSpec:
        """The layer whose cache runtime `rt` actually keeps (itself, unless the runtime stores another form)."""
        return self

    @property
    def rotary_dim(self) -> int:
        """Values per token of the rotary cos (and of the sin) table this layer reads; 0: no rotary positions."""
        return 0

    def check_tp(self, tp: int) -> None:
        return None

    def tp_note(self, tp: int) -> str | None:
        """A sentence when tensor parallelism copies this layer's cache instead of splitting it."""
        return None

    @property
    def live_window(self) -> int | None:
        """The attention window the live decoder runs this layer with (0: full); None: it cannot."""
        return None

    def describe(self, kv: DType, tp: int) -> str:
        """The per-token (or per-sequence) cache formula of one layer, in words and numbers."""
        return "no cache"

    @property
    def short(self) -> str:
        """A few words for legends and labels, e.g. 'sliding 4096'."""
        return self.kind

    @property
    def heads_label(self) -> str | None:
        """MHA / GQA / MQA / MLA for attention layers; None for the rest."""
        return None

    # vLLM (vllm/v1/kv_cache_interface.py)
    def vllm_group(self) -> str | None:
        """Layers with equal keys share a KV-cache group in vLLM; "": the layer holds no cache there;
        None: vLLM capacity is not modelled for this kind."""
        return None

    def vllm_request_blocks(self, max_len: int, block_size: int, max_num_batched_tokens: int) -> int:
        return 0

    def vllm_page(self, block_size: int, kv: DType, act: DType, tp: int = 1) -> int:
        """Bytes of one vLLM block of this layer (the KV cache spec's page_size_bytes)."""
        return block_size * self.bytes_per_token(kv, tp)

    # the dashboard's what-if variants; kinds without heads keep themselves
    def with_kv_heads(self, n: int | None) -> LayerSpec:
        return self

    def as_full(self) -> LayerSpec:
        return self

    def as_latent(self, kv_lora_rank: int, qk_rope_head_dim: int) -> LayerSpec:
        return self


@dataclass(frozen=True)
class _EveryToken(LayerSpec):
    """What full and latent attention share: each sequence keeps every token; a query sees its whole prefix."""

    def held(self, B, T, S, bs, mn=min, mx=max):
        return held_full(B, T, S, bs)

    def held_rule(self, bs):
        return "every token" + (", each sequence rounded up to whole blocks" if bs else "")

    def attention_pairs(self, queries, context):
        return _growing_pairs(queries, context, context)

    def vllm_request_blocks(self, max_len, block_size, max_num_batched_tokens):
        return cdiv(max_len, block_size)


@dataclass(frozen=True)
class FullAttention(_EveryToken):
    """Causal self-attention over every earlier token (MHA, GQA, MQA by the K/V head count)."""

    n_heads: int
    n_kv_heads: int
    head_dim: int
    v_head_dim: int = 0  # 0: same as head_dim
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False  # per-head RMSNorm on queries and keys (Qwen3, Gemma-3)
    gated_q: bool = False  # q_proj also makes a sigmoid output gate per head (Qwen3-Next): twice as wide
    kv_shared: bool = False  # reads an earlier layer's K/V (Gemma-3n/4's last layers): no cache, no k/v weights
    v_from_k: bool = False  # values are the key projection's output (Gemma-4's attention_k_eq_v): no v_proj
    qk_norm_full: bool = False  # the q/k norms span the whole projection, not one head (OLMo-2/3)

    kind: ClassVar[str] = "full"
    kernel: ClassVar[str] = "attention"
    label: ClassVar[str] = "full attention"
    grows: ClassVar[bool] = True
    mask: ClassVar[str] = "causal"
    hf_read: ClassVar[bool] = True

    def __post_init__(self):
        for name in ("n_heads", "n_kv_heads", "head_dim"):
            _require(getattr(self, name), 1, 1 << 20, f"{self.label}: {name}")
        _require(self.v_head_dim, 0, 1 << 20, f"{self.label}: v_head_dim")
        if self.n_heads % self.n_kv_heads:
            raise KvdashError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    @property
    def v_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    def kv_heads(self, tp: int) -> int:
        """K/V heads each GPU holds: split when possible, one replicated head otherwise."""
        return max(1, self.n_kv_heads // tp)

    def query_group(self, tp):
        return max(1, (self.n_heads // tp) // self.kv_heads(tp))

    def eagle_head(self):
        if type(self) is not FullAttention or self.kv_shared or self.v_from_k or self.gated_q:
            return None  # windows, chunks, sparse or cross attention, shared or gated heads: heads of their own
        return replace(self, qkv_bias=False, o_bias=False, qk_norm=False, qk_norm_full=False)

    def bytes_per_token(self, kv, tp=1):
        if self.kv_shared:
            return 0
        return self.kv_heads(tp) * (kv.nbytes(self.head_dim, self.head_dim) + kv.nbytes(self.v_dim, self.v_dim))

    def flops_per_pair(self, tp, decode=False):
        return 2 * (self.n_heads // tp) * (self.head_dim + self.v_dim)  # QK^T and PV

    def tensors(self, hidden):
        q = self.n_heads * self.head_dim * (2 if self.gated_q else 1)
        k, v = self.n_kv_heads * self.head_dim, self.n_kv_heads * self.v_dim
        out = [Tensor("q_proj", q, hidden, "rows"), Tensor("k_proj", k, hidden, "rows", self.head_dim),
               Tensor("v_proj", v, hidden, "rows", self.v_dim),
               Tensor("o_proj", hidden, self.n_heads * self.v_dim, "cols")]
        if self.kv_shared:
            k = v = 0
            del out[1:3]
        elif self.v_from_k:  # the cache still holds K and V (v_norm makes the values differ), v_proj goes
            v = 0
            del out[2]
        if self.qkv_bias:
            out.append(Tensor("q_bias", q, split="rows", role="vector"))
            if k:
                out.append(Tensor("k_bias", k, split="rows", unit=self.head_dim, role="vector"))
            if v:
                out.append(Tensor("v_bias", v, split="rows", unit=self.v_dim, role="vector"))
        if self.o_bias:
            out.append(Tensor("o_bias", hidden, role="vector"))
        if self.qk_norm and self.qk_norm_full:
            out += [Tensor("q_norm", self.n_heads * self.head_dim, split="rows", role="vector"),
                    Tensor("k_norm", self.n_kv_heads * self.head_dim, split="rows", unit=self.head_dim, role="vector")]
        elif self.qk_norm:
            out += [Tensor("q_norm", self.head_dim, role="vector"), Tensor("k_norm", self.head_dim, role="vector")]
        return tuple(out)

    def act_bytes(self, tp, a, rt=None):
        """Per query token: the queries and the output, and in an engine the fused qkv projection's new keys
        and values (Hugging Face's new K/V are the cache itself once appended). Hugging Face's per-head q/k
        norms run in fp32 (the queries, their fp32 copy and its square: 8 B more per value)."""
        nh, kvh = self.n_heads // tp, self.kv_heads(tp)
        if rt is not None and rt.hf:
            out = (nh * self.head_dim + nh * self.v_dim) * a
            return max(out, nh * self.head_dim * (a + 8)) if self.qk_norm else out
        return (nh * self.head_dim + kvh * (self.head_dim + self.v_dim) + nh * self.v_dim) * a

    def key_bytes(self, tp, a, rt=None, decode=False):
        """Hugging Face repeats the cached K/V to every query head (repeat_kv) in eager attention, and in SDPA
        whenever a mask is passed or head sizes differ (use_gqa_in_sdpa): a copy per key the layer attends to.
        A window layer passes a mask in the prefill only: in a decode step its cache holds just the window."""
        masked = self.mask not in ("", "causal") and not decode
        if rt is not None and rt.hf and (rt.eager or masked or self.head_dim != self.v_dim or self.head_dim > 256):
            if self.kv_heads(tp) == 1:  # one K/V head: repeat_kv is a view; the matmul copies K, then V
                return self.n_heads // tp * max(self.head_dim, self.v_dim) * a
            return self.n_heads // tp * (self.head_dim + self.v_dim) * a
        return 0

    def regrow_bytes_per_token(self, kv, tp=1):
        return 0 if self.kv_shared else self.kv_heads(tp) * kv.nbytes(max(self.head_dim, self.v_dim), 1)

    @property
    def rotary_dim(self):
        return self.head_dim

    def score_heads(self, tp):
        return self.n_heads // tp

    def check_tp(self, tp):
        if self.n_heads % tp:
            raise KvdashError(f"tp = {tp} must divide the {self.n_heads} attention heads")
        if tp <= self.n_kv_heads and self.n_kv_heads % tp:
            raise KvdashError(f"tp = {tp} must divide the {self.n_kv_heads} KV heads")
        if tp > self.n_kv_heads and tp % self.n_kv_heads:
            raise KvdashError(f"tp = {tp} exceeds the {self.n_kv_heads} KV heads and is not a multiple of them")

    def tp_note(self, tp):
        if tp > self.n_kv_heads and not self.kv_shared:
            return (f"tp = {tp} exceeds the {self.n_kv_heads} KV heads of the {self.label} layers: each GPU holds "
                    f"one KV head, so each head's cache is stored on {tp // self.n_kv_heads} GPUs")
        return None

    @property
    def live_window(self):
        return 0

    def describe(self, kv, tp):
        heads = self.kv_heads(tp)
        scale = f" + 2 × {heads} × {kv.scale_bytes} B scales" if kv.scale_bytes else ""
        return f"{heads} KV heads × ({self.head_dim} + {self.v_dim}) × {_bytes_text(kv)}{scale}"

    @property
    def short(self):
        return f"{self.kind} (shares KV)" if self.kv_shared else self.kind

    @property
    def heads_label(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        if self.n_kv_heads == 1:
            return "MQA"
        return f"GQA ({self.n_heads // self.n_kv_heads} queries per KV head)"

    def vllm_group(self):
        return "" if self.kv_shared else "full"

    def with_kv_heads(self, n):
        return replace(self, n_kv_heads=n or self.n_heads)

    def as_full(self):
        return FullAttention(self.n_heads, self.n_kv_heads, self.head_dim, self.v_head_dim, self.qkv_bias,
                             self.o_bias, self.qk_norm, self.gated_q, self.kv_shared, self.v_from_k,
                             self.qk_norm_full)

    def as_latent(self, kv_lora_rank, qk_rope_head_dim):
        return LatentAttention(n_heads=self.n_heads, kv_lora_rank=kv_lora_rank, qk_rope_head_dim=qk_rope_head_dim,
                               qk_nope_head_dim=self.head_dim, v_head_dim=self.v_dim)


@dataclass(frozen=True)
class BlockSparse(FullAttention):
    """Block-sparse attention (MiniMax-M3; vLLM models/minimax_m3 sparse_attention.py and indexer.py,
    transformers' MiniMaxM3VLIndexer): grouped-query attention whose queries attend to the `topk_blocks`
    blocks of `block` keys a lightning indexer picks, plus the `local_blocks` before them. The indexer's key,
    one `index_dim` head per token, is cached beside the K/V in bf16 (vLLM's indexer_kv_dtype default,
    SGLang and transformers the model's dtype), whatever the K/V cache's dtype, and replicated on every GPU;
    where the layer keeps its index value (sparse_disable_index_value 0), a value of the same width too."""

    index_dim: int = 0
    index_heads: int = 0  # the indexer's query heads (weights only: queries are not cached)
    index_values: bool = False
    block: int = 128
    topk_blocks: int = 16
    local_blocks: int = 1

    label: ClassVar[str] = "block-sparse attention"

    def __post_init__(self):
        super().__post_init__()
        for name in ("index_dim", "index_heads", "block", "topk_blocks"):
            _require(getattr(self, name), 1, 1 << 20, f"{self.label}: {name}")
        _require(self.local_blocks, 0, 1 << 20, f"{self.label}: local_blocks")

    @property
    def index_bytes_per_token(self) -> int:
        return (2 if self.index_values else 1) * self.index_dim * 2

    @property
    def selected(self) -> int:
        """Keys a query attends to at most."""
        return (self.topk_blocks + self.local_blocks) * self.block

    def bytes_per_token(self, kv, tp=1):
        return super().bytes_per_token(kv, tp) + self.index_bytes_per_token

    def attention_flops(self, queries, context, tp, decode=False):
        """Each query attends to at most `selected` keys; the indexer scores every earlier key with its heads
        (replicated: every GPU runs them all)."""
        indexer = 2 * self.index_heads * self.index_dim * self.attention_pairs(queries, context)
        return self.flops_per_pair(tp, decode) * _growing_pairs(queries, context, self.selected) + indexer

    def read_bytes(self, kv, tp, context):
        """A decode reads the selected keys' K/V and every token's index key."""
        return (super().bytes_per_token(kv, tp) * min(context, self.selected)
                + self.index_bytes_per_token * context)

    def pair_bytes(self, tp, a, rt=None):
        """transformers (MiniMaxM3VLIndexer.forward, build_block_mask) scores every key with every indexer head
        in fp32 and keeps a masked copy (2 x index_heads x 4 B per pair), then builds a mask per query head:
        the kept blocks and their combination with the causal mask (bool, 1 B each) and the additive mask
        (a B). Engines select blocks in fused kernels without such tensors."""
        if rt is not None and rt.hf:
            return 2 * self.index_heads * 4 + self.n_heads // tp * (2 + a)
        return 0

    def tensors(self, hidden):
        d, h = self.index_dim, self.index_heads
        out = [Tensor("indexer.q_proj", h * d, hidden), Tensor("indexer.k_proj", d, hidden),
               Tensor("indexer.q_norm", d, role="vector"), Tensor("indexer.k_norm", d, role="vector")]
        if self.index_values:
            out += [Tensor("indexer.v_proj", d, hidden), Tensor("indexer.o_proj", hidden, d)]
        return (*super().tensors(hidden), *out)

    def describe(self, kv, tp):
        value = " and value" if self.index_values else ""
        return f"{super().describe(kv, tp)} + the indexer's key{value} {self.index_dim} × 2 B (bf16)"

    @property
    def short(self):
        return f"block-sparse top {self.topk_blocks} × {self.block}"


@dataclass(frozen=True)
class SlidingWindow(FullAttention):
    """Self-attention over the last `window` tokens (Mistral-7B-v0.1, Gemma-2/3 local layers, gpt-oss)."""

    window: int = 0

    kind: ClassVar[str] = "sliding"
    label: ClassVar[str] = "sliding window"
    mask: ClassVar[str] = "sliding"

    def __post_init__(self):
        super().__post_init__()
        _require(self.window, 1, 1 << 34, "a sliding layer's window (tokens)")

    def held(self, B, T, S, bs, mn=min, mx=max):
        return held_sliding(B, T, S, self.window, bs, mn, mx)

    def held_rule(self, bs):
        return (f"each sequence's last min(T, {self.window:,}) tokens"
                + (", in the blocks they touch at the peak" if bs else ""))

    def attention_pairs(self, queries, context):
        return _growing_pairs(queries, context, self.window)

    @property
    def live_window(self):
        return self.window

    @property
    def short(self):
        return f"sliding {self.window:,}" + (" (shares KV)" if self.kv_shared else "")

    def vllm_group(self):
        return "" if self.kv_shared else f"sliding {self.window}"

    def vllm_request_blocks(self, max_len, block_size, max_num_batched_tokens):
        held = min(self.window - 1 + max_num_batched_tokens, max_len)
        return cdiv(held, block_size) + 1  # +1: the window need not start on a block boundary


@dataclass(frozen=True)
class ChunkedLocal(FullAttention):
    """Self-attention within fixed chunks of `chunk` tokens (Llama-4's local layers): a query sees the
    tokens of its own chunk only, so a layer holds at most one chunk per sequence."""

    chunk: int = 0

    kind: ClassVar[str] = "chunked"
    label: ClassVar[str] = "chunked local attention"
    mask: ClassVar[str] = "chunked"
    hf_read: ClassVar[bool] = False

    def __post_init__(self):
        super().__post_init__()
        _require(self.chunk, 1, 1 << 34, "a chunked layer's chunk (tokens)")

    def held(self, B, T, S, bs, mn=min, mx=max):
        if bs and self.chunk % bs:
            raise KvdashError(f"paged blocks of {bs} tokens must divide the attention chunk ({self.chunk:,} tokens)")
        return held_chunked(B, T, S, self.chunk, bs, mn, mx)

    def held_rule(self, bs):
        return f"each sequence's current chunk of up to {self.chunk:,} tokens, at the peak"

    def attention_pairs(self, queries, context):
        return _chunk_pairs_upto(context, self.chunk) - _chunk_pairs_upto(context - queries, self.chunk)

    @property
    def live_window(self):
        return None

    @property
    def short(self):
        return f"chunked {self.chunk:,}"

    def vllm_group(self):
        return f"chunked {self.chunk}"

    def vllm_request_blocks(self, max_len, block_size, max_num_batched_tokens):
        # vLLM's ChunkedLocalAttentionSpec: the current chunk plus the step's tokens, capped at max_len
        return cdiv(min(self.chunk + max_num_batched_tokens, max_len), block_size)


@dataclass(frozen=True)
class CrossAttention(FullAttention):
    """Attention from the text to a fixed-length source (encoder frames, image tokens): its K/V are
    computed once per sequence for `source_len` tokens and do not grow with the context."""

    source_len: int = 0

    kind: ClassVar[str] = "cross"
    label: ClassVar[str] = "cross-attention"
    grows: ClassVar[bool] = False
    mask: ClassVar[str] = ""  # attends to the whole source: no causal mask to build
    hf_read: ClassVar[bool] = False

    def __post_init__(self):
        super().__post_init__()
        _require(self.source_len, 1, 1 << 30, "a cross-attention layer's source length (tokens)")

    def bytes_per_token(self, kv, tp=1):
        return 0

    def held(self, B, T, S, bs, mn=min, mx=max):
        return 0

    def held_rule(self, bs):
        return "none: the source's K/V are fixed per sequence"

    def bytes_per_seq(self, kv, act, tp=1, bs=0):
        slots = cdiv(self.source_len, bs) * bs if bs else self.source_len
        return slots * super().bytes_per_token(kv, tp)

    def attention_pairs(self, queries, context):
        return queries * self.source_len

    @property
    def live_window(self):
        return None

    def describe(self, kv, tp):
        return f"{self.source_len:,} source tokens × {super().describe(kv, tp)} per sequence"

    @property
    def short(self):
        return f"cross-attention to {self.source_len:,}"

    @property
    def heads_label(self):
        return None

    def vllm_group(self):
        return None

    def as_full(self):
        return self

    def as_latent(self, kv_lora_rank, qk_rope_head_dim):
        return self


@dataclass(frozen=True)
class LatentAttention(_EveryToken):
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): the cache holds one compressed latent and
    a shared rotary key per token, replicated on every tensor-parallel GPU."""

    n_heads: int
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int = 0  # 0: queries projected directly from the hidden state
    # DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): a lightning indexer picks `index_topk` keys per query;
    # a layer that runs it caches one `index_head_dim` key per token beside the latent (0: none, or it reuses
    # an earlier layer's selection)
    index_head_dim: int = 0
    index_n_heads: int = 0
    index_topk: int = 0  # keys each query attends to (0: every key, dense MLA)
    index_bf16: bool = False  # indexer keys in the model's dtype (Hugging Face), not fp8 + fp32 scales (engines)

    kind: ClassVar[str] = "mla"
    kernel: ClassVar[str] = "latent"
    label: ClassVar[str] = "latent attention (MLA)"
    grows: ClassVar[bool] = True
    mask: ClassVar[str] = "causal"
    hf_read: ClassVar[bool] = True

    def __post_init__(self):
        for name in ("n_heads", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            _require(getattr(self, name), 1, 1 << 20, f"latent (MLA) layers: {name}")
        _require(self.q_lora_rank, 0, 1 << 20, "latent (MLA) layers: q_lora_rank")
        for name in ("index_head_dim", "index_n_heads", "index_topk"):
            _require(getattr(self, name), 0, 1 << 20, f"latent (MLA) layers: {name}")
        if self.index_head_dim and not self.index_n_heads:
            raise KvdashError("a sparse-attention indexer needs index_n_heads")

    @property
    def latent_width(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    def query_group(self, tp):
        return max(1, self.n_heads // tp)  # absorbed decode: every local head reads the one latent

    def index_bytes_per_token(self, kv) -> int:
        """The indexer's key per token: vLLM stores it as fp8 with one fp32 scale per 128 values
        (models/deepseek_v2.py DeepseekV32IndexerCache: head_dim + head_dim // 128 * 4 bytes, uint8);
        transformers keeps it in the model's dtype (DeepseekV32Indexer, cache.update_indexer)."""
        if not self.index_head_dim:
            return 0
        if self.index_bf16:
            return kv.nbytes(self.index_head_dim, self.index_head_dim)
        return self.index_head_dim + 4 * cdiv(self.index_head_dim, 128)

    def bytes_per_token(self, kv, tp=1):
        return kv.nbytes(self.latent_width, self.latent_width) + self.index_bytes_per_token(kv)

    def attention_flops(self, queries, context, tp, decode=False):
        """Sparse attention: each query attends to at most index_topk keys, and the indexer scores every
        earlier key with index_n_heads heads of index_head_dim (its weights are replicated, so every GPU of a
        tensor-parallel group runs all its heads)."""
        if not self.index_topk:
            return super().attention_flops(queries, context, tp, decode)
        indexer = 2 * self.index_n_heads * self.index_head_dim * self.attention_pairs(queries, context)
        return self.flops_per_pair(tp, decode) * _growing_pairs(queries, context, self.index_topk) + indexer

    def read_bytes(self, kv, tp, context):
        """A sparse decode reads the selected keys' latents and every token's indexer key."""
        if not self.index_topk:
            return super().read_bytes(kv, tp, context)
        latent = kv.nbytes(self.latent_width, self.latent_width)
        return latent * min(context, self.index_topk) + self.index_bytes_per_token(kv) * context

    def flops_per_pair(self, tp, decode=False):
        """Prefill attends per head with decompressed keys (no-rope + rope) and values; decode with absorbed
        weights attends in the latent space: queries and keys kv_lora_rank + rope wide, values kv_lora_rank
        (vLLM's _forward_decode and FlashMLA, SGLang's forward_absorb; the absorption's own matrix products
        replace kv_b_proj's, so the per-token matrix FLOPs are unchanged)."""
        if decode:
            return 2 * (self.n_heads // tp) * (self.latent_width + self.kv_lora_rank)
        return 2 * (self.n_heads // tp) * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)

    def tensors(self, hidden):
        nh, q_dim = self.n_heads, self.qk_nope_head_dim + self.qk_rope_head_dim
        if self.q_lora_rank:  # q_a (replicated) -> norm -> q_b (split by heads)
            out = [Tensor("q_a_proj", self.q_lora_rank, hidden), Tensor("q_a_norm", self.q_lora_rank, role="vector"),
                   Tensor("q_b_proj", nh * q_dim, self.q_lora_rank, "rows")]
        else:
            out = [Tensor("q_proj", nh * q_dim, hidden, "rows")]
        if self.index_head_dim:  # the indexer, replicated on every GPU (vLLM: ReplicatedLinear, disable_tp)
            ih, hd = self.index_n_heads, self.index_head_dim
            out += [Tensor("indexer.wq_b", ih * hd, self.q_lora_rank or hidden), Tensor("indexer.wk", hd, hidden),
                    Tensor("indexer.k_norm", 2 * hd, role="vector"),  # a LayerNorm: weight and bias
                    Tensor("indexer.weights_proj", ih, hidden)]
        return (*out,
                Tensor("kv_a_proj_with_mqa", self.latent_width, hidden),  # latent + shared rope key, replicated
                Tensor("kv_a_norm", self.kv_lora_rank, role="vector"),
                Tensor("kv_b_proj", nh * (self.qk_nope_head_dim + self.v_head_dim), self.kv_lora_rank, "rows"),
                Tensor("o_proj", hidden, nh * self.v_head_dim, "cols"))

    @property
    def qk_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def act_bytes(self, tp, a, rt=None):
        """Prefill decompresses the latent for every head (kv_b_proj: no-rope keys and values), then
        attends with per-head keys (no-rope part + the shared rotary key) as ordinary attention: the
        latent, the decompressed K/V, queries, keys, values and the output are alive together. Engines pad
        the values to the key size for FlashAttention (vLLM's MLA prefill). Hugging Face decompresses every
        cached key in every step (`key_bytes`); per query token it holds the latent, the queries and their
        concatenated copy, and the output twice."""
        nh, qk, v = self.n_heads // tp, self.qk_dim, self.v_head_dim
        if rt is not None and rt.hf:
            return (self.latent_width + 2 * nh * qk + 2 * nh * v) * a
        return (self.latent_width + nh * (self.qk_nope_head_dim + v) + 3 * nh * qk + nh * v) * a

    def key_bytes(self, tp, a, rt=None, decode=False):
        """Hugging Face (transformers 5.x modeling_deepseek_v2/v3.py, read in 5.24; measured with 5.17 on an
        H200: 31,104 B per token for DeepSeek-V2-Lite; earlier releases cached these expanded K/V instead)
        caches the latent and expands it for every key it attends to, prefill and decode alike (`expand_kv`):
        kv_b_proj's per-head no-rope keys and values, and the keys concatenated with the rotary part into a new
        tensor. Engines attend in the latent space."""
        if rt is not None and rt.hf:
            nh = self.n_heads // tp
            return nh * (self.qk_nope_head_dim + self.v_head_dim + self.qk_dim) * a
        return 0

    def pair_bytes(self, tp, a, rt=None):
        """Hugging Face's indexer (DeepseekV32Indexer.forward) scores every key with every indexer head in
        fp32, then takes relu into a new tensor: 2 x index_n_heads x 4 B per pair at once, and the summed
        index scores (4 B). Engines score in fused fp8 kernels (vLLM's SparseAttnIndexer) without such a
        tensor per pair."""
        if rt is not None and rt.hf and self.index_head_dim:
            return 2 * self.index_n_heads * 4 + 4
        return 0

    def regrow_bytes_per_token(self, kv, tp=1):
        """Hugging Face's cache appends the latent (as its keys) and the rotary key (as its values)."""
        return kv.nbytes(max(self.kv_lora_rank, self.qk_rope_head_dim), 1)

    def cache_spec(self, rt=None):
        """Hugging Face keeps the indexer's keys in the model's dtype; engines in fp8 with scales."""
        if rt is not None and rt.hf and self.index_head_dim:
            return replace(self, index_bf16=True)
        return self

    @property
    def rotary_dim(self):
        return self.qk_rope_head_dim

    def score_heads(self, tp):
        return self.n_heads // tp

    def check_tp(self, tp):
        if self.n_heads % tp:
            raise KvdashError(f"tp = {tp} must divide the {self.n_heads} attention heads")

    def tp_note(self, tp):
        if tp > 1:
            return f"the latent (MLA) cache is not split by tensor parallelism: each of the {tp} GPUs holds all of it"
        return None

    @property
    def short(self):
        return "MLA"

    @property
    def heads_label(self):
        return "MLA"

    def describe(self, kv, tp):
        s = f" + {kv.scale_bytes} B scale" if kv.scale_bytes else ""
        text = f"({self.kv_lora_rank} + {self.qk_rope_head_dim}) × {_bytes_text(kv)}{s}"
        if self.index_head_dim:
            index = (f"{self.index_head_dim} × {_bytes_text(kv)}" if self.index_bf16 else
                     f"{self.index_head_dim} × 1 B fp8 + {4 * cdiv(self.index_head_dim, 128)} B of fp32 scales")
            text = f"({text} + the indexer's key {index})"
        return text

    def vllm_group(self):
        return "full"


@dataclass(frozen=True)
class StateLayer(LayerSpec):
    """A recurrent mixer with a fixed per-sequence state: Mamba, Mamba-2, Gated DeltaNet, RG-LRU,
    lightning/linear attention, short convolutions. Two parts, as vLLM's MambaSpec holds them:
    a convolution window (`conv_dim` channels x (`conv_kernel` - 1) past inputs) and a recurrent
    state (`heads` x `head_state` values). Tensor parallelism splits channels and heads.
    `weights`: the mixer's tensors, listed by the family's factory below."""

    mixer: str  # e.g. "Mamba-2"
    conv_dim: int
    conv_kernel: int
    heads: int
    head_state: int  # recurrent values per head
    weights: tuple[Tensor, ...] = ()  # the mixer's tensors, from the family's factory below
    in_width: int = 0  # activation values per token inside the mixer (its widest projection)
    recurrent_fp32: bool = False  # the recurrent state is kept in fp32 whatever the model dtype
    # transformers' cache for this mixer (read in 5.24, checked against its allocations by
    # tests/test_hf_oracle.py): the whole convolution window (conv_kernel values, not conv_kernel - 1) and the
    # recurrent state in fp32; False where that was not read, and Hugging Face is then sized as an engine
    hf_state: bool = False
    conv_window: int = 0  # past inputs the convolution state keeps (0: conv_kernel - 1, as engines keep them)

    kind: ClassVar[str] = "state"
    label: ClassVar[str] = "state space / linear attention"

    def __post_init__(self):
        if not isinstance(self.mixer, str) or not self.mixer:
            raise KvdashError("a state layer needs a mixer name")
        for name in ("conv_dim", "conv_kernel", "heads", "head_state", "in_width"):
            _require(getattr(self, name), 0, 1 << 40, f"{self.mixer} layers: {name}")
        if not (self.conv_dim and self.conv_kernel > 1) and not (self.heads and self.head_state):
            raise KvdashError(f"{self.mixer} layers need a convolution window or a recurrent state")

    def conv_elems(self, tp: int = 1) -> int:
        return cdiv(self.conv_dim, tp) * (self.conv_window or max(0, self.conv_kernel - 1))

    def cache_spec(self, rt=None):
        """Hugging Face keeps the whole convolution window and an fp32 recurrent state (`hf_state`)."""
        if rt is not None and rt.hf and self.hf_state:
            return replace(self, conv_window=self.conv_kernel, recurrent_fp32=True)
        return self

    def recurrent_elems(self, tp: int = 1) -> int:
        return cdiv(self.heads, tp) * self.head_state

    def bytes_per_seq(self, kv, act, tp=1, bs=0):
        rec = 4 if self.recurrent_fp32 else act.nbytes(1, 1)
        return act.nbytes(self.conv_elems(tp), 1) + self.recurrent_elems(tp) * rec

    def tensors(self, hidden):
        return self.weights

    def act_bytes(self, tp, a, rt=None):
        return cdiv(self.in_width, tp) * a

    def check_tp(self, tp):
        if self.heads and tp <= self.heads and self.heads % tp:
            raise KvdashError(f"tp = {tp} must divide the {self.heads} heads of the {self.mixer} layers")

    def describe(self, kv, tp):
        window = self.conv_window or self.conv_kernel - 1
        conv = f"{cdiv(self.conv_dim, tp):,} × {window} conv" if self.conv_kernel > 1 else ""
        rec = f"{cdiv(self.heads, tp):,} × {self.head_state:,} recurrent{' (fp32)' if self.recurrent_fp32 else ''}"
        return f"{self.mixer}: ({' + '.join(p for p in (conv, rec) if p)}) values per sequence"

    @property
    def short(self):
        return self.mixer

    # vLLM's MambaSpec: one page holds a sequence's whole state (conv + recurrent), in the model's dtype
    def vllm_group(self):
        return "state"

    def vllm_page(self, block_size, kv, act, tp=1):
        return self.bytes_per_seq(kv, act, tp)

    def vllm_request_blocks(self, max_len, block_size, max_num_batched_tokens):
        return 1  # mamba_cache_mode "none" (prefix caching off), no speculative blocks


@dataclass(frozen=True)
class NoCache(LayerSpec):
    """A layer without a token mixer (Nemotron-H's MLP-only and MoE-only blocks, a NAS stack's skipped
    attention)."""

    kind: ClassVar[str] = "none"
    label: ClassVar[str] = "no mixer (MLP only)"
    hf_read: ClassVar[bool] = True  # nothing to read: it has no mixer

    @property
    def short(self):
        return "MLP only"

    def vllm_group(self):
        return ""  # holds nothing in vLLM either


KINDS: tuple[type[LayerSpec], ...] = (FullAttention, SlidingWindow, ChunkedLocal, LatentAttention, CrossAttention,
                                      StateLayer, NoCache)


# ---- state-layer families: element counts as vLLM's MambaStateShapeCalculator, tensors as the
# reference modelling code; tensor parallelism splits channels and heads, never the state size ---------
def _v(name: str, n: int, split: bool = True) -> Tensor:
    return Tensor(name, n, split="rows" if split else None, role="vector")


def mamba1(hidden: int, d_inner: int, d_state: int, d_conv: int, dt_rank: int, conv_bias: bool = True,
           proj_bias: bool = False, bcdt_norms: bool = False) -> StateLayer:
    """Mamba-1 (Mamba, Falcon-Mamba, Jamba): in_proj -> conv1d -> x_proj (dt, B, C) -> dt_proj -> scan ->
    out_proj. `bcdt_norms`: Jamba's RMSNorms on dt, B and C."""
    w = [Tensor("in_proj", 2 * d_inner, hidden, "rows"), Tensor("x_proj", dt_rank + 2 * d_state, d_inner, "cols"),
         Tensor("dt_proj", d_inner, dt_rank, "rows"), Tensor("out_proj", hidden, d_inner, "cols"),
         Tensor("conv1d", d_inner, d_conv, "rows", role="vector"), _v("dt_proj_bias", d_inner),
         Tensor("A_log", d_inner, d_state, "rows", role="vector"), _v("D", d_inner)]
    if conv_bias:
        w.append(_v("conv1d_bias", d_inner))
    if proj_bias:
        w += [_v("in_proj_bias", 2 * d_inner), _v("out_proj_bias", hidden, split=False)]
    if bcdt_norms:
        w += [_v("dt_layernorm", dt_rank, False), _v("b_layernorm", d_state, False), _v("c_layernorm", d_state, False)]
    return StateLayer("Mamba", conv_dim=d_inner, conv_kernel=d_conv, heads=d_inner, head_state=d_state,
                      weights=tuple(w), in_width=2 * d_inner, hf_state=True)


def mamba2(hidden: int, d_inner: int, d_state: int, d_conv: int, n_heads: int, n_groups: int,
           conv_bias: bool = True, proj_bias: bool = False, gated_norm: bool = True,
           recurrent_fp32: bool = False) -> StateLayer:
    """Mamba-2 (Nemotron-H, Bamba, Codestral Mamba, Granite-4.0-H): in_proj makes z, x, B, C and dt in one
    matrix; a depthwise conv over x, B and C; dt_bias, A_log and D per head; a gated RMSNorm; out_proj."""
    conv_dim = d_inner + 2 * n_groups * d_state
    proj_out = d_inner + conv_dim + n_heads
    w = [Tensor("in_proj", proj_out, hidden, "rows"), Tensor("out_proj", hidden, d_inner, "cols"),
         Tensor("conv1d", conv_dim, d_conv, "rows", role="vector"),
         _v("dt_bias", n_heads), _v("A_log", n_heads), _v("D", n_heads)]
    if conv_bias:
        w.append(_v("conv1d_bias", conv_dim))
    if gated_norm:
        w.append(_v("norm", d_inner))
    if proj_bias:
        w += [_v("in_proj_bias", proj_out), _v("out_proj_bias", hidden, split=False)]
    return StateLayer("Mamba-2", conv_dim=conv_dim, conv_kernel=d_conv, heads=n_heads,
                      head_state=d_inner // n_heads * d_state, weights=tuple(w), in_width=proj_out,
                      recurrent_fp32=recurrent_fp32, hf_state=True)


def gated_deltanet(hidden: int, k_heads: int, v_heads: int, k_dim: int, v_dim: int, conv_kernel: int,
                   recurrent_fp32: bool = False) -> StateLayer:
    """Gated DeltaNet (Qwen3-Next, Qwen3.5): in_proj_qkvz and in_proj_ba, a bias-free depthwise conv over
    q, k and v, dt_bias and A_log per value head, a gated RMSNorm of one value head, out_proj."""
    key, value = k_heads * k_dim, v_heads * v_dim
    conv_dim = 2 * key + value
    w = (Tensor("in_proj_qkvz", 2 * key + 2 * value, hidden, "rows"), Tensor("in_proj_ba", 2 * v_heads, hidden, "rows"),
         Tensor("out_proj", hidden, value, "cols"), Tensor("conv1d", conv_dim, conv_kernel, "rows", role="vector"),
         _v("dt_bias", v_heads), _v("A_log", v_heads), _v("norm", v_dim, False))
    return StateLayer("Gated DeltaNet", conv_dim=conv_dim, conv_kernel=conv_kernel, heads=v_heads,
                      head_state=k_dim * v_dim, weights=w, in_width=2 * key + 2 * value,
                      recurrent_fp32=recurrent_fp32, hf_state=True)


def kda(hidden: int, n_heads: int, head_dim: int, conv_kernel: int) -> StateLayer:
    """Kimi Delta Attention (Kimi-Linear: transformers' modeling_kimi_linear.py KimiLinearDeltaAttention):
    q, k and v projections of n_heads x head_dim, a bias-free depthwise conv over the three, a low-rank forget
    gate (f_a, f_b) with dt_bias per channel and A_log per head, a beta per head (b_proj), a low-rank output
    gate (g_a, g_b), a gated RMSNorm of one head, o_proj. Its state (vLLM mamba_utils.kda_state_shape /
    kda_state_dtype): the conv window over 3 x n_heads x head_dim channels in the model's dtype, and a
    head_dim x head_dim recurrent state per head in fp32 (mamba_ssm_cache_dtype auto)."""
    qkv = n_heads * head_dim
    w = (Tensor("q_proj", qkv, hidden, "rows"), Tensor("k_proj", qkv, hidden, "rows"),
         Tensor("v_proj", qkv, hidden, "rows"), Tensor("conv1d", 3 * qkv, conv_kernel, "rows", role="vector"),
         Tensor("f_a_proj", head_dim, hidden), Tensor("f_b_proj", qkv, head_dim, "rows"), _v("dt_bias", qkv),
         _v("A_log", n_heads), Tensor("b_proj", n_heads, hidden, "rows"), Tensor("g_a_proj", head_dim, hidden),
         Tensor("g_b_proj", qkv, head_dim, "rows"), _v("o_norm", head_dim, False),
         Tensor("o_proj", hidden, qkv, "cols"))
    return StateLayer("Kimi Delta Attention", conv_dim=3 * qkv, conv_kernel=conv_kernel, heads=n_heads,
                      head_state=head_dim * head_dim, weights=w, in_width=3 * qkv, recurrent_fp32=True,
                      hf_state=True)


def rwkv4(hidden: int, attention_hidden: int) -> StateLayer:
    """RWKV-4's time mixing (transformers' modeling_rwkv.py RwkvSelfAttention) and the channel mixing's
    receptance and mixes (its key / value pair is the model's MLP). No KV cache: per sequence the previous
    token's input to both mixings (token shift, the model's dtype) and the WKV numerator, denominator and
    running maximum (fp32) — RwkvModel's five state tensors of hidden_size per layer."""
    a = attention_hidden
    w = (_v("time_decay", a, False), _v("time_first", a, False), _v("time_mix_key", hidden, False),
         _v("time_mix_value", hidden, False), _v("time_mix_receptance", hidden, False),
         Tensor("key", a, hidden), Tensor("value", a, hidden), Tensor("receptance", a, hidden),
         Tensor("output", hidden, a), _v("ffn.time_mix_key", hidden, False),
         _v("ffn.time_mix_receptance", hidden, False), Tensor("ffn.receptance", hidden, hidden))
    return StateLayer("RWKV-4", conv_dim=2 * hidden, conv_kernel=2, heads=3 * hidden, head_state=1, weights=w,
                      in_width=3 * a, recurrent_fp32=True)


def rg_lru(hidden: int, lru_width: int, n_heads: int, conv_width: int) -> StateLayer:
    """RecurrentGemma's recurrent block: linear_x and linear_y (with biases) -> conv1d (with bias) ->
    RG-LRU (block-diagonal input and recurrence gates per head, a recurrent parameter) -> linear_out."""
    block = lru_width // n_heads
    w = (Tensor("linear_x", lru_width, hidden, "rows"), Tensor("linear_y", lru_width, hidden, "rows"),
         Tensor("linear_out", hidden, lru_width, "cols"),
         Tensor("input_gate_weight", n_heads * block, block, "rows"),
         Tensor("recurrent_gate_weight", n_heads * block, block, "rows"),
         _v("linear_x_bias", lru_width), _v("linear_y_bias", lru_width), _v("linear_out_bias", hidden, False),
         Tensor("conv_1d", lru_width, conv_width, "rows", role="vector"), _v("conv_1d_bias", lru_width),
         _v("input_gate_bias", lru_width), _v("recurrent_gate_bias", lru_width), _v("recurrent_param", lru_width))
    return StateLayer("RG-LRU", conv_dim=lru_width, conv_kernel=conv_width, heads=lru_width, head_state=1,
                      weights=w, in_width=2 * lru_width)


def short_conv(hidden: int, l_cache: int, bias: bool = False) -> StateLayer:
    """LFM2's gated short convolution: in_proj to 3 x hidden (B, C, x), a depthwise conv of `l_cache`
    taps, out_proj; its state is the last l_cache - 1 inputs."""
    w = [Tensor("in_proj", 3 * hidden, hidden, "rows"), Tensor("out_proj", hidden, hidden, "cols"),
         Tensor("conv", hidden, l_cache, "rows", role="vector")]
    if bias:
        w += [_v("in_proj_bias", 3 * hidden), _v("conv_bias", hidden), _v("out_proj_bias", hidden, False)]
    return StateLayer("short conv", conv_dim=hidden, conv_kernel=l_cache, heads=0, head_state=0,
                      weights=tuple(w), in_width=3 * hidden)
