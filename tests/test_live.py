"""The live run on the CPU: cached = uncached logits, exact cache bytes, sane timings, the lock,
out-of-memory handling and the run history."""

import threading
import time

import pytest

torch = pytest.importorskip("torch", reason="the live run needs PyTorch (requirements-live.txt)")

from kvdash.breakdown import breakdown  # noqa: E402
from kvdash.errors import KvdashError  # noqa: E402
from kvdash.live import bench, runner  # noqa: E402
from kvdash.live.__main__ import main as live_main  # noqa: E402
from kvdash.live.bench import LiveConfig, LiveOutOfMemory, run_benchmark  # noqa: E402
from kvdash.live.model import LiveDecoder  # noqa: E402
from kvdash.live.shapes import SHAPES, scaled_copy  # noqa: E402
from kvdash.live.store import RunStore  # noqa: E402
from kvdash.model import FULL, SLIDING, ModelSpec, decoder  # noqa: E402
from kvdash.presets import preset_model  # noqa: E402
from kvdash.scenario import Scenario  # noqa: E402


def tiny(kinds=(FULL, FULL, FULL), window=0, tie=False) -> ModelSpec:
    return decoder(name="t", n_layers=len(kinds), hidden_size=64, n_heads=4, n_kv_heads=2, head_dim=16,
                     vocab_size=97, intermediate_size=96, layer_types=kinds if SLIDING in kinds else (),
                     sliding_window=window, tie_word_embeddings=tie)


def build(m: ModelSpec, max_tokens: int, batch: int = 2) -> LiveDecoder:
    model = LiveDecoder(m, max_tokens)
    model.init_weights(0)
    model.setup_rope()
    model.allocate_cache(batch)
    return model


SPECS = [tiny(), tiny((SLIDING, FULL, SLIDING), window=5), tiny((SLIDING,) * 2, window=7, tie=True)]


def with_reference(m: ModelSpec, T: int, seed: int):
    """A model with an empty cache, random tokens, and the cacheless logits at every position."""
    model = build(m, T)
    tokens = torch.randint(0, m.vocab_size, (2, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model, tokens, model.forward_nocache(tokens, all_logits=True)  # logits [B, T, V]


@pytest.mark.parametrize("m", SPECS, ids=["full", "hybrid-window-5", "all-sliding-7"])
def test_cached_decode_equals_full_forward(m):
    T = 23
    model, tokens, ref = with_reference(m, T, seed=1)
    with torch.no_grad():
        first = model.prefill(tokens[:, :9])
        steps = [model.prefill(tokens[:, i : i + 1], start=i) for i in range(9, T)]
    torch.testing.assert_close(first, ref[:, 8], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.stack(steps, 1), ref[:, 9:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", SPECS, ids=["full", "hybrid-window-5", "all-sliding-7"])
@pytest.mark.parametrize("chunk", [2, 6, 11])
def test_chunked_prefill_into_a_non_empty_cache(m, chunk):
    T = 23
    model, tokens, ref = with_reference(m, T, seed=2)
    with torch.no_grad():
        for start in range(0, T, chunk):
            out = model.prefill(tokens[:, start : start + chunk], start=start)
            end = min(start + chunk, T) - 1
            torch.testing.assert_close(out, ref[:, end], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", SPECS, ids=["full", "hybrid-window-5", "all-sliding-7"])
def test_static_decode_path_equals_full_forward(m):
    T = 19
    model, tokens, ref = with_reference(m, T, seed=3)
    with torch.no_grad():
        model.prefill(tokens[:, :4])
        steps = [model.decode_static(tokens[:, i : i + 1], torch.tensor([i])) for i in range(4, T)]
    torch.testing.assert_close(torch.stack(steps, 1), ref[:, 4:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("m", "batch", "prompt", "new"),
    [
        (SHAPES["tiny"], 3, 50, 10),
        (SHAPES["tiny-sliding"], 2, 30, 20),  # 50 tokens > window 8: ring layers hold 8
        (tiny((SLIDING, FULL, SLIDING), window=64), 1, 10, 5),  # window larger than the run
        (scaled_copy(preset_model("gemma-2-9b"), 2), 1, 5000, 1),  # real head_dim 256, window 4096
    ],
)
def test_cache_bytes_equal_the_prediction(m, batch, prompt, new):
    with torch.device("meta"):
        model = LiveDecoder(m, prompt + new)  # meta tensors: shapes and bytes without memory
    model.embed.weight = torch.nn.Parameter(torch.empty(0))
    allocated = model.allocate_cache(batch)
    predicted = breakdown(m, Scenario(batch=batch, prompt_tokens=prompt, new_tokens=new, kv_dtype="fp32",
                                      runtime="static"))
    assert allocated == predicted["kv_cache"]


def test_parameters_equal_the_library_count():
    for m in (SHAPES["tiny"], SHAPES["small"], tiny(tie=False), scaled_copy(preset_model("mistral-7b-v0.1"), 1)):
        with torch.device("meta"):
            model = LiveDecoder(m, 8)
        assert sum(p.numel() for p in model.parameters()) == m.params


def test_benchmark_returns_sane_numbers():
    r = run_benchmark(LiveConfig(spec=SHAPES["tiny-sliding"], batch=2, prompt_tokens=24, new_tokens=12,
                                 device="cpu", repeats=2, nocache_points=4))
    c, m = r["checks"], r["measured"]
    assert c["weights_exact"] and c["kv_cache_exact"] and c["finite"]
    assert m["ttft_s"] > 0 and m["tpot_s"] > 0 and m["tokens_per_s"] > 0
    assert len(m["decode_cached_s"]) == 11 and all(dt > 0 for _, dt in m["decode_cached_s"])
    assert [p for p, _ in m["decode_nocache_s"]] == sorted(p for p, _ in m["decode_nocache_s"])
    assert r["predicted"]["decode_floor_s"] > 0 and r["device"]["device"] == "cpu"


def test_lock_serialises_concurrent_runs(monkeypatch):
    spans, waits = [], []

    def fake(cfg, progress=None):
        t0 = time.perf_counter()
        time.sleep(0.2)
        spans.append((t0, time.perf_counter()))
        return {"ok": True}

    monkeypatch.setattr(bench, "run_benchmark", fake)
    threads = [threading.Thread(target=runner.run_exclusive, args=(None,), kwargs={"on_wait": lambda: waits.append(1)})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (_, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start  # the second run started only after the first ended
    assert waits == [1]  # and was told it was waiting for the GPU
    assert not runner.RUN_LOCK.locked()


def test_out_of_memory_is_reported_and_the_lock_released(monkeypatch):
    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(bench, "_run", boom)
    cfg = LiveConfig(spec=SHAPES["small"], batch=4, prompt_tokens=512, new_tokens=8, device="cpu")
    predicted = breakdown(SHAPES["small"], Scenario(batch=4, prompt_tokens=512, new_tokens=8, weights_dtype="fp32",
                                                    kv_dtype="fp32", runtime="static"))
    with pytest.raises(LiveOutOfMemory) as e:
        runner.run_exclusive(cfg)
    assert f"{predicted.total:,} B" in str(e.value) and "out of memory" in str(e.value)
    assert not runner.RUN_LOCK.locked()


def test_history_round_trips(tmp_path):
    store = RunStore(tmp_path / "sub" / "runs.sqlite")
    assert store.all() == []
    result = {"created": "2026-11-26T00:00:00+00:00", "device": {"name": "CPU"}, "shape": {"name": "tiny"},
              "measured": {"tpot_s": 0.001}, "checks": {"kv_cache_exact": True}}
    first = store.add(result)
    second = store.add(result | {"created": "2026-11-26T00:00:01+00:00"})
    rows = store.all()
    assert [r["id"] for r in rows] == [second, first]
    assert {k: v for k, v in rows[1].items() if k != "id"} == result


def test_unsupported_shapes_are_refused():
    with pytest.raises(KvdashError, match="latent"):
        scaled_copy(preset_model("deepseek-v3"), 2)
    with pytest.raises(KvdashError, match="experts"):
        LiveConfig(spec=preset_model("mixtral-8x7b"))


def test_live_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KVDASH_DATA_DIR", str(tmp_path))
    rc = live_main(["--shape", "tiny", "--prompt", "16", "--new", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "exact: True" in out and "tok/s" in out
    assert len(RunStore().all()) == 1
    assert live_main(["--shape", "tiny", "--batch", "0"]) == 2
    assert "batch" in capsys.readouterr().err
    assert live_main(["--preset", "deepseek-v3"]) == 2


def test_run_time_estimate_bounds_the_page():
    from kvdash.gpus import get_gpu
    from kvdash.live.shapes import estimate_run_seconds

    h200 = get_gpu("nvidia-h200-sxm")
    small = estimate_run_seconds(SHAPES["1b"], 1, 4032, 64, h200)
    huge = estimate_run_seconds(scaled_copy(preset_model("llama-3.1-405b"), 16), 32, 8192, 256, h200)
    assert 2 < small < 30  # each H200 reference run of this shape took 10-20 s, Python start-up included
    assert huge > 30 and huge > 10 * small


def test_any_failure_releases_the_lock(monkeypatch):
    def broken(cfg, progress=None):
        raise RuntimeError("something unexpected in the run")

    monkeypatch.setattr(bench, "run_benchmark", broken)
    with pytest.raises(RuntimeError):
        runner.run_exclusive(None)
    assert not runner.RUN_LOCK.locked()
