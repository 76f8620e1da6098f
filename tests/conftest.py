import os

import numpy as np
import pytest

import fastconv


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same fastconv seed."""
    fastconv.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(int(os.environ.get("FASTCONV_TEST_SEED", "1234")))
