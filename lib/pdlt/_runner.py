"""Run chapters with parameters (Papermill), e.g.::

    python -m pdlt.run book/ch02_neural_networks.md -p n_nets 4096 --out runs/
    python -m pdlt.run all --scale full --out runs/full

For each chapter: read the Jupytext source, check the parameters against its ``parameters``
cell and the shared rules *before any compute* (exit 2 with one line naming the parameter),
execute it with Papermill, and write ``<out>/<chapter>/<chapter>.ipynb`` and
``<out>/<chapter>/results.json`` (provenance, parameters, wall time, the ledger and the run's
``state``). A run holds an exclusive lock on ``<out>/<chapter>/`` (a second run into the same
folder is refused with one line, exit 2), removes the previous outputs there when it starts,
keeps ``state.json`` (``running`` / ``done`` / ``failed`` / ``interrupted``), and writes every
file under a temporary name renamed into place.

Parameter values (``-p NAME VALUE`` and ``-f`` files) follow one grammar::

    integers: decimal (400000) or exact scientific notation (1e6, 2.5e3); no leading zeros, no octal or 1:30
    floats: 0.5, 1e-3, 2 (finite only: no nan/inf); booleans: true/false; strings: as typed
    lists: [a, b, c] with entries of the default's type

Exit status: 0 if every chapter ran and every ledger entry came out as expected, 1 if not, 2 for a
bad command line (unknown chapter or parameter, bad value, busy run directory).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from ._params import GRAMMAR, ParameterError, load_parameters_file, parse_parameters_cell, parse_value, validate
from ._provenance import atomic_write, dumps

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


def _coerce(name, raw, specs):
    """A raw value (text from -p, or a scalar/sequence of a YAML file) by the grammar of ``_params``."""
    spec = specs.get(name)
    if spec is None:
        raise ParameterError(f"unknown parameter `{name}`; this chapter has: {', '.join(specs) or '(none)'}")
    return parse_value(name, raw, spec.type, spec.default)


def resolve_values(path: Path, specs, *, scale: str, files=(), pairs=()) -> dict:
    """Parameter values for one chapter: full-scale YAML, then ``-f`` files, then ``-p`` pairs.

    Every value is read by one grammar (:data:`pdlt._params.GRAMMAR`); a name given twice with ``-p``
    or twice in one file, an unknown name, a malformed file or a value that breaks a rule raises
    :class:`ParameterError` (one line).
    """
    values: dict = {}
    if scale == "full":
        full = path.parent / "params" / f"{chapter_id(path)}.full.yaml"
        if not full.exists():
            raise ParameterError(f"{chapter_id(path)}: no full-scale parameter file {full}")
        for k, v in load_parameters_file(full).items():
            values[k] = _coerce(k, v, specs)
    for f in files:
        for k, v in load_parameters_file(f).items():
            values[k] = _coerce(k, v, specs)
    seen = set()
    for name, text in pairs:
        if name in seen:
            raise ParameterError(f"parameter `{name}` is given twice with -p; give each name once")
        seen.add(name)
        values[name] = _coerce(name, text, specs)
    validate(values, specs)
    return values


# ---------------------------------------------------------------- run directories: lock, state, outputs
#: the files a run of chapter <cid> writes into its directory (removed when a new run starts)
def _outputs(outdir: Path, cid: str) -> list[Path]:
    return [outdir / n for n in ("results.json", f"{cid}.json", f"{cid}.ipynb", f"{cid}.png",
                                 f"{cid}.headline.txt")]


class RunDirBusy(RuntimeError):
    """Another run holds the lock of this run directory."""


class RunDir:
    """``<out>/<chapter>/`` held by one run at a time: an exclusive ``flock`` on ``.lock`` (released by
    the kernel even if the run is killed), and ``state.json`` saying ``running``, ``done``, ``failed``
    or ``interrupted``. Taking it removes the previous run's outputs, so nothing stale looks current."""

    def __init__(self, outdir: Path, cid: str):
        self.dir, self.cid, self._fd = Path(outdir), cid, None

    def acquire(self):
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            who = self.state().get("pid", "?")
            raise RunDirBusy(f"{self.dir} is in use by another run (pid {who}); wait for it or choose "
                             "another --out") from None
        self._fd = fd
        for p in _outputs(self.dir, self.cid):
            if p.exists():
                p.unlink()
        return self

    def state(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def set_state(self, state: str, **extra):
        atomic_write(self.dir / "state.json", dumps({"chapter": self.cid, "state": state, "pid": os.getpid(),
                                                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}))

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _execute(path: Path, values: dict, outdir: Path, scale: str) -> dict:
    import papermill as pm

    cid = chapter_id(path)
    run = RunDir(outdir, cid).acquire()
    try:
        run.set_state("running", params=values, scale=scale)
        os.environ["PDLT_RESULTS_DIR"] = str(outdir.resolve())
        chapter_json = outdir / f"{cid}.json"
        t0 = time.perf_counter()
        error, state = None, "done"
        partial = outdir / f".{cid}.partial.ipynb"  # papermill writes after every cell; renamed at the end
        try:
            pm.execute_notebook(_read(path), str(partial), parameters=values,
                                kernel_name="python3", cwd=str(path.parent), progress_bar=False)
        except KeyboardInterrupt:
            error, state = "interrupted (KeyboardInterrupt)", "interrupted"
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            state = "failed"
        wall = time.perf_counter() - t0
        if partial.exists():
            os.replace(partial, outdir / f"{cid}.ipynb")
        try:
            res = json.loads(chapter_json.read_text()) if chapter_json.exists() else {"chapter": cid, "ledger": []}
        except ValueError:
            res = {"chapter": cid, "ledger": []}
        if state == "done" and res.get("state") not in (None, "done"):
            state, error = "failed", error or f"the chapter ended in state {res.get('state')!r}"
        if state == "done" and any(not e.get("ok") for e in res["ledger"]):
            state = "failed"
        res.update({"source": str(path), "scale": scale, "runner_params": values,
                    "runner_wall_s": round(wall, 2), "error": error, "state": state})
        atomic_write(outdir / "results.json", dumps(res))
        run.set_state(state, params=values, scale=scale, error=error)
        if state == "interrupted":
            raise KeyboardInterrupt
        return res
    finally:
        run.release()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pdlt.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="+", help="chapter files (book/ch02_....md), ids (ch02) or 'all'")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter value (each name once): " + GRAMMAR.replace("\n", "; "))
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
            full = {}
            if args.scale == "full":
                try:
                    full = resolve_values(p, specs, scale="full")
                except ParameterError as e:
                    print(f"error: {chapter_id(p)}: {e}", file=sys.stderr)
                    return 2
            print(f"{chapter_id(p)} ({p}):" + ("  [full scale]" if args.scale == "full" else ""))
            for s in specs.values():
                v = full.get(s.name, s.default)
                tag = " (full scale)" if s.name in full else ""
                print(f"  {s.name}: {s.type} = {v!r}{tag}  # {s.help}")
            for r in getattr(specs, "rules", ()):
                print(f"  {r.kind}: {r.expr}" + (f"  # {r.message}" if r.message else ""))
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
        try:
            res = _execute(p, values, Path(args.out) / cid, args.scale)
        except RunDirBusy as e:
            print(f"error: {cid}: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"[pdlt.run] {cid}: interrupted; {Path(args.out) / cid}/state.json says so", file=sys.stderr)
            return 130
        bad = [e for e in res["ledger"] if not e["ok"]]
        ok = res["error"] is None and not bad
        status |= 0 if ok else 1
        print(f"[pdlt.run] {cid}: {'ok' if ok else 'FAILED'} in {res['runner_wall_s']:.1f} s, "
              f"{len(res['ledger'])} ledger entries, {len(bad)} not as expected"
              + (f"; error: {res['error']}" if res["error"] else ""), flush=True)
    return status


if __name__ == "__main__":  # pragma: no cover (the entry point is pdlt.run)
    sys.exit(main())
