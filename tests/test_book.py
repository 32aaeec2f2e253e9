"""The book (``yolov9lite book``, ``make book``): built from small executed notebooks made here with
nbformat (nothing is executed), Sphinx warnings as errors, then read in a real browser.

What a reader relies on: every notebook has a page; every ledger claim has one badge on the
Results page, linking to its anchored row, and the notebook pages' verdicts link there too; the
figures stored in an executed notebook reach the HTML; no page shows a local absolute path; math
renders without a network; the verdict column stays on screen at 1280 px and on a phone.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("myst_nb", reason="the book extra is not installed: pip install -e '.[book]'")

from book_sample import CLAIMS, build_sample

ALL_CLAIMS = [*CLAIMS, {**CLAIMS[1], "id": "05.gamma_only_in_the_ledger"}]  # the sample's ledgers

from yolov9lite.cli import book

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "runs" / "book-screenshots"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    rc, html = build_sample(root)
    assert rc == 0, "sphinx-build -W failed (see the warnings above)"
    return root, html


def badges(page: str) -> list[tuple[str, str, str]]:
    """(classes, href, text) of every verdict badge in an HTML page."""
    return re.findall(r'<a class="([^"]*verdict-badge[^"]*)" href="([^"]*)"[^>]*>([^<]*)</a>', page)


def test_every_notebook_has_a_page_in_its_part(built):
    _, html = built
    for stem in ("01_alpha", "04_beta"):
        assert (html / book.NB_SUBDIR / f"{stem}.html").is_file(), stem
    index = (html / "index.html").read_text()
    for caption in ("The information bottleneck", "PGI and ablations", "Results"):
        assert caption in index
    assert (html / "results.html").is_file() and (html / "reproduce.html").is_file()


def test_one_badge_per_claim_on_the_results_page_linking_to_its_row(built):
    _, html = built
    page = (html / "results.html").read_text()
    found = badges(page)
    assert len(found) == len(ALL_CLAIMS)
    for claim, (classes, href, text) in zip(ALL_CLAIMS, found):
        assert text == claim["verdict"]  # verdict first: the table's order is the ledger's
        assert href == "#" + book.claim_anchor(claim["id"])
        assert f'id="{book.claim_anchor(claim["id"])}"' in page
        assert "verdict-" + claim["verdict"].replace(" ", "-") in classes
    # the verdict is the first column of the ledger table
    first_header = re.search(r'<table class="[^"]*ledger-table.*?<th[^>]*>\s*<p>([^<]*)', page,
                             re.DOTALL)
    assert first_header and first_header.group(1) == "verdict"


def test_notebook_verdicts_are_badges_linking_to_the_results_page(built):
    _, html = built
    page = (html / book.NB_SUBDIR / "01_alpha.html").read_text()
    links = {href for _, href, _ in badges(page)}
    # the ledger table (one per claim) and three sentences, found by the paper's words (two
    # claims quote the same words: their metric tells them apart)
    assert links == {f"../results.html#{book.claim_anchor(c['id'])}" for c in CLAIMS}
    hrefs = [href for _, href, _ in badges(page)]
    assert len(hrefs) == len(CLAIMS) + 3
    assert hrefs[-2:] == [f"../results.html#{book.claim_anchor(c['id'])}" for c in CLAIMS[2:]]
    assert "<strong>control failed</strong>" not in page and "<strong>supports</strong>" not in page


def test_images_of_the_executed_notebook_reach_the_html(built):
    _, html = built
    page = (html / book.NB_SUBDIR / "01_alpha.html").read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+\.png)"', page)
    assert srcs, "the stored image/png output is missing from the page"
    assert all((html / book.NB_SUBDIR / s).resolve().is_file() for s in srcs)
    assert "tag_full-width" in page  # wide figures may use the margin


def test_pages_state_how_they_ran_and_hide_papermill(built):
    _, html = built
    page = (html / book.NB_SUBDIR / "01_alpha.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    assert "How this page ran" in text and "width = 12" in text
    assert "2026-01-02 03:04 UTC" in text and "Test CPU" in text
    assert "# Parameters" not in page  # papermill's injected cell is removed
    assert "yolov9lite" in re.search(r'extra_footer.*?</div>', page, re.DOTALL).group(0)


def test_no_absolute_local_path_and_no_network_in_any_page(built):
    root, html = built
    local = [str(root), str(ROOT), str(Path.home()), os.path.realpath(str(root))]
    for path in html.rglob("*"):
        if path.suffix not in (".html", ".js", ".txt", ".inv") or "mathjax" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for prefix in local:
            assert prefix not in text, f"{path.name} shows the local path {prefix}"
        if path.suffix == ".html":
            assert not re.search(r'(src|href)="https?://[^"]*\.(js|css)', text), path.name
    page = (html / book.NB_SUBDIR / "01_alpha.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page  # math from the book itself, not a CDN
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


# --- a real browser -------------------------------------------------------------------------------

def chromium() -> str:
    """Debian's Chromium (``.ci/run`` installs it); locally the test may skip without it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        why = ("Chromium and playwright are needed (apt-get install chromium; "
               "pip install -e '.[book]')")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    return exe


def test_results_page_in_a_real_browser(built):
    from playwright.sync_api import sync_playwright

    exe = chromium()
    _, html = built
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            for name, (width, height) in VIEWPORTS.items():
                page = browser.new_page(viewport={"width": width, "height": height})
                page.route("http*://**", lambda route: route.abort())  # offline, as a reader may be
                page.goto((html / "results.html").as_uri())
                found = page.locator("a.verdict-badge")
                assert found.count() == len(ALL_CLAIMS)
                for i in range(found.count()):
                    badge = found.nth(i)
                    badge.scroll_into_view_if_needed()
                    assert badge.is_visible(), f"{name}: badge {i} hidden"
                    box = badge.bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (
                        f"{name}: badge {i} ({box}) outside the {width}-px viewport")
                header = page.locator("table.ledger-table th").first
                hbox = header.bounding_box()
                assert hbox["x"] >= 0 and hbox["x"] + hbox["width"] <= width
                # the page itself never scrolls sideways; a wide table scrolls in its own box
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(SCREENSHOTS / f"results-{name}.png"), full_page=True)

                nb_page = browser.new_page(viewport={"width": width, "height": height})
                nb_page.route("http*://**", lambda route: route.abort())
                nb_page.goto((html / book.NB_SUBDIR / "01_alpha.html").as_uri())
                nb_page.wait_for_selector("mjx-container", timeout=20_000)  # MathJax, offline
                assert nb_page.locator("div.cell_output img").first.is_visible()
                nb_page.screenshot(path=str(SCREENSHOTS / f"notebook-{name}.png"), full_page=True)
                nb_page.locator("a.verdict-badge").first.click()
                nb_page.wait_for_url("**/results.html#claim-*")
                row = nb_page.locator("tr:target")
                assert row.count() == 1 and row.is_visible()
        finally:
            browser.close()
