"""Run again only the pages whose zoo entries or benchmark results changed: ``python tools/book_inputs.py``.

jupyter-cache keys a page's execution on its code alone, so a page that reads the zoo or
``benchmarks/results`` would keep outputs made from the old ones. ``make book`` calls this
first: it finds, for each executed page, the zoo entries and result files its source names,
hashes them, and drops the cached executions of the pages whose hash differs from the last
build's (``_build/.inputs.json``). Publishing a part of one gallery then reruns the pages
that read that gallery, not the whole book.

What a page reads is found in its text, erring towards too much: every entry a quoted
string names (``{...}`` in an f-string matching anything; a string of fields alone is no
name); every entry of a kind it lists (``zoo.names("uap")``), or all of them
(``zoo.names()``, ``zoo.galleries()``, or a page that uses the zoo but names no entry this
way); every result file when it mentions ``benchmarks/results``. An entry a page reads only through a function's default argument
is not seen: pages name the entries they show.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "reprolab" / "zoo" / "manifest.json"
RESULTS = REPO / "benchmarks" / "results"
BUILD = REPO / "_build"
STAMP = BUILD / ".inputs.json"
# the full book's and the quick book's (make book QUICK=1) caches
CACHES = (BUILD / ".jupyter_cache", BUILD / "quick" / "_build" / ".jupyter_cache")

_QUOTED = re.compile(r"""(?<![\w"'])[rRbBfF]{0,2}("|')(.+?)\1""")
_NAMES_CALL = re.compile(r"zoo\.names\(([^)]*)\)")


def executed_pages(repo: Path = REPO) -> list[Path]:
    """The book's pages with code cells (the ones jupyter-book executes)."""
    return sorted(p for p in (repo / "book").glob("*.md") if "```{code-cell}" in p.read_text())


def entries_read(text: str, entries: dict[str, dict]) -> set[str]:
    """The zoo entries a page's source may read (see the module's docstring for the rules)."""
    if "zoo.galleries(" in text or "read_manifest(" in text:
        return set(entries)
    found: set[str] = set()
    for call in _NAMES_CALL.finditer(text):
        kind = call.group(1).strip()
        literal = re.fullmatch(r"""(?:kind\s*=\s*)?("|')(\w+)\1""", kind)
        if not literal:          # zoo.names() or a kind held in a variable: any entry
            return set(entries)
        found |= {n for n, e in entries.items() if e.get("kind") == literal.group(2)}
    for quoted in _QUOTED.finditer(text):
        parts = re.split(r"\{[^{}]*\}", quoted.group(2))
        if not "".join(parts):   # f"{x:.0%}": fields only, no name (a name in a variable was quoted where it was made)
            continue
        parts[0] = parts[0].removeprefix("zoo:")   # "zoo:NAME", as the CLI and load_program take it
        pattern = re.compile(".+".join(map(re.escape, parts)))
        found |= {n for n in entries if pattern.fullmatch(n)}
    if not found and "zoo." in text:
        return set(entries)
    return found


def results_read(text: str, results: Path = RESULTS) -> list[Path]:
    """The benchmark result files a page may read: all of them if it names their folder."""
    return sorted(results.glob("*.json")) if "benchmarks/results" in text else []


def page_stamps(repo: Path = REPO, manifest: Path = MANIFEST, results: Path = RESULTS) -> dict[str, str]:
    """Page (relative path) -> sha256 of the zoo entries and result files it reads."""
    entries = json.loads(manifest.read_text())["entries"]
    stamps = {}
    for page in executed_pages(repo):
        text = page.read_text()
        h = hashlib.sha256()
        for name in sorted(entries_read(text, entries)):
            h.update(json.dumps({name: entries[name]}, sort_keys=True).encode())
        for f in results_read(text, results):
            h.update(f.name.encode() + f.read_bytes())
        stamps[str(page.relative_to(repo))] = h.hexdigest()
    return stamps


def changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Pages whose inputs differ from the last build's (a page absent from it counts)."""
    return sorted(p for p, h in new.items() if old.get(p) != h)


def drop_cached(cache_dir: Path, pages: list[Path]) -> int:
    """Remove the cached executions of ``pages`` from a jupyter-cache folder; returns how many."""
    if not cache_dir.exists():
        return 0
    from jupyter_cache import get_cache

    cache = get_cache(cache_dir)
    wanted = {p.resolve() for p in pages}
    gone = 0
    for record in cache.list_cache_records():
        if Path(record.uri).resolve() in wanted:
            cache.remove_cache(record.pk)
            gone += 1
    return gone


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    new = page_stamps()
    if not STAMP.exists():
        # a cache from a build without a stamp (or from before this script): its inputs are unknown
        if any(c.exists() for c in CACHES):
            print("no record of what the cached pages were built from: every page runs again")
            for cache in CACHES:
                shutil.rmtree(cache, ignore_errors=True)
    else:
        pages = changed(json.loads(STAMP.read_text()), new)
        if pages:
            print("the zoo entries or benchmark results these pages read changed; they run again:",
                  ", ".join(pages))
        for cache in CACHES:
            drop_cached(cache, [REPO / p for p in pages])
    BUILD.mkdir(exist_ok=True)
    tmp = STAMP.with_suffix(".tmp")
    tmp.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
    tmp.replace(STAMP)   # atomic: an interrupted run leaves the old stamp


if __name__ == "__main__":
    main()
