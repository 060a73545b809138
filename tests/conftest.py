"""Shared fixtures. Tests never touch the network: REPROLAB_OFFLINE=1, data from ../shared/data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO, make_tiny_model, remove_injected_parameters

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
def quick_chapter(tmp_path_factory, data_dir):
    """``quick_chapter(source) -> (executed notebook path, seconds)``: each chapter runs once
    per session (papermill, quick mode), shared by the chapter checks and the built book."""
    import jupytext
    import papermill

    out_dir, done = tmp_path_factory.mktemp("executed"), {}

    def run(chapter: Path) -> tuple[Path, float]:
        if chapter not in done:
            nb = jupytext.read(chapter)
            assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), "no parameters cell"
            src, out = out_dir / f"{chapter.stem}.src.ipynb", out_dir / f"{chapter.stem}.ipynb"
            jupytext.write(nb, src)
            t = time.perf_counter()
            papermill.execute_notebook(str(src), str(out), kernel_name="python3",
                                       parameters={"quick": True, "data_root": str(data_dir)},
                                       cwd=str(chapter.parent), progress_bar=False)
            seconds = time.perf_counter() - t
            remove_injected_parameters(out)
            done[chapter] = (out, seconds)
        return done[chapter]

    return run


@pytest.fixture(scope="session")
def lite0():
    import reprolab

    return reprolab.load_model("efficientnet_lite0")


@pytest.fixture
def tiny_model():
    return make_tiny_model()
