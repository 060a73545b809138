"""tools/book_inputs.py: which pages run again when the zoo or the benchmark results change."""

from __future__ import annotations

import importlib.util
import json
import shutil

import nbformat
import pytest

from helpers import REPO, is_notebook, toc_pages


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("book_inputs", REPO / "tools" / "book_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def entries(tool):
    return json.loads(tool.MANIFEST.read_text())["entries"]


def reads(tool, entries, page: str) -> set[str]:
    return tool.entries_read((REPO / "book" / page).read_text(), entries)


def test_every_executed_page_is_stamped(tool):
    assert set(tool.executed_pages()) == {p for p in toc_pages() if is_notebook(p)}


def test_rules_on_made_up_sources(tool):
    entries = {"uap-a": {"kind": "uap"}, "uap-b": {"kind": "uap"}, "gallery-a": {"kind": "gallery"}}
    assert tool.entries_read('zoo.load("uap-a")', entries) == {"uap-a"}
    assert tool.entries_read('zoo.load("zoo:gallery-a")', entries) == {"gallery-a"}
    assert tool.entries_read('name = f"uap-{x}"', entries) == {"uap-a", "uap-b"}
    assert tool.entries_read("zoo.names('gallery')", entries) == {"gallery-a"}
    assert tool.entries_read("zoo.names(kind)", entries) == set(entries)
    assert tool.entries_read("for n in zoo.names():", entries) == set(entries)
    assert tool.entries_read('zoo.load("uap-a"); zoo.galleries()', entries) == set(entries)
    # a page that uses the zoo without naming an entry reads all of them; one without the zoo none
    assert tool.entries_read('zoo.load(name); print(f"{acc:.1%}")', entries) == set(entries)
    assert tool.entries_read('print(f"{acc:.1%}", "lite0\'s")', entries) == set()


def test_the_chapters_read_what_they_show(tool, entries):
    # chapter 1 lists the whole zoo; chapter 4 loads the data-free programs and SGD-UAP's
    assert reads(tool, entries, "01_frozen_networks.md") == set(entries)
    ch4 = reads(tool, entries, "04_data_free.md")
    assert "gduap-none-efficientnet_lite0" in ch4 and "uap-sgd-linf-efficientnet_lite0" in ch4
    assert not any(n.startswith(("gallery-", "reprogram-")) for n in ch4)
    # a gallery's new part reruns the pages that show galleries, and not the reprogramming chapter
    for page in ("05_gallery.md", "gallery.md", "results.md"):
        assert "gallery-mobilenet_v2" in reads(tool, entries, page), page
    assert not any(n.startswith("gallery-") for n in reads(tool, entries, "02_reprogramming.md"))


def test_a_changed_entry_marks_only_the_pages_that_read_it(tool, tmp_path):
    manifest = json.loads(tool.MANIFEST.read_text())
    old = tool.page_stamps()
    manifest["entries"]["gallery-mobilenet_v2"]["metrics"]["target_success"] = 0.5
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    new = tool.page_stamps(manifest=tmp_path / "manifest.json")
    assert tool.changed(old, new) == ["book/01_frozen_networks.md", "book/05_gallery.md",
                                      "book/gallery.md", "book/results.md"]
    assert tool.changed({}, new) == sorted(new)          # no stamp for a page: it runs


def test_drop_cached_removes_only_the_named_pages(tool, tmp_path):
    from jupyter_cache import get_cache

    cache = get_cache(tmp_path / "cache")
    pages = []
    for stem in ("a", "b"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"print('{stem}')")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = tmp_path / f"{stem}.ipynb"
        nbformat.write(nb, path)
        cache.cache_notebook_file(path, check_validity=False)
        pages.append(path)
    assert tool.drop_cached(tmp_path / "cache", [pages[0]]) == 1
    assert [r.uri for r in cache.list_cache_records()] == [str(pages[1])]
    assert tool.drop_cached(tmp_path / "missing", pages) == 0
    shutil.rmtree(tmp_path / "cache")
