"""Weight bytes from the per-tensor table (kvdash.params): each tensor stored in its role's format.

Matrices take the weights' format (scales, zeros and indices counted per matrix, `DType.matrix_bytes`),
routed experts the experts' format (gpt-oss keeps attention in bf16 and experts in MXFP4), a checkpoint's
token mixers theirs where it leaves them unquantized (NVIDIA's NVFP4 exports: bf16 attention), and vectors,
embeddings and the LM head 16-bit. `weight_table` is the same arithmetic as rows a person can read.
"""

from __future__ import annotations

from functools import lru_cache

from kvdash.dtypes import DType, get_dtype, high_precision
from kvdash.model import ModelSpec
from kvdash.params import embedding_tensors, layer_tensors


def formats(weights_dtype: str, experts_dtype: str = "", mixer_dtype: str = "") -> dict[str, DType]:
    """Each tensor role's format: matrices the weights', token mixers' the mixer's (ModelSpec.mixer_dtype; "": the
    weights'), routed experts the experts'."""
    w = get_dtype(weights_dtype)
    hp = high_precision(w)
    # "draft": a speculative head's matrices, which keep the checkpoint's 16 bits beside a quantized target;
    # "index": an integer buffer (EAGLE-3's d2t)
    return {"linear": w, "mixer": get_dtype(mixer_dtype or weights_dtype), "expert": get_dtype(experts_dtype or
            weights_dtype), "vector": hp, "embed": hp, "draft": hp, "index": get_dtype("int64")}


def model_formats(m: ModelSpec, weights_dtype: str, experts_dtype: str = "") -> dict[str, DType]:
    """`formats` of model m's tensors: its mixers in the checkpoint's own format where the scenario serves it."""
    return formats(weights_dtype, experts_dtype, m.mixer_dtype(weights_dtype))


def tensor_format(t, fmt: dict[str, DType]) -> DType:
    """A tensor's storage format: its role's for matrices and index buffers, else the 16-bit vectors'."""
    return fmt[t.role] if t.matrix or t.role == "index" else fmt["vector"]


def tensor_bytes(t, tp: int, fmt: dict[str, DType]) -> int:
    r, c = t.shard(tp)
    f = tensor_format(t, fmt)
    return f.matrix_bytes(r, c) if t.matrix else f.nbytes(r * c, 1)


def table_bytes(rows, tp: int, fmt: dict[str, DType]) -> int:
    """Bytes of (tensor, count) rows on one GPU."""
    return sum(n * tensor_bytes(t, tp, fmt) for t, n in rows)


@lru_cache(maxsize=4096)
def layer_weight_bytes(m: ModelSpec, i: int, tp: int, weights_dtype: str, experts_dtype: str, ep: int = 1
                       ) -> tuple[int, int]:
    """(all bytes, routed-expert bytes) of layer i on one GPU."""
    fmt = model_formats(m, weights_dtype, experts_dtype)
    rows = layer_tensors(m, i, ep=ep)
    return table_bytes(rows, tp, fmt), table_bytes([(t, n) for t, n in rows if t.role == "expert"], tp, fmt)


def weight_table(m: ModelSpec, tp: int = 1, weights_dtype: str = "bf16", experts_dtype: str = "", ep: int = 1
                 ) -> list[dict]:
    """One row per distinct tensor: the layers it sits in (grouped by layer kind), its shape and shard
    on one GPU, how many one GPU holds (routed experts: E / ep under expert parallelism), its format and
    bytes (one GPU's shards, all layers)."""
    fmt = model_formats(m, weights_dtype, experts_dtype)
    rows: dict[tuple, dict] = {}

    def add(group: str, t, n: int) -> None:
        key = (group, t)
        if key not in rows:
            r, c = t.shard(tp)
            rows[key] = {"group": group, "tensor": t.name, "shape": [t.rows, t.cols] if t.cols > 1 else [t.rows],
                         "shard": [r, c] if t.cols > 1 else [r], "count": 0, "role": t.role,
                         "format": tensor_format(t, fmt).name,
                         "bytes_each": tensor_bytes(t, tp, fmt)}
        rows[key]["count"] += n

    for i, spec in enumerate(m.layers):
        ffn = "MoE" if m.moe_mask[i] else "MLP" if m.mlp_mask[i] else "no MLP"
        head = m.draft_head and i == m.n_layers - 1
        for t, n in layer_tensors(m, i, ep=ep):
            add(f"{m.draft_head.upper()} head layer" if head else f"{spec.short} layers ({ffn})", t, n)
    table = embedding_tensors(m)
    for part in ("first", "final_norm", *(() if m.tie_word_embeddings else ("head",))):
        for t, n in table[part]:
            add("embeddings and head", t, n)
    out = list(rows.values())
    for r in out:
        r["bytes"] = r["count"] * r["bytes_each"]
    if m.draft_model is not None:  # loaded beside it, at the same tensor parallelism, in its own format
        d = m.draft_model
        out += [r | {"group": f"draft model {d.name}: {r['group']}"}
                for r in weight_table(d, tp, d.weights_format or d.default_dtype)]
    return out
