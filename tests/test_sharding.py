"""The sharded ensemble path (pdlt.ensembles.internals.sharding) reproduces the single-device per-network samples.

The multi-device checks run in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(the flag must be set before JAX initialises, so it cannot be set inside this pytest process). They are
marked slow (about 30 s of compilation on 2 idle cores): run them with `make test-slow` or `-m slow`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import pdlt
from conftest import ROOT
from pdlt.ensembles import ensemble_map, ensemble_mesh, ensemble_reduce, moments_from_sums

SCRIPT = r"""
import json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import pdlt
from pdlt.ensembles import fast_ensemble_metrics, fast_ensemble_moments
from pdlt.ensembles import ensemble_mesh
assert jax.device_count() == 4, jax.devices()
key = jax.random.key(7)
x = jax.random.normal(jax.random.key(1), (5, 6))
kw = dict(widths=(12, 12, 3), C_b=0.2, C_W=1.7, activation="tanh", n_nets=22)
out = {}
for method in ("conditional", "explicit"):
    G0, z0 = pdlt.ensemble_metrics(key, x, **kw, method=method, progress=False)
    for nd in (1, 4):
        mesh = ensemble_mesh(jax.devices()[:nd])
        G, z = fast_ensemble_metrics(key, x, **kw, method=method, chunk=8, mesh=mesh, progress=False)
        out[f"{method}_{nd}"] = [float(np.abs(G - G0).max()), float(np.abs(z - z0).max()), list(G.shape)]
ref = None
for nd in (1, 4):
    m = fast_ensemble_moments(key, x, **kw, chunk=8, vertex=True, mesh=ensemble_mesh(jax.devices()[:nd]), progress=False)
    m = {k: np.asarray(v) for k, v in m.items() if k != "n"}
    if ref is None:
        ref = m
    else:
        out["moments_rel"] = max(float(np.max(np.abs(m[k] - ref[k]) / (np.abs(ref[k]) + 1e-300))) for k in ref)
G0, _ = pdlt.ensemble_metrics(key, x, **kw, progress=False)
v, se = pdlt.variance_and_se(G0)
out["moments_vs_single"] = [float(np.abs(ref["mean"] - np.asarray(G0.mean(0))).max()),
                            float(np.abs(ref["var"] - np.asarray(v)).max()), float(np.abs(ref["var_se"] - np.asarray(se)).max())]
print("@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PDLT_PROGRESS="0",
               PYTHONPATH=str(ROOT / "lib") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.split("@@", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["conditional", "explicit"])
@pytest.mark.parametrize("nd", [1, 4])
def test_sharded_samples_equal_single_device(four_devices, method, nd):
    dG, dz, shape = four_devices[f"{method}_{nd}"]
    assert shape == [22, 3, 5, 5]
    assert dG <= 1e-12 and dz <= 1e-12


@pytest.mark.slow
def test_sharded_moments_agree_to_rounding(four_devices):
    assert four_devices["moments_rel"] < 1e-12
    dm, dv, dse = four_devices["moments_vs_single"]
    assert dm < 1e-13 and dv < 1e-13 and dse < 1e-13


def _square(key, i, scale):
    return scale * jax.random.normal(jax.random.fold_in(key, i), (3,)) ** 2


def test_map_and_reduce_are_chunking_invariant():
    key = jax.random.key(0)
    mesh = ensemble_mesh()
    a = ensemble_map(_square, key, 37, (2.0,), chunk=5, mesh=mesh, progress=False)
    b = ensemble_map(_square, key, 37, (2.0,), chunk=64, mesh=mesh, progress=False)
    np.testing.assert_array_equal(a, b)
    r = ensemble_reduce(_square, key, 37, (2.0,), chunk=5, mesh=mesh, progress=False)
    m = moments_from_sums(r["n"], r["shift"], r["sums"])
    np.testing.assert_allclose(m["mean"], a.mean(0), rtol=1e-13)
    v, se = pdlt.variance_and_se(a)
    np.testing.assert_allclose(m["var"], v, rtol=1e-12)
    np.testing.assert_allclose(m["var_se"], se, rtol=1e-10)
    # a different ensemble is not reproduced (the equality above is not vacuous)
    c = ensemble_map(_square, jax.random.key(1), 37, (2.0,), chunk=5, mesh=mesh, progress=False)
    assert np.abs(c - a).max() > 0.1


def test_bad_arguments_raise_before_compute():
    with pytest.raises(pdlt.PDLTValueError, match="n_nets"):
        ensemble_map(_square, jax.random.key(0), 0, (1.0,))
    with pytest.raises(pdlt.PDLTValueError, match="chunk"):
        ensemble_reduce(_square, jax.random.key(0), 3, (1.0,), chunk=-1)
    with pytest.raises(pdlt.PDLTValueError, match="devices"):
        ensemble_mesh([])
