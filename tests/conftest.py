import os

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
