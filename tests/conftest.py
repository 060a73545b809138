"""Shared fixtures. Tests never touch the network: REPROLAB_OFFLINE=1, data from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("REPROLAB_DATA", str(REPO.parent / "shared" / "data"))
os.environ["REPROLAB_OFFLINE"] = "1"
os.environ["REPROLAB_PROGRESS"] = "off"  # papermill runs have no widget kernel
os.environ["REPROLAB_STATIC"] = "1"  # nor live widgets: chapters show static figures
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["REPROLAB_DATA"])
    assert (path / "imagenet-sample" / "labels.csv").exists(), (
        f"shared data not found at {path}; set REPROLAB_DATA to the folder holding mnist/ and imagenet-sample/")
    return path


@pytest.fixture(scope="session")
def lite0():
    import reprolab

    return reprolab.load_model("efficientnet_lite0")


class Brightness(torch.nn.Module):
    """Class k means "mean brightness near k/9": predictions anyone can work out by hand."""

    def forward(self, x):
        centres = torch.linspace(0, 1, 10, device=x.device)
        return -100 * (x.mean((1, 2, 3))[:, None] - centres) ** 2


@pytest.fixture
def tiny_model():
    """A fast 10-class classifier with a (frozen, identity) conv layer and known predictions."""
    import reprolab
    from torch import nn

    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.zero_()
    return reprolab.wrap_model(nn.Sequential(conv, Brightness()), input_size=32, name="tiny")
