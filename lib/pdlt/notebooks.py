"""Launch notebooks: a plain ``.ipynb`` per chapter for Colab, Binder or any Jupyter, e.g.::

    python -m pdlt.notebooks --out _build/html/notebooks

Colab and Binder cannot open the MyST ``.md`` sources, so every chapter of ``_toc.yml`` (a
notebook with a ``parameters`` cell) is converted with Jupytext into ``<out>/book/<stem>.ipynb``
(unexecuted), with one cell inserted first that installs the library from the project's
repository when ``import pdlt`` fails; in the project's own environment that cell does nothing.
The repository is ``repository.url`` of ``_config.yml``. The book build (``pdlt.sphinxext``) runs
this into ``_build/html/notebooks/`` and points the Colab/Binder launch buttons there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ._runner import chapter_id, find_chapters

__all__ = ["INSTALL_TAG", "install_source", "launch_notebook", "repository_url", "write_launch_notebooks", "main"]

#: tag of the inserted first cell
INSTALL_TAG = "install-pdlt"
#: packages a chapter imports beside pdlt's own dependencies (present on Colab; installed elsewhere)
EXTRA_PACKAGES = ("matplotlib", "pandas", "seaborn")


def repository_url(root: Path) -> str:
    """``repository.url`` of ``<root>/_config.yml`` (raises if it is missing)."""
    cfg = yaml.safe_load((Path(root) / "_config.yml").read_text()) or {}
    url = (cfg.get("repository") or {}).get("url", "")
    if not url:
        raise ValueError(f"{root}/_config.yml has no repository.url: the install cell needs it")
    return url.rstrip("/")


def install_source(repo_url: str) -> str:
    """The first cell: install ``pdlt`` (and the plotting stack) from ``repo_url`` if it is missing."""
    pkgs = ", ".join(repr(p) for p in (f"pdlt @ git+{repo_url}", *EXTRA_PACKAGES))
    return (
        "# Colab / Binder: install the pdlt library from the project's repository when it is missing.\n"
        "# In the project's own environment (make lab) this cell does nothing.\n"
        "import importlib.util, subprocess, sys\n"
        "\n"
        "if importlib.util.find_spec(\"pdlt\") is None:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", {pkgs}], check=True)"
    )


def launch_notebook(path: Path, repo_url: str):
    """The chapter at ``path`` as an nbformat-4 notebook with the install cell first (validated)."""
    import jupytext
    import nbformat

    nb = jupytext.read(path)
    for key in ("jupytext", "mystnb"):  # build-only metadata of the text source
        nb.metadata.pop(key, None)
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["pdlt"] = {"chapter": chapter_id(path), "source": f"book/{Path(path).name}"}
    cell = nbformat.v4.new_code_cell(install_source(repo_url), metadata={"tags": [INSTALL_TAG]})
    nb.cells.insert(0, cell)
    nb = nbformat.from_dict(nb)
    for c in nb.cells:  # stable, unique ids (nbformat >= 4.5)
        c.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i}"
    nbformat.validate(nb)
    return nb


def write_launch_notebooks(root: Path, out: Path, repo_url: str | None = None) -> list[Path]:
    """Write ``<out>/book/<stem>.ipynb`` for every chapter of ``<root>/_toc.yml``; returns the paths."""
    import nbformat

    root, out = Path(root), Path(out)
    repo_url = repo_url or repository_url(root)
    written = []
    for path in find_chapters(root / "book"):
        rel = path.relative_to(root).with_suffix(".ipynb")
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(launch_notebook(path, repo_url), dest)
        written.append(dest)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pdlt.notebooks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the book's root (with _toc.yml and _config.yml)")
    ap.add_argument("--out", default="_build/html/notebooks", help="output folder")
    ap.add_argument("--repo-url", default=None, help="repository to install pdlt from (default: _config.yml)")
    args = ap.parse_args(argv)
    for p in write_launch_notebooks(Path(args.root), Path(args.out), args.repo_url):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
