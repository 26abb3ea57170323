"""Storage formats for weights and the KV cache, with the scales that quantized formats carry.

A format stores `bits` per value plus, for group-quantized formats, one scale of `scale_bytes` per
`group` values. Sub-byte values are packed (two int4 values per byte).
"""

from dataclasses import dataclass

from kvdash.errors import KvdashError
from kvdash.units import cdiv


@dataclass(frozen=True)
class DType:
    name: str
    bits: int
    scale_bytes: int = 0  # bytes per scale; 0 = no scales (or one per tensor, not counted)
    note: str = ""

    def nbytes(self, n_values: int, group: int) -> int:
        """Bytes for n_values stored in groups of `group` values (one scale per group)."""
        if n_values == 0:
            return 0
        data = cdiv(n_values * self.bits, 8)
        return data + cdiv(n_values, group) * self.scale_bytes if self.scale_bytes else data


DTYPES: dict[str, DType] = {
    "fp32": DType("fp32", 32),
    "fp16": DType("fp16", 16),
    "bf16": DType("bf16", 16),
    "fp8": DType("fp8", 8, note="e4m3/e5m2; per-tensor scales are a few bytes and not counted"),
    "int8": DType("int8", 8, scale_bytes=2, note="symmetric, one fp16 scale per group"),
    "int4": DType("int4", 4, scale_bytes=2, note="packed two per byte, one fp16 scale per group"),
}

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
    if not isinstance(name, str):
        raise KvdashError(f"dtype must be a string, not {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DTYPES:
        raise KvdashError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[key]


def high_precision(weights: DType) -> DType:
    """The format that embeddings, norms, biases and routers keep when linear layers are quantized.

    Quantized checkpoints (GPTQ, AWQ, FP8) leave these small or sensitive tensors in 16-bit.
    """
    return weights if weights.name in ("fp32", "fp16", "bf16") else DTYPES["bf16"]
