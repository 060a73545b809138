"""Helpers the tests share (fixtures stay in conftest.py): the book's pages, a tiny model."""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


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
