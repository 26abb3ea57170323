"""Byte units. Sizes stay exact integers of bytes until they are displayed.

GiB = 2**30 bytes and GB = 10**9 bytes; every formatted number carries its unit.
"""

KiB = 1024
MiB = 1024**2
GiB = 1024**3
KB = 1000
MB = 1000**2
GB = 1000**3

UNIT_SYSTEMS = ("GiB", "GB")


def cdiv(a: int, b: int) -> int:
    """Ceiling division of integers (also works elementwise on integer numpy arrays)."""
    return -(-a // b)


def fmt_bytes(n: int | float, unit: str = "GiB", digits: int = 2) -> str:
    """Format a byte count in GiB/MiB/KiB (binary) or GB/MB/KB (decimal), choosing the scale."""
    if unit not in UNIT_SYSTEMS:
        raise ValueError(f"unit must be one of {UNIT_SYSTEMS}, not {unit!r}")
    base = 1024 if unit == "GiB" else 1000
    names = ("B", "KiB", "MiB", "GiB", "TiB") if unit == "GiB" else ("B", "KB", "MB", "GB", "TB")
    value = float(n)
    for i, name in enumerate(names):
        if abs(value) < base or i == len(names) - 1:
            return f"{int(n):,} B" if i == 0 else f"{value:,.{digits}f} {name}"
        value /= base
    raise AssertionError("unreachable")


def to_unit(n: int | float, unit: str = "GiB") -> float:
    """Bytes as a float in GiB or GB (for charts, which need one fixed scale)."""
    return n / (GiB if unit == "GiB" else GB)
