"""The reader's path: make lab, launch notebooks, rerun box, headline figures, gallery, status, citations.

The tests that need the built book are in test_book.py (one file, so that one xdist worker builds it).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from conftest import ROOT

import pdlt
from pdlt import notebooks, sphinxext
from pdlt.run import chapter_id, find_chapters, parameters_of, resolve_values

CHAPTERS = find_chapters(ROOT / "book")
book = pytest.mark.book


# ----------------------------------------------------------------------------------- launch notebooks
def test_repository_is_github():
    """The theme's launch buttons parse the URL; a non-GitHub one crashes the build."""
    url = notebooks.repository_url(ROOT)
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url


def test_launch_notebooks_are_valid_with_install_and_parameters_cells(tmp_path):
    url = notebooks.repository_url(ROOT)
    written = notebooks.write_launch_notebooks(ROOT, tmp_path)
    assert [p.stem for p in written] == [p.stem for p in CHAPTERS]
    for path in written:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        first = nb.cells[0]
        assert first.cell_type == "code" and notebooks.INSTALL_TAG in first.metadata["tags"]
        assert f"git+{url}" in first.source and "find_spec(\"pdlt\")" in first.source
        compile(first.source, str(path), "exec")  # plain Python, no magics
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{path.name}: {len(params)} parameters cells"
        assert nb.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in nb.metadata
        source = jupytext.read(ROOT / "book" / f"{path.stem}.md")
        assert params[0].source == next(c.source for c in source.cells if "parameters" in c.metadata.get("tags", []))


def test_install_cell_does_nothing_where_pdlt_is_importable(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(notebooks.install_source("https://github.com/o/r"), {})
    assert calls == []


def test_install_cell_installs_when_pdlt_is_missing(monkeypatch):
    """Negative control: with pdlt hidden the same cell calls pip with the repository."""
    import importlib.util

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pdlt" else real(name, *a))
    exec(notebooks.install_source("https://github.com/o/r"), {})
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"]
    assert "pdlt @ git+https://github.com/o/r" in calls[0]


def test_launch_urls_point_at_generated_notebooks():
    app = types.SimpleNamespace(config=types.SimpleNamespace(
        html_theme_options={"repository_url": "https://github.com/org/proj",
                            "launch_buttons": {"colab_url": "https://colab.research.google.com",
                                               "binderhub_url": "https://mybinder.org",
                                               "notebook_interface": "jupyterlab"}},
        pdlt_launch_branch="gh-pages", pdlt_launch_path="notebooks"))
    urls = sphinxext.launch_urls(app, "book/ch01_pretraining")
    assert urls["Colab"] == ("https://colab.research.google.com/github/org/proj/blob/gh-pages/"
                             "notebooks/book/ch01_pretraining.ipynb")
    assert urls["Binder"] == ("https://mybinder.org/v2/gh/org/proj/gh-pages?urlpath="
                              "lab/tree/notebooks/book/ch01_pretraining.ipynb")


# ----------------------------------------------------------------------------------- rerun box
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_rerun_box_is_generated_from_the_parameters_cell(path):
    cid = chapter_id(path)
    box = pdlt.book.rerun_box(cid, source=path)
    specs = parameters_of(path)
    assert [r[0] for r in box.rows] == list(specs)
    html = box._repr_html_()
    for s in specs.values():
        assert f"<code>{s.name}</code>" in html and s.type in html
    full_file = ROOT / "book" / "params" / f"{cid}.full.yaml"
    if full_file.exists():
        full = yaml.safe_load(full_file.read_text())
        assert {r[0]: r[3] for r in box.rows if r[3] is not None} == full
    # the command printed in the box is accepted by the runner's validation, as printed
    cmd = box.commands[0][1].split()
    assert cmd[:4] == ["python", "-m", "pdlt.run", f"book/{path.name}"]
    pairs = [(cmd[i + 1], cmd[i + 2]) for i, w in enumerate(cmd) if w == "-p"]
    resolve_values(path, specs, scale="ci", pairs=pairs)


def test_rerun_box_finds_the_source_from_the_book_folder(monkeypatch):
    monkeypatch.chdir(ROOT / "book")  # where the book build and Jupyter run a chapter
    box = pdlt.book.rerun_box("ch01")
    assert "samples" in [r[0] for r in box.rows] and "pdlt.run book/ch01_" in repr(box)


def test_rerun_box_without_source_falls_back_to_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # e.g. a launch notebook on Colab
    box = pdlt.book.rerun_box("ch01", values={"seed": 3, "samples": 10})
    assert [(r[0], r[2]) for r in box.rows] == [("seed", 3), ("samples", 10)]
    assert "not beside this notebook" in repr(box)


def test_every_chapter_shows_the_rerun_box_and_a_headline_figure():
    """The one-line conventions: ``ch.rerun_box()`` after ``ch.finish()``, ``ch.headline(fig)``."""
    for path in CHAPTERS:
        code = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
        assert "ch.rerun_box()" in code[-1], f"{path.name}: the last cell must end with ch.rerun_box()"
        assert any("ch.headline(" in c for c in code), f"{path.name}: no ch.headline(fig) for the gallery"


def test_headline_writes_png_and_caption(monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("PDLT_RESULTS_DIR", str(tmp_path))
    ch = pdlt.book.Chapter("chX", seed=0)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert ch.headline(fig, caption="a line") is None
    assert (tmp_path / "chX.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "chX.headline.txt").read_text() == "a line\n"
    ch.headline(fig)
    assert not (tmp_path / "chX.headline.txt").exists()
    plt.close(fig)


# ----------------------------------------------------------------------------------- extension logic
def test_pages_that_read_results_are_read_last():
    app = types.SimpleNamespace(config=types.SimpleNamespace(pdlt_read_last=["book/ledger", "book/missing"]))
    docs = ["book/a_first", "book/ledger", "book/intro", "book/zz_last"]
    sphinxext._read_last(app, None, docs)
    assert docs == ["book/a_first", "book/intro", "book/zz_last", "book/ledger"]


def test_results_loader_skips_files_without_a_ledger(tmp_path):
    (tmp_path / "ch01.json").write_text(json.dumps({"chapter": "ch01", "ledger": []}))
    (tmp_path / "notes.json").write_text(json.dumps({"something": 1}))
    (tmp_path / "broken.json").write_text("{")
    assert list(sphinxext.load_results(tmp_path)) == ["ch01"]


def test_toc_parts_follow_the_table_of_contents():
    app = types.SimpleNamespace(confdir=str(ROOT), config=types.SimpleNamespace(external_toc_path=""))
    parts = sphinxext.toc_parts(app)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert [c for c, _ in parts] == [p["caption"] for p in toc["parts"]]
    flat = [d for _, ds in parts for d in ds]
    for p in CHAPTERS:
        assert p.relative_to(ROOT).with_suffix("").as_posix() in flat


def test_no_notebook_file_is_committed():
    """The .md chapters are the only source: generated and executed .ipynb live in _build/ and runs/."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout.split() == []
    ignored = subprocess.run(["git", "check-ignore", "-q", "book/x.ipynb"], cwd=ROOT)
    assert ignored.returncode == 0, "book/*.ipynb must be git-ignored"


# ----------------------------------------------------------------------------------- make lab
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base, token, path, data=None, method="GET"):
    req = urllib.request.Request(f"{base}/{path}", data=None if data is None else json.dumps(data).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                                 method=method)
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.load(r)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_opens_chapters_as_notebooks_and_saves_the_md(tmp_path):
    """`make lab` headless on loopback: a chapter is a notebook in the contents API, saving it
    rewrites the same .md byte for byte (no .ipynb), and its kernel imports this checkout's pdlt."""
    port, token = _free_port(), secrets.token_hex(16)
    venv = Path(sys.executable).parent.parent
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), PYTHONPATH="")
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token}")
    # -o: the environment is set up already (this test runs in it); never reinstall from a test
    cmd = ["make", "-s", "-C", str(ROOT), "-o", f"{venv}/.pdlt-installed", f"VENV={venv}", "lab", f"LAB_ARGS={args}"]
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    scratch = ROOT / "_build" / f"lab-test-{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _api(base, token, "api/status")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not start within 90 s"
                time.sleep(0.5)
        src = CHAPTERS[0]
        rel = src.relative_to(ROOT).as_posix()
        model = _api(base, token, f"api/contents/{rel}")
        assert model["type"] == "notebook"
        cells = model["content"]["cells"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells)
        # double-click opens .md as a notebook (JupyterLab's default viewer set by make lab)
        settings = _api(base, token, "lab/api/settings/@jupyterlab/docmanager-extension:plugin")
        assert settings["settings"]["defaultViewers"]["markdown"] == "Jupytext Notebook"
        # save it (as Lab does, with the kernel's language_info) to a scratch copy: same bytes, no .ipynb
        scratch.mkdir(parents=True)
        content = dict(model["content"], metadata=dict(model["content"]["metadata"],
                                                       language_info={"name": "python"}))
        _api(base, token, f"api/contents/{scratch.relative_to(ROOT).as_posix()}/{src.name}",
             {"type": "notebook", "format": "json", "content": content}, method="PUT")
        assert (scratch / src.name).read_text() == src.read_text()
        assert [p.name for p in scratch.iterdir()] == [src.name]
        # the kernel Lab starts for the chapter (cwd book/) imports pdlt from this checkout's lib/
        sess = _api(base, token, "api/sessions", {"path": rel, "type": "notebook", "name": src.name,
                                                  "kernel": {"name": "python3"}}, method="POST")
        from jupyter_client import BlockingKernelClient

        kc = BlockingKernelClient(connection_file=str(tmp_path / "runtime" / f"kernel-{sess['kernel']['id']}.json"))
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            out = []
            reply = kc.execute_interactive("import os, pdlt; print(pdlt.__file__, os.getcwd())", timeout=60,
                                           output_hook=lambda m: out.append(m["content"].get("text", "")))
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
        pdlt_file, cwd = "".join(out).split()
        assert Path(pdlt_file).resolve() == (ROOT / "lib" / "pdlt" / "__init__.py").resolve()
        assert Path(cwd).resolve() == (ROOT / "book").resolve()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)
    assert not list((ROOT / "book").glob("*.ipynb")), "a .ipynb appeared beside the chapters"


def test_status_shows_full_scale_results_beside_ci(tmp_path, monkeypatch):
    """The status table with a committed full-scale result (none exist yet: no GPU in CI)."""
    ci_dir, full_dir = tmp_path / "results", tmp_path / "full"
    ci_dir.mkdir()
    full_dir.mkdir()
    entry = {"id": "a", "expect": "pass", "passed": True, "ok": True}
    control = {"id": "c", "expect": "fail", "passed": False, "ok": True}
    prov = {"lib_hash": pdlt.book.lib_hash(), "backend": "cpu", "device_kind": "cpu", "x64": True,
            "devices": ["TFRT_CPU_0"], "jax_version": "0.10.2", "machine": "x86_64"}
    (ci_dir / "ch01.json").write_text(json.dumps({"chapter": "ch01", "seed": 0, "wall_s": 3.0, "provenance": prov,
                                                  "started": "2026-11-23T06:00:00+0000", "ledger": [entry, control]}))
    gpu = dict(prov, lib_hash="0123456789ab", backend="gpu", device_kind="NVIDIA H100", devices=["cuda:0"])
    bad = dict(entry, id="b", passed=False, ok=False)
    (full_dir / "ch01.json").write_text(json.dumps({"chapter": "ch01", "seed": 1, "wall_s": 900.0, "runner_wall_s": 950.0,
                                                    "provenance": gpu, "started": "2026-11-24T01:00:00+0000",
                                                    "runner_params": {"samples": 20000000},
                                                    "ledger": [entry, bad, control]}))
    monkeypatch.setenv("PDLT_RESULTS_DIR", str(ci_dir))
    builder = types.SimpleNamespace(get_relative_uri=lambda a, b: b.split("/")[-1] + ".html")
    app = types.SimpleNamespace(
        confdir=str(ROOT), srcdir=str(ROOT), builder=builder, env=types.SimpleNamespace(titles={}),
        config=types.SimpleNamespace(external_toc_path="", pdlt_full_results=str(full_dir)))
    from docutils import nodes

    text = "\n".join(n.astext() for n in sphinxext.render_status(app, "book/status"))
    rows = [r.astext() for n in sphinxext.render_status(app, "book/status") if isinstance(n, nodes.table)
            for r in n.findall(nodes.row)]
    ch01 = [r for r in rows if r.startswith("ch01")]
    assert len(ch01) == 2 and "\nCI\n" in ch01[0] and "\nfull\n" in ch01[1]
    assert "1 / 1 checks passed" in ch01[0] and "none" in ch01[0]
    assert "gpu / NVIDIA H100" in ch01[1] and "0123456789ab (≠ current)" in ch01[1] and ch01[1].endswith("b")
    assert "1 / 2 checks passed" in ch01[1] and "runner 950.0 s" in ch01[1]
    assert "Full-scale runs (provenance)" in text and '"samples": 20000000' in text and "cuda:0" in text


def test_chapter_rerun_box_reports_the_measured_wall_time(monkeypatch):
    """The time a chapter takes is measured and shown by the box, never typed into the prose."""
    monkeypatch.chdir(ROOT / "book")
    ch = pdlt.book.Chapter("ch01", seed=0, samples=10)
    ch._t0 -= 12.4  # as if the chapter had run for 12.4 s
    note = ch.rerun_box().note
    assert note.startswith("This execution took 12 s of wall time")
    assert f"on {pdlt.book.provenance()['backend']} (" in note
    for path in CHAPTERS:
        assert "CPU time at the default" not in path.read_text(), f"{path.name}: a typed timing in the prose"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_valid_full_scale_file(path):
    """book/params/<id>.full.yaml exists, names only the chapter's parameters, passes the runner's
    validation, and changes the scale (the GPU workflow runs every chapter with --scale full)."""
    from pdlt.book.internals import params as _params

    cid = chapter_id(path)
    assert (ROOT / "book" / "params" / f"{cid}.full.yaml").exists(), f"{cid}: no full-scale parameter file"
    specs = parameters_of(path)
    values = resolve_values(path, specs, scale="full")
    _params.validate(values, specs)
    assert values != {k: s.default for k, s in specs.items()}
