"""Traffic as a planner states it (issue #22): hand-calculated checks of each formula in kvdash.traffic."""

import pytest

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.gpus import get_gpu
from kvdash.presets import preset_model
from kvdash.scenario import Scenario
from kvdash.traffic import at_rate, kv_transfer_s, steady_state


def test_littles_law_finds_the_requests_in_flight_a_rate_implies():
    # each request spends W(C) = 1 + 0.01 C seconds in the system at C in flight, so C / W(C) = R at
    # C = R / (1 - 0.01 R): 100 in flight for 50 requests/s (W = 2 s), 9,900 for 99/s (W = 100 s)
    w = lambda c: 1 + 0.01 * c  # noqa: E731
    s = steady_state(50, w)
    assert (s.concurrency, s.latency_s, s.served) == (100, 2.0, 50.0)
    assert steady_state(99, w).concurrency == 9900
    assert steady_state(49.9, w).concurrency == 100  # the fewest whole requests that serve the rate: 99.6 -> 100
    # throughput approaches 100/s and never reaches it: the rate cannot be served, and the planner says so
    with pytest.raises(KvdashError, match="more than this configuration serves"):
        steady_state(100, w)
    with pytest.raises(KvdashError, match="positive number"):
        steady_state(0, w)


def test_a_disaggregated_request_moves_its_prompt_cache_once():
    # Llama-3.1-8B's prompt of 8,192 tokens: 32 layers x 8 KV heads x (128 + 128) x 2 B = 131,072 B per token,
    # 1,073,741,824 B in all, over 450 GB/s one way: 2.386 ms
    cache = breakdown(preset_model("llama-3.1-8b"), Scenario(prompt_tokens=8192))["kv_cache"]
    assert cache == 8192 * 131_072 == 1_073_741_824
    assert kv_transfer_s(cache, 450.0) == pytest.approx(1_073_741_824 / 450e9)
    with pytest.raises(KvdashError, match="no link"):
        kv_transfer_s(cache, 0)


def test_a_rate_is_served_at_the_fewest_requests_in_flight_that_reach_it():
    # Llama-3.1-8B on one H100 under vLLM, 1,024 + 128 tokens at 8 requests/s: the concurrency found serves the
    # rate, one fewer would not (Little's law, whatever the serving model's numbers)
    m, gpu = preset_model("llama-3.1-8b"), get_gpu("nvidia-h100-sxm5")
    s = Scenario(prompt_tokens=1024, new_tokens=128, runtime="vllm")
    steady, report = at_rate(m, s, gpu, 8.0, 1024, 128)
    c = steady.concurrency
    assert report.concurrency == c and steady.served >= 8.0
    w = report.ttft_s + 127 * report.tpot_s
    assert steady.latency_s == w and c / w >= 8.0
    from kvdash.serving import serving

    assert c > 1  # 8 requests/s of ~1 s each need several in flight
    r = serving(m, s, gpu, c - 1, 1024, 128)
    assert (c - 1) / (r.ttft_s + 127 * r.tpot_s) < 8.0


def test_an_engine_computes_what_its_prefix_cache_lacks_in_whole_blocks():
    from kvdash.serving import computed_tokens

    assert computed_tokens(1000, 512, 16) == 488  # 512 cached tokens are 32 whole blocks
    assert computed_tokens(1000, 500, 16) == 504  # 500 cached: 31 whole blocks (496) reused
    assert computed_tokens(1000, 500, 0) == 500  # an unpaged cache reuses every cached token
    assert computed_tokens(1000, 1000, 16) == 8  # all cached, but the partial last block (8 tokens) is not kept
    assert computed_tokens(1024, 1024, 16) == 1  # all in whole blocks: the last token is computed for its logits
    with pytest.raises(KvdashError):
        computed_tokens(1000, 1001, 16)


def test_lengths_as_users_state_them():
    """Fixed, uniform (mean (lo + hi) / 2) or a table (mean = sum of value x share), by hand."""
    from kvdash.traffic import parse_lengths

    assert (parse_lengths("1024").mean, parse_lengths("1024").longest) == (1024, 1024)
    u = parse_lengths("512-2048")
    assert (u.mean, u.planned, u.longest) == (1280, 1280, 2048)
    t = parse_lengths("512:0.7, 4096:0.3")
    assert t.mean == pytest.approx(512 * 0.7 + 4096 * 0.3) and t.planned == 1587 and t.longest == 4096
    for bad in ("", "abc", "512:0.5,1024:0.4", "2048-512", "0", "512:0", "1-2-3", str(1 << 31)):
        with pytest.raises(KvdashError):
            parse_lengths(bad)
