"""Storage formats for weights and the KV cache, with every scale, zero and index byte they carry.

A format stores `bits` per value plus, for quantized formats, scales: one of `scale_bytes` per `group`
consecutive input values of each output row (GPTQ/AWQ/MXFP4/NVFP4 style), or one per `block` x `block`
tile (DeepSeek's fp8 checkpoints); AWQ and GPTQ also store a packed `zero_bits` zero per group, GPTQ a
4-byte group index per input column, NVFP4 two fp32 scalars per tensor. Sub-byte values are packed.
"""

from dataclasses import dataclass, replace

from kvdash.errors import KvdashError
from kvdash.units import cdiv


@dataclass(frozen=True)
class DType:
    name: str
    bits: int
    scale_bytes: int = 0  # bytes per scale; 0 = no scales (or one per tensor, see tensor_bytes)
    note: str = ""
    group: int = 128  # input values per scale (weights); 0 with `block` set
    zero_bits: int = 0  # a packed zero point per group (AWQ, GPTQ)
    block: int = 0  # one scale per block x block tile instead of per group (fp8 with 128 x 128 blocks)
    index_bytes: int = 0  # per input column (GPTQ's g_idx, int32)
    tensor_bytes: int = 0  # per tensor (NVFP4's fp32 global weight scale and input scale)
    kv: bool = True  # offered for the KV cache

    def nbytes(self, n_values: int, group: int) -> int:
        """Bytes for n_values stored in groups of `group` values (one scale per group)."""
        if n_values == 0:
            return 0
        data = cdiv(n_values * self.bits, 8)
        return data + cdiv(n_values, group) * self.scale_bytes if self.scale_bytes else data

    def matrix_bytes(self, rows: int, cols: int) -> int:
        """Bytes of a [rows, cols] weight matrix (cols = input features, along which groups run)."""
        if not rows or not cols:
            return 0
        data = cdiv(rows * cols * self.bits, 8)
        if self.block:
            return data + cdiv(rows, self.block) * cdiv(cols, self.block) * self.scale_bytes
        if not self.scale_bytes:
            return data + self.tensor_bytes
        groups = rows * cdiv(cols, self.group)
        return (data + groups * self.scale_bytes + cdiv(groups * self.zero_bits, 8) + cols * self.index_bytes
                + self.tensor_bytes)

    def formula(self) -> str:
        """How a [rows, cols] matrix is stored, in words."""
        out = f"{self.bits}-bit values"
        if self.block:
            out += f" + one {self.scale_bytes}-byte scale per {self.block}×{self.block} block"
        elif self.scale_bytes:
            out += f" + one {self.scale_bytes}-byte scale"
            out += f" and a {self.zero_bits}-bit zero" if self.zero_bits else ""
            out += f" per {self.group} inputs"
            out += f" + {self.index_bytes} B per input column" if self.index_bytes else ""
        if self.tensor_bytes:
            out += f" + {self.tensor_bytes} B per tensor"
        return out


DTYPES: dict[str, DType] = {
    "fp32": DType("fp32", 32),
    "fp16": DType("fp16", 16),
    "bf16": DType("bf16", 16),
    "int64": DType("int64", 64, kv=False, note="an index buffer: EAGLE-3's draft-to-target token map"),
    "fp8": DType("fp8", 8, note="e4m3/e5m2; per-tensor scales are a few bytes and not counted"),
    "int8": DType("int8", 8, scale_bytes=2, note="symmetric, one fp16 scale per group"),
    "int4": DType("int4", 4, scale_bytes=2, note="packed two per byte, one fp16 scale per group"),
    # weight-only checkpoint formats
    "fp8-block": DType("fp8-block", 8, scale_bytes=4, block=128, kv=False,
                       note="DeepSeek-V3's fp8: one fp32 scale per 128 x 128 block (weight_scale_inv)"),
    "mxfp4": DType("mxfp4", 4, scale_bytes=1, group=32, kv=False,
                   note="OCP microscaling fp4 (e2m1): one e8m0 scale per 32 values (gpt-oss experts)"),
    "nvfp4": DType("nvfp4", 4, scale_bytes=1, group=16, tensor_bytes=8, kv=False,
                   note="NVIDIA fp4 (e2m1): one fp8 scale per 16 values, fp32 global and input scales per tensor"),
    "awq-int4": DType("awq-int4", 4, scale_bytes=2, group=128, zero_bits=4, kv=False,
                      note="AWQ: packed int4, one fp16 scale and a packed int4 zero per 128 inputs"),
    "gptq-int4": DType("gptq-int4", 4, scale_bytes=2, group=128, zero_bits=4, index_bytes=4, kv=False,
                       note="GPTQ: packed int4, fp16 scales and packed zeros per 128 inputs, an int32 g_idx per input"),
    "int4-asym": DType("int4-asym", 4, scale_bytes=2, group=128, zero_bits=4, kv=False,
                       note="compressed-tensors W4A16, asymmetric: packed int4, a 16-bit scale and a packed int4 zero "
                            "per group"),
    # one fp32 scale per output channel (a group wider than any row): W8A8 int8 and FP8-dynamic checkpoints
    # (compressed-tensors int-quantized / float-quantized, channel strategy), as vLLM keeps their scales
    "int8-channel": DType("int8-channel", 8, scale_bytes=4, group=1 << 30, kv=False,
                          note="W8A8 int8: one fp32 scale per output channel"),
    "fp8-channel": DType("fp8-channel", 8, scale_bytes=4, group=1 << 30, kv=False,
                         note="fp8 with one fp32 scale per output channel (FP8-dynamic)"),
}

#: Formats the KV cache can take (weight-only checkpoint formats excluded).
KV_DTYPES = tuple(k for k, d in DTYPES.items() if d.kv)

#: Weight quantization groups this many input values under one scale (GPTQ/AWQ default 128).
WEIGHT_GROUP = 128

#: Aliases accepted on input (config.json's torch_dtype, CLI spellings).
_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
}


def get_dtype(name: str) -> DType:
    """A format by name; `NAME-gN` is a grouped format with N inputs per scale (e.g. awq-int4-g64)."""
    if not isinstance(name, str):
        raise KvdashError(f"dtype must be a string, not {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key in DTYPES:
        return DTYPES[key]
    base, _, group = key.rpartition("-g")
    d = DTYPES.get(base)
    if d is not None and d.scale_bytes and not d.block and group.isdigit() and 1 <= int(group) <= 1 << 20:
        return replace(d, name=key, group=int(group))
    raise KvdashError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)} (grouped formats take -gN)")


def with_group(name: str, group: int) -> str:
    """The name of a grouped format with `group` inputs per scale (a quantization_config's group_size)."""
    d = get_dtype(name)
    return name if d.group == group or not d.scale_bytes or d.block else f"{d.name}-g{group}"


def high_precision(weights: DType) -> DType:
    """The format that embeddings, norms, biases and routers keep when linear layers are quantized.

    Quantized checkpoints (GPTQ, AWQ, FP8) leave these small or sensitive tensors in 16-bit.
    """
    return weights if weights.name in ("fp32", "fp16", "bf16") else DTYPES["bf16"]
