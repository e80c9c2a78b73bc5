"""Build the docs site from the notebooks, offline: nbdev's own processing, then Sphinx instead of Quarto.

    .venv/bin/python docs/build.py          # writes _docs/; open _docs/index.html

1. `nbdev-proc-nbs` writes `_proc/`: hidden cells dropped, a `show_doc` after every exported definition, run and
   rendered, directives applied, backticked names linked. (Quarto cannot be installed here; a no-op `quarto` on
   PATH for that one command stops nbdev from trying.)
2. `convert()` turns what `_proc/` holds that only Quarto understands into plain MyST-NB notebooks under
   `build/docs/src/`: front matter becomes the page title and file name, `show_doc` output becomes page text,
   `echo`/`output`/`include`/`code-fold` become cell tags, links become relative, navigation comes from
   `_proc/sidebar.yml`, and every API page ends with a reference of its module's public names.
3. Sphinx with MyST-NB and sphinx-book-theme (`docs/conf.py`) renders that into `_docs/`, without executing any
   notebook: outputs are the ones saved in `nbs/`.

Every notebook nbdev sees in `nbs/` (sub-folders included) becomes a page; nothing here lists them by name.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import posixpath
import re
import reprlib
import shutil
import subprocess
import sys
import tempfile
import time
import typing as T
import warnings
from pathlib import Path

import nbformat
import yaml
from docutils.nodes import fully_normalize_name, make_id

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"              # conf.py and static files
PROC = ROOT / "_proc"             # nbdev's output
SRC = ROOT / "build" / "docs" / "src"  # what Sphinx reads (generated)
DOCTREES = ROOT / "build" / "docs" / "doctrees"
HTML = ROOT / "build" / "docs" / "html"  # Sphinx's output, moved to _docs/ (MyST-NB writes beside it)
SITE = ROOT / "_docs"             # the site
ASSETS = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


def log(message: str) -> None:
    print(f"[docs] {message}", flush=True)


# ============================================================================================ 1. nbdev's processing

def source_notebooks() -> list[Path]:
    "The notebooks nbdev turns into pages, relative to `nbs/`: the same glob `nbdev-proc-nbs` uses."
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    nbs = get_config().nbs_path
    return sorted(Path(path).relative_to(nbs) for path in nbglob(nbs))


def proc_nbs() -> None:
    "Run `nbdev-proc-nbs` into a fresh `_proc/`; retry a notebook nbdev could not process, leniently, loudly."
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    with tempfile.TemporaryDirectory() as shim:
        if shutil.which("quarto") is None:  # nbdev only checks that quarto exists before processing
            fake = Path(shim) / "quarto"
            fake.write_text("#!/bin/sh\nexit 0\n")
            fake.chmod(0o755)
            env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
        bin_dir = Path(sys.executable).parent
        tracked = ROOT / "nbs" / "sidebar.yml"  # nbdev-proc-nbs rewrites it (its own files listed too): put it back
        before = tracked.read_bytes() if tracked.exists() else None
        try:
            done = subprocess.run([str(bin_dir / "nbdev-proc-nbs"), "--force"], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
        finally:
            if before is not None and tracked.read_bytes() != before:
                tracked.write_bytes(before)
    missing = [nb for nb in source_notebooks() if not (PROC / nb).exists()]
    if done.returncode != 0 and not missing:
        sys.exit(f"nbdev-proc-nbs failed:\n{done.stdout}{done.stderr}")
    if missing:
        log("WARNING: nbdev-proc-nbs stopped on a cell of " + ", ".join(map(str, missing)) + "; processing them "
            "leniently (nbdev runs only import, export and show_doc cells, and a cell mixing imports with code that "
            "needs earlier cells fails there)")
        for nb in missing:
            proc_leniently(nb)


def proc_leniently(nb: Path) -> None:
    """Process one notebook as nbdev does, but get past two things nbdev's docs pass trips on, with a warning:
    a failing cell it runs only because it mixes imports with other code (nbdev's FAQ: imports in a cell of their
    own), and a `show_doc` whose string annotations name a lazily imported module (shown as written instead)."""
    import contextlib
    import fastcore.docments
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, _is_showdoc, exec_show_docs
    from nbdev.serve_drv import exec_nb

    @contextlib.contextmanager
    def annotations_as_written():
        evaluating = fastcore.docments.signature
        def signature(obj, *args, **kwargs):
            try:
                return evaluating(obj, *args, **kwargs)
            except NameError:
                return evaluating(obj, *args, **{**kwargs, "eval_str": False})
        fastcore.docments.signature = signature
        try:
            yield
        finally:
            fastcore.docments.signature = evaluating

    class lenient_exec_show_docs(exec_show_docs):
        def __call__(self, cell):
            try:
                super().__call__(cell)
            except Exception as error:
                reason = str(error).splitlines()[-1]
                if _is_showdoc(cell) and isinstance(error.__cause__, NameError):
                    with annotations_as_written():
                        self.k.cell(cell)
                    if self.k.exc:
                        raise
                    log(f"WARNING: {nb}: cell {cell.idx_}: {cell.source.splitlines()[-1]} shows its annotations "
                        f"as written ({reason})")
                elif _is_showdoc(cell) or cell.directives_.keys() & {"export", "exports", "exporti", "exec_doc"}:
                    raise
                else:
                    log(f"WARNING: {nb}: skipped cell {cell.idx_} in the docs pass ({reason}); "
                        "move its imports into a cell of their own")

    class LenientFilter(FilterDefaults):
        def base_procs(self):
            return [lenient_exec_show_docs if proc is exec_show_docs else proc for proc in super().base_procs()]

    source, here = get_config().nbs_path / nb, Path.cwd()
    (PROC / nb).parent.mkdir(parents=True, exist_ok=True)
    os.environ["IN_TEST"] = "1"
    os.chdir(source.parent)  # where the notebook's relative paths point, as under nbdev-test
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # nbdev's "imports and other code" nag: reported above
            exec_nb(source, PROC / nb, LenientFilter)
    finally:
        os.chdir(here)
        del os.environ["IN_TEST"]


# ============================================================================================ 2. the conversion

class Page(T.NamedTuple):
    source: Path      # the notebook, relative to nbs/ (and _proc/)
    docname: str      # the page, relative to the site, without .html: `core`, `tutorials/first_tracked_model`
    title: str
    module: str | None  # the module it exports (`#| default_exp`), when it is an API page
    nb: dict


DIRECTIVE = re.compile(r"^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def directives(source: str) -> tuple[dict[str, str], str]:
    "The leading `#|` directives of a cell (Quarto's `key: value` or nbdev's `key value`) and the rest of it."
    lines, found = source.splitlines(), {}
    while lines and (match := DIRECTIVE.match(lines[0])):
        found[match.group(1)] = match.group(2).strip("\"'")
        lines.pop(0)
    return found, "\n".join(lines)


def text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def front_matter(nb: dict) -> dict[str, T.Any]:
    "Remove nbdev's raw YAML front-matter cell and return what it holds (title, description, output-file)."
    for index, cell in enumerate(nb["cells"]):
        source = text(cell["source"]).strip()
        if cell["cell_type"] == "raw" and source.startswith("---"):
            del nb["cells"][index]
            return yaml.safe_load(source.strip("-\n")) or {}
    return {}


def default_exp(notebook: Path) -> str | None:
    "The module a source notebook exports to (`#| default_exp jobs.base` → `regression_lab.jobs.base`)."
    from nbdev.config import get_config
    cfg = get_config()
    for cell in json.loads((cfg.nbs_path / notebook).read_text())["cells"]:
        match = re.search(r"^#\|\s*default_exp\s+(\S+)", text(cell["source"]), re.M)
        if cell["cell_type"] == "code" and match:
            module = re.sub(r"\.__init__$", "", match.group(1))
            return f"{cfg.lib_path.name}.{module}"
    return None


def md_cell(source: str, **metadata) -> dict:
    return {"cell_type": "markdown", "metadata": metadata, "source": source}


CALLOUT = re.compile(r"^:::\s*\{\.callout-(note|tip|warning|important|caution)([^}]*)\}\s*$", re.M)


def quarto_markdown(source: str) -> str:
    "Markdown that only Quarto understands, made MyST: callouts, Pandoc link attributes, empty source links."
    def callout(match):
        kind, attrs = match.groups()
        title = re.search(r'title="([^"]*)"', attrs)
        return f":::{{admonition}} {title.group(1)}\n:class: {kind}" if title else f":::{{{kind}}}"
    source = CALLOUT.sub(callout, source)
    source = re.sub(r"\[source\]\((?!https?:)[^)]*\)(\{[^}]*\})?", "", source)  # no repository URL configured
    return re.sub(r"(\]\([^)\s]*\))\{[^}\n]*\}", r"\1", source)


def convert_cell(cell: dict, module: str | None) -> list[dict]:
    "One `_proc` cell as the cells MyST-NB renders the way Quarto would (`module`: the page's, for show_doc)."
    source = text(cell.get("source", ""))
    if cell["cell_type"] == "markdown":
        if source.strip() == "<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->":
            return []
        return [md_cell(quarto_markdown(source))]
    if cell["cell_type"] != "code":
        return [cell]
    found, source = directives(source)
    if found.get("include") == "false":
        return []
    if found.get("output") == "asis":  # e.g. show_doc: its markdown output is page text
        markdown = [text(out["data"]["text/markdown"]) for out in cell.get("outputs", [])
                    if "text/markdown" in out.get("data", {})]
        return [md_cell(quarto_markdown(show_doc_markdown(md, module))) for md in markdown]
    cell = copy.deepcopy(cell)
    cell["source"] = source
    cell["metadata"] = {key: value for key, value in cell.get("metadata", {}).items()
                        if key not in ("execution", "hidden", "language")}
    tags = set(cell["metadata"].get("tags", []))
    if found.get("echo") == "false":
        tags.add("remove-input")
    if found.get("output") == "false":
        tags.add("remove-output")
    if found.get("code-fold") in ("true", "show"):
        tags.add("hide-input")
    if tags:
        cell["metadata"]["tags"] = sorted(tags)
    if not source.strip() and not cell.get("outputs"):
        return []
    return [cell]


def show_doc_markdown(markdown: str, module: str | None) -> str:
    """nbdev's show_doc markdown, with a class shown as a class: its bases, its fields (pydantic) or constructor,
    and the public methods it defines (nbdev shows every class as `def Name(**data)`)."""
    markdown = markdown[len("---\n"):] if markdown.startswith("---\n") else markdown
    match = re.search(r"^#+ (\S+)", markdown, re.M)
    obj = resolve(match.group(1), module) if match and module else None
    if inspect.isclass(obj):
        markdown = re.sub(r"```python\n.*?\n```", lambda _: class_block(obj), markdown, count=1, flags=re.S)
        markdown += methods(obj)
    return markdown


def resolve(name: str, module: str):
    "The object `name` (e.g. `MlflowService.RunConfig`) means in `module`, or None."
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj


def short_type(annotation) -> str:
    "A type as a reader wants it: `list[Metric]`, not `typing.List[pydantic...SerializeAsAny[regression_lab...]]`."
    shown = annotation if isinstance(annotation, str) else (
        annotation.__name__ if isinstance(annotation, type) else str(annotation))
    shown = re.sub(r"\b(?:typing|typing_extensions|T|pdt|[a-z_]+(?:\.[a-z_]+)+)\.", "", shown)
    for _ in range(3):  # SerializeAsAny[Reader] reads as Reader; Annotated[x, meta] as x
        shown = re.sub(r"SerializeAsAny\[([^\[\]]*)\]", r"\1", shown)
        shown = re.sub(r"Annotated\[([^,\[\]]*(?:\[[^\[\]]*\])?), [^\[\]]*(?:\[[^\[\]]*\])?[^\[\]]*\]", r"\1", shown)
    return shown


def plain_repr(value, limit: int = 300) -> str:
    "A constant as written, without module prefixes, cut at `limit` characters."
    shown = re.sub(r"\b(?:typing|typing_extensions|[a-z_]+(?:\.[a-z_]+)+)\.", "", repr(value))
    return shown if len(shown) <= limit else shown[:limit] + " …"


def short_value(value) -> str:
    "A default as it would be written: a pydantic model with only the fields it changes."
    if hasattr(type(value), "model_fields") and hasattr(value, "model_dump"):
        changed = value.model_dump(exclude_defaults=True, exclude={"KIND"})
        return f"{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
    return reprlib.repr(value)


def signature_text(function) -> str:
    "`(a: int, b: str = 'x') -> float`, with string annotations unquoted and `self` left out."
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return "(...)"
    params = []
    for param in signature.parameters.values():
        if param.name in ("self", "cls"):
            continue
        shown = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "") + param.name
        if param.annotation is not param.empty:
            shown += f": {short_type(param.annotation)}"
        if param.default is not param.empty:  # PEP 8: spaces around `=` only after an annotation
            annotated = param.annotation is not param.empty
            shown += f" = {short_value(param.default)}" if annotated else f"={short_value(param.default)}"
        params.append(shown)
    returns = "" if signature.return_annotation is signature.empty else f" -> {short_type(signature.return_annotation)}"
    return f"({', '.join(params)}){returns}"


def class_block(cls: type) -> str:
    "A class as a reader needs its signature: bases, then its fields (pydantic) or its constructor."
    bases = ", ".join(short_type(base) for base in cls.__bases__ if base is not object)
    lines = [f"class {cls.__name__}({bases}):" if bases else f"class {cls.__name__}:"]
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        for name, field in fields.items():
            line = f"    {name}: {short_type(field.annotation)}"
            if field.default_factory is not None:
                line += f" = {getattr(field.default_factory, '__name__', 'factory')}()"
            elif not field.is_required():
                line += f" = {short_value(field.default)}"
            lines.append(line + (f"  # {field.description}" if field.description else ""))
    elif "__init__" in vars(cls):
        lines.append(f"    def __init__{signature_text(cls.__init__)}: ...")
    if len(lines) == 1:
        lines.append("    ...")
    return "```python\n" + "\n".join(lines) + "\n```"


def methods(cls: type) -> str:
    "The public methods a class defines itself (not those of a library base, e.g. pydantic's), one line each."
    package = cls.__module__.split(".")[0]
    foreign = {name for base in cls.__mro__[1:] if not base.__module__.startswith(package) for name in vars(base)}
    found = []
    for name, member in vars(cls).items():
        function = getattr(member, "__func__", member)
        if not name.startswith("_") and name not in foreign and inspect.isfunction(function):
            summary = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
            found.append(f"- `{name}{signature_text(function)}`" + (f": {summary}" if summary else ""))
    return "\n\n**Methods**\n\n" + "\n".join(found) if found else ""


HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def headings(markdown: str) -> list[tuple[int, str]]:
    "The (level, plain text) of the headings of `markdown`, outside code fences."
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2)).replace("`", "").replace("*", "")
            found.append((len(match.group(1)), plain))
    return found


def anchor(heading: str) -> str:
    "The HTML id Sphinx gives a section titled `heading`."
    return make_id(fully_normalize_name(heading))


def public_names(module) -> list[str]:
    "A module's `__all__`; for a package that only re-exports (empty `__all__`), what it re-exports."
    names = list(getattr(module, "__all__", []))
    if names:
        return names
    package = module.__name__.split(".")[0]
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and getattr(value, "__module__", "").startswith(package) and not inspect.ismodule(value)]


def reference(page: Page, pages: dict[str, Page], documented: dict[str, dict[str, str]]) -> str:
    """The closing section of an API page: every public name of its module, with a link to where it is
    documented; a name no show_doc documents gets its signature and docstring here."""
    from nbdev.doclinks import NbdevLookup
    from nbdev.showdoc import show_doc
    linkify = NbdevLookup().linkify  # backticked names become links, as nbdev does for page text
    module = importlib.import_module(page.module)
    package = module.__name__.split(".")[0]
    rows, details = [], []
    for name in public_names(module):
        value = getattr(module, name)
        home = getattr(value, "__module__", None) or ""
        ours = (inspect.isclass(value) or inspect.isfunction(value)) and home.startswith(package)
        kind = ("class" if inspect.isclass(value) else "function") if ours else "alias" if (
            inspect.isclass(value) or inspect.isfunction(value)) else "constant"
        home_page = next((p for p in pages.values() if p.module == home and name in documented[p.docname]), None)
        if name in documented[page.docname]:
            link = f"#{documented[page.docname][name]}"
        elif ours and home_page:
            link = f"/{home_page.docname}.html#{documented[home_page.docname][name]}"
        else:  # documented nowhere: here
            link = f"#{anchor(name)}"
            if ours:
                details.append(linkify(show_doc_markdown(show_doc(value, name=name)._repr_markdown_(), page.module)))
            elif kind == "alias":
                details.append(f"### {name}\n\n```python\n{name} = {home}.{value.__qualname__}\n```")
            else:
                details.append(f"### {name}\n\n```python\n{name} = {plain_repr(value)}\n```")
        if kind == "constant":  # a type alias reads as its type; a value as its repr
            summary = f"`{short_type(value) if hasattr(value, '__origin__') else plain_repr(value, 60)}`"
        elif kind == "alias":
            summary = f"`{home}.{value.__qualname__}`"
        else:
            summary = linkify((inspect.getdoc(value) or "").split("\n")[0])
        rows.append(f"| [`{name}`]({link}) | {kind} | {summary.replace('|', chr(92) + '|')} |")
    if not rows:
        return ""
    table = (f"## Reference: {module.__name__}\n\nThe public names of `{module.__name__}`, each linked to its "
             f"signature and docstring.\n\n| name | kind | what it is |\n|---|---|---|\n" + "\n".join(rows))
    return quarto_markdown("\n\n".join([table, *details]))


LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")


def relative_links(markdown: str, page: Page, pages: dict[str, Page], anchors: dict[str, set[str]],
                   site_url: str) -> str:
    """Links as a file:// site needs them: relative to the page, `.ipynb` sources as their pages, and anchors as
    Sphinx writes them (`#describe-validation-error`, not Quarto's `#describe_validation_error`)."""
    here = posixpath.dirname(page.docname)
    by_source = {p.source.as_posix(): p.docname for p in pages.values()}

    def fix(match):
        url = match.group(2)
        if site_url and url.startswith(site_url):
            url = "/" + url[len(site_url):].lstrip("/")
        if re.match(r"^[a-z][a-z0-9+.-]*:|^//", url, re.I):
            return match.group(0)  # external
        path, _, fragment = url.partition("#")
        if not path:
            target = page.docname
        else:
            target = posixpath.normpath(path[1:] if path.startswith("/") else posixpath.join(here, path))
            if target.endswith(".ipynb") and target in by_source:
                target = by_source[target]
            elif target.endswith(".html"):
                target = target[: -len(".html")]
            if target not in pages:
                return match.group(0)  # a file, not a page
        if fragment and target in anchors:
            candidates = [anchor(fragment), anchor(fragment.split(".")[0])]  # a method: its class
            fragment = next((c for c in candidates if c in anchors[target]), "")
        href = posixpath.relpath(target + ".html", here or ".") if path else ""
        return f"{match.group(1)}{href}{'#' + fragment if fragment else ''}{match.group(3)}"
    return LINK.sub(fix, markdown)


def sidebar_contents() -> list:
    "nbdev's sidebar (`_proc/sidebar.yml`): files and `section`s, in nbdev's order."
    sidebar = yaml.safe_load((PROC / "sidebar.yml").read_text())
    return sidebar["website"]["sidebar"]["contents"]


def navigation(pages: dict[str, Page]) -> tuple[str, dict[str, str], dict[str, str]]:
    """Sphinx toctrees from nbdev's sidebar: on the landing page a captioned group per top-level section
    (tutorials first, so a student meets them before the reference) and the loose top-level pages after them;
    a nested section gets its own page (its folder's index notebook, or a generated one) listing its pages.
    Returns the landing page's toctrees, generated pages and toctrees to append to section index pages."""
    by_source = {p.source.as_posix(): p.docname for p in pages.values()}
    generated: dict[str, str] = {}
    appended: dict[str, str] = {}
    listed: set[str] = {"index"}

    def entry(docname: str) -> str:
        listed.add(docname)
        return "/" + docname

    def entries(contents, where: str) -> list[str]:
        docs = []
        for item in contents:
            if isinstance(item, str):
                if item in by_source and by_source[item] not in listed:
                    docs.append(entry(by_source[item]))
            elif isinstance(item, dict) and "section" in item:
                docname = by_source.get(item.get("href", ""))
                if docname:
                    listed.add(docname)
                inner = entries(item.get("contents", []), f"{where}/{item['section']}")
                if docname:
                    appended[docname] = toctree(inner)
                else:  # a nested section without an index notebook: a page that lists it
                    docname = f"{where}/{item['section']}".strip("/") + "/index"
                    generated[docname] = f"# {caption(item['section'])}\n\n" + toctree(inner)
                docs.append(entry(docname))
        return docs

    groups, loose = [], []
    for item in sidebar_contents():
        if isinstance(item, dict) and "section" in item:
            first = [entry(by_source[item["href"]])] if item.get("href") in by_source else []
            groups.append((caption(item["section"]), first + entries(item.get("contents", []), item["section"])))
        else:
            loose += entries([item], "")
    if loose:
        api = all(pages[doc.lstrip("/")].module for doc in loose)
        groups.append(("API reference" if api else "Chapters", loose))
    unlisted = [entry(name) for name in pages if name not in listed]
    if unlisted:  # a page that a hand-written sidebar forgot still gets a place
        groups.append(("More", unlisted))
    nav = "\n\n".join(toctree(docs, caption=title) for title, docs in groups if docs)
    return nav, generated, appended


def caption(section: str) -> str:
    return re.sub(r"^\d+_", "", section).replace("_", " ").capitalize()


def toctree(docs: list[str], caption: str | None = None) -> str:
    options = ":hidden:\n" if caption else ":maxdepth: 1\n"
    options += f":caption: {caption}\n" if caption else ""
    return "```{toctree}\n" + options + "\n" + "\n".join(docs) + "\n```"


def convert() -> list[Page]:
    "Write `build/docs/src/` from `_proc/`: one MyST-NB notebook per page, plus images and generated pages."
    from nbdev.config import get_config
    cfg = get_config()
    site_url = f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '/')}" if cfg.get("doc_host") else ""
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)

    pages: dict[str, Page] = {}
    for source in source_notebooks():
        nb = json.loads((PROC / source).read_text())
        meta = front_matter(nb)
        output = meta.get("output-file") or source.with_suffix(".html").name
        docname = (source.parent / output).with_suffix("").as_posix()
        title = meta.get("title") or source.stem
        module = default_exp(source)
        cells = [md_cell(f"# {title}" + (f"\n\n{{.lead}}\n{meta['description']}" if meta.get("description") else ""))]
        for cell in nb["cells"]:
            cells += convert_cell(cell, module)
        nb["cells"] = cells
        pages[docname] = Page(source, docname, title, module, nb)

    def markdown_of(page: Page) -> str:
        return "\n\n".join(text(c["source"]) for c in page.nb["cells"] if c["cell_type"] == "markdown")

    documented = {name: {heading: anchor(heading) for level, heading in headings(markdown_of(page)) if level >= 2}
                  for name, page in pages.items()}
    for page in pages.values():
        if page.module and (section := reference(page, pages, documented)):
            page.nb["cells"].append(md_cell(section))
    anchors = {name: {anchor(h) for _, h in headings(markdown_of(page))} for name, page in pages.items()}

    nav, generated, appended = navigation(pages)
    for page in pages.values():
        nb = page.nb
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = relative_links(text(cell["source"]), page, pages, anchors, site_url)
            for out in cell.get("outputs", []):
                if "text/markdown" in out.get("data", {}):
                    out["data"]["text/markdown"] = relative_links(text(out["data"]["text/markdown"]), page, pages,
                                                                  anchors, site_url)
        if page.docname == "index":
            nb["cells"].append(md_cell(nav))
        if page.docname in appended:
            nb["cells"].append(md_cell(appended[page.docname]))
        write_notebook(nb, SRC / f"{page.docname}.ipynb")
    for docname, markdown in generated.items():
        (SRC / f"{docname}.md").parent.mkdir(parents=True, exist_ok=True)
        (SRC / f"{docname}.md").write_text(markdown + "\n")
    for asset in PROC.rglob("*"):
        if asset.suffix.lower() in ASSETS and not any(part.startswith(".") for part in asset.parts):
            (SRC / asset.relative_to(PROC)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(asset, SRC / asset.relative_to(PROC))
    if "index" not in pages:
        sys.exit("no nbs/index.ipynb: the site needs a landing page")
    return list(pages.values())


def write_notebook(nb: dict, path: Path) -> None:
    "Write a valid nbformat 4.5 notebook (nbdev leaves cell ids out and `execution.total` as a float)."
    nb = dict(nb, nbformat=4, nbformat_minor=5)
    nb["metadata"] = {key: value for key, value in nb.get("metadata", {}).items()
                      if key in ("kernelspec", "language_info")}  # no widget state: its JavaScript is on a CDN
    for index, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{index}"
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", []); cell.setdefault("execution_count", None)
    notebook = nbformat.from_dict(nb)
    nbformat.validate(notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


# ============================================================================================ 3. Sphinx

def sphinx() -> None:
    "Render `build/docs/src/` with `docs/conf.py` into a fresh `_docs/`; notebooks are not executed."
    for folder in (HTML, SITE):
        if folder.exists():
            shutil.rmtree(folder)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-E", "-q", "-c", str(DOCS),
                           "-d", str(DOCTREES), str(SRC), str(HTML)], cwd=ROOT)
    if done.returncode != 0:
        sys.exit("sphinx-build failed")
    (HTML / ".nojekyll").touch()
    shutil.move(HTML, SITE)


def main() -> None:
    os.chdir(ROOT)
    started = time.perf_counter()
    log("nbdev-proc-nbs → _proc/")
    proc_nbs()
    log("converting _proc/ → build/docs/src/")
    pages = convert()
    log(f"sphinx → _docs/ ({len(pages)} pages)")
    sphinx()
    log(f"done in {time.perf_counter() - started:.0f} s: open {SITE / 'index.html'}")


if __name__ == "__main__":
    main()
