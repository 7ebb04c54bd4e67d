"""The API reference's pages, generated from each subpackage's ``__all__``.

``conf.py`` calls :func:`write_pages` when Sphinx starts: one page per
subpackage of :data:`PACKAGES` (``docs/api/generated/pointsam.<name>.rst``),
listing every public name by kind in an ``autosummary`` table, from which
autosummary writes a page per name. A name added to an ``__all__`` appears on
the next build without editing the docs. Only the standard library and
pointsam are imported here (``tests/docs`` checks the listing without Sphinx).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
from pathlib import Path

#: the subpackages documented, in the order of the import graph (STYLE.md)
PACKAGES = ("ops", "nn", "models", "data", "engine", "export", "viz")
#: subpackages left out of the API reference, and why
NOT_DOCUMENTED = {"cli": "the command line, documented by `pointsam --help`"}

#: section title -> kind, in page order
SECTIONS = {"Classes": "class", "Exceptions": "exception", "Functions": "function",
            "Modules": "module", "Constants": "data"}


def kind_of(obj: object) -> str:
    """``class``, ``exception``, ``function``, ``module`` or ``data``."""
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def sections(package: str) -> dict[str, list[str]]:
    """The public names of ``pointsam.<package>`` by kind, in ``__all__`` order.

    Raises:
        AttributeError: a name of ``__all__`` that the package does not define.
    """
    mod = importlib.import_module(f"pointsam.{package}")
    out: dict[str, list[str]] = {kind: [] for kind in SECTIONS.values()}
    for name in mod.__all__:
        out[kind_of(getattr(mod, name))].append(name)
    return out


def summary_line(obj: object) -> str:
    """The first line of an object's own docstring (``""`` when it has none)."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def comment_doc(package: str, name: str) -> str:
    """The ``#:`` comment above the assignment of a constant in the module of
    ``pointsam.<package>`` that defines it (``""`` when there is none)."""
    obj = getattr(importlib.import_module(f"pointsam.{package}"), name)
    prefix = f"pointsam.{package}"
    pattern = re.compile(rf"^{re.escape(name)}\s*(:[^=]*)?=")
    for modname, mod in sorted(sys.modules.items()):
        if not (modname == prefix or modname.startswith(prefix + ".")) or \
                getattr(mod, name, None) is not obj:
            continue
        try:
            lines = inspect.getsource(mod).splitlines()
        except (OSError, TypeError):
            continue
        for i, line in enumerate(lines):
            if pattern.match(line):
                doc: list[str] = []
                j = i - 1
                while j >= 0 and lines[j].lstrip().startswith("#:"):
                    doc.insert(0, lines[j].lstrip()[2:].strip())
                    j -= 1
                if doc:
                    return " ".join(doc)
    return ""


def _value(obj: object) -> str:
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return f"{type(obj).__name__} of shape {tuple(shape)}"
    text = repr(obj)
    return text if len(text) <= 72 else f"{type(obj).__name__} of {len(obj)} entries" \
        if hasattr(obj, "__len__") else type(obj).__name__


def page(package: str) -> str:
    """The reStructuredText of the page of ``pointsam.<package>``."""
    full = f"pointsam.{package}"
    out = [full, "=" * len(full), "", f".. automodule:: {full}", "",
           f".. currentmodule:: {full}", ""]
    by_kind = sections(package)
    for title, kind in SECTIONS.items():
        names = by_kind[kind]
        if not names:
            continue
        out += [title, "-" * len(title), ""]
        if kind == "data":
            mod = importlib.import_module(full)
            for name in names:
                out += [f".. py:data:: {name}",
                        f"   :type: {type(getattr(mod, name)).__name__}", ""]
                value = _value(getattr(mod, name))
                doc = comment_doc(package, name)
                out += ([f"   {doc}", ""] if doc else []) + [f"   Value: ``{value}``", ""]
            continue
        # autosummary writes a page per name, from _templates/autosummary/
        out += [".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
        out += [f"   {name}" for name in names]
        out.append("")
    return "\n".join(out)


def write_pages(out_dir: str | Path) -> list[Path]:
    """Write the page of every package into ``out_dir``; a page whose text is
    unchanged is left alone (Sphinx then does not read it again). The pages of
    names no longer public (autosummary's, from an earlier build) are removed:
    Sphinx would warn that no toctree includes them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, keep = [], set()
    for package in PACKAGES:
        path = out / f"pointsam.{package}.rst"
        text = page(package)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
        keep.add(path.name)
        keep |= {f"pointsam.{package}.{name}.rst"
                 for kind, names in sections(package).items() if kind != "data"
                 for name in names}
    for stale in out.glob("*.rst"):
        if stale.name not in keep:
            stale.unlink()
    return paths
