"""Sphinx configuration of the pointsam documentation site.

Build it with ``bash run.sh docs`` (installs the ``docs`` extras, then
``sphinx-build -W --keep-going -b html docs docs/_build/html`` and the offline
check of ``tests/docs``). Everything the pages load is served from the site
itself: MathJax comes from the ``sphinx-mathjax-offline`` package, the theme's
fonts and icons from the theme, and no inventory is fetched for intersphinx.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import api_listing  # noqa: E402  (docs/api_listing.py)

import pointsam  # noqa: E402

# the API pages, one per subpackage, from each __all__ (before Sphinx looks for
# sources, so that autosummary writes a page for every name they list)
api_listing.write_pages(DOCS / "api" / "generated")

project = "pointsam"
author = "the pointsam authors"
copyright = "the pointsam authors, Apache-2.0"
version = release = pointsam.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax
    "sphinx.ext.intersphinx",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
# docs/examples holds the gallery's sources; sphinx-gallery turns them into
# auto_examples/, the pages Sphinx reads
exclude_patterns = ["_build", "examples", "**/.ipynb_checkpoints", "Thumbs.db",
                    ".DS_Store"]

# -- intersphinx: nothing fetched over the network ----------------------------
# The build runs offline; an inventory would have to be a local file
# (intersphinx_mapping = {"python": ("https://docs.python.org/3", "path/objects.inv")}).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# -- autodoc, autosummary, napoleon -------------------------------------------
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"  # STYLE.md: types live in the annotations
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False
# STYLE.md section 4: every module docstring has a Shapes: section (PyG style);
# dataset classes have a Stats: table (DESIGN.md)
napoleon_custom_sections = ["Shapes", "Shape", "Stats"]

# -- MyST ----------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- sphinx-gallery ------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every example runs at build time
    "within_subsection_order": "sphinx_gallery.sorting.FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
    "capture_repr": (),
    "show_memory": False,
    "min_reported_time": 1,
    # the timing pages (sg_execution_times) load jQuery and DataTables from CDNs
    "write_computation_times": False,
    # links from the examples' code to the API pages of this site
    "doc_module": ("pointsam",),
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pointsam {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# light or dark as the reader's system says (unset, the theme logs an error)
html_context = {"default_mode": "auto"}
# docs/_static/pointsam.css: the guides' wide tables get the window's width
html_static_path = ["_static"]
html_css_files = ["pointsam.css"]
# The guides show the repository's pictures by their relative paths
# (../../viz/gallery/*.png from docs/guides/, as on GitHub); Sphinx copies
# every image a page references into _images/, from inside docs/ or not.
