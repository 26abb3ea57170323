"""Real config.json files (tests/data/configs, source repository and commit in each) against hand
derivations written from each model's paper or reference code, not from running kvdash.

Each record's `derivation` shows the arithmetic; its `expected` holds the per-token cache, the fixed
per-sequence state and the bytes of one sequence at 65,536 tokens (bf16 cache and state; a recurrent
state in fp32 where the config asks for it), and the official parameter count where one is published.
"""

import json
from pathlib import Path

import pytest

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.hf_config import model_from_config, parse_config_text
from kvdash.scenario import Scenario

CORPUS = Path(__file__).parent / "data" / "configs"
RECORDS = {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))}


def test_the_corpus_is_there_and_sourced():
    assert len(RECORDS) >= 40
    for rid, r in RECORDS.items():
        src = r["source"]
        assert src["repo"].count("/") == 1 and src["path"], rid
        assert len(src["commit"]) == 40 and int(src["commit"], 16) >= 0, rid
        assert r["derivation"] and r["hf_id"], rid


@pytest.mark.parametrize("rid", RECORDS)
def test_cache_matches_the_hand_derivation(rid):
    r = RECORDS[rid]
    e = r["expected"]
    if "refused" in e:  # a model with no cache to size (an encoder): refused with that reason, in one message
        with pytest.raises(KvdashError, match=e["refused"]):
            model_from_config(r["config"])
        return
    m = model_from_config(r["config"])
    one = breakdown(m, Scenario(prompt_tokens=1))
    assert one.kv_bytes_per_token == e["kv_bytes_per_token"]
    assert one.state_bytes_per_seq == e["state_bytes_per_seq"]
    assert breakdown(m, Scenario(prompt_tokens=65_536))["kv_cache"] == e["kv_bytes_at_65536"]


@pytest.mark.parametrize("rid", [rid for rid, r in RECORDS.items()
                                 if r["expected"].get("official_params") and "refused" not in r["expected"]])
def test_official_parameter_counts_within_half_a_percent(rid):
    r = RECORDS[rid]
    official = r["expected"]["official_params"]
    assert abs(model_from_config(r["config"]).params - official) <= 0.005 * official


@pytest.mark.parametrize("rid", ["qwen3-next-80b-a3b-thinking", "ai21-jamba-1-5-mini", "whisper-large-v3"])
def test_the_text_path_reads_the_same(rid):
    # the CLI and the upload read JSON text, not a dict
    r = RECORDS[rid]
    assert model_from_config(parse_config_text(json.dumps(r["config"]))) == model_from_config(r["config"])
