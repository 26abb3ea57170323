"""A compact KV-cached decoder in plain PyTorch, shaped by a kvdash ModelSpec.

Token embedding, RMSNorm, rotary positions, grouped-query attention through
`scaled_dot_product_attention`, a gated (SwiGLU) MLP, tied or untied head. Weights are random with
a fixed seed: nothing is downloaded. Its parameters are exactly the ones kvdash counts for the
same spec, and its cache tensors exactly the bytes kvdash predicts.

The cache is static and preallocated per layer, `[B, H_kv, S, D]`, written at explicit positions
(gpt-fast's layout). Full-attention layers get S = max_tokens slots; sliding-window layers a ring
of S = min(max_tokens, W) slots, position p living in slot p % W. Keys are stored after the
rotary embedding, so attention over a ring needs no reordering, only a mask of valid slots.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from kvdash.errors import KvdashError
from kvdash.model import ModelSpec, attention_shape


def check_supported(m: ModelSpec) -> None:
    """The live model covers Llama-style stacks (full and sliding layers, dense gated MLP)."""
    problems = []
    unsupported = sorted({spec.label for spec in m.layers if spec.live_window is None})
    if unsupported:
        problems.append(" or ".join(unsupported) + " layers")
    if m.n_experts:
        problems.append("mixture-of-experts layers")
    if not m.gated_mlp or m.norm != "rms" or m.norms_per_layer != 2:
        problems.append("a non-Llama block (gated MLP, two RMSNorms)")
    attention = {(sp.n_heads, sp.n_kv_heads, sp.head_dim, sp.v_dim, sp.qkv_bias, sp.o_bias, sp.qk_norm)
                 for sp in m.layers if sp.live_window is not None}
    if any(bias or o_bias or norm for *_, bias, o_bias, norm in attention) or m.mlp_bias or m.learned_pos_embeddings \
            or m.extra_params:
        problems.append("biases, QK-norm or learned positions")
    if any(hd != v for _, _, hd, v, *_ in attention):
        problems.append("different K and V head sizes")
    if len({shape[:3] for shape in attention}) > 1:
        problems.append("layers of different head counts or sizes")
    if problems:
        raise KvdashError(f"the live model does not run {', '.join(problems)}; pick a Llama-style shape")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x.float(), self.weight.shape, eps=self.eps).type_as(x) * self.weight


def rope_cache(max_tokens: int, head_dim: int, theta: float, device) -> tuple[Tensor, Tensor]:
    """cos and sin tables [max_tokens, head_dim / 2] (fp32) for the rotate-half convention."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(max_tokens, device=device, dtype=torch.float32), inv)
    return freqs.cos(), freqs.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: [B, H, T, D]; cos/sin: [T, D/2]. Rotates the pairs (x[i], x[i + D/2])."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, m: ModelSpec, window: int):
        super().__init__()
        attn = attention_shape(m)  # every layer's (check_supported)
        h, self.n_heads, self.n_kv, self.hd = m.hidden_size, attn.n_heads, attn.n_kv_heads, attn.head_dim
        self.window = window  # 0: full attention
        # q, k and v projections fused in one matrix: one kernel instead of three per layer
        self.wqkv = nn.Linear(h, (self.n_heads + 2 * self.n_kv) * self.hd, bias=False)
        self.wo = nn.Linear(self.n_heads * self.hd, h, bias=False)
        self.k_cache: Tensor | None = None
        self.v_cache: Tensor | None = None

    def slots(self, max_tokens: int) -> int:
        return min(max_tokens, self.window) if self.window else max_tokens

    def _qkv(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.wqkv(x).split([self.n_heads * self.hd, self.n_kv * self.hd, self.n_kv * self.hd], dim=-1)
        q = q.view(b, t, self.n_heads, self.hd).transpose(1, 2)  # [B, H, T, D]
        k = k.view(b, t, self.n_kv, self.hd).transpose(1, 2)  # [B, Hkv, T, D]
        v = v.view(b, t, self.n_kv, self.hd).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def _out(self, y: Tensor) -> Tensor:
        b, _, t, _ = y.shape
        return self.wo(y.transpose(1, 2).reshape(b, t, self.n_heads * self.hd))

    def forward_full(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """No cache: attend over the whole sequence (the recompute-everything baseline)."""
        q, k, v = self._qkv(x, cos, sin)
        t = x.shape[1]
        if self.window and self.window < t:
            i = torch.arange(t, device=x.device)
            mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - self.window)
            return self._out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True))
        return self._out(F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))

    def forward_cached(self, x: Tensor, cos: Tensor, sin: Tensor, start: int) -> Tensor:
        """New tokens at positions start..start+t-1 attend to the cache, then join it.

        The mask is bottom-right aligned: query i sits at absolute position start + i, so it may see
        every cached key and the new keys up to itself (`is_causal=True` would be wrong here,
        since query and key lengths differ).
        """
        q, k, v = self._qkv(x, cos, sin)
        t, size = x.shape[1], self.k_cache.shape[2]
        qpos = torch.arange(start, start + t, device=x.device)
        if start + t <= size:  # no slot reused yet: write, then read the filled prefix as a view
            self.k_cache[:, :, start : start + t] = k
            self.v_cache[:, :, start : start + t] = v
            keys, values = self.k_cache[:, :, : start + t], self.v_cache[:, :, : start + t]
            kpos = torch.arange(start + t, device=x.device)
        else:  # a ring that wraps: gather the window's older keys in order, then append the new ones
            first = max(0, start - size)
            old = torch.arange(first, start, device=x.device)
            keys = torch.cat([self.k_cache.index_select(2, old % size), k], dim=2)
            values = torch.cat([self.v_cache.index_select(2, old % size), v], dim=2)
            kpos = torch.arange(first, start + t, device=x.device)
            keep = min(t, size)  # the newest tokens overwrite the oldest slots
            slots = torch.arange(start + t - keep, start + t, device=x.device) % size
            self.k_cache.index_copy_(2, slots, k[:, :, t - keep :])
            self.v_cache.index_copy_(2, slots, v[:, :, t - keep :])
        mask = kpos[None, :] <= qpos[:, None]
        if self.window:
            mask &= kpos[None, :] > qpos[:, None] - self.window
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
        return self._out(y)

    def forward_static(self, x: Tensor, cos: Tensor, sin: Tensor, pos: Tensor, bias: Tensor) -> Tensor:
        """One decode token per sequence at position `pos` (a 1-element device tensor), attending to
        every cache slot with an additive mask `bias` [slots] (0 valid, -inf empty).

        Shapes never change with the position, so the step runs the same kernels every time and a
        CUDA graph can capture it. Queries are grouped per KV head ([B, Hkv, G, D]) so the cache is
        read once, never repeated G times.
        """
        q, k, v = self._qkv(x, cos, sin)
        b = x.shape[0]
        slot = pos % self.k_cache.shape[2]
        self.k_cache.index_copy_(2, slot, k)
        self.v_cache.index_copy_(2, slot, v)
        g = self.n_heads // self.n_kv
        q = q.view(b, self.n_kv, g, self.hd) * self.hd**-0.5
        scores = torch.matmul(q, self.k_cache.transpose(-1, -2)).float() + bias  # [B, Hkv, G, S]
        y = torch.matmul(scores.softmax(-1).type_as(q), self.v_cache)  # [B, Hkv, G, D]
        return self._out(y.view(b, self.n_heads, 1, self.hd))


class Block(nn.Module):
    def __init__(self, m: ModelSpec, window: int):
        super().__init__()
        self.attn_norm = RMSNorm(m.hidden_size)
        self.attn = Attention(m, window)
        self.mlp_norm = RMSNorm(m.hidden_size)
        self.gate_up = nn.Linear(m.hidden_size, 2 * m.intermediate_size, bias=False)  # fused, as above
        self.down = nn.Linear(m.intermediate_size, m.hidden_size, bias=False)

    def mlp(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # one [T, 2I] buffer
        act = F.silu(gate)  # + [T, I]; multiplied in place, so the peak is 3I as in kvdash's model
        return self.down(act.mul_(up))


class LiveDecoder(nn.Module):
    def __init__(self, m: ModelSpec, max_tokens: int, rope_theta: float = 10_000.0):
        super().__init__()
        check_supported(m)
        self.spec, self.max_tokens = m, max_tokens
        self.embed = nn.Embedding(m.vocab_size, m.hidden_size)
        self.layers = nn.ModuleList(Block(m, spec.live_window) for spec in m.layers)
        self.norm = RMSNorm(m.hidden_size)
        self.head = None if m.tie_word_embeddings else nn.Linear(m.hidden_size, m.vocab_size, bias=False)
        self.rope_theta = rope_theta
        self.cos: Tensor | None = None
        self.sin: Tensor | None = None

    # ---- set-up -------------------------------------------------------------------------------
    def init_weights(self, seed: int = 0) -> None:
        """Norms to one, matrices to N(0, 0.02) (small values keep activations finite in any dtype),
        drawn on the weights' own device."""
        g = torch.Generator(device=self.embed.weight.device).manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(1.0) if p.ndim == 1 else p.normal_(0.0, 0.02, generator=g)

    def setup_rope(self) -> None:
        device = self.embed.weight.device
        self.cos, self.sin = rope_cache(self.max_tokens, attention_shape(self.spec).head_dim, self.rope_theta, device)

    def allocate_cache(self, batch: int) -> int:
        """Preallocate every layer's cache; returns the exact bytes allocated."""
        w = self.embed.weight
        total = 0
        for layer in self.layers:
            a = layer.attn
            shape = (batch, a.n_kv, a.slots(self.max_tokens), a.hd)
            a.k_cache = torch.zeros(shape, dtype=w.dtype, device=w.device)
            a.v_cache = torch.zeros(shape, dtype=w.dtype, device=w.device)
            total += a.k_cache.nbytes + a.v_cache.nbytes
        return total

    def free_cache(self) -> None:
        for layer in self.layers:
            layer.attn.k_cache = layer.attn.v_cache = None

    # ---- forward passes ------------------------------------------------------------------------
    def _logits(self, h: Tensor) -> Tensor:
        """fp32 logits of the last position only (what generation samples from)."""
        h = self.norm(h[:, -1:])
        w = self.embed.weight if self.head is None else self.head.weight
        return F.linear(h, w).float()[:, 0]  # [B, V]

    def _run(self, tokens: Tensor, attend) -> Tensor:
        h = self.embed(tokens)
        for layer in self.layers:
            h = h + attend(layer.attn, layer.attn_norm(h))
            h = h + layer.mlp(layer.mlp_norm(h))
        return h

    def forward_nocache(self, tokens: Tensor, all_logits: bool = False) -> Tensor:
        t = tokens.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        h = self._run(tokens, lambda attn, x: attn.forward_full(x, cos, sin))
        if all_logits:
            w = self.embed.weight if self.head is None else self.head.weight
            return F.linear(self.norm(h), w).float()
        return self._logits(h)

    def prefill(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Feed tokens at positions start.. into the cache (a whole prompt or one chunk of it)."""
        t = tokens.shape[1]
        cos, sin = self.cos[start : start + t], self.sin[start : start + t]
        return self._logits(self._run(tokens, lambda attn, x: attn.forward_cached(x, cos, sin, start)))

    def decode_static(self, token: Tensor, pos: Tensor) -> Tensor:
        """One token per sequence at device-tensor position `pos`: CUDA-graph capturable."""
        cos, sin = self.cos.index_select(0, pos), self.sin.index_select(0, pos)
        biases = {}
        for size in {layer.attn.k_cache.shape[2] for layer in self.layers}:
            s = torch.arange(size, device=pos.device)
            held = pos - (pos - s) % size  # the position each slot holds (negative: never written)
            biases[size] = torch.zeros(size, device=pos.device).masked_fill(held < 0, float("-inf"))
        return self._logits(self._run(
            token, lambda attn, x: attn.forward_static(x, cos, sin, pos, biases[attn.k_cache.shape[2]])))
