"""The live run's guard on a CPU: a time estimate from measured roofs, and a memory bound (no torch)."""

import pytest

from kvdash.errors import KvdashError
from kvdash.live.device import MAX_SECONDS, available_ram, check_cpu_run, cpu_row, run_bytes
from kvdash.live.shapes import SHAPES, estimate_run_seconds, scaled_copy
from kvdash.presets import preset_model


def test_the_cpu_is_measured_and_labelled():
    row = cpu_row()
    assert row.bandwidth_gbps > 0.1 and row.fp32_tflops > 1e-4
    assert row.usable_basis.startswith("measured") and "CPU" in row.name


def test_run_bytes_by_hand():
    # tiny: 2 layers, hidden 64, 4 heads / 2 KV heads of 16, MLP 128, vocabulary 256 (tied), fp32.
    # weights (16,384 + 2 x (4,096 + 2 x 2,048 + 4,096 + 3 x 8,192 + 2 x 64) + 64) x 4 B = 361,728 B;
    # cache 20 tokens x 2 layers x 2 heads x 32 x 4 B = 10,240 B; prefill peak 16 x (512 + 1,536) = 32,768 B;
    # logits 256 x 4 B = 1,024 B
    assert run_bytes(SHAPES["tiny"], 1, 16, 4, "fp32") == 361_728 + 10_240 + 32_768 + 1_024


def test_runs_over_half_a_minute_or_half_the_memory_are_refused():
    tiny = SHAPES["tiny"]
    assert check_cpu_run(tiny, 1, 16, 4, eta_s=1.0, free_bytes=1 << 30) == 405_760
    with pytest.raises(KvdashError, match=f"about 31 s on this CPU.*under {MAX_SECONDS} s"):
        check_cpu_run(tiny, 1, 16, 4, eta_s=31.0, free_bytes=1 << 30)
    with pytest.raises(KvdashError, match="more than half of the"):
        check_cpu_run(tiny, 1, 16, 4, eta_s=1.0, free_bytes=800_000)
    assert check_cpu_run(tiny, 1, 16, 4, eta_s=1.0, free_bytes=None) == 405_760  # unknown free memory


def test_a_one_layer_copy_of_a_large_model_is_estimated_not_run_blind():
    # the case: one layer of Llama-3.1-8B on a CPU took 32 s; its 128,256 x 4,096 embedding and head
    # alone are 4.2 GB in fp32, so both its time and its memory are far above the tiny shape's
    big = scaled_copy(preset_model("llama-3.1-8b"), 1)
    row = cpu_row()
    assert run_bytes(big, 1, 128, 32, "fp32") > 2 * 128_256 * 4096 * 4
    assert estimate_run_seconds(big, 1, 128, 32, row, dtype="fp32") > 5 * estimate_run_seconds(
        SHAPES["tiny"], 1, 128, 32, row, dtype="fp32")


def test_available_ram_is_read():
    free = available_ram()
    assert free is None or free > 0
