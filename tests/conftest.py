import numpy as np
import pytest
import torch

from ase_distill import SIZES, StudentModel
from ase_distill.testing import randomize_readout


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def random_student(request) -> StudentModel:
    """Every size config with fixed-seed random weights (and a non-trivial energy reference)."""
    torch.manual_seed(1234)
    return randomize_readout(StudentModel(SIZES[request.param]).double(), seed=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="session")
def compiled_package_cache(tmp_path_factory):
    """Compiled students go to a folder of this test session, never to the user's cache."""
    from ase_distill.compiled import CACHE_ENV

    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("aoti-cache")))
    yield
    mp.undo()
