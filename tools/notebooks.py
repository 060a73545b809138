"""Keep the Colab copies of the chapters in sync: ``python tools/notebooks.py [--check]``.

Colab opens ``.ipynb`` files only, and the chapters are MyST-markdown sources; each
``book/NN_*.md`` gets a ``book/NN_*.ipynb`` beside it (no outputs, Python 3 kernel),
which the book's Colab button opens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"


def chapter_sources(book: Path = BOOK) -> list[Path]:
    """The chapter sources that have code (``book/0*.md``)."""
    return sorted(book.glob("0*.md"))


def _cells(nb) -> list[tuple[str, str, list]]:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def stale(book: Path = BOOK) -> list[Path]:
    """Notebooks that are missing or whose cells differ from their source."""
    import jupytext

    out = []
    for md in chapter_sources(book):
        ipynb = md.with_suffix(".ipynb")
        if not ipynb.exists() or _cells(jupytext.read(md)) != _cells(jupytext.read(ipynb)):
            out.append(ipynb)
    return out


def stable_ids(nb) -> None:
    """Cell ids from each cell's content, so an edit changes only its own cell's id in the diff
    (nbformat would draw random ones on every write)."""
    import hashlib

    seen: set[str] = set()
    for k, cell in enumerate(nb.cells):
        cid = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        cell.id = cid if cid not in seen else f"{cid}-{k}"  # two equal cells: ids must differ
        seen.add(cell.id)


def write(book: Path = BOOK) -> list[Path]:
    """(Re)write every stale notebook; returns those written."""
    import jupytext

    written = stale(book)
    for ipynb in written:
        nb = jupytext.read(ipynb.with_suffix(".md"))
        nb.metadata.pop("jupytext", None)  # a plain notebook: Colab does not know jupytext
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        stable_ids(nb)
        jupytext.write(nb, ipynb)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="only report stale notebooks (exit 1 if any)")
    a = p.parse_args(argv)
    paths = stale() if a.check else write()
    for path in paths:
        print(f"{'stale' if a.check else 'wrote'}: {path}")
    return 1 if a.check and paths else 0


if __name__ == "__main__":
    sys.exit(main())
