"""The GPU catalog: sourced rows, exact usable bytes where a measurement or log gives them."""

from kvdash.gpus import load_gpus


def test_catalog_rows_are_sourced_and_sane():
    gpus = load_gpus()
    assert len(gpus) >= 45
    for g in gpus.values():
        assert g.source and g.usable_basis
        assert 0 < g.usable_bytes <= g.memory_gb * 1.2e9  # usable never beyond the marketed size + slack
        assert g.bandwidth_gbps > 0


def test_measured_hopper_memory():
    gpus = load_gpus()
    assert gpus["nvidia-h100-sxm5"].usable_bytes == 81_079 * 2**20  # CUDA-visible, measured
    assert gpus["nvidia-h200-sxm"].usable_bytes == 143_156 * 2**20
    assert gpus["nvidia-a100-sxm4-80gb"].usable_bytes == 81_920 * 2**20  # nvidia-smi memory.total


def test_nominal_rows_say_so():
    g = load_gpus()["intel-gaudi3"]
    assert g.usable_bytes == 128 * 10**9 and g.usable_basis.startswith("nominal")


def test_catalog_agrees_with_the_measured_h200():
    # The live runs on a real H200 read torch.cuda.mem_get_info(); the catalog's usable memory for
    # that card (CUDA-visible 143,156 MiB) must agree to within a MiB.
    import json
    from pathlib import Path

    runs = Path(__file__).resolve().parent.parent / "data" / "measurements" / "2026-11-26-h200"
    totals = {json.loads(p.read_text())["measured"]["memory"]["device_total"] for p in runs.glob("*.json")}
    assert len(totals) == 1
    assert abs(totals.pop() - load_gpus()["nvidia-h200-sxm"].usable_bytes) < 2**20


def test_device_names_match_exactly():
    from kvdash.gpus import gpu_for_device_name

    # the names torch.cuda.get_device_name() reports; substrings must not match the wrong card
    assert gpu_for_device_name("NVIDIA L40").id == "nvidia-l40"
    assert gpu_for_device_name("NVIDIA L4").id == "nvidia-l4"
    assert gpu_for_device_name("NVIDIA H200 NVL").id == "nvidia-h200-nvl"
    assert gpu_for_device_name("NVIDIA H200").id == "nvidia-h200-sxm"  # the measured reference runs' device
    assert gpu_for_device_name("NVIDIA H100 80GB HBM3").id == "nvidia-h100-sxm5"
    assert gpu_for_device_name("nvidia  a100-sxm4-80gb").id == "nvidia-a100-sxm4-80gb"
    assert gpu_for_device_name("NVIDIA H20") is None and gpu_for_device_name("NVIDIA L40S").id == "nvidia-l40s"
    names = [g.cuda_name for g in load_gpus().values() if g.cuda_name]
    assert len(names) == len(set(names)) >= 30
