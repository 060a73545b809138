"""Run every chapter listed in _toc.yml through papermill in quick mode; any error fails."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

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
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [entry["file"] for part in [toc] + toc.get("parts", []) for entry in part.get("chapters", [])]
    return [REPO / f"{f}.md" for f in files]


def test_toc_lists_existing_chapters():
    chapters = toc_chapters()
    assert chapters and all(p.exists() for p in chapters), chapters


@pytest.mark.slow
@pytest.mark.parametrize("chapter", toc_chapters(), ids=lambda p: p.stem)
def test_chapter_runs_in_quick_mode(chapter, tmp_path, data_dir):
    import jupytext
    import papermill

    nb = jupytext.read(chapter)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), "no parameters cell"
    src = tmp_path / f"{chapter.stem}.ipynb"
    jupytext.write(nb, src)
    t = time.perf_counter()
    out = papermill.execute_notebook(str(src), str(tmp_path / f"{chapter.stem}.out.ipynb"), kernel_name="python3",
                                     parameters={"quick": True, "data_root": str(data_dir)},
                                     cwd=str(chapter.parent), progress_bar=False)
    print(f"\n{chapter.stem}: quick mode ran in {time.perf_counter() - t:.0f} s")
    if chapter.stem in CHECKS:
        pattern, ok = CHECKS[chapter.stem]
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
    chapters = {p.stem for p in toc_chapters() if p.stem != "intro"}
    assert {p.stem for p in notebooks.chapter_sources()} == chapters
    assert notebooks.stale() == [], "run `make notebooks` and commit the .ipynb files"


def test_sync_check_notices_an_edited_source(tmp_path):
    notebooks = _notebooks_tool()
    src = tmp_path / "01_x.md"
    src.write_text((REPO / "book" / "01_frozen_networks.md").read_text())
    assert notebooks.stale(tmp_path) == [tmp_path / "01_x.ipynb"]
    notebooks.write(tmp_path)
    assert notebooks.stale(tmp_path) == []
    src.write_text(src.read_text().replace("quick = False", "quick = True"))
    assert notebooks.stale(tmp_path) == [tmp_path / "01_x.ipynb"]
