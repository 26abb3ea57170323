"""Preset models: one JSON file per model in `data/models/`, holding real config.json fields and
where they come from. Loaded once, on first use, through the same importer as user configs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache

from kvdash.errors import KvdashError
from kvdash.gpus import DATA_DIR
from kvdash.hf_config import model_from_config
from kvdash.model import ModelSpec


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    hf_id: str | None
    config: dict
    sources: tuple[str, ...]
    official_params: dict | None
    notes: str
    kv_dtype: str = "bf16"  # the KV cache's dtype in the preset's own story (the article's example: fp32)

    @property
    def model(self) -> ModelSpec:
        return _model(self.id)


@lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    out = {}
    for path in sorted((DATA_DIR / "models").glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        out[d["id"]] = Preset(d["id"], d["name"], d.get("hf_id"), d["config"], tuple(d.get("sources", ())),
                              d.get("official_params"), d.get("notes", ""), d.get("kv_dtype", "bf16"))
    return out


@cache
def _model(preset_id: str) -> ModelSpec:
    p = load_presets()[preset_id]
    return model_from_config(p.config, name=p.name)


def get_preset(preset_id: str) -> Preset:
    presets = load_presets()
    if preset_id not in presets:
        close = [p for p in presets if preset_id.lower() in p]
        hint = f"; did you mean {', '.join(close[:4])}?" if close else f"; choose one of {', '.join(presets)}"
        raise KvdashError(f"unknown preset {preset_id!r}{hint}")
    return presets[preset_id]


def preset_model(preset_id: str) -> ModelSpec:
    return get_preset(preset_id).model
