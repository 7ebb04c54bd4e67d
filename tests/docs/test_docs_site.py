"""The documentation site: its API listing (fast, no Sphinx needed) and the built
site (``docs`` marker; ``bash run.sh docs`` builds it, then runs these).

The site checks open the built pages in headless Chromium over the DevTools
protocol (:mod:`pointsam.viz.chromium`), record every request the pages make
and assert that none leaves ``file://``, and that MathJax, served from the
site itself, typesets the formulas. Without a built site (``docs/_build/html``)
or without Chromium they skip, saying why; ``run.sh docs`` sets
``POINTSAM_DOCS_BUILT=1``, under which they fail instead.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pkgutil
import re
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest

import pointsam

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
REQUIRED = os.environ.get("POINTSAM_DOCS_BUILT") == "1"


def _listing():
    spec = importlib.util.spec_from_file_location("pointsam_docs_api_listing",
                                                  DOCS / "api_listing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ the listing
def test_every_subpackage_has_an_api_page():
    listing = _listing()
    subpackages = {m.name for m in pkgutil.iter_modules(pointsam.__path__) if m.ispkg}
    assert set(listing.PACKAGES) | set(listing.NOT_DOCUMENTED) == subpackages, (
        "a subpackage of pointsam is neither in docs/api_listing.py PACKAGES nor "
        "in NOT_DOCUMENTED")
    index = (DOCS / "api" / "index.md").read_text()
    missing = [p for p in listing.PACKAGES if f"generated/pointsam.{p}\n" not in index]
    assert not missing, f"docs/api/index.md does not list the pages of {missing}"


@pytest.mark.parametrize("package", _listing().PACKAGES)
def test_api_page_lists_every_public_name(package):
    listing = _listing()
    mod = importlib.import_module(f"pointsam.{package}")
    public = list(mod.__all__)
    twice = [n for n, c in Counter(public).items() if c > 1]
    assert not twice, f"pointsam.{package}.__all__ names {twice} twice"
    by_kind = listing.sections(package)
    assert sorted(n for names in by_kind.values() for n in names) == sorted(public)
    page = listing.page(package)
    for kind, names in by_kind.items():
        for name in names:
            entry = f".. py:data:: {name}\n" if kind == "data" else f"\n   {name}\n"
            assert entry in page, f"{package}.{name} ({kind}) is not on its page"


@pytest.mark.parametrize("package", _listing().PACKAGES)
def test_public_names_have_a_summary_line(package):
    # autosummary's table shows the first line of each docstring: an empty one
    # leaves a blank row, and the name's own page says nothing
    listing = _listing()
    mod = importlib.import_module(f"pointsam.{package}")
    bare = [name for kind, names in listing.sections(package).items()
            if kind != "data" for name in names
            if not listing.summary_line(getattr(mod, name))]
    assert not bare, f"pointsam.{package}: no docstring for {bare}"


def test_environment_yml_lists_the_docs_extras():
    # tests/test_packaging.py checks the dependencies and the dev extras
    import tomllib
    import yaml

    docs = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["docs"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(set(docs) - set(pip)) == [], "environment.yml lacks docs extras"


def test_summary_line_reads_own_docstring():
    listing = _listing()

    class Documented:
        """One line.

        More."""

    assert listing.summary_line(Documented) == "One line."
    assert listing.kind_of(ValueError) == "exception"
    assert listing.kind_of(inspect) == "module"
    assert listing.kind_of(3) == "data"


# ------------------------------------------------------------------ the site
def _need_site() -> None:
    if not (SITE / "index.html").is_file():
        msg = f"the docs site is not built ({SITE} has no index.html): bash run.sh docs"
        if REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)


_REMOTE = re.compile(r"^(https?:)?//", re.I)
# what a page loads by itself: scripts, stylesheets, icons, images, frames, media
_LOADS = re.compile(r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?"
                    r"\b(src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])([^\"')]+)", re.I)


@pytest.mark.docs
def test_no_page_or_stylesheet_names_a_remote_resource():
    _need_site()
    found = []
    for page in SITE.rglob("*.html"):
        for tag, attr, url in _LOADS.findall(page.read_text(errors="replace")):
            if _REMOTE.match(url):
                found.append(f"{page.relative_to(SITE)}: <{tag} {attr}={url}>")
    for css in SITE.rglob("*.css"):
        for url in _CSS_URL.findall(css.read_text(errors="replace")):
            if _REMOTE.match(url.strip()):
                found.append(f"{css.relative_to(SITE)}: {url}")
    assert not found, "the site loads remote resources:\n" + "\n".join(found[:20])


def _browser_class():
    from pointsam.viz.chromium import Browser

    class RecordingBrowser(Browser):
        """A :class:`Browser` that records every request of the page."""

        def __init__(self, *args, **kwargs) -> None:
            self.requests: dict[str, str] = {}  # request id -> URL
            self.failed: list[str] = []
            super().__init__(*args, **kwargs)
            self.call("Network.enable", session=True)

        def _event(self, msg):
            super()._event(msg)
            method, p = msg.get("method"), msg.get("params", {})
            if method == "Network.requestWillBeSent":
                self.requests[p["requestId"]] = p["request"]["url"]
            elif method == "Network.loadingFailed":
                url = self.requests.get(p.get("requestId"), "?")
                self.failed.append(f"{url}: {p.get('errorText')} "
                                   f"{p.get('blockedReason') or ''}".strip())

    return RecordingBrowser


@pytest.fixture(scope="module")
def browser():
    _need_site()
    from pointsam.viz.chromium import find_chromium

    if find_chromium() is None:
        msg = "no Chromium (apt-get install chromium, or set POINTSAM_CHROMIUM)"
        if REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)
    with _browser_class()(1200, 900) as b:
        yield b


_LOCAL_SCHEMES = {"file", "data", "blob", "about"}
# MathJax typesets asynchronously: done when its promise resolves and every
# formula of the page holds a rendered <mjx-container>
_MATH_DONE = ("window.MathJax && MathJax.startup && MathJax.startup.promise"
              " ? MathJax.startup.promise.then(() => true) : false")
_MATH_COUNT = ("[document.querySelectorAll('.math').length,"
               " [...document.querySelectorAll('.math')]"
               ".filter(e => e.querySelector('mjx-container')).length,"
               " document.querySelectorAll('mjx-merror').length]")


def _visit(b, rel: str) -> dict[str, str]:
    b.requests.clear()
    b.failed.clear()
    b.errors.clear()
    b.open(SITE / rel)
    b.eval("document.fonts.ready.then(() => true)")
    time.sleep(0.3)  # late requests (fonts, images) after the load event
    return dict(b.requests)


# guides/lidar.html: a guide with the repository's pictures (../../viz/gallery)
PAGES = ["index.html", "api/generated/pointsam.nn.LocalGlobalAttention.html",
         "auto_examples/plot_chair_attention.html", "guides/lidar.html"]


@pytest.mark.docs
@pytest.mark.parametrize("rel", PAGES)
def test_page_loads_only_files_of_the_site(browser, rel):
    assert (SITE / rel).is_file(), f"{rel} was not built"
    requests = _visit(browser, rel)
    # the recording works: the page itself and its theme script were requested
    assert any(u.endswith(rel) for u in requests.values()), requests
    assert any("pydata-sphinx-theme.js" in u for u in requests.values()), requests
    outside = sorted({u for u in requests.values()
                      if urlparse(u).scheme not in _LOCAL_SCHEMES})
    assert not outside, f"{rel} requested, outside the site: {outside}"
    site = SITE.resolve().as_uri()
    foreign = sorted({u for u in requests.values()
                      if urlparse(u).scheme == "file" and not u.startswith(site)})
    assert not foreign, f"{rel} loaded files from outside the site: {foreign}"
    assert not browser.failed, f"{rel}: failed loads {browser.failed}"
    assert not browser.errors, f"{rel}: errors {browser.errors}"


@pytest.mark.docs
def test_formulas_render_with_the_bundled_mathjax(browser):
    rel = "api/generated/pointsam.nn.LocalGlobalAttention.html"
    requests = _visit(browser, rel)
    mathjax = [u for u in requests.values() if "/_static/mathjax/" in u]
    assert any(u.split("?")[0].endswith("/_static/mathjax/tex-chtml.js")
               for u in mathjax), f"MathJax was not loaded from the site: {requests}"
    assert browser.eval(_MATH_DONE) is True, "MathJax did not start"
    total, rendered, errors = browser.eval(_MATH_COUNT)
    assert total >= 5, f"the page has {total} formulas; the docstring has more"
    assert rendered == total, f"{rendered} of {total} formulas typeset"
    assert errors == 0, f"{errors} formulas failed to typeset (mjx-merror)"
    # the TeX fonts MathJax typesets with come from the site too
    fonts = [u for u in browser.requests.values() if u.split("?")[0].endswith(".woff")]
    assert fonts and all("/_static/mathjax/" in u for u in fonts), fonts
    assert not browser.failed and not browser.errors, (browser.failed, browser.errors)
