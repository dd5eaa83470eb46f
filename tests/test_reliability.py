"""Results are never lost, mixed or stale, and every bad parameter is refused before any compute.

Each test reproduces one way a run could go wrong (two runs into one folder, a write that fails
midway, Ctrl-C, a chapter run outside the book build, YAML 1.1 values, values that pass the type
check but break the kernel, interrupted long ensembles, chunk-dependent standard errors, wrapped
indices, colliding sub-keys, silent NaN) and checks that it is now refused or handled.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt import run
from pdlt.book.internals import params as _params
from pdlt.book.internals import provenance as _provenance
from pdlt.nets import PDLTValueError

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def chapter(cid):
    return next(BOOK.glob(f"{cid}_*.md"))


def resolve(cid, pairs=(), files=(), scale="ci"):
    p = chapter(cid)
    return run.resolve_values(p, run.parameters_of(p), scale=scale, files=files, pairs=pairs)


def refused(capsys, *argv) -> str:
    """The runner's one-line refusal (exit 2) of a command line, before anything runs."""
    rc = run.main([*argv, "--out", "/nonexistent/never-written"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    return err


# ------------------------------------------------------------------ the grammar of -p and -f values
@pytest.mark.parametrize("text, want, value", [
    ("400000", "int", 400000), ("1e6", "int", 1000000), ("1.5e3", "int", 1500), ("2.5E2", "int", 250),
    ("0", "int", 0), ("-3", "int", -3), ("1e6", "float", 1e6), ("0.5", "float", 0.5), ("2", "float", 2.0),
    ("1e-3", "float", 1e-3), ("true", "bool", True), ("False", "bool", False), ("relu", "str", "relu"),
    ("'relu'", "str", "relu"), ("[4, 8]", "list", [4, 8]), ("[1e3,2]", "list", [1000, 2]), ("[]", "list", []),
])
def test_grammar_accepts(text, want, value):
    got = _params.parse_value("x", text, want, [1] if want == "list" else None)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, want, what", [
    ("0400000", "int", "leading zero"), ("1:30", "int", "integer"), ("1.5", "int", "integer"),
    ("2.5e0", "int", "integer"), (".nan", "float", "finite"), ("nan", "float", "finite"), (".inf", "float", "finite"),
    ("1e400", "float", "finite"), ("yes", "bool", "true or false"), ("64", "list", "list"),
])
def test_grammar_refuses(text, want, what):
    with pytest.raises(_params.ParameterError, match=what):
        _params.parse_value("x", text, want, [1] if want == "list" else None)


def test_yaml11_probes_from_the_command_line(capsys):
    assert "leading zero" in refused(capsys, "ch01", "-p", "samples", "0400000")
    assert "`samples` must be of type int: an integer" in refused(capsys, "ch01", "-p", "samples", "1:30")
    assert resolve("ch01", [("samples", "1e6")]) == {"samples": 1000000}
    assert resolve("ch01", [("K", "1.5e3")]) == {"K": 1500.0}
    assert "given twice" in refused(capsys, "ch01", "-p", "samples", "1000", "-p", "samples", "2000")


def test_parameter_files(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("samples: 1e5\nK: 2\n")
    assert resolve("ch01", files=[good]) == {"samples": 100000, "K": 2.0}
    octal = tmp_path / "octal.yaml"
    octal.write_text("samples: 0400000\n")
    assert "leading zero" in refused(capsys, "ch01", "-f", str(octal))
    bad = tmp_path / "bad.yaml"
    bad.write_text("samples: [1\n")
    assert "not valid YAML" in refused(capsys, "ch01", "-f", str(bad))
    twice = tmp_path / "twice.yaml"
    twice.write_text("samples: 1000\nsamples: 2000\n")
    assert "given twice" in refused(capsys, "ch01", "-f", str(twice))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    assert "mapping" in refused(capsys, "ch01", "-f", str(scalar))
    assert "cannot read" in refused(capsys, "ch01", "-f", str(tmp_path / "missing.yaml"))


def test_full_scale_files_follow_the_grammar():
    for p in run.find_chapters(BOOK):
        if (BOOK / "params" / f"{run.chapter_id(p)}.full.yaml").exists():
            values = run.resolve_values(p, run.parameters_of(p), scale="full")
            full = __import__("yaml").safe_load((BOOK / "params" / f"{run.chapter_id(p)}.full.yaml").read_text())
            assert values == full, p  # the grammar reads the committed files as YAML did


def test_list_full_scale_shows_full_values(capsys):
    assert run.main(["cheps", "--list", "--scale", "full"]) == 0
    out = capsys.readouterr().out
    full = __import__("yaml").safe_load((BOOK / "params" / "cheps.full.yaml").read_text())
    assert f"n_nets: int = {full['n_nets']!r} (full scale)" in out
    assert "rule:" in out


# ------------------------------------------------------------------ every parameter has a rule
def test_every_parameter_has_a_rule():
    for p in run.find_chapters(BOOK):
        for s in run.parameters_of(p).values():
            rule = _params.RULES.get(s.name) or _params._fallback_rule(s)
            assert rule is not None, (p.name, s.name)
            assert rule(s.default)[0], (p.name, s.name, s.default)  # the defaults obey their rules
            if s.type == "float":
                assert not rule(float("nan"))[0] and not rule(float("inf"))[0], (p.name, s.name)


def test_values_that_used_to_fail_inside_the_kernel(capsys):
    assert "`K` must be a finite number > 0" in refused(capsys, "ch01", "-p", "K", "-1")
    assert "`K` must be of type float: a finite number" in refused(capsys, "ch01", "-p", "K", ".nan")
    assert "`z` must be of type float: a finite number" in refused(capsys, "ch01", "-p", "z", ".inf")
    assert "`seed`" in refused(capsys, "ch01", "-p", "seed", str(2**63))
    assert resolve("ch01", [("seed", str(2**63 - 1))])["seed"] == 2**63 - 1
    err = refused(capsys, "ch09", "-p", "tanh_nets", "[2000]")
    assert "`tanh_nets`, `tanh_ns`" in err and "one network count per tanh width" in err
    assert "`tanh_nets`" in refused(capsys, "ch09", "-p", "tanh_nets", "[2000, 1000, 500]")
    assert "`tanh_nets`" in refused(capsys, "ch08", "-p", "tanh_nets", "[4000]")
    err = refused(capsys, "cheps", "-p", "depths", "[64]", "-p", "widths", "[32]")
    assert "`depths`, `widths`" in err and "L/n <= 1/4" in err
    assert "peak memory" in refused(capsys, "ch01", "-p", "samples", "1e12")


def test_memory_limit_override(monkeypatch):
    monkeypatch.setenv("PDLT_MEMORY_LIMIT", "1M")
    with pytest.raises(_params.ParameterError, match="`samples`: estimated peak memory"):
        resolve("ch01", [("samples", "100000")])
    monkeypatch.setenv("PDLT_MEMORY_LIMIT", "1T")
    assert resolve("ch01", [("samples", "1e9")]) == {"samples": 10**9}


def test_rules_are_restricted_expressions():
    with pytest.raises(SyntaxError):
        _params.parse_parameters_cell("n: int = 1  # n\n# rule: __import__('os').system('x') | no\n")
    with pytest.raises(SyntaxError, match="not parameters"):
        _params.parse_parameters_cell("n: int = 1  # n\n# rule: m > 0 | m\n")
    specs = _params.parse_parameters_cell("a: list = [1]  # a\nb: list = [2]  # b\n# rule: len(a) == len(b) | same\n")
    _params.validate({"a": [3]}, specs)
    with pytest.raises(_params.ParameterError, match="`a`, `b`: same"):
        _params.validate({"a": [3, 4]}, specs)


# ------------------------------------------------------------------ run directories
def test_second_run_into_one_folder_is_refused(tmp_path, capsys):
    first = run.RunDir(tmp_path / "ch01", "ch01").acquire()
    try:
        first.set_state("running", params={"seed": 1})
        with pytest.raises(run.RunDirBusy, match="in use by another run"):
            run.RunDir(tmp_path / "ch01", "ch01").acquire()
        rc = run.main(["ch01", "-p", "seed", "2", "--out", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and err[-1].startswith("error: ch01:") and "in use" in err[-1]
    finally:
        first.release()
    run.RunDir(tmp_path / "ch01", "ch01").acquire().release()  # free again once the first run ends


def _fake_papermill(monkeypatch, behaviour):
    import papermill

    def execute(nb, out, parameters, **kw):
        d = Path(os.environ["PDLT_RESULTS_DIR"])
        if behaviour == "interrupt":
            raise KeyboardInterrupt
        if behaviour == "fail":
            raise RuntimeError("cell 3 failed")
        (d / "ch01.json").write_text(json.dumps({"chapter": "ch01", "state": "done", "params": parameters,
                                                  "ledger": [{"id": "a", "ok": True}]}))
        Path(out).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute)


def test_run_states_and_no_stale_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv("PDLT_RESULTS_DIR", raising=False)
    out = tmp_path / "ch01"
    _fake_papermill(monkeypatch, "ok")
    res = run._execute(chapter("ch01"), {"seed": 1}, out, "ci")
    assert res["state"] == "done" and json.loads((out / "results.json").read_text())["runner_params"] == {"seed": 1}
    assert json.loads((out / "state.json").read_text())["state"] == "done"
    (out / "ch01.png").write_bytes(b"old figure")

    _fake_papermill(monkeypatch, "fail")
    res = run._execute(chapter("ch01"), {"seed": 2}, out, "ci")
    disk = json.loads((out / "results.json").read_text())
    assert res["state"] == disk["state"] == "failed" and disk["runner_params"] == {"seed": 2}
    assert disk["ledger"] == [] and not (out / "ch01.png").exists()  # the seed-1 results are gone

    _fake_papermill(monkeypatch, "interrupt")
    with pytest.raises(KeyboardInterrupt):
        run._execute(chapter("ch01"), {"seed": 3}, out, "ci")
    assert json.loads((out / "state.json").read_text())["state"] == "interrupted"
    assert json.loads((out / "results.json").read_text())["state"] == "interrupted"
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------ atomic writes, strict JSON
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    f = tmp_path / "results.json"
    f.write_text('{"old": 1}')

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_provenance.os, "fsync", full_disk)
    with pytest.raises(OSError):
        _provenance.atomic_write(f, '{"new": 2}' * 1000)
    assert f.read_text() == '{"old": 1}' and os.listdir(tmp_path) == ["results.json"]


def test_chapter_finish_is_atomic_and_marks_running(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("PDLT_RESULTS_DIR", str(tmp_path))
    (tmp_path / "chX.json").write_text('{"chapter": "chX", "state": "done", "ledger": [{"old": 1}]}')
    (tmp_path / "chX.png").write_bytes(b"old")
    ch = pdlt.book.Chapter("chX", seed=0)
    assert json.loads((tmp_path / "chX.json").read_text())["state"] == "running"  # the old result is gone
    assert not (tmp_path / "chX.png").exists()
    fig = plt.figure()
    ch.headline(fig, caption="c")
    plt.close(fig)
    assert (tmp_path / "chX.png").read_bytes()[:4] == b"\x89PNG"
    ch.check("inf", equation="-", quantity="q", theory=1.0, measured=float("inf"), se=1.0)
    monkeypatch.setattr(_provenance.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(OSError):
        ch.finish(show=False)
    assert json.loads((tmp_path / "chX.json").read_text())["state"] == "running"
    monkeypatch.undo()
    monkeypatch.setenv("PDLT_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("PDLT_STRICT", "0")
    ch.finish(show=False)
    text = (tmp_path / "chX.json").read_text()
    res = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert res["state"] == "done" and res["ledger"][0]["measured"] is None
    assert "ledger[0].measured" in res["nonfinite"]


def test_dumps_is_strict_json():
    s = _provenance.dumps({"a": [1.0, float("nan")], "b": np.float64(np.inf), "c": np.arange(2)})
    assert json.loads(s) == {"a": [1.0, None], "b": None, "c": [0, 1], "nonfinite": ["a[1]", "b"]}


# ------------------------------------------------------------------ results outside the book build
def test_chapters_outside_the_book_build_write_to_runs(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    monkeypatch.delenv("PDLT_RESULTS_DIR", raising=False)
    assert pdlt.book.results_dir() == tmp_path.resolve() / "runs" / "interactive"
    monkeypatch.setenv("PDLT_RESULTS_DIR", str(tmp_path / "mine"))
    assert pdlt.book.results_dir() == tmp_path / "mine"


def test_pages_show_toc_chapters_and_flag_stale(tmp_path):
    prov = {"lib_hash": _provenance.lib_hash(), "versions": _provenance.versions()}
    specs = run.parameters_of(chapter("ch01"))
    defaults = {s.name: s.default for s in specs.values()}

    def write(cid, **kw):
        res = {"chapter": cid, "state": "done", "params": defaults, "provenance": prov, "ledger": []} | kw
        (tmp_path / f"{cid}.json").write_text(json.dumps(res))

    write("ch01")
    write("zz99")  # not a chapter of _toc.yml (e.g. an experiment run into the same folder)
    got = pdlt.book.book_results(tmp_path, ROOT)
    assert set(got) == {"ch01"} and got["ch01"]["_stale"] == []
    for kw, why in [({"params": defaults | {"samples": 1000}}, "parameters samples=1000"),
                    ({"provenance": prov | {"lib_hash": "000000000000"}}, "library 000000000000"),
                    ({"provenance": prov | {"versions": prov["versions"] | {"jax": "0.0.1"}}}, "jax 0.0.1"),
                    ({"state": "running"}, "state running")]:
        write("ch01", **kw)
        assert any(why in w for w in pdlt.book.book_results(tmp_path, ROOT)["ch01"]["_stale"]), why


def test_build_hash_sees_dependency_versions(monkeypatch):
    h = _provenance.build_hash()
    monkeypatch.setattr(_provenance, "versions", lambda: {"jax": "0.0.1"})
    assert _provenance.build_hash() != h
    assert "build_hash" in (ROOT / "Makefile").read_text()


def test_make_lab_from_a_path_with_spaces(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    d = tmp_path / "a checkout with spaces"
    d.mkdir()
    for f in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / f, d / f)
    venv = d / "fakevenv"  # (make cannot name a target with a space; the checkout path may have them)
    (venv / "bin").mkdir(parents=True)
    jl = venv / "bin" / "jupyter"
    jl.write_text('#!/bin/sh\nprintf "%s\\n" "$JUPYTERLAB_SETTINGS_DIR" "$PDLT_RESULTS_DIR" "$@" > "$PDLT_RESULTS_DIR/args"\n')
    jl.chmod(0o755)
    (venv / "bin" / "python").symlink_to(shutil.which("true"))
    (venv / ".pdlt-installed").touch()
    proc = subprocess.run(["make", "lab", f"VENV={venv.name}"], cwd=d, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = (d / "runs" / "lab" / "args").read_text().splitlines()
    assert args[0] == str(d / "_build" / "lab" / "user-settings") and args[1] == str(d / "runs" / "lab")
    assert f"--ServerApp.root_dir={d}" in args
    assert (d / "_build" / "lab" / "user-settings" / "@jupyterlab" / "docmanager-extension"
            / "plugin.jupyterlab-settings").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [d.name]  # nothing written beside the checkout


# ------------------------------------------------------------------ ensembles
X2 = jnp.array([[1.0, 0.5, 0.2], [0.3, -1.0, 0.4]])
KW = dict(widths=(8, 8, 8), C_b=0.1, C_W=1.5, activation="tanh", n_nets=300)


def test_cov_se_does_not_depend_on_chunk():
    G, _ = pdlt.ensemble_metrics(jax.random.key(3), X2, **KW)
    G = np.asarray(G).reshape(300, 3, 4)[:, 1:]
    cov, se = pdlt.stats.covariance_and_se(G[:, :, :, None], G[:, :, None, :])
    for chunk in (7, 64, 300):
        m = pdlt.ensemble_moments(jax.random.key(3), X2, chunk=chunk, **KW)
        np.testing.assert_allclose(m.cov_se.reshape(3, 4, 4)[1:], se, rtol=1e-10)
        np.testing.assert_allclose(m.cov.reshape(3, 4, 4)[1:], cov, rtol=1e-10, atol=1e-14)


def test_interrupted_moments_resume_bitwise(tmp_path, monkeypatch):
    from pdlt.ensembles.internals import sharding as _sharding

    kw = dict(widths=(6, 6), C_b=0.0, C_W=2.0, n_nets=400, chunk=40, vertex=True)
    ref = pdlt.ensembles.fast_ensemble_moments(jax.random.key(1), X2, **kw)
    ck = tmp_path / "moments.ckpt"
    real, calls = _sharding._reduce_chunk, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 7:  # interrupted at 60 %
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(_sharding, "_reduce_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        pdlt.ensembles.fast_ensemble_moments(jax.random.key(1), X2, checkpoint=ck,
                                             checkpoint_every=4, **kw)
    assert ck.exists()
    monkeypatch.setattr(_sharding, "_reduce_chunk", real)
    with pytest.raises(PDLTValueError, match="another computation"):
        pdlt.ensembles.fast_ensemble_moments(jax.random.key(2), X2, checkpoint=ck, **kw)
    calls.clear()
    monkeypatch.setattr(_sharding, "_reduce_chunk", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    got = pdlt.ensembles.fast_ensemble_moments(jax.random.key(1), X2, checkpoint=ck,
                                               checkpoint_every=4, **kw)
    assert len(calls) == 4 and not ck.exists()  # only chunks 7..10 were computed again
    for k in ("mean", "mean_se", "var", "var_se", "cov"):
        assert np.array_equal(got[k], ref[k]), k


def test_interrupted_ensemble_moments_resume_bitwise(tmp_path, monkeypatch):
    from pdlt.ensembles.internals import ensembles as _ens

    kw = dict(widths=(6, 6), C_b=0.1, C_W=1.5, activation="tanh", n_nets=300, chunk=30, order=2)
    ref = pdlt.ensemble_moments(jax.random.key(1), X2, **kw)
    ck = tmp_path / "moments.ckpt"
    real, calls = _ens._padded_batch, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 6:  # interrupted in chunk 6 of 10
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(_ens, "_padded_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        pdlt.ensemble_moments(jax.random.key(1), X2, checkpoint=ck, checkpoint_every=3, **kw)
    assert ck.exists()
    monkeypatch.setattr(_ens, "_padded_batch", real)
    with pytest.raises(PDLTValueError, match="ensemble_moments: `checkpoint` .* another computation"):
        pdlt.ensemble_moments(jax.random.key(1), X2, checkpoint=ck, **{**kw, "C_W": 1.6})
    calls.clear()
    monkeypatch.setattr(_ens, "_padded_batch", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    got = pdlt.ensemble_moments(jax.random.key(1), X2, checkpoint=ck, checkpoint_every=3, **kw)
    assert len(calls) == 5 and not ck.exists()  # chunks 6..10 computed again (5 saved at the interruption)
    for f in ref._fields:
        assert np.array_equal(getattr(got, f), getattr(ref, f)), f


def test_network_indices_are_64_bit():
    from pdlt.ensembles import network_key
    from pdlt.ensembles.internals.sharding import _indices, ensemble_mesh

    key = jax.random.key(0)
    kd = lambda i, dt: np.asarray(jax.random.key_data(jax.jit(network_key)(key, jnp.asarray(i, dt))))
    for i in (0, 5, 2**31 - 1):
        assert np.array_equal(kd(i, jnp.int32), kd(i, jnp.int64))  # keys below 2^31 unchanged
    assert not np.array_equal(kd(5, jnp.int64), kd(5 + 2**32, jnp.int64))
    idx = _indices(2**31 + 5, 4, ensemble_mesh())
    assert idx.dtype == jnp.int64 and int(idx[0]) == 2**31 + 5


def test_sub_keys_of_a_grid_are_distinct():
    depths, widths = [4, 5], [32, 1032]
    chain = {tuple(np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.fold_in(jax.random.key(0), L), n))))
             for L in depths for n in widths}
    assert len(chain) == 4
    assert len({1000 * L + n for L in depths for n in widths}) == 3  # the additive salt collided
    src = chapter("cheps").read_text()
    assert "fold_in(jax.random.fold_in(ch.key, Ld), n)" in src and "1000 * Ld + n" not in src


def test_subkey_is_a_fold_in_chain_distinct_over_a_grid():
    from pdlt.ensembles import subkey

    key = jax.random.key(0)
    kd = lambda k: tuple(np.asarray(jax.random.key_data(k)))
    grid = [(tag, i, j) for tag in (1, 10, 100) for i in range(12) for j in range(12)]
    keys = {kd(subkey(key, *p)) for p in grid}
    assert len(keys) == len(grid)  # every grid point its own key
    assert len({tag + 10 * i + j for tag, i, j in grid}) < len(grid)  # an arithmetic salt collides here
    assert kd(subkey(key, 3, 4)) == kd(jax.random.fold_in(jax.random.fold_in(key, 3), 4))
    assert kd(subkey(key)) == kd(key) and kd(subkey(key, 1)) != kd(subkey(key, 1, 0))
    assert kd(subkey(key, np.int64(7))) == kd(subkey(key, 7))
    for bad in (0.5, -1, 2**32, True):
        with pytest.raises(PDLTValueError, match=r"subkey: `path\[1\]` must be an integer"):
            subkey(key, 2, bad)
    with pytest.raises(PDLTValueError, match="subkey: `key` must be a PRNG key"):
        subkey(0, 1)


def test_chapters_build_no_sub_key_by_arithmetic():
    import re

    call = re.compile(r"fold_in\(\s*[\w.\[\]]+\s*,\s*([^()]*?)\)", re.S)
    sub = re.compile(r"subkey\(\s*[\w.\[\]]+\s*,\s*([^()]*?)\)", re.S)
    constant = re.compile(r"[\d\s*+]+")      # 10**6 + 18: a constant tag, the same at every grid point
    cids = [p.stem.split("_")[0] for p in sorted(BOOK.glob("*.md"))
            if re.match(r"(ch|app|beyond)", p.stem)]
    assert len(cids) >= 20
    for cid in cids:
        src = chapter(cid).read_text()
        salts = [m.group(1) for pat in (call, sub) for m in pat.finditer(src)
                 for arg in m.group(1).split(",") if re.search(r"[+*]", arg) and not constant.fullmatch(arg)
                 and not arg.strip().startswith("*")
                 and not re.fullmatch(r"\s*10\s*\*\*\s*6\s*\+\s*task\s*", arg)]  # ch10: a rule bounds `task`
        assert not salts, (cid, salts)


# ------------------------------------------------------------------ library inputs
def test_library_refuses_impossible_inputs():
    with pytest.raises(PDLTValueError, match="`K1` must be finite"):
        pdlt.kernel_recursion(float("nan"), C_b=0.0, C_W=2.0, L=3)
    with pytest.raises(PDLTValueError, match="`K1`.*>= 0"):
        pdlt.kernel_recursion(-1.0, C_b=0.0, C_W=2.0, L=3)
    with pytest.raises(PDLTValueError, match="`K1` must be positive semi-definite"):
        pdlt.kernel_recursion(np.array([[1.0, 2.0], [2.0, 1.0]]), C_b=0.0, C_W=2.0, L=3)
    with pytest.raises(PDLTValueError, match="`K` must be positive semi-definite"):
        pdlt.gauss.gaussian_expectation2(lambda a, b: a * b, jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(PDLTValueError, match="`x` must be finite"):
        pdlt.ensemble_metrics(jax.random.key(0), jnp.array([[1.0, jnp.inf]]), widths=(4,), C_b=0.0, C_W=1.0,
                              n_nets=4)
    with pytest.raises(PDLTValueError, match="`x` must be finite"):
        pdlt.theory.input_kernel(jnp.array([[jnp.nan, 1.0]]), C_b=0.0, C_W=1.0)
    with pytest.raises(PDLTValueError, match="`key` must be a PRNG key"):
        pdlt.ensemble_metrics(0, X2, widths=(4,), C_b=0.0, C_W=1.0, n_nets=4)
    with pytest.raises(PDLTValueError, match="`key` must be a PRNG key"):
        pdlt.ensembles.fast_ensemble_moments(0, X2, widths=(4,), C_b=0.0, C_W=1.0, n_nets=4)
    with pytest.raises(PDLTValueError, match="`mesh` must be a jax.sharding.Mesh"):
        pdlt.ensembles.fast_ensemble_moments(jax.random.key(0), X2, widths=(4,), C_b=0.0, C_W=1.0, n_nets=4, mesh="gpu")
    with pytest.raises(PDLTValueError, match="`dtype` must be a floating-point dtype"):
        pdlt.ensembles.fast_ensemble_metrics(jax.random.key(0), X2, widths=(4,), C_b=0.0, C_W=1.0, n_nets=4, dtype=jnp.int32)
    G, _ = pdlt.ensemble_metrics(jax.random.key(0), np.array([[1, 2, 3]]), widths=(4,), C_b=0.0, C_W=1.0, n_nets=4)
    assert jnp.issubdtype(G.dtype, jnp.floating)  # integer inputs are promoted, not rejected


def test_one_warning_for_non_finite_results():
    with pytest.warns(RuntimeWarning, match="kernel_recursion: .* non-finite"):
        pdlt.kernel_recursion(1.0, C_b=0.0, C_W=1e30, L=40, activation="linear")
    with pytest.warns(RuntimeWarning, match="fast_ensemble_metrics: .* non-finite .*float32"):
        pdlt.ensembles.fast_ensemble_metrics(jax.random.key(0), X2, widths=(4,) * 30, C_b=0.0, C_W=1e3, n_nets=2,
                                   activation="linear", dtype=jnp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdlt.kernel_recursion(1.0, C_b=0.0, C_W=2.0, L=4)  # finite results: no warning


# every recursion of pdlt.theory and every sampler or estimator of pdlt.ensembles, overflowing on
# purpose at depth 3 (linear activation: the kernel grows as C_W^ell; C_W = 1e30 overflows float32,
# 1e200 float64)
_X1, _XM = jnp.ones(3), jnp.ones((1, 3))
_BIG = {"float32": dict(C_b=0.0, C_W=1e30, activation="linear"), "float64": dict(C_b=0.0, C_W=1e200, activation="linear")}


def _recursions(big):
    res = dict(xi=1.0, gamma=1.0, **big)
    return {
        "ntk_recursion": lambda: pdlt.theory.ntk_recursion(_XM, L=3, **big),
        "ntk_statistics": lambda: pdlt.theory.ntk_statistics(_XM, L=3, **big),
        "ntk_fluctuations": lambda: pdlt.theory.ntk_fluctuations(_X1, L=3, **big),
        "relu_ntk_fluctuations_exact": lambda: pdlt.theory.relu_ntk_fluctuations_exact(_X1, n=8, L=3,
                                                                                        lambda_W=big["C_W"] ** 0.8),
        "vertex_recursion": lambda: pdlt.theory.vertex_recursion(1.0, L=3, **big),
        "vertex_recursion_multi": lambda: pdlt.theory.vertex_recursion_multi(np.eye(2), L=3, **big),
        "residual_kernel_recursion": lambda: pdlt.theory.residual_kernel_recursion(1.0, L=3, **res),
        "residual_ntk_recursion": lambda: pdlt.theory.residual_ntk_recursion(_XM, L=3, **res),
        "residual_vertex_recursion": lambda: pdlt.theory.residual_vertex_recursion(1.0, L=3, **res),
        "resnet_kernel_recursion": lambda: pdlt.theory.resnet_kernel_recursion(1.0, L=3, alpha=0.0, **big),
    }


def _samplers(big):
    key, res = jax.random.key(0), dict(xi=1.0, gamma=1.0, **big)
    return {
        "ntk_conditional_samples": lambda: pdlt.ensembles.ntk_conditional_samples(key, _X1, n=3, L=3, n_nets=2, **big),
        "ntk_conditional_samples_multi": lambda: pdlt.ensembles.ntk_conditional_samples_multi(key, X2, n=3, L=3,
                                                                                              n_nets=2, **big),
        "ensemble_ntk": lambda: pdlt.ensembles.ensemble_ntk(key, X2, widths=(3,) * 3, n_nets=2, **big),
        "sample_network_metrics": lambda: pdlt.ensembles.sample_network_metrics(key, 0, X2, widths=(3,) * 3, **big),
        "weights_ensemble_metrics": lambda: pdlt.ensembles.weights_ensemble_metrics(
            key, X2, widths=(3,) * 3, sampler=pdlt.ensembles.weight_sampler("gaussian"), n_nets=2, **big),
        "residual_ensemble": lambda: pdlt.theory.residual_ensemble(key, _X1, n=3, L=3, n_nets=2, **res),
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_recursion_warns_on_overflow(dtype):
    with jax.enable_x64(dtype == "float64"):
        for name, call in _recursions(_BIG[dtype]).items():
            with pytest.warns(RuntimeWarning, match=f"{name}: .* non-finite .*{dtype}") as rec:
                call()
            assert len([w for w in rec if "non-finite" in str(w.message)]) == 1, name  # once, under its own name
        with pytest.warns(RuntimeWarning, match="resnet_fluctuation: .* non-finite .*float64"):  # NumPy float64
            pdlt.theory.resnet_fluctuation(1.0, L=3, alpha=0.0, **_BIG["float64"])  # (was an OverflowError)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_sampler_and_estimator_warns_on_overflow(dtype):
    with jax.enable_x64(dtype == "float64"):
        samplers = _samplers(_BIG[dtype])
        for name, call in samplers.items():
            with pytest.warns(RuntimeWarning, match=f"{name}: .* non-finite .*{dtype}"):
                out = call()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = samplers["ntk_conditional_samples"]()
        for est in (pdlt.ensembles.ntk_fluctuation_estimates, pdlt.ensembles.relative_ntk_variance_estimate):
            with pytest.warns(RuntimeWarning, match=f"{est.__name__}: .* non-finite"):
                est(s)
        del out


def test_recursions_and_samplers_refuse_impossible_inputs():
    xinf, key = jnp.array([[1.0, jnp.inf, 0.0]]), jax.random.key(0)
    ok = dict(C_b=0.0, C_W=1.0)
    refusals = [
        (lambda: pdlt.theory.ntk_recursion(xinf, L=2, **ok), "ntk_recursion: `x` must be finite"),
        (lambda: pdlt.theory.ntk_statistics(xinf, L=2, **ok), "ntk_statistics: `x`"),
        (lambda: pdlt.theory.relu_ntk_fluctuations_exact(xinf[0], n=4, L=2), "`x` must be finite"),
        (lambda: pdlt.theory.residual_ntk_recursion(xinf, xi=1.0, gamma=1.0, L=2, **ok), "`x` must be finite"),
        (lambda: pdlt.theory.vertex_recursion(-1.0, L=2, **ok), "`K1` must be > 0"),
        (lambda: pdlt.theory.vertex_recursion_multi(np.array([[1.0, 2.0], [2.0, 1.0]]), L=2, **ok),
         "vertex_recursion_multi: `K1` must be positive semi-definite"),
        (lambda: pdlt.theory.residual_kernel_recursion(-1.0, xi=1.0, gamma=1.0, L=2, **ok), "`K1`.*>= 0"),
        (lambda: pdlt.theory.resnet_kernel_recursion(float("nan"), L=2, C_W=1.0), "`K0` must be finite"),
        (lambda: pdlt.theory.resnet_kernel_ode(-1.0, t_grid=[0.0, 1.0], C_W=1.0), "`K0`.*>= 0"),
        (lambda: pdlt.ensembles.ntk_conditional_samples(key, xinf[0], n=4, L=2, n_nets=2, **ok), "`x` must be finite"),
        (lambda: pdlt.ensembles.ntk_conditional_samples_multi(key, xinf, n=4, L=2, n_nets=2, **ok),
         "`x` must be finite"),
        (lambda: pdlt.ensembles.ensemble_ntk(key, xinf, widths=(4,), n_nets=2, **ok), "ensemble_ntk: `x` must be finite"),
        (lambda: pdlt.ensembles.weights_ensemble_metrics(key, xinf, widths=(4,), n_nets=2, C_W=1.0,
                                                         sampler=pdlt.ensembles.weight_sampler("gaussian")),
         "weights_ensemble_metrics: `x` must be finite"),
        (lambda: pdlt.theory.residual_ensemble(key, xinf[0], n=4, L=2, xi=1.0, gamma=1.0, n_nets=2, **ok),
         "residual_ensemble: `x` must be finite"),
        (lambda: pdlt.theory.resnet_ensemble(key, xinf, n=4, L=2, n_nets=2, C_W=1.0), "resnet_ensemble: `x` must be finite"),
    ]
    for call, msg in refusals:
        with pytest.raises(PDLTValueError, match=msg):
            call()
