"""Sphinx configuration of the docs site; `docs/build.py` runs Sphinx with it on the pages it converted from `_proc/`.

Offline by construction: no notebook is executed (outputs come from the saved notebooks), no script or font is
loaded from a CDN, and search works from file://.
"""

import configparser
import importlib.util
from pathlib import Path

from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
settings = configparser.ConfigParser(delimiters=["="])
settings.read(ROOT / "settings.ini", encoding="utf-8")

project = get_config(ROOT).get("title") or settings["DEFAULT"]["lib_path"]  # pyproject.toml's [tool.nbdev]
author = copyright = settings["DEFAULT"].get("author", project)
html_title = project
extensions = ["myst_nb"]
if importlib.util.find_spec("sphinx_copybutton"):  # a dev requirement: copy buttons on code, as on nbdev's sites
    extensions.append("sphinx_copybutton")
root_doc = "index"

# MyST-NB: render the saved outputs, never run a notebook
nb_execution_mode = "off"
nb_merge_streams = True                 # a job's log lines read as one block
nb_ipywidgets_js = {}                   # widget JavaScript comes from a CDN: none offline
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]  # a widget: its text
myst_enable_extensions = ["colon_fence", "attrs_block", "dollarmath"]
myst_all_links_external = True          # build.py already made every internal link a relative .html link
suppress_warnings = ["myst.header"]     # show_doc headings may follow a page title directly

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_js_files = ["search_snippets.js"]  # search snippets from file:// (from _static/page_texts.js, by build.py)
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = True      # snippets: search_snippets.js answers the fetch() of a page from page_texts.js
html_context = {"default_mode": "light"}  # an unset mode logs a console error on a first visit
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}

# copy buttons: leave out prompts and outputs
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_exclude = ".linenos, .gp, .go"

# the repository, where one is configured (`git_url` in pyproject.toml's [tool.nbdev]); build.py links the site's
# own copy of the files otherwise
git_url = get_config(ROOT).get("git_url") or ""
if git_url.startswith("http"):
    html_theme_options.update(repository_url=git_url, use_repository_button=True)
