"""Sphinx extension: serve the zoo's galleries kept as pictures from the built site.

A gallery of 1,000 classes is 1,000 small JPEGs in ``reprolab/zoo/<entry>/`` (see
:mod:`reprolab.zoo`); inlining them would make the gallery page tens of megabytes. On
``builder-inited`` (HTML builders only) every such entry's folder is copied, its hash
checked, to ``<build>/_static/zoo/<entry>/``, which is where the gallery page points
(:data:`URL`, relative to a page in ``book/``).

Enabled from _config.yml: ``sphinx.local_extensions: {zoo_pictures: _ext}``.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

from offline_mathjax import _copy

logger = logging.getLogger(__name__)

TARGET = "zoo"  # under the built site's _static
URL = "../_static/zoo/{name}/"  # from a page in book/


def copy_pictures(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    from reprolab import zoo

    for name in zoo.galleries():
        src = zoo.path(name)  # checks the folder against the manifest's sha256
        copied = _copy(src, Path(app.outdir) / "_static" / TARGET / name)
        logger.info(f"zoo_pictures: {name} in _static/{TARGET}/{name} ({copied} files updated)")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", copy_pictures)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
