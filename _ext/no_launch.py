"""Sphinx extension: no launch (Colab) button on the pages listed in ``no_launch_pages``.

sphinx-book-theme adds the rocket menu to every page with a kernel. Pages that only read
the repository's recorded results or the zoo (the results page, the gallery page) have
no notebook copy for Colab, which cannot open their ``.md`` source, so the button would
lead nowhere. Runs after the theme's ``html-page-context`` handlers (priority 501).

Enabled from _config.yml: ``sphinx.local_extensions: {no_launch: _ext}`` and
``sphinx.config.no_launch_pages: [book/results, ...]`` (page names, no suffix).
"""

from __future__ import annotations

from sphinx.application import Sphinx

LAUNCH_LABEL = "launch-buttons"  # the label sphinx-book-theme gives its rocket menu


def drop_launch_buttons(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if pagename in app.config.no_launch_pages and "header_buttons" in context:
        context["header_buttons"] = [b for b in context["header_buttons"] if b.get("label") != LAUNCH_LABEL]


def setup(app: Sphinx) -> dict:
    app.add_config_value("no_launch_pages", [], "html")
    app.connect("html-page-context", drop_launch_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
