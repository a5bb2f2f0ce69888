import pytest
import torch

from mstgan.paths import SHARED

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED / "vid4").is_dir() or not (SHARED / "train").is_dir():
        raise FileNotFoundError(f"the shared data folder is missing: expected {SHARED} (vid4/ and train/)")
    return SHARED
