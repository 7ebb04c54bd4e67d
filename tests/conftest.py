import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get(
    "POINTSAM_SHARED_DATA",
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


# pytest runs with -n 2 (two workers on two cores): one OpenMP thread per worker
# avoids oversubscription, which made the suite several times slower here.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA}")
    return SHARED_DATA


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """cpu, plus cuda where a GPU is present (PyG's withDevice)."""
    return torch.device(request.param)
