"""Run every chapter listed in _toc.yml through papermill in quick mode; any error fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import REPO, is_notebook, toc_pages

# What each chapter's quick mode must still show, read from its executed outputs.
CHECKS = {
    "02_reprogramming": (r"held-out MNIST accuracy ([\d.]+)%", lambda v: v > 60),  # chance: 10 %
    "03_universal_perturbations": (r"noise: fooling rate ([\d.]+)%; SGD-UAP: ([\d.]+)%",
                                   lambda noise, uap: uap > noise + 20),
    "04_data_free": (r"no data: fooling rate ([\d.]+)%; noise: ([\d.]+)%", lambda free, noise: free > noise + 20),
    "05_gallery": (r"held-out target success ([\d.]+)% \(clean photos already in the target class: ([\d.]+)%\)",
                   lambda success, already: success > already + 20),
}


def toc_chapters() -> list[Path]:
    return [p for p in toc_pages() if is_notebook(p)]


def test_toc_lists_existing_pages():
    pages = toc_pages()
    assert all(p.exists() for p in pages), pages
    assert len(toc_chapters()) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("chapter", toc_chapters(), ids=lambda p: p.stem)
def test_chapter_runs_in_quick_mode(chapter, quick_chapter):
    import nbformat

    path, seconds = quick_chapter(chapter)
    print(f"\n{chapter.stem}: quick mode ran in {seconds:.0f} s")
    if chapter.stem in CHECKS:
        pattern, ok = CHECKS[chapter.stem]
        out = nbformat.read(path, as_version=4)
        text = "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
        found = re.search(pattern, text)
        assert found, f"{chapter.stem} printed nothing matching {pattern!r}"
        values = [float(v) for v in found.groups()]
        print(f"{chapter.stem}: {found.group(0)}")
        assert ok(*values), f"{chapter.stem} quick mode did not learn enough: {found.group(0)}"


def _notebooks_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebooks", REPO / "tools" / "notebooks.py")
    notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(notebooks)
    return notebooks


def test_colab_notebooks_are_in_sync_with_their_sources():
    notebooks = _notebooks_tool()
    chapters = {p.stem for p in toc_chapters()}
    assert {p.stem for p in notebooks.chapter_sources()} == {c for c in chapters if c[0].isdigit()}
    assert notebooks.stale() == [], "run `make notebooks` and commit the .ipynb files"


def test_sync_check_notices_an_edited_source(tmp_path):
    notebooks = _notebooks_tool()
    src = tmp_path / "01_x.md"
    src.write_text((REPO / "book" / "01_frozen_networks.md").read_text())
    assert notebooks.stale(tmp_path) == [tmp_path / "01_x.ipynb"]
    notebooks.write(tmp_path)
    assert notebooks.stale(tmp_path) == []
    src.write_text(src.read_text().replace("data_root = None", "data_root = \"/data\""))
    assert notebooks.stale(tmp_path) == [tmp_path / "01_x.ipynb"]
