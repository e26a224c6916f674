"""Settings for every test run, the doctests in src/ included."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # The test machines have two cores shared with other jobs. torch's
    # OpenMP threads then spin against each other and against those jobs,
    # and the tiny networks of the tests train over ten times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
