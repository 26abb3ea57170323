import os

# No test touches the network: huggingface_hub (transformers' dependency and kvdash.hub's client) would fetch an
# "agent harness" registry from the real Hub for its telemetry user agent, whatever HF_ENDPOINT a test sets later
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest
from hypothesis import settings

from kvdash.gpus import get_gpu
from kvdash.presets import preset_model

# Locally every run draws new examples, to keep finding cases; CI (.ci/run) replays a fixed draw, so a
# commit's verdict does not depend on luck. A failure prints the blob that reproduces it.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def llama8b():
    return preset_model("llama-3.1-8b")


@pytest.fixture(scope="session")
def h100():
    return get_gpu("nvidia-h100-sxm5")
