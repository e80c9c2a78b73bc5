"""Build the docs site from the notebooks, offline: nbdev's own processing, then Sphinx instead of Quarto.

    .venv/bin/python docs/build.py          # writes _docs/; open _docs/index.html

1. `nbdev-proc-nbs` writes `_proc/`: hidden cells dropped, a `show_doc` after every exported definition, run and
   rendered, directives applied, backticked names linked. (Quarto cannot be installed here; a no-op `quarto` on
   PATH for that one command stops nbdev from trying.)
2. `convert()` turns what `_proc/` holds that only Quarto understands into plain MyST-NB notebooks under
   `build/docs/src/`: front matter becomes the page title and file name, `show_doc` output becomes page text,
   `echo`/`output`/`include`/`code-fold` become cell tags, links become relative, navigation comes from
   `_proc/sidebar.yml`, and every API page ends with a reference of its module's public names.
   Each documented name gets a clean signature, a parameter table from its docments, a `source` link to its line
   and a general-index entry; an "API reference" page groups every public name by family, as the sidebar does.
   Outputs that nbdev's pass broke get their saved outputs back; as a last resort, outputs lose the build
   machine's paths (temporary folders, the checkout, the virtualenv) and tracebacks their frames.
3. Sphinx with MyST-NB and sphinx-book-theme (`docs/conf.py`) renders that into `_docs/`, without executing any
   notebook: outputs are the ones saved in `nbs/`. Then the site gets its own copy of the repository's files
   (`_source/`: modules with numbered lines, `_notebooks/`: the notebooks to download) and the text of its pages
   for search snippets (`_static/page_texts.js`).

Every notebook nbdev sees in `nbs/` (sub-folders included) becomes a page; nothing here lists them by name.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
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
        reason = (done.stderr.strip().splitlines() or ["?"])[-1]
        log(f"WARNING: nbdev-proc-nbs failed ({reason[:300]}); it stopped on a cell of " + ", ".join(map(str, missing)) + "; processing them "
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
    source = re.sub(r"\[source\]\((?!https?:)[^)#]*?/blob/[^/)]+/([^)#]+)#L(\d+)\)(\{[^}]*\})?",
                    r"[source](/_source/\1.html#L-\2)", source)  # the site's copy of the module, that line
    source = re.sub(r"\[source\]\((?!https?:|/_source/)[^)]*\)(\{[^}]*\})?", "", source)
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
    scrub_outputs(cell)
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
    """nbdev's show_doc markdown, cleaned and completed: the signature without raw reprs (a class shown as a class:
    its bases and fields, not `def Name(**data)`), a parameter table from docments (pydantic fields: the comment
    after each), the public methods a class defines, and an entry in the general index."""
    markdown = markdown[len("---\n"):] if markdown.startswith("---\n") else markdown
    source = re.search(r"^\[source\]\([^)]*\)(\{[^}\n]*\})?\n*", markdown, re.M)
    if source:  # after the heading, in a paragraph of its own that the style sheet floats right
        markdown = markdown[: source.start()] + markdown[source.end():]
        markdown = re.sub(r"^(#+ \S+.*)$", lambda m: f"{m.group(1)}\n\n{{.source-link}}\n"
                          f"{source.group(0).split('{')[0].strip()}", markdown, count=1, flags=re.M)
    match = re.search(r"^#+ (\S+)", markdown, re.M)
    obj = resolve(match.group(1), module) if match and module else None
    if obj is not None and (where := source_line(obj)):  # nbdev's line, taken again from the file the site copies
        markdown = re.sub(r"\(/_source/[^)#]*#L-\d+\)|\(/blob/[^)]*\)", f"(/_source/{where[0]}.html#L-{where[1]})",
                          markdown, count=1)
    if match and "_" in match.group(1):  # `Job.__exit__` as written, not `Job.` and a bold `exit`
        escaped = match.group(1).replace("\\_", "_").replace("_", "\\_")
        markdown = markdown[: match.start(1)] + escaped + markdown[match.end(1):]
    name = match.group(1) if match else ""
    if inspect.isclass(obj):
        markdown = re.sub(r"```python\n.*?\n```", lambda _: class_block(obj), markdown, count=1, flags=re.S)
        markdown = insert_after_summary(markdown, table(class_rows(obj)))
        markdown += methods(obj)
    elif callable(obj) and (inspect.isfunction(obj) or inspect.ismethod(obj)):
        shown = name.split(".")[-1]
        markdown = re.sub(r"```python\n.*?\n```", lambda _: function_block(shown, obj), markdown, count=1,
                          flags=re.S)
        markdown = insert_after_summary(markdown, table(parameters(obj)))
    if match and module and not re.search(r"(^|\.)_", name):  # private helpers stay out of the index
        kind = "class" if inspect.isclass(obj) else ("method" if "." in name else "function") if callable(obj) else "name"
        where = f"{kind} in {getattr(obj, '__module__', None) or module}"
        entry = f"\n\n```{{index}} single: {name} ({where})\n```\n"
        match = re.search(r"^#+ (\S+).*$", markdown, re.M)  # inside the section the heading opens
        markdown = markdown[: match.end()] + entry + markdown[match.end():]
    return markdown


def source_line(obj) -> tuple[str, int] | None:
    "The file (relative to the root) and first line of the definition of `obj`, if it is in this project."
    import functools
    obj = obj.fget if isinstance(obj, property) else obj.func if isinstance(obj, functools.cached_property) else obj
    try:
        target = inspect.unwrap(obj)
        path = Path(inspect.getsourcefile(target)).resolve()
        line = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return None
    if path.suffix != ".py" or not path.is_file() or not path.is_relative_to(ROOT):
        return None  # e.g. a notebook cell's `<ipython-input-…>`: the build ran that notebook's cells itself
    return path.relative_to(ROOT).as_posix(), line


def insert_after_summary(markdown: str, addition: str) -> str:
    "Put `addition` after the signature block and the italic one-line summary that follows it, if any."
    if not addition:
        return markdown
    fence = re.search(r"```python\n.*?\n```\n*", markdown, re.S)
    if not fence:
        return markdown + addition
    after = fence.end()
    summary = re.match(r"\*[^\n]*\*\n*", markdown[after:])
    if summary:
        after += summary.end()
    return markdown[:after].rstrip("\n") + "\n" + addition + "\n" + markdown[after:]


def resolve(name: str, module: str):
    "The object `name` (e.g. `MlflowService.RunConfig`) means in `module`, or None."
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj


SCRUB = [  # reprs that only a machine reads, as a reader writes them
    (re.compile(r"<(?:function|built-in function|cyfunction) ([\w.<>]+) at 0x[0-9a-f]+>"), r"\1"),
    (re.compile(r"<function ([\w.<>]+)\([^<>]*\)(?: -> [^<>]*)?>"), r"\1"),
    (re.compile(r"<bound method ([\w.]+) of [^<>]*(?:<[^<>]*>)?[^<>]*>"), r"\1"),
    (re.compile(r"<class '(?:[\w]+\.)*(\w+)'>"), r"\1"),
    (re.compile(r"<enum '(\w+)'>"), r"\1"),
    (re.compile(r"<([\w.]+) object at 0x[0-9a-f]+>"), r"\1(...)"),
]


def scrub(shown: str) -> str:
    "A repr without memory addresses, `<class '…'>` wrappers or module prefixes."
    for pattern, replacement in SCRUB:
        shown = pattern.sub(replacement, shown)
    return re.sub(r"\b(?:typing|typing_extensions|T|pdt|pd|np|[a-z_]+(?:\.[a-z_]+)+)\.(?=[A-Za-z_])", "", shown)


def constraint_text(meta) -> str:
    "One piece of `Annotated` metadata as written by hand: only the settings it changes, no defaults."
    from pydantic.fields import FieldInfo
    if type(meta).__name__ in ("SerializeAsAny", "SkipValidation", "InstanceOf"):
        return ""
    if isinstance(meta, FieldInfo):
        return ", ".join(filter(None, map(constraint_text, meta.metadata)))
    if dataclasses_fields := getattr(type(meta), "__dataclass_fields__", None):
        changed = {name: getattr(meta, name) for name, field in dataclasses_fields.items()
                   if getattr(meta, name) != field.default}
        return f"{type(meta).__name__}({', '.join(f'{k}={scrub(repr(v))}' for k, v in changed.items())})"
    return scrub(repr(meta))


def type_text(annotation, aliases: dict | None = None, top: bool = True) -> str:
    """A type as a reader wants it: `dict[Name, Any]`, `Reader`, `int | None`; not `typing.Dict[...]`,
    `<class '….TrainingJob'>` or `Annotated[str, StringConstraints(strip_whitespace=None, …)]`. `aliases`: the
    module's named types (`Name = Annotated[str, …]`), shown by name; other `Annotated` types show their base
    type, and their constraints only when `top` (the definition of an alias)."""
    aliases = aliases or {}
    if isinstance(annotation, str):
        return scrub(annotation)
    if isinstance(annotation, T.ForwardRef):
        return annotation.__forward_arg__
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    for name, alias in aliases.items():
        try:
            if alias is annotation or (T.get_origin(annotation) is not None and alias == annotation):
                return name
        except Exception:
            pass
    origin, args = T.get_origin(annotation), T.get_args(annotation)
    inner = lambda value: type_text(value, aliases, top=False)
    if origin is T.Annotated:
        base = inner(args[0])
        constraints = [c for c in map(constraint_text, args[1:]) if c] if top else []
        return f"Annotated[{base}, {', '.join(constraints)}]" if constraints else base
    if origin in (T.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(inner(arg) for arg in args)
    if origin is T.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or scrub(str(origin))
        if name == "Callable" and args and isinstance(args[0], list):
            return f"Callable[[{', '.join(map(inner, args[0]))}], {inner(args[1])}]"
        return f"{name}[{', '.join(map(inner, args))}]" if args else name
    if isinstance(annotation, type):
        return annotation.__qualname__ if "<locals>" not in annotation.__qualname__ else annotation.__name__
    if isinstance(annotation, T.TypeVar):
        return annotation.__name__
    return scrub(str(annotation))


short_type = type_text  # the name the rest of this file used


def plain_repr(value, limit: int = 300) -> str:
    "A constant as written, without module prefixes or memory addresses, cut at `limit` characters."
    shown = scrub(repr(value))
    return shown if len(shown) <= limit else shown[:limit] + " …"


def short_value(value) -> str:
    "A default as it would be written: a class or function by name, a pydantic model with the fields it changes."
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.ismethod(value):
        return value.__qualname__
    if hasattr(type(value), "model_fields") and hasattr(value, "model_dump"):
        changed = value.model_dump(exclude_defaults=True, exclude={"KIND"})
        return f"{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
    return scrub(reprlib.repr(value))


def module_aliases(obj) -> dict:
    "The named types (`Name = Annotated[...]`, `Split = tuple[...]`) of the module that defines `obj`."
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return {name: value for name, value in vars(module).items() if not name.startswith("_")
            and (T.get_origin(value) is not None)} if module else {}


def parameters(function) -> list[tuple[str, str, str, str]]:
    "(name, type, default, docment) of each parameter, `self` left out; docments are the `# comment`s."
    from fastcore.docments import docments
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    try:
        comments = docments(function, full=False) or {}
    except Exception:
        comments = {}
    aliases, found = module_aliases(function), []
    for param in signature.parameters.values():
        if param.name in ("self", "cls"):
            continue
        name = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "") + param.name
        kind = "" if param.annotation is param.empty else type_text(param.annotation, aliases, top=False)
        default = "" if param.default is param.empty else short_value(param.default)
        found.append((name, kind, default, comments.get(param.name) or ""))
    return found


def signature_text(function) -> str:
    "`(a: int, b: str = 'x') -> float`, with string annotations unquoted and `self` left out."
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return "(...)"
    params = []
    for name, kind, default, _ in parameters(function):
        shown = name + (f": {kind}" if kind else "")
        if default:  # PEP 8: spaces around `=` only after an annotation
            shown += f" = {default}" if kind else f"={default}"
        params.append(shown)
    returns = "" if signature.return_annotation is signature.empty else \
        f" -> {type_text(signature.return_annotation, module_aliases(function), top=False)}"
    return f"({', '.join(params)}){returns}"


def function_block(name: str, function) -> str:
    "A function's signature, one parameter a line when it has several, as nbdev lays it out."
    head = "async def" if inspect.iscoroutinefunction(function) else "def"
    shown = signature_text(function)
    if shown.count(": ") + shown.count("=") > 2 or len(shown) > 90:
        inner, _, returns = shown[1:].rpartition(")")
        params = [f"    {p}," for p in split_top(inner)]
        shown = "(\n" + "\n".join(params) + "\n)" + returns
    return f"```python\n{head} {name}{shown}\n```"


def split_top(text_: str) -> list[str]:
    "Split `a: dict[str, int], b=1` at the commas outside brackets and quotes."
    parts, depth, quote, current = [], 0, None, ""
    for char in text_:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip()); current = ""; continue
        current += char
    return [p for p in parts + [current.strip()] if p]


def field_comments(cls: type) -> dict[str, str]:
    "The `# comment` after each field of a class and of its bases (docments for pydantic fields)."
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        body = [line for line in lines[1:] if line.strip()]
        indent = min((len(line) - len(line.lstrip()) for line in body), default=4)
        for line in body:
            match = re.match(r"^ {%d}(\w+)\s*:[^#]*#\s*(.+)$" % indent, line)
            if match and "'" not in match.group(2)[:0]:
                found[match.group(1)] = match.group(2).strip()
    return found


def table(rows: list[tuple[str, str, str, str]]) -> str:
    "A parameter table as nbdev draws one: name, type, default, details."
    if not rows:
        return ""
    cell = lambda value: value.replace("|", "\\|").replace("\n", " ")
    lines = ["| | **Type** | **Default** | **Details** |", "|---|---|---|---|"]
    lines += [f"| **{cell(n)}** | {'`' + cell(k) + '`' if k else ''} | {'`' + cell(d) + '`' if d else ''} | "
              f"{cell(c)} |" for n, k, d, c in rows]
    return "\n\n" + "\n".join(lines) + "\n"


def class_rows(cls: type) -> list[tuple[str, str, str, str]]:
    "(name, type, default, docment) of each field of a pydantic class, or of the constructor's parameters."
    fields = getattr(cls, "model_fields", None)
    if not isinstance(fields, dict):
        return parameters(cls.__init__) if "__init__" in vars(cls) else []
    comments, aliases, rows = field_comments(cls), module_aliases(cls), []
    for name, field in fields.items():
        if name == "KIND":
            continue
        kind = type_text(field.annotation, aliases, top=False)
        if field.default_factory is not None:
            default = f"{getattr(field.default_factory, '__name__', 'factory')}()"
        else:
            default = "" if field.is_required() else short_value(field.default)
        rows.append((name, kind, default, field.description or comments.get(name, "")))
    return rows


def class_block(cls: type) -> str:
    "A class as a reader needs its signature: bases, then its fields (pydantic) or its constructor."
    bases = ", ".join(type_text(base) for base in cls.__bases__ if base is not object)
    lines = [f"class {cls.__name__}({bases}):" if bases else f"class {cls.__name__}:"]
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        kind = fields.get("KIND")
        if kind is not None and isinstance(kind.default, str):
            lines.append(f"    KIND = {kind.default!r}")
        for name, kind_, default, _ in class_rows(cls):
            lines.append(f"    {name}: {kind_}" + (f" = {default}" if default else ""))
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
            plain = re.sub(r"\\(.)", r"\1", plain)  # markdown escapes: `Job.\_\_exit\_\_` reads Job.__exit__
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
        else:  # documented nowhere: here, under a label of its own if its anchor is taken (`process_tags`)
            taken = anchor(name) in documented[page.docname].values()
            label = f"{anchor(name)}-{kind}" if taken else ""
            link = f"#{label or anchor(name)}"
            target = f"({label})=\n" if label else ""
            if ours:
                details.append(target + linkify(show_doc_markdown(show_doc(value, name=name)._repr_markdown_(),
                                                                  page.module)).lstrip())
            elif kind == "alias":
                details.append(f"{target}### {name}\n\n```python\n{name} = {home}.{value.__qualname__}\n```")
            else:
                shown = type_text(value, module_aliases(module)) if T.get_origin(value) else plain_repr(value)
                details.append(f"{target}### {name}\n\n```{{index}} single: {name} (name in {module.__name__})\n```\n\n"
                               f"```python\n{name} = {shown}\n```")
        if kind == "constant":  # a type alias reads as its type; a value as its repr
            summary = f"`{type_text(value) if T.get_origin(value) else plain_repr(value, 60)}`"
        elif kind == "alias":
            summary = f"`{home}.{value.__qualname__}`"
        else:
            summary = linkify((inspect.getdoc(value) or "").split("\n")[0])
        rows.append(f"| [`{name}`]({link}) | {kind} | {summary.replace('|', chr(92) + '|')} |")
        API_ROWS.setdefault(module.__name__, []).append(
            (name, kind, f"/{page.docname}.html{link}" if link.startswith("#") else link, summary))
    if not rows:
        return ""
    table = (f"## Reference: {module.__name__}\n\nThe public names of `{module.__name__}`, each linked to its "
             f"signature and docstring.\n\n| name | kind | what it is |\n|---|---|---|\n" + "\n".join(rows))
    return quarto_markdown("\n\n".join([table, *details]))


API_ROWS: dict[str, list[tuple[str, str, str, str]]] = {}  # module → (name, kind, link, summary), by reference()

FAMILIES = {  # the API reference's groups, by the first part of a module's name; the order of the sidebar
    "Core & services": ("core", "services"),
    "Data & components": ("data", "splitters", "models", "metrics", "registries", "trials", "experiments"),
    "Jobs": ("jobs",), "Configs": ("configs",), "Pipelines": ("pipelines",), "Widgets": ("widgets",),
    "Command line": ("cli",), "Serving": ("serving",),
}


def family_of(module: str | None) -> str:
    "The API reference group of a module (`regression_lab.jobs.training` → `Jobs`); `More` for the unknown."
    part = (module or "").split(".")[1] if module and "." in module else ""
    return next((name for name, parts in FAMILIES.items() if part in parts), "More")


def api_overview(pages: dict[str, Page]) -> dict:
    "The API reference page: every public name of the package, by family, then by module, linked to its docs."
    by_module = {p.module: p for p in pages.values() if p.module}
    sections = ["# API reference", "Every public name of the package, grouped as the sidebar groups the chapters: "
                "each links to its signature, parameter table and source; the chapter says why it exists."]
    seen: set[str] = set()
    for family in [*FAMILIES, "More"]:
        modules = [m for m in sorted(API_ROWS, key=lambda m: by_module[m].source.as_posix() if m in by_module else m)
                   if family_of(m) == family and API_ROWS[m]]
        if not modules:
            continue
        sections.append(f"## {family}")
        for module in modules:
            page = by_module.get(module)
            rows_here = [row for row in API_ROWS[module] if row[2] not in seen]  # a package's re-exports: once
            seen.update(row[2] for row in rows_here)
            if not rows_here:
                continue
            title = f"[{page.title}](/{page.docname}.html)" if page else module
            rows = "\n".join(f"| [`{n}`]({link}) | {kind} | {summary.replace('|', chr(92) + '|')} |"
                             for n, kind, link, summary in rows_here)
            sections.append(f"### {title}\n\n`{module}`\n\n| name | kind | what it is |\n|---|---|---|\n{rows}")
    return {"cells": [md_cell("\n\n".join(sections))], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


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
        if path.startswith(("/_source/", "/_notebooks/")):  # files the build adds beside the pages
            return f"{match.group(1)}{posixpath.relpath(path[1:], here or '.')}{'#' + fragment if fragment else ''}" \
                   f"{match.group(3)}"
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
    if "api" in pages:  # the overview, then the chapters grouped by family as it groups them
        groups.append(("API reference", [f"All public names <{entry('api')}>"]))
    chapters = [doc for doc in loose if not pages[doc.lstrip("/")].module]
    for family in [*FAMILIES, "More"]:
        inside = [nav_entry(pages[doc.lstrip("/")], family) for doc in loose if pages[doc.lstrip("/")].module
                  and family_of(pages[doc.lstrip("/")].module) == family]
        if inside:
            groups.append((family, inside))
    if chapters:
        groups.append(("Chapters", chapters))
    unlisted = [entry(name) for name in pages if name not in listed]
    if unlisted:  # a page that a hand-written sidebar forgot still gets a place
        groups.append(("More", unlisted))
    nav = "\n\n".join(toctree(docs, caption=title) for title, docs in groups if docs)
    return nav, generated, appended


def nav_entry(page: Page, family: str) -> str:
    """A toctree entry; a page titled as its group (`Pipelines` under *Pipelines*) is listed by what its module
    holds (`Declaration`), so no name shows twice in the sidebar."""
    if page.title.strip().lower() != family.lower():
        return "/" + page.docname
    parts = page.module.split(".")
    shown = f"{family} package" if Path(importlib.util.find_spec(page.module).origin or "").name == "__init__.py" else \
        parts[-1].replace("_", " ").capitalize()
    return f"{page.module if shown.lower() == family.lower() else shown} </{page.docname}>"


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
        if not (PROC / source).exists():  # a notebook added while the build ran: the next build has it
            log(f"WARNING: {source} appeared during the build: left out")
            continue
        nb = restore_saved_outputs(json.loads((PROC / source).read_text()), cfg.nbs_path / source)
        meta = front_matter(nb)
        output = meta.get("output-file") or source.with_suffix(".html").name
        docname = (source.parent / output).with_suffix("").as_posix()
        title = meta.get("title") or source.stem
        module = default_exp(source)
        cells = [md_cell(f"# {title}" + (f"\n\n{{.lead}}\n{meta['description']}" if meta.get("description") else "")
                         + page_links(source, module, cfg))]
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
    pages["api"] = Page(Path("api.ipynb"), "api", "API reference", None, api_overview(pages))
    anchors = {name: {anchor(h) for _, h in headings(markdown_of(page))}
                     | set(re.findall(r"^\(([\w-]+)\)=$", markdown_of(page), re.M))  # MyST labels
               for name, page in pages.items()}

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


def restore_saved_outputs(nb: dict, source: Path) -> dict:
    """Give back the outputs saved in the notebook to cells that nbdev's docs pass re-ran and broke: it re-runs a
    cell that starts with an import without the cells before it, and its NameError replaces the real output."""
    saved = {cell.get("id"): cell for cell in json.loads(source.read_text())["cells"] if cell.get("id")}
    for cell in nb["cells"]:
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            original = saved.get(cell.get("id"))
            cell["outputs"] = original.get("outputs", []) if original else \
                [out for out in cell["outputs"] if out.get("output_type") != "error"]
    return nb


MACHINE_PATHS = [  # last resort, for outputs saved before their chapters showed paths relative (see the README)
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "<cell>"),
    (re.compile(r"(?:[\w.~-]*/)*(?:site|dist)-packages/"), ""),
    (re.compile(r"(?:[\w.~-]*/)*\.venv\b[\w./-]*"), "…"),  # what is left: a path cut inside the virtualenv
    (re.compile(r"/tmp/[\w.-]+/"), ""),
    (re.compile(r"/tmp/[\w.-]+\b"), "."),
]


PYTHON_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t]+.*\n)+", re.M)


def without_machine_paths(value: str, root: str = str(ROOT) + "/") -> str:
    """Output text with the build machine's folders left out (temp folders, the virtualenv, the checkout) and a
    printed traceback cut to its last line, the error (e.g. a thread's, which Python prints to stderr)."""
    value = PYTHON_TRACEBACK.sub("", value.replace(root, ""))
    for pattern, replacement in MACHINE_PATHS:
        value = pattern.sub(replacement, value)
    return value


def scrub_outputs(cell: dict) -> None:
    "Apply `without_machine_paths` to every text output of a code cell; an error keeps its name and message."
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            out["traceback"] = [f"{out.get('ename')}: {without_machine_paths(out.get('evalue', ''))}"]
        if "text" in out:
            out["text"] = without_machine_paths(text(out["text"]))
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/") or mime in ("application/json",):
                if isinstance(value, (str, list)):
                    out["data"][mime] = without_machine_paths(text(value))


def page_links(source: Path, module: str | None, cfg) -> str:
    "The line under a page's title: download its notebook, read its module's source, the repository."
    links = [f"[Download the notebook](/_notebooks/{source.as_posix()})"]
    if module:
        path = module_file(module)
        if path:
            links.append(f"[Source: `{path}`](/_source/{path}.html)")
    git_url = cfg.get("git_url") or ""
    links.append(f"[Repository]({git_url})" if git_url.startswith("http") else "[Repository files](/_source/index.html)")
    return "\n\n{.page-links}\n" + " · ".join(links)


def module_file(module: str) -> str | None:
    "The file of a module, relative to the project's root (`regression_lab/jobs/base.py`)."
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin) if spec and spec.origin else None
    return origin.relative_to(ROOT).as_posix() if origin and origin.is_relative_to(ROOT) else None


def repository_files() -> list[Path]:
    "What the site copies of the repository: the package's modules and the notebooks, relative to the root."
    from nbdev.config import get_config
    cfg = get_config()
    package = sorted(p.relative_to(ROOT) for p in cfg.lib_path.rglob("*.py") if "__pycache__" not in p.parts)
    return package + [cfg.nbs_path.relative_to(ROOT) / nb for nb in source_notebooks()]


SOURCE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;}} .highlight{{background:#f8f8f8;}}
td.linenos a{{color:#999;text-decoration:none;}} pre{{margin:0;line-height:1.4;}}
:target{{background:#fff3b0;}} {css}</style></head>
<body><p><a href="{home}">{project}</a> / {crumbs}</p><h1>{title}</h1>
{body}</body></html>
"""


def page_texts(page_limit: int = 20_000, section_limit: int = 3_000) -> int:
    """Write `_docs/_static/page_texts.js`: the text of each page and of each of its sections, from which
    `search_snippets.js` shows a snippet under every search result (Sphinx would fetch() the page: refused from
    file://). Cut at `page_limit` / `section_limit` characters to keep the search page quick to load."""
    from bs4 import BeautifulSoup
    texts = {}
    for html in sorted(SITE.rglob("*.html")):
        docname = html.relative_to(SITE).with_suffix("").as_posix()
        if docname.startswith("_") or docname in ("search", "genindex"):
            continue
        soup = BeautifulSoup(html.read_text(), "html.parser")
        main = soup.select_one('[role="main"] article') or soup.select_one('[role="main"]')
        if main is None:
            continue
        for element in main.select(".headerlink, script, style, .copybtn"):
            element.decompose()
        squeeze = lambda node: re.sub(r"\s+", " ", node.get_text(" ")).strip()
        sections = {node["id"]: squeeze(node)[:section_limit] for node in main.select("section[id]")}
        texts[docname] = {"text": squeeze(main)[:page_limit], "sections": sections}
    (SITE / "_static" / "page_texts.js").write_text(
        "window.PAGE_TEXTS = " + json.dumps(texts, ensure_ascii=False, separators=(",", ":")) + ";\n")
    return len(texts)


def source_pages(project: str) -> int:
    """Write `_docs/_source/`: each module as a page with numbered lines (`#L-25`, where the API reference's
    `source` links point), an index of the repository's files, and `_docs/_notebooks/`: the notebooks to
    download. Offline, so the site carries its own copy instead of linking to a code host."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True)
    css = formatter.get_style_defs(".highlight")
    files = repository_files()
    for relative in files:
        if relative.suffix == ".ipynb":
            target = SITE / "_notebooks" / relative.relative_to(relative.parts[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target)
            continue
        target = SITE / "_source" / f"{relative.as_posix()}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        depth = len(relative.parts)
        body = highlight((ROOT / relative).read_text(), PythonLexer(), formatter)
        target.write_text(SOURCE_PAGE.format(title=relative.as_posix(), css=css, project=project, body=body,
                                             home="../" * depth + "index.html",
                                             crumbs=f'<a href="{"../" * (depth - 1)}index.html">files</a>'))
    items = []
    for relative in files:
        if relative.suffix == ".ipynb":
            href = "../_notebooks/" + relative.relative_to(relative.parts[0]).as_posix()
            items.append(f'<li><a href="{href}">{relative.as_posix()}</a> (notebook, download)</li>')
        else:
            items.append(f'<li><a href="{relative.as_posix()}.html">{relative.as_posix()}</a></li>')
    (SITE / "_source" / "index.html").write_text(SOURCE_PAGE.format(
        title="Repository files", css="", project=project, home="../index.html", crumbs="files",
        body="<p>The package's modules (generated from the notebooks by <code>nbdev-export</code>) and the "
             "notebooks they come from, as this site was built.</p><ul>" + "\n".join(items) + "</ul>"))
    return len(files)


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
    log(f"page texts of {page_texts()} pages → _docs/_static/page_texts.js (search snippets)")
    from nbdev.config import get_config
    log(f"{source_pages(get_config().get('title') or 'site')} repository files → _docs/_source/, _docs/_notebooks/")


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
