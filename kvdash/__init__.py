"""kvdash: inference memory of decoder transformers, exact to the byte.

    >>> from kvdash import preset_model, Scenario, breakdown
    >>> breakdown(preset_model("llama-3.1-8b"), Scenario(batch=4, prompt_tokens=8192))["kv_cache"]
    4294967296

Pure Python (numpy only for sweeps): importing kvdash never imports torch or streamlit.
"""

from kvdash.breakdown import Breakdown, Component, breakdown
from kvdash.capacity import vllm_capacity
from kvdash.errors import KvdashError
from kvdash.gpus import Gpu, get_gpu, load_gpus
from kvdash.hf_config import model_from_config
from kvdash.model import ModelSpec
from kvdash.presets import load_presets, preset_model
from kvdash.scenario import Scenario

__all__ = [
    "Breakdown", "Component", "Gpu", "KvdashError", "ModelSpec", "Scenario", "breakdown", "get_gpu",
    "load_gpus", "load_presets", "model_from_config", "preset_model", "vllm_capacity",
]
