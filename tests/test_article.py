"""The worked example of the article kvdash grew from (shared/seed): 1024 dims per token, K and V,
fp32, 512 tokens, 48 layers. Its "8 KB / 4 MB / 192 MB" are KiB, MiB and MiB."""

import json

from kvdash.breakdown import breakdown, kv_bytes_per_token_layer
from kvdash.cli import main
from kvdash.dtypes import get_dtype
from kvdash.model import FULL
from kvdash.presets import preset_model
from kvdash.scenario import Scenario

MiB = 1024 * 1024


def test_per_token_per_layer_is_8_kib():
    m = preset_model("article-example")
    assert kv_bytes_per_token_layer(m, FULL, get_dtype("fp32")) == 1024 * 2 * 4 == 8192


def test_512_tokens_is_4_mib_per_layer_and_192_mib_for_48_layers():
    m = preset_model("article-example")
    b = breakdown(m, Scenario(batch=1, prompt_tokens=512, kv_dtype="fp32", weights_dtype="fp32"))
    assert m.n_layers == 48
    assert b["kv_cache"] // 48 == 4 * MiB == 4_194_304
    assert b["kv_cache"] == 192 * MiB == 201_326_592


def test_cli_reports_the_article_number(capsys):
    rc = main(["size", "--preset", "article-example", "--context", "512", "--kv-dtype", "fp32", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kv_cache_bytes"] == 201_326_592
    assert out["kv_bytes_per_token"] == 48 * 8192
