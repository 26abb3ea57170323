import pytest

from kvdash.gpus import get_gpu
from kvdash.presets import preset_model


@pytest.fixture(scope="session")
def llama8b():
    return preset_model("llama-3.1-8b")


@pytest.fixture(scope="session")
def h100():
    return get_gpu("nvidia-h100-sxm5")
