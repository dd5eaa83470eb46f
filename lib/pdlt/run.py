"""Run chapters with parameters (Papermill), e.g.::

    python -m pdlt.run book/ch02_neural_networks.md -p n_nets 4096 --out runs/
    python -m pdlt.run all --scale full --out runs/full

For each chapter: read the Jupytext source, check the parameters against its ``parameters``
cell and the shared rules *before any compute* (exit 2 with one line naming the parameter),
execute it with Papermill, and write ``<out>/<chapter>/<chapter>.ipynb`` and
``<out>/<chapter>/results.json`` (provenance, parameters, wall time and the ledger).
Exit status: 0 if every chapter ran and every ledger entry came out as expected, else 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from ._params import ParameterError, parse_parameters_cell, validate

__all__ = ["main", "chapter_id", "find_chapters", "parameters_of", "resolve_values"]


def chapter_id(path: Path) -> str:
    """``book/ch02_neural_networks.md`` -> ``ch02`` (the stem up to the first underscore)."""
    return Path(path).stem.split("_", 1)[0]


def _root_from(book_dir: Path) -> Path:
    return book_dir.resolve().parent


def find_chapters(book_dir: Path) -> list[Path]:
    """Chapters in table-of-contents order: every notebook in ``_toc.yml`` with a parameters cell."""
    root = _root_from(book_dir)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    out = []
    for f in files:
        p = root / (f if f.endswith(".md") else f + ".md")
        if p.exists() and parameters_of(p) is not None:
            out.append(p)
    return out


def _read(path: Path):
    import jupytext

    return jupytext.read(path)


def parameters_of(path: Path):
    """The ParamSpecs of a chapter's ``parameters`` cell, or None if it has none."""
    nb = _read(path)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return parse_parameters_cell(cell.source)
    return None


def _parse_cli_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_values(path: Path, specs, *, scale: str, files=(), pairs=()) -> dict:
    """Parameter values for one chapter: full-scale YAML, then ``-f`` files, then ``-p`` pairs."""
    values: dict = {}
    if scale == "full":
        full = path.parent / "params" / f"{chapter_id(path)}.full.yaml"
        if not full.exists():
            raise ParameterError(f"{chapter_id(path)}: no full-scale parameter file {full}")
        values.update(yaml.safe_load(full.read_text()) or {})
    for f in files:
        values.update(yaml.safe_load(Path(f).read_text()) or {})
    for name, text in pairs:
        values[name] = _parse_cli_value(text)
    # a float parameter may be given as an integer on the command line
    for k, v in list(values.items()):
        if k in specs and specs[k].type == "float" and isinstance(v, int) and not isinstance(v, bool):
            values[k] = float(v)
    validate(values, specs)
    return values


def _execute(path: Path, values: dict, outdir: Path, scale: str) -> dict:
    import papermill as pm

    cid = chapter_id(path)
    outdir.mkdir(parents=True, exist_ok=True)
    os.environ["PDLT_RESULTS_DIR"] = str(outdir.resolve())
    stale = outdir / f"{cid}.json"
    if stale.exists():
        stale.unlink()
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(_read(path), str(outdir / f"{cid}.ipynb"), parameters=values,
                            kernel_name="python3", cwd=str(path.parent), progress_bar=False)
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    wall = time.perf_counter() - t0
    res = json.loads(stale.read_text()) if stale.exists() else {"chapter": cid, "ledger": []}
    res.update({"source": str(path), "scale": scale, "runner_params": values,
                "runner_wall_s": round(wall, 2), "error": error})
    (outdir / "results.json").write_text(json.dumps(res, indent=1))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pdlt.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="+", help="chapter files (book/ch02_....md), ids (ch02) or 'all'")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("-f", "--parameters-file", action="append", default=[], help="YAML file of parameters")
    ap.add_argument("--scale", choices=("ci", "full"), default="ci",
                    help="ci: the notebook's defaults; full: book/params/<chapter>.full.yaml (sized for one GPU)")
    ap.add_argument("--out", default="runs", help="output folder (default: runs/)")
    ap.add_argument("--book-dir", default="book")
    ap.add_argument("--list", action="store_true", help="list each chapter's parameters and exit")
    args = ap.parse_args(argv)

    book = Path(args.book_dir)
    paths: list[Path] = []
    for c in args.chapters:
        if c == "all":
            paths += find_chapters(book)
        elif Path(c).exists():
            paths.append(Path(c))
        else:
            hits = sorted(book.glob(f"{c}_*.md")) + sorted(book.glob(f"{c}.md"))
            if not hits:
                print(f"error: no chapter {c!r} in {book}/", file=sys.stderr)
                return 2
            paths.append(hits[0])
    if (args.parameter or args.parameters_file) and len(paths) != 1:
        print("error: -p/-f apply to one chapter; name exactly one", file=sys.stderr)
        return 2

    plan = []
    for p in paths:  # validate everything before running anything
        specs = parameters_of(p)
        if specs is None:
            print(f"error: {p} has no cell tagged 'parameters'", file=sys.stderr)
            return 2
        if args.list:
            print(f"{chapter_id(p)} ({p}):")
            for s in specs.values():
                print(f"  {s.name}: {s.type} = {s.default!r}  # {s.help}")
            continue
        try:
            values = resolve_values(p, specs, scale=args.scale, files=args.parameters_file, pairs=args.parameter)
        except ParameterError as e:
            print(f"error: {chapter_id(p)}: {e}", file=sys.stderr)
            return 2
        plan.append((p, values))
    if args.list:
        return 0

    status = 0
    for p, values in plan:
        cid = chapter_id(p)
        print(f"[pdlt.run] {cid}: {p} {values or '(defaults)'}", flush=True)
        res = _execute(p, values, Path(args.out) / cid, args.scale)
        bad = [e for e in res["ledger"] if not e["ok"]]
        ok = res["error"] is None and not bad
        status |= 0 if ok else 1
        print(f"[pdlt.run] {cid}: {'ok' if ok else 'FAILED'} in {res['runner_wall_s']:.1f} s, "
              f"{len(res['ledger'])} ledger entries, {len(bad)} not as expected"
              + (f"; error: {res['error']}" if res["error"] else ""), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
