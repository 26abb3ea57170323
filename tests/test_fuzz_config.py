"""Fuzz the config importer with thousands of malformed configs: every one must either build a
model or raise KvdashError with a one-line message, never another exception."""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kvdash.breakdown import breakdown
from kvdash.errors import KvdashError
from kvdash.hf_config import model_from_config, parse_config_text, supported_types
from kvdash.model import ModelSpec
from kvdash.presets import load_presets
from kvdash.scenario import Scenario

# Presets and the real configs of the corpus (hybrid, state-space, chunked, cross-attention, encoder-decoder,
# multimodal wrappers, quantized checkpoints), so every reader is fuzzed.
CORPUS = Path(__file__).parent / "data" / "configs"
BASES = [p.config for p in load_presets().values()] + [json.loads(f.read_text())["config"]
                                                       for f in sorted(CORPUS.glob("*.json"))]
KEYS = sorted({k for c in BASES for k in c} | {"text_config", "llm_config", "layer_types", "head_dim", "num_experts",
                                                "quantization_config", "vision_config", "hybrid_override_pattern",
                                                "layers_block_type", "no_rope_layers", "cross_attention_layers"})
TYPES = supported_types()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-3, 70_000)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=10,
)


@st.composite
def mutated_configs(draw):
    cfg = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "delete", "type", "nest"]))
        if op == "set":
            cfg[draw(st.sampled_from(KEYS))] = draw(json_values)
        elif op == "delete" and cfg:
            cfg.pop(draw(st.sampled_from(sorted(cfg))))
        elif op == "type":
            cfg["model_type"] = draw(st.sampled_from([*TYPES, "unknown", "", 7]))
        else:
            cfg = {"model_type": "gemma3", "text_config": cfg}
    return cfg


def _check(build) -> None:
    try:
        m = build()
    except KvdashError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(m, ModelSpec)
    try:  # a model that imports must also size, or say why not
        breakdown(m, Scenario(prompt_tokens=64))
    except KvdashError as e:
        assert "\n" not in str(e)


@settings(max_examples=2500, deadline=None)
@given(mutated_configs())
def test_mutated_configs_never_crash(cfg):
    _check(lambda: model_from_config(cfg))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_crash(data):
    _check(lambda: model_from_config(parse_config_text(data)))


@settings(max_examples=300, deadline=None)
@given(mutated_configs())
def test_mutated_json_text_never_crashes(cfg):
    _check(lambda: model_from_config(json.dumps(cfg, allow_nan=True)))
