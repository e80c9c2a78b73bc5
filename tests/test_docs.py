"""The docs site: built offline from the notebooks with `docs/build.py`, then read in Debian's Chromium.

Chromium is driven by Playwright (`executable_path=/usr/bin/chromium`, never `playwright install`) and kept
off the network: host names do not resolve, and every request that is not to file:// or 127.0.0.1 is aborted
and counted as a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_docs"
SCREENSHOT = ROOT / "build" / "docs" / "screenshots" / "index.png"
CHROMIUM = Path("/usr/bin/chromium")
OFFLINE_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
PACKAGE = "regression_lab"


# ================================================================================================ fixtures

@pytest.fixture(scope="module")
def site() -> Path:
    "The site, built from scratch by the README's build (without its virtualenv setup)."
    started = time.perf_counter()
    sidebar = (ROOT / "nbs" / "sidebar.yml").read_bytes()
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert (ROOT / "nbs" / "sidebar.yml").read_bytes() == sidebar, "the build rewrote nbs/sidebar.yml"
    assert done.returncode == 0, f"docs build failed:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    print(f"\ndocs built in {time.perf_counter() - started:.0f} s")
    assert (SITE / "index.html").is_file()
    return SITE


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: install it with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does this on CI)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_ARGS)
        yield browser
        browser.close()


class OfflinePage:
    "A browser tab that records console errors, failed requests and requests that tried to leave the machine."

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("requestfailed", lambda request: self.errors.append(f"failed to load {request.url}"))

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file://", "data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.errors.append(f"tried to reach the network: {url}")
            route.abort()

    def open(self, url: str):
        self.errors.clear()
        self.page.goto(url, wait_until="load")
        return self.page

    def close(self):
        self.context.close()


@pytest.fixture()
def tab(browser):
    tab = OfflinePage(browser)
    yield tab
    tab.close()


@dataclasses.dataclass
class Visit:
    "What one page of the site holds, as the browser sees it."
    errors: list[str]
    links: list[str]                  # absolute URLs of every <a href>
    sections: dict[str, dict]         # element id → {"heading": its title, "code": first line of each <pre> in it}
    nav: list[str]                    # the sidebar's links
    references: dict[str, dict]       # module → {public name → URL}, from "Reference: module" sections
    broken_images: list[str]
    text: str                         # what the page's article says, as rendered
    output_text: str                  # what its cells' outputs show
    doc_text: str                     # its prose and API docs: the article without cells
    source_links: list[list[str]]     # [documented name, URL] of each show_doc's `source` link
    parameter_tables: int             # tables headed Type / Default / Details
    nav_titles: list[str]             # the sidebar's entries, as shown
    nav_captions: list[str]           # the sidebar's group captions


PAGE_FACTS = r"""() => {
  const clean = (text) => (text || "").replace(/[#¶\s]+$/, "").trim();
  const sections = {};
  for (const element of document.querySelectorAll("[id]")) {
    const heading = element.matches("h1,h2,h3,h4,h5,h6") ? element : element.querySelector("h1,h2,h3,h4,h5,h6");
    const firstLines = [...element.querySelectorAll("pre")].map((pre) => pre.textContent.split("\n")[0]);
    sections[element.id] = {heading: clean(heading && heading.textContent), code: firstLines.join("\n")};
  }
  const references = {};
  for (const section of document.querySelectorAll("section")) {
    const heading = section.querySelector("h2");
    const title = clean(heading && heading.textContent);
    if (heading && heading.parentElement === section && title.startsWith("Reference: ")) {
      const rows = {};
      for (const row of section.querySelectorAll("tbody tr")) {
        const link = row.querySelector("a");
        if (link) rows[clean(link.textContent)] = link.href;
      }
      references[title.slice("Reference: ".length)] = rows;
    }
  }
  return {
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
    sections,
    nav: [...document.querySelectorAll("nav.bd-docs-nav a[href]")].map((a) => a.href),
    references,
    broken_images: [...document.querySelectorAll("img")].filter((img) => !img.complete || img.naturalWidth === 0)
                                                         .map((img) => img.src),
    text: (document.querySelector("article") || document.body).innerText,
    output_text: [...document.querySelectorAll("div.cell_output")].map((o) => o.innerText).join("\n"),
    doc_text: (() => {
      const article = (document.querySelector("article") || document.body).cloneNode(true);
      article.querySelectorAll("div.cell").forEach((cell) => cell.remove());
      return article.textContent;
    })(),
    source_links: [...document.querySelectorAll("p.source-link a")].map((a) => {
      const section = a.closest("section");
      const heading = section && section.querySelector("h1,h2,h3,h4,h5,h6");
      return [clean(heading && heading.textContent), a.href];
    }),
    parameter_tables: [...document.querySelectorAll("table")].filter((t) => /Type[\s\S]*Default[\s\S]*Details/
                                                                       .test(t.querySelector("tr").innerText))
                                                           .length,
    nav_titles: [...document.querySelectorAll("nav.bd-docs-nav a[href]")].map((a) => a.innerText.trim()),
    nav_captions: [...document.querySelectorAll("nav.bd-docs-nav p.caption")].map((p) => p.innerText.trim()),
  };
}"""


def page_key(url: str) -> str:
    "A page's URL without query and fragment."
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


@pytest.fixture(scope="module")
def crawl(site, browser) -> dict[str, Visit]:
    "Every page reachable from the landing page by links, keyed by URL."
    tab = OfflinePage(browser)
    start = (site / "index.html").as_uri()
    visits: dict[str, Visit] = {}
    queue = deque([start])
    try:
        while queue:
            url = queue.popleft()
            if url in visits:
                continue
            facts = tab.open(url).evaluate(PAGE_FACTS)
            visits[url] = Visit(errors=list(tab.errors), **facts)
            for link in facts["links"]:
                target = page_key(link)
                if (target.startswith(site.as_uri() + "/") and target.endswith(".html")
                        and target not in visits and local_path(target).is_file()):
                    queue.append(target)
    finally:
        tab.close()
    return visits


def module_names() -> list[str]:
    "Every public module of the package (none of whose path parts starts with an underscore)."
    package = importlib.import_module(PACKAGE)
    found = [PACKAGE]
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            found.append(module.name)
    return sorted(found)


def expected_pages() -> dict[str, Path]:
    "Each notebook nbdev turns into a page, and the page nbdev names for it (`00_core.ipynb` → `core.html`)."
    from nbdev.config import get_config, nbpath2html
    from nbdev.doclinks import nbglob
    nbs = get_config().nbs_path
    pages = {}
    for notebook in map(Path, nbglob(nbs)):
        relative = notebook.relative_to(nbs)
        pages[str(relative)] = SITE / relative.parent / nbpath2html(relative).name
    return pages


# ================================================================================================ tests

def test_every_page_loads_offline_without_console_errors(crawl):
    # when: every page reachable from the landing page is opened from file://
    # then: none logs a console error, fails to load a resource or tries to reach the network
    assert len(crawl) > 1
    problems = {url: visit.errors for url, visit in crawl.items() if visit.errors}
    assert not problems, problems
    broken = {url: visit.broken_images for url, visit in crawl.items() if visit.broken_images}
    assert not broken, broken


def test_every_internal_link_resolves(crawl, site):
    # given: every link of every page that stays on this machine
    checked, problems = 0, []
    for url, visit in crawl.items():
        for link in visit.links:
            if not link.startswith("file://"):
                continue
            checked += 1
            target, fragment = page_key(link), urlsplit(link).fragment
            # then: it points inside the site, at a file that exists, and at an element id that exists
            if not target.startswith(site.as_uri() + "/"):
                problems.append(f"{url}: {link} leaves the site")
            elif not local_path(target).exists():
                problems.append(f"{url}: {link} points at a missing file")
            elif fragment and target.endswith(".html") and unquote(fragment) not in crawl[target].sections:
                problems.append(f"{url}: {link} points at a missing anchor")
    assert checked > 50
    assert not problems, "\n".join(problems)


def test_every_notebook_is_a_page_in_the_navigation(crawl, site):
    # given: the notebooks nbdev turns into pages, tutorials in sub-folders included
    pages = expected_pages()
    assert "index.ipynb" in pages and any("/" in name for name in pages), pages
    index = crawl[(site / "index.html").as_uri()]
    navigation = {page_key(link) for link in index.nav}
    for notebook, page in pages.items():
        # then: each is a page that the crawl reached and that the landing page's sidebar lists
        assert page.is_file(), f"{notebook}: no page {page}"
        assert page.as_uri() in crawl, f"{notebook}: {page} is not reachable by links from the landing page"
        if notebook != "index.ipynb":
            assert page.as_uri() in navigation, f"{notebook}: {page.name} is missing from the sidebar"


def test_search_works_from_file_urls(tab, site):
    # when: searching the site for a class, from file://
    page = tab.open((site / "search.html").as_uri() + "?q=TrainingJob")
    page.wait_for_selector("#search-results ul.search li a", timeout=15_000)
    # then: the results link to the page that documents it, and nothing went wrong
    results = page.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")
    assert any(page_key(link).endswith("/jobs_training.html") for link in results), results
    assert not tab.errors, tab.errors


def test_every_public_name_is_documented_on_an_api_page(crawl):
    # given: every public name of the package: each module's __all__
    references = {module: (url, rows) for url, visit in crawl.items() for module, rows in visit.references.items()}
    missing = []
    for module_name in module_names():
        names = getattr(importlib.import_module(module_name), "__all__", [])
        if not names:
            continue
        # then: the module has an API page whose reference lists every name ...
        if module_name not in references:
            missing.append(f"{module_name}: no API page with a 'Reference: {module_name}' section")
            continue
        url, rows = references[module_name]
        for name in names:
            if name not in rows:
                missing.append(f"{module_name}.{name}: not in the reference on {url}")
                continue
            # ... linked to a section titled with the name that shows its signature (`class X(`, `def x(`, `X = `)
            target, fragment = page_key(rows[name]), urlsplit(rows[name]).fragment
            section = crawl[target].sections.get(fragment) if target in crawl else None
            if section is None or section["heading"] != name or name not in section["code"]:
                missing.append(f"{module_name}.{name}: {rows[name]} does not show its signature ({section})")
    assert not missing, "\n".join(missing)


def test_tutorials_show_their_saved_plots_and_tables(tab, site):
    # when: opening the first tutorial
    page = tab.open((site / "tutorials" / "first_tracked_model.html").as_uri())
    # then: its figures and tables are the outputs saved in the notebook
    assert page.locator(".cell_output img").count() >= 3
    assert page.locator(".cell_output table.dataframe").count() >= 3
    assert page.locator("h1").first.inner_text().strip() == "Your first tracked model"
    assert not tab.errors, tab.errors


def test_landing_page_screenshot(tab, site):
    # when: opening the landing page
    page = tab.open((site / "index.html").as_uri())
    # then: it shows the project, the sidebar has the tutorials and the API reference, and a screenshot is saved
    assert page.locator("h1").first.inner_text().strip() == "regression_lab"
    captions = page.locator("nav.bd-docs-nav p.caption").all_inner_texts()
    assert [caption.strip() for caption in captions][:2] == ["Tutorials", "API reference"], captions
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert SCREENSHOT.stat().st_size > 20_000
    print(f"\nscreenshot of the landing page: {SCREENSHOT}")
    assert not tab.errors, tab.errors


@pytest.mark.parametrize("page_name, pictures", [
    ("tutorials/widget_builder.html", ["builder-form.png", "builder-results.png", "builder-dark.png", "runs-browser.png"]),
    ("widgets_builder.html", ["builder-form.png", "builder-results.png", "builder-dark.png"]),
    ("widgets_runs_browser.html", ["runs-browser.png"]),
    ("widgets_study_browser.html", ["study-browser.png", "study-browser-dark.png"]),
])
def test_widget_pages_show_pictures_of_the_widgets(tab, site, page_name, pictures):
    # when: opening a page about the widgets
    page = tab.open((site / page_name).as_uri())
    # then: it shows the pictures the JupyterLab browser tests took, loaded
    shown = page.eval_on_selector_all("img", "is => is.filter(i => i.complete && i.naturalWidth > 400)"
                                      ".map(i => i.src.split('/').pop())")
    assert all(picture in shown for picture in pictures), shown
    assert not tab.errors, tab.errors


# ================================================================================================ nbdev's standard

def api_pages(crawl, site) -> dict[str, Visit]:
    "The crawled pages that document a module: they end with a 'Reference: module' section."
    return {url: visit for url, visit in crawl.items() if visit.references}


def test_every_documented_name_links_to_its_source_line(crawl, site):
    # given: the `source` link of every name a show_doc documents
    links = [(url, name, link) for url, visit in api_pages(crawl, site).items() for name, link in visit.source_links]
    assert len(links) > 100, len(links)
    problems = []
    for url, name, link in links:
        target, fragment = page_key(link), urlsplit(link).fragment
        # then: it points at the site's copy of the module, at a numbered line that exists ...
        if not target.startswith((site / "_source").as_uri()) or not re.fullmatch(r"L-\d+", fragment):
            problems.append(f"{url}: {name}: {link} is not a line of a module's source page")
            continue
        if target not in crawl or fragment not in crawl[target].sections:
            problems.append(f"{url}: {name}: {link} points at a missing page or line")
            continue
        # ... where the name is defined (its def, class or assignment, or the decorators just above it)
        module = ROOT / local_path(target).relative_to(site / "_source").with_suffix("")
        line = int(fragment[2:])
        nearby = "\n".join(module.read_text().splitlines()[line - 1: line + 4])
        if not re.search(rf"\b(def|class)\s+{re.escape(name.split('.')[-1])}\b|^{re.escape(name)}\s*[:=]",
                         nearby, re.M):
            problems.append(f"{url}: {name}: line {line} of {module.name} does not define it:\n{nearby}")
    assert not problems, "\n".join(problems[:20])


def test_api_pages_have_parameter_tables_from_docments(crawl, site, tab):
    # then: the API pages carry parameter tables (nbdev's Type / Default / Details) ...
    tables = sum(visit.parameter_tables for visit in api_pages(crawl, site).values())
    assert tables > 50, tables
    # ... and a pydantic component's table holds its fields with the comments written beside them
    page = tab.open((site / "models.html").as_uri())
    row = page.locator("section#ridgemodel table tr", has_text="alpha")
    assert "strength of the L2 penalty" in row.inner_text(), row.inner_text()
    assert not tab.errors, tab.errors


def test_signatures_are_clean_and_private_names_unlisted(crawl, site):
    # then: no API page shows a raw repr in a signature, a default or a reference table
    raw = re.compile(r"<class '|<function |object at 0x|at 0x[0-9a-f]{6,}|StringConstraints\(strip_whitespace"
                     r"|PydanticUndefined|typing\.")
    problems = [f"{url}: {match.group(0)!r} in …{visit.doc_text[max(0, match.start() - 80):match.end() + 40]!r}"
                for url, visit in api_pages(crawl, site).items() for match in raw.finditer(visit.doc_text)]
    assert not problems, "\n".join(problems[:20])
    # and `Kind`, a shorthand the chapters use, is not presented as a public name
    core = crawl[(site / "core.html").as_uri()]
    assert "Kind" not in core.references["regression_lab.core"], core.references


def test_grouped_api_reference_lists_every_public_name(crawl, site):
    # when: opening the API reference page
    visit = crawl[(site / "api.html").as_uri()]
    families = [visit.sections[key]["heading"] for key in visit.sections if visit.sections[key]["heading"]]
    for family in ("Core & services", "Data & components", "Jobs", "Configs", "Pipelines", "Widgets",
                   "Command line", "Serving"):
        # then: it has a section per family ...
        assert family in families, families
    # ... that together name every public name of every module, each linked
    linked = set(re.findall(r"^(\S+)\t", visit.text, re.M)) | set(visit.text.split())
    missing = [f"{module}.{name}" for module in module_names()
               for name in getattr(importlib.import_module(module), "__all__", []) if name not in linked]
    assert not missing, missing


def test_copy_buttons_and_page_links(tab, site):
    # when: opening an API page
    page = tab.open((site / "core.html").as_uri())
    # then: code blocks have copy buttons ...
    page.wait_for_selector("button.copybtn", state="attached", timeout=5_000)
    assert page.locator("button.copybtn").count() >= page.locator("div.cell_input").count() > 5
    # ... and under the title: the notebook to download, the module's source and the repository
    links = dict(page.eval_on_selector_all("p.page-links a", "as => as.map(a => [a.innerText, a.href])"))
    notebook = next(href for text, href in links.items() if "notebook" in text.lower())
    assert local_path(notebook).name == "00_core.ipynb" and local_path(notebook).is_file(), links
    assert local_path(notebook).read_bytes() == (ROOT / "nbs" / "00_core.ipynb").read_bytes()
    assert any("Repository" in text for text in links), links
    assert not tab.errors, tab.errors


def test_general_index_has_entries(tab, site):
    # when: opening the general index
    page = tab.open((site / "genindex.html").as_uri())
    entries = page.eval_on_selector_all("table.indextable a", "as => as.map(a => [a.innerText, a.href])")
    # then: it lists the documented names, each linking to the section that documents it
    assert len(entries) > 150, len(entries)
    training = [href for text, href in entries if text.startswith("TrainingJob (class")]
    assert training and page_key(training[0]).endswith("/jobs_training.html"), training
    assert not any(text.startswith("_") for text, _ in entries), "private names are indexed"
    assert not tab.errors, tab.errors


def test_search_results_have_snippets_and_no_repeats(tab, site):
    # when: searching for a class, from file://
    page = tab.open((site / "search.html").as_uri() + "?q=TrainingJob")
    page.wait_for_selector("#search-results ul.search li p.context", timeout=15_000)
    page.wait_for_function("document.querySelector('#search-summary, .search-summary, #search-results p')"
                           " && !document.querySelector('#search-results h2').innerText.includes('Searching')",
                           timeout=15_000)
    hits = page.eval_on_selector_all("#search-results ul.search > li", "lis => lis.map(li => [li.querySelector"
                                     "('a').href, (li.querySelector('p.context') || {}).innerText || ''])")
    # then: every hit shows a snippet of the text around the word, and no hit is listed twice
    assert len(hits) > 3, hits
    assert all("TrainingJob" in snippet for _, snippet in hits[:5]), hits[:5]
    links = [link for link, _ in hits]
    assert len(links) == len(set(links)), [link for link in links if links.count(link) > 1]
    assert not tab.errors, tab.errors


MACHINE_TEXT = re.compile(r"/tmp/|\.venv|site-packages|/work/|/root/|/home/|ipykernel_|"
                          r"File \"[^\"]+\", line \d+|Cell In\[\d+\]|ipython-input-")


def test_no_page_shows_machine_paths_or_kernel_tracebacks(crawl, site):
    # then: no output on any page shows where the site was built, or a kernel's traceback
    problems = [f"{url}: …{visit.output_text[max(0, match.start() - 80):match.end() + 40]!r}"
                for url, visit in crawl.items() for match in MACHINE_TEXT.finditer(visit.output_text)]
    assert not problems, "\n".join(problems[:20])


def test_pipeline_drawings_are_shown_at_their_natural_size(tab, site):
    # when: opening the drawing chapter
    page = tab.open((site / "pipelines_drawing.html").as_uri())
    sizes = page.eval_on_selector_all("div.cell_output img[src$='.svg']",
                                      "is => is.map(i => [i.width, i.naturalWidth])")
    # then: each drawing is as wide as it was drawn: its labels keep their 12-px font
    assert len(sizes) >= 5, sizes
    assert all(shown == natural for shown, natural in sizes), sizes
    assert any(natural > 800 for _, natural in sizes), sizes  # a wide one, wider than the text column
    assert not tab.errors, tab.errors


def test_sidebar_lists_each_page_once(crawl, site):
    # then: no entry of the sidebar repeats a title or a page
    index = crawl[(site / "index.html").as_uri()]
    titles = index.nav_titles
    assert len(titles) == len(set(titles)), sorted({t for t in titles if titles.count(t) > 1})
    assert not set(titles) & set(index.nav_captions), set(titles) & set(index.nav_captions)  # `Pipelines` once
    assert len(index.nav) == len({page_key(link) for link in index.nav})


def test_training_chapter_lists_all_eleven_steps(tab, site):
    # when: opening the training chapter
    page = tab.open((site / "jobs_training.html").as_uri())
    steps = page.locator("article ol").first.locator(":scope > li")
    # then: its list of steps shows 1 to 11, all visible
    assert steps.count() == 11
    assert all(steps.nth(i).is_visible() for i in range(11))
    assert page.locator("article ol").first.get_attribute("start") in (None, "1")
