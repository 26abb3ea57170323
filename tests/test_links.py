"""The link parser: every URL-bound input type, hostile values, and the notice's wording."""

import re

import pytest

from ui.links import BLOCK_CHOICES, FIELDS, clean_link, notice


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("batch", "8", 8), ("batch", "+8", 8), ("context", "1073741824", 1 << 30), ("new", "0", 0),
        ("tp", "1024", 1024), ("block", "16", 16), ("block", "0", 0), ("kvdtype", "fp8", "fp8"),
        ("wdtype", "checkpoint", "checkpoint"), ("source", "custom", "custom"), ("unit", "GB", "GB"),
        ("model", "llama-3.1-8b", "llama-3.1-8b"), ("gpu", "nvidia-h200-nvl", "nvidia-h200-nvl"),
        ("c_attn", "latent (MLA)", "latent (MLA)"), ("ep", "whole (EP)", "whole (EP)"), ("c_experts", "0", 0),
        # numbers as people write them, in a link or a precise-value box (issue #21): all whole
        ("context", "1e9", 1_000_000_000), ("context", "131,072", 131_072), ("context", "1.5e3", 1500),
        ("batch", "1_024", 1024),
    ],
)
def test_valid_values_parse(key, raw, value):
    assert clean_link({key: raw}) == ({key: value}, {})


@pytest.mark.parametrize(
    ("key", "raw", "why"),
    [
        ("batch", "1e309", "outside"), ("batch", "inf", "not a number"), ("batch", "nan", "not a number"),
        ("batch", "1" * 400, "outside"), ("batch", "1.5", "whole number"), ("batch", "", "not a number"),
        ("batch", "0x10", "not a number"), ("batch", "1,00", "not a number"), ("context", "2.5e0", "whole number"),
        ("context", "1e400", "outside"), ("tp", "1e309", "outside"), ("tp", "0", "outside 1 to 1,024"),
        ("pp", "-3", "outside"), ("batch", str(1 << 24 + 1), "outside"), ("block", "17", "choices"),
        ("kvdtype", "mxfp4", "choices"),  # a weight-only format is not a KV cache choice
        ("model", "no-such-model", "choices"), ("gpu", "nvidia-h300", "choices"), ("source", "url", "choices"),
        ("unit", "gib", "choices"), ("c_layers", "10001", "outside"),
    ],
)
def test_hostile_values_are_rejected_with_a_reason(key, raw, why):
    valid, rejected = clean_link({key: raw})
    assert valid == {} and why in rejected[key]


def test_unbound_keys_are_ignored_and_the_notice_names_each_value():
    params = {"batch": "1e309", "tp": "3", "utm_source": "mail", "kvdtype": "int3"}
    valid, rejected = clean_link(params)
    assert valid == {"tp": 3} and set(rejected) == {"batch", "kvdtype"}
    text = notice(params, rejected)
    assert "batch='1e309' (outside 1 to 16,777,216)" in text and "kvdtype='int3' (not one of the choices)" in text


def test_every_field_has_a_range_or_choices():
    for key, f in FIELDS.items():
        assert f.pattern or f.options() or (f.lo <= f.hi and f.hi > 0), key
    assert FIELDS["block"].options() == BLOCK_CHOICES
    # a Hub id is free text, held to the Hub's own shape of owner/name (or one of its URLs)
    assert FIELDS["hub"].parse("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    url = "https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main"
    assert FIELDS["hub"].parse(url) == url
    for bad in ("../x", "a/b/c", "<script>/x", "a/b c"):
        with pytest.raises(ValueError, match="not a model id"):
            FIELDS["hub"].parse(bad)
    assert FIELDS["serve_util"].value_type is float and FIELDS["serve_util"].parse("0.85") == 0.85
    # the Plan page's prices: the CLI's --price values, comma-separated
    typed = "nvidia-h100-sxm5=2.5, nvidia-b200-hgx=5"
    assert FIELDS["plan_prices"].parse(typed) == typed
    for bad in ("h100", "nvidia-h100-sxm5=cheap", "a=1;b=2"):
        with pytest.raises(ValueError, match="not prices as GPU=USD"):
            FIELDS["plan_prices"].parse(bad)


def test_value_types_follow_the_choices():
    assert FIELDS["block"].value_type is int and FIELDS["batch"].value_type is int
    assert FIELDS["model"].value_type is str and FIELDS["kvdtype"].value_type is str


def test_a_scenario_file_is_applied_whole_or_refused():
    from ui.links import scenario_values

    good = {"batch": 4, "tp": 2, "kvdtype": "fp8", "model": "qwen3-32b", "block": 16, "note": "ignored"}
    assert scenario_values(good) == {"batch": 4, "tp": 2, "kvdtype": "fp8", "model": "qwen3-32b", "block": 16}
    for bad, named in (({"batch": 4, "tp": 3000}, "tp=3000"), ({"batch": True}, "batch=True"),
                       ({"batch": "4"}, "batch='4'"), ({"kvdtype": "int3"}, "kvdtype='int3'"),
                       ({"batch": 2.0}, "batch=2.0"), ({"model": "no-such-model"}, "model=")):
        with pytest.raises(ValueError, match=re.escape(named)):
            scenario_values(bad)
    with pytest.raises(ValueError, match="not a JSON object"):
        scenario_values([1, 2])
