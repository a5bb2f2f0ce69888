import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent.parent / "shared" / "data"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "vid4").is_dir() or not (SHARED / "train").is_dir():
        raise FileNotFoundError(f"the shared data folder is missing: expected {SHARED} (vid4/ and train/)")
    return SHARED
