"""The GPU catalog (`data/gpus.csv`): memory the runtime can use, bandwidth, dense throughput.

`usable_bytes` is what a framework can allocate on an idle card, with `usable_basis` saying where
the figure comes from (a measurement, nvidia-smi logs, or the vendor's nominal GB when nothing
better is known). Each row keeps its source.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kvdash.errors import KvdashError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Gpu:
    id: str
    vendor: str
    name: str
    cuda_name: str  # the device name the runtime reports (torch.cuda.get_device_name); "" if unknown
    memory_gb: float  # marketed capacity, 10^9 B
    usable_bytes: int
    usable_basis: str
    memory_type: str
    bandwidth_gbps: float  # GB/s (10^9 B/s)
    fp32_tflops: float | None
    bf16_tflops: float | None  # dense
    fp8_tflops: float | None  # dense
    fp4_tflops: float | None  # dense, where fp4 tensor cores exist (Blackwell)
    interconnect: str
    link_gbps: float | None  # GB/s one way to another GPU of a TP group; None: no such link (data/README.md)
    year: int | None
    source: str


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


@lru_cache(maxsize=4)
def load_gpus(path: str | None = None) -> dict[str, Gpu]:
    path = Path(path) if path else DATA_DIR / "gpus.csv"
    out: dict[str, Gpu] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["id"]] = Gpu(
                id=row["id"],
                vendor=row["vendor"],
                name=row["name"],
                cuda_name=row.get("cuda_name", ""),
                memory_gb=float(row["memory_gb"]),
                usable_bytes=int(row["usable_bytes"]),
                usable_basis=row["usable_basis"],
                memory_type=row["memory_type"],
                bandwidth_gbps=float(row["bandwidth_gbps"]),
                fp32_tflops=_num(row["fp32_tflops"]),
                bf16_tflops=_num(row["bf16_tflops"]),
                fp8_tflops=_num(row["fp8_tflops"]),
                fp4_tflops=_num(row.get("fp4_tflops", "")),
                interconnect=row["interconnect"],
                link_gbps=_num(row.get("link_gbps_one_way", "")),
                year=int(row["year"]) if row["year"].strip() else None,
                source=row["source"],
            )
    return out


def get_gpu(gpu_id: str) -> Gpu:
    gpus = load_gpus()
    if gpu_id not in gpus:
        close = [g for g in gpus if gpu_id.lower() in g]
        hint = f"; did you mean {', '.join(close[:4])}?" if close else "; run `kvdash gpus` for the list"
        raise KvdashError(f"unknown GPU {gpu_id!r}{hint}")
    return gpus[gpu_id]


def gpu_for_device_name(name: str) -> Gpu | None:
    """The catalog row whose `cuda_name` is exactly this device name, e.g. 'NVIDIA H100 80GB HBM3'
    (case and spacing aside); None if no row has it. Exact, because substrings mislead: 'NVIDIA L40'
    contains 'L4', 'NVIDIA H200 NVL' contains 'H200'."""
    key = " ".join(name.split()).lower()
    return next((g for g in load_gpus().values() if g.cuda_name and " ".join(g.cuda_name.split()).lower() == key),
                None)
