"""The built book as readers meet it: every page opened in headless Chromium.

The chapters are executed once per session in quick mode (the ``quick_chapter`` fixture,
shared with test_chapters.py); the book is built from those executed notebooks, so the
pages show real outputs without running anything twice. Screenshots land in
``_build/test-artifacts/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, is_notebook, toc_pages

SCREENSHOTS = REPO / "_build" / "test-artifacts" / "screenshots"
ALLOWED_FAILURES = (
    "'THEBE_JS_URL' has already been declared",  # sphinx-thebe 0.3 adds its config script twice
)
RAW_TEX = ("\\(", "\\[", "$$")  # delimiters MathJax removes when it typesets a formula
# waits for MathJax (loaded with defer, so started by readyState "complete") to typeset the page
# and for the fonts it asked for
MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done("MathJax not loaded"); return; }
MathJax.startup.promise.then(() => document.fonts.ready).then(() => done(""), e => done("MathJax failed: " + e));
"""


def machine_paths(*more: Path) -> list[str]:
    """Absolute paths of this machine that no page may show (the checkout, the data, home)."""
    paths = [REPO, REPO.parent, Path(os.environ["REPROLAB_DATA"]), Path.home(), *more]
    return sorted({str(p) for p in paths if len(p.parts) > 1})


def page_html(book: Path, page: Path) -> Path:
    return book / page.relative_to(REPO).with_suffix(".html")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, quick_chapter) -> Path:
    """Build the book from the quick-mode notebooks; any Sphinx warning fails."""
    src = tmp_path_factory.mktemp("book")
    for page in toc_pages():
        dest = src / page.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if is_notebook(page):
            shutil.copy(quick_chapter(page)[0], dest.with_suffix(".ipynb"))
        else:
            shutil.copy(page, dest)
    for name in ("_toc.yml", "references.bib"):
        shutil.copy(REPO / name, src / name)
    for folder in ("_ext", "_static"):  # the offline MathJax extension, the book's CSS
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # already executed above
    config["exclude_patterns"] = [p for p in config["exclude_patterns"] if not p.endswith(".ipynb")]
    (src / "_config.yml").write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).parent / "jupyter-book"
    run = subprocess.run([str(jb), "build", str(src), "--builder", "html"], capture_output=True, text=True)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "\n".join(warnings)
    return src / "_build" / "html"


@pytest.fixture(scope="session")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("headless Chromium not found: `make test` installs it as root "
                    "(apt-get install chromium chromium-driver); install those two packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--no-first-run",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield session
    session.quit()


def open_page(browser, url: str) -> list[str]:
    """Load ``url``; returns its failed loads and script errors other than the allowed ones."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop messages from earlier pages
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")
    return failed_loads(browser)


def failed_loads(browser) -> list[str]:
    """Failed loads and script errors logged since the last look, other than the allowed ones."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") in ("network", "javascript")
            and not any(a in entry["message"] for a in ALLOWED_FAILURES)]


@pytest.mark.slow
def test_every_chapter_renders_in_a_browser(built_book, browser):
    from selenium.webdriver.common.by import By

    pages = toc_pages()
    from selenium.webdriver.support.ui import WebDriverWait

    landing = page_html(built_book, pages[0]).as_uri()
    open_page(browser, (built_book / "index.html").as_uri())  # redirects to the first page
    WebDriverWait(browser, 30).until(lambda b: b.current_url.split("#")[0] == landing)
    # navigation: the sidebar of the landing page links every page of the table of contents
    links = {a.get_attribute("href").split("#")[0]
             for a in browser.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a.reference.internal")}
    links.add(browser.current_url.split("#")[0])
    expected = {page_html(built_book, p).as_uri() for p in pages}
    assert expected <= links, f"not reachable from the navigation: {sorted(expected - links)}"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_script_timeout(60)
    forbidden = machine_paths(built_book.parents[2])  # and pytest's folder: executed chapters, book sources
    problems = []
    for page in pages:
        failures = open_page(browser, page_html(built_book, page).as_uri())
        # formulas: typeset by MathJax (served from _static, offline), no TeX source left on screen
        has_math = browser.execute_script("return document.querySelectorAll('.math').length") > 0
        mathjax = browser.execute_async_script(MATHJAX_DONE) if has_math else ""
        typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
        text = browser.execute_script("return document.body.innerText")
        raw_tex = [t for t in RAW_TEX if t in text]
        failures += failed_loads(browser)  # what MathJax loaded after the page (components, fonts)
        if mathjax or raw_tex or (has_math and typeset == 0):
            problems.append(f"{page.stem}: math not typeset ({mathjax or 'MathJax ran'}, "
                            f"{typeset} formulas typeset, raw TeX {raw_tex} on the page)")
        # no machine paths on screen (papermill's injected-parameters cell is removed, for one)
        shown = [p for p in forbidden if p in text]
        if shown:
            problems.append(f"{page.stem}: machine paths in the visible text: {shown}")
        # code cells wrap long lines (_static/custom.css) instead of scrolling sideways
        wide = browser.execute_script(
            "return Array.from(document.querySelectorAll('div.cell pre'))"
            ".filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)"  # shown ones (not in closed cells)
            ".map(e => e.innerText.slice(0, 80))")
        if wide:
            problems.append(f"{page.stem}: code cells wider than the page: {wide}")
        browser.save_screenshot(str(SCREENSHOTS / f"{page.stem}.png"))
        errors = [e.text[:300] for e in browser.find_elements(By.CSS_SELECTOR, ".cell_output .traceback, .cell_output .stderr")
                  if "Error" in e.text or "Traceback" in e.text]
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        figures = browser.execute_script("return document.querySelectorAll('.cell_output img').length")
        if failures or errors or broken or (is_notebook(page) and figures == 0):
            problems.append(f"{page.stem}: failed loads {failures}, error outputs {errors}, "
                            f"broken images {broken}, {figures} figures")
        # screen readers read an output figure's alt text: a sentence (mystnb.image.alt), not its file name
        nameless = browser.execute_script(
            "return Array.from(document.querySelectorAll('.cell_output img'))"
            ".filter(i => !i.alt || /_images\\/|\\.(png|svg|jpe?g)$/.test(i.alt)).map(i => i.alt)")
        if nameless:
            problems.append(f"{page.stem}: {len(nameless)} output figures without alt text (give the cell "
                            f"mystnb: image: alt:), e.g. {nameless[0]!r}")
    assert not problems, "\n".join(problems)
    assert sorted(p.name for p in SCREENSHOTS.glob("*.png")) == sorted(f"{p.stem}.png" for p in pages)


@pytest.mark.slow
def test_gallery_page_search_narrows_the_cards(built_book, browser):
    from selenium.webdriver.common.by import By

    from reprolab import zoo

    failures = open_page(browser, (built_book / "book" / "gallery.html").as_uri())
    assert not failures, failures
    galleries = browser.find_elements(By.CSS_SELECTOR, ".rl-gallery")
    assert len(galleries) == len(zoo.galleries())
    unloaded = browser.execute_script(
        "return Array.from(document.querySelectorAll('.rl-gallery figure img'))"
        ".filter(i => !i.complete || i.naturalWidth === 0).length")
    assert unloaded == 0
    # each gallery's controls act on its own cards: search the first (lite0's, all 1,000 classes)
    first = galleries[0]
    cards = first.find_elements(By.CSS_SELECTOR, "figure")
    assert len(cards) >= 10

    def visible() -> int:
        return browser.execute_script("return Array.from(arguments[0].querySelectorAll('figure'))"
                                      ".filter(f => f.style.display !== 'none').length", first)

    assert visible() == len(cards)
    first.find_element(By.CSS_SELECTOR, ".rl-search").send_keys("toucan")
    assert visible() == 1  # class 96, the only toucan
    assert "1 of" in first.find_element(By.CSS_SELECTOR, ".rl-count").text
    if len(galleries) > 1:  # the other galleries keep every card
        other = galleries[1].find_elements(By.CSS_SELECTOR, "figure")
        assert all(f.value_of_css_property("display") != "none" for f in other[:20])
    from selenium.webdriver.support.ui import Select

    first.find_element(By.CSS_SELECTOR, ".rl-search").clear()
    Select(first.find_element(By.CSS_SELECTOR, ".rl-group")).select_by_value("cats")  # also re-reads the search
    assert 1 <= visible() < len(cards)  # the write-up's big cats, no turtle
    # a click shows the card full size
    first.find_element(By.CSS_SELECTOR, "figure:not([style*='none']) img").click()
    full = first.find_element(By.CSS_SELECTOR, ".rl-full")
    assert full.value_of_css_property("display") == "flex"
    assert browser.execute_script(
        "const i = arguments[0].querySelector('img'); return i.complete && i.naturalWidth", full) > 0


@pytest.mark.slow
def test_every_colab_button_opens_a_committed_notebook(built_book):
    import re

    # a Colab link opens <repository>/blob/main/<path>: Colab reads .ipynb files only
    targets = {page.stem: re.findall(r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(?:\./)?([^\"'?#]+)",
                                     page_html(built_book, page).read_text())
               for page in toc_pages()}
    missing = {stem: t for stem, ts in targets.items() for t in ts if not (t.endswith(".ipynb") and (REPO / t).is_file())}
    assert not missing, f"Colab buttons to files that are not committed notebooks: {missing}"
    assert any(targets.values()), "no Colab button on any page (launch_buttons in _config.yml)"
    assert not targets["results"] and not targets["gallery"]  # no_launch_pages in _config.yml
