import os

import pytest

import dsk


@pytest.fixture
def ctx():
    with dsk.Context("cpu") as c:
        yield c


def cuda_available() -> bool:
    return dsk.device_count("cuda") > 0


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device for dsk")


def env_path(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set (ctest sets it; see bindings/python/tests.cmake)")
    return value
