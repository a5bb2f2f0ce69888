import pytest
import torch

from mstgan.paths import SHARED

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: reads ../shared/data (Vid4, training clips): `make test-data`")


def pytest_collection_modifyitems(config, items):
    # a test that reads the shared data is marked by the fixture it asks for, so `make test` can
    # deselect it on a clone without ../shared and `make test-data` can select exactly these
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED / "vid4").is_dir() or not (SHARED / "train").is_dir():
        raise FileNotFoundError(f"the shared data folder is missing: expected {SHARED} (vid4/ and train/)")
    return SHARED
