import os
import sys

import numpy as np
import pytest

import fastconv

# tests/ mirrors the package (nn/, functional/, models/, kernels/, data/); the shared
# helpers (helpers.py, reference.py, torch_models.py) live here, importable from all
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same fastconv seed."""
    fastconv.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(int(os.environ.get("FASTCONV_TEST_SEED", "1234")))
