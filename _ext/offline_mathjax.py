"""Sphinx extension: serve MathJax 3 from the built site, so formulas typeset offline.

The files come from the PyPI package ``django-static-mathjax`` (a book and test extra in
pyproject.toml): a copy of MathJax 3.2's ``es5`` build whose Python side is an empty module,
so Django is neither needed nor imported; the files are found through the package's
installed metadata. On ``builder-inited`` (HTML builders only) the entry point
``tex-mml-chtml.js`` and what it loads at run time (TeX extensions for ``autoload``, MathML
entities, the CommonHTML woff-v2 fonts, the menu and its accessibility components) are
copied into ``<build>/_static/mathjax/``, and ``mathjax_path`` in _config.yml points there
with a path relative to ``_static`` (``mathjax/tex-mml-chtml.js``).

Enabled from _config.yml: ``sphinx.local_extensions: {offline_mathjax: _ext}``.
"""

from __future__ import annotations

import filecmp
import shutil
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "django-static-mathjax"
ES5 = "mathjax/static/mathjax/es5"  # inside the installed package
LICENSE = "mathjax/static/mathjax/LICENSE"
TARGET = "mathjax"  # under the built site's _static
# tex-mml-chtml.js and the folders it loads from at run time (relative to es5/)
PARTS = ("tex-mml-chtml.js", "input/tex/extensions", "input/mml", "output/chtml/fonts/woff-v2",
         "ui", "a11y", "sre")


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax copy."""
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise ExtensionError(f"offline_mathjax: the package {PACKAGE} is not installed "
                             f"(pip install -e \".[book]\", or pip install {PACKAGE})") from None
    es5 = Path(dist.locate_file(ES5))
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"offline_mathjax: no tex-mml-chtml.js in {es5} ({PACKAGE} {dist.version})")
    return es5


def _copy(src: Path, dest: Path) -> int:
    """Copy a file, or a folder's files, unless already there unchanged; returns how many."""
    pairs = ([(src, dest)] if src.is_file() else
             [(f, dest / f.relative_to(src)) for f in sorted(src.rglob("*")) if f.is_file()])
    copied = 0
    for a, b in pairs:
        if not (b.is_file() and filecmp.cmp(a, b)):  # shallow: size and mtime (copy2 keeps it)
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(a, b)
            copied += 1
    return copied


def copy_mathjax(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    path = app.config.mathjax_path
    if "://" in path or path.startswith("/"):
        logger.info(f"offline_mathjax: mathjax_path is {path!r}, not a file of _static: nothing copied")
        return
    es5, dest = mathjax_source(), Path(app.outdir) / "_static" / TARGET
    copied = sum(_copy(es5 / part, dest / part) for part in PARTS)
    copied += _copy(Path(distribution(PACKAGE).locate_file(LICENSE)), dest / "LICENSE")
    if not (Path(app.outdir) / "_static" / PurePosixPath(path)).is_file():
        raise ExtensionError(f"offline_mathjax: mathjax_path {path!r} is not among the files copied to "
                             f"_static/{TARGET}/ (use {TARGET}/tex-mml-chtml.js)")
    logger.info(f"offline_mathjax: MathJax from {es5} in _static/{TARGET} ({copied} files updated)")


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("builder-inited", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
