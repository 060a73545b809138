"""Shared fixtures. Tests never touch the network: REPROLAB_OFFLINE=1, data from ../shared/data."""

from __future__ import annotations

import os
import time
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


def toc_pages() -> list[Path]:
    """Every page of the book in _toc.yml order (sources: .md)."""
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for part in [toc] + toc.get("parts", [])
                             for entry in part.get("chapters", [])]
    return [REPO / f"{f}.md" for f in files]


def is_notebook(page: Path) -> bool:
    """Chapters with code are jupytext notebooks (a kernelspec in their front matter)."""
    return page.read_text().startswith("---\njupytext:")


def remove_injected_parameters(notebook: Path) -> None:
    """Tag papermill's ``injected-parameters`` cell ``remove-cell``: the built pages must not show it
    (it holds this machine's data path); the chapter's own parameters cell stays (``hide-cell``)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, notebook)


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


class Brightness(torch.nn.Module):
    """Class k means "mean brightness near k/9": predictions anyone can work out by hand."""

    def forward(self, x):
        centres = torch.linspace(0, 1, 10, device=x.device)
        return -100 * (x.mean((1, 2, 3))[:, None] - centres) ** 2


def make_tiny_model():
    """A fast 10-class classifier with a (frozen, identity) conv layer and known predictions."""
    import reprolab
    from torch import nn

    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.zero_()
    return reprolab.wrap_model(nn.Sequential(conv, Brightness()), input_size=32, name="tiny")


@pytest.fixture
def tiny_model():
    return make_tiny_model()
