"""Shared test set-up: float64, a fixed z for statistical checks, and the built book."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
os.environ.setdefault("PDLT_PROGRESS", "0")

ROOT = Path(__file__).resolve().parents[1]
Z = 4.5  # two-sided false-alarm rate 6.8e-6 per statistical assertion


@pytest.fixture(scope="session")
def built_book():
    """Build the book once per session (every chapter executed at its CI-scale defaults).

    Forces execution (the jupyter-cache is dropped) so that the tests never see stale outputs.
    Returns the path of ``_build``.
    """
    build = ROOT / "_build"
    for sub in (".jupyter_cache", "results", "jupyter_execute", "html"):
        shutil.rmtree(build / sub, ignore_errors=True)
    env = dict(os.environ, PDLT_RESULTS_DIR=str(build / "results"), PDLT_PROGRESS="0")
    exe = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(exe), "build", str(ROOT), "-W", "-n", "--keep-going", "--all"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    log = build / "book-build.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}); full log in {log}\n{tail}")
    return build


def pytest_collection_modifyitems(config, items):
    """Only tests/test_book.py may use the built book: ``make test`` distributes test files over
    xdist workers (``--dist loadfile``), so one file means one build (two would share _build)."""
    stray = [i.nodeid for i in items if "built_book" in getattr(i, "fixturenames", ())
             and i.path.name != "test_book.py"]
    if stray:
        raise pytest.UsageError("tests using `built_book` must live in tests/test_book.py: " + ", ".join(stray))
