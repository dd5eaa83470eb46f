"""Unit tests of the foundation: Gaussian expectations, activations, validation, ledger, runner."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

import pdlt
from pdlt.book.internals import params as _params
from pdlt.run import chapter_id, find_chapters, parameters_of


# ----------------------------------------------------------------- Gaussian expectations
@pytest.mark.parametrize("m", range(1, 9))
def test_even_moments_exact(m):
    K = 1.7
    got = float(pdlt.gaussian_expectation(lambda z: z ** (2 * m), K))
    assert got == pytest.approx(math.prod(range(2 * m - 1, 0, -2)) * K**m, rel=1e-12)


def test_odd_moments_vanish():
    assert abs(float(pdlt.gaussian_expectation(lambda z: z**5 + z, 2.0))) < 1e-12


def test_two_variable_quadrature_matches_wick():
    K = jnp.array([[1.3, 0.4], [0.4, 0.7]])
    got = float(pdlt.gauss.gaussian_expectation2(lambda a, b: a**2 * b**2, K))
    assert got == pytest.approx(pdlt.gauss.wick_expectation(K, (0, 0, 1, 1)), rel=1e-12)
    got = float(pdlt.gauss.gaussian_expectation2(lambda a, b: a**3 * b, K))
    assert got == pytest.approx(pdlt.gauss.wick_expectation(K, (0, 0, 0, 1)), rel=1e-12)


def test_wick_counts_pairings():
    eye = np.eye(1)
    assert pdlt.gauss.wick_expectation(eye, (0,) * 6) == 15.0  # 5!! pairings
    assert pdlt.gauss.wick_expectation(eye, (0,) * 5) == 0.0


@pytest.mark.parametrize("name", ["relu", "linear", "leaky_relu"])
def test_scale_invariant_closed_form_matches_quadrature(name):
    """The arc-cosine closed form against brute 2-D quadrature on a fine grid with the kink split."""
    act = pdlt.get_activation(name)
    K = jnp.array([[1.2, 0.5], [0.5, 0.9]])
    closed = pdlt.kernel_map(name, K)[0, 1]
    # integrate in polar-free form: z1 = s1 x, z2 = c x + r y, on a large fine grid
    x = jnp.linspace(-12, 12, 6001)
    w = jnp.exp(-x**2 / 2) / jnp.sqrt(2 * jnp.pi) * (x[1] - x[0])
    s1 = jnp.sqrt(K[0, 0]); c = K[0, 1] / s1; r = jnp.sqrt(K[1, 1] - c**2)
    z1 = s1 * x[:, None]; z2 = c * x[:, None] + r * x[None, :]
    brute = jnp.sum(w[:, None] * w[None, :] * act.sigma(z1) * act.sigma(z2))
    assert float(closed) == pytest.approx(float(brute), rel=1e-5)


def test_relu_kernel_identity_at_coincident_inputs():
    K = jnp.array([[2.0, 2.0], [2.0, 2.0]])
    assert float(pdlt.kernel_map("relu", K)[0, 1]) == pytest.approx(1.0, rel=1e-12)  # <relu^2>_2 = 1


@pytest.mark.parametrize("name", ["tanh", "sin", "gelu", "swish", "sigmoid", "softplus"])
def test_derivatives_match_autodiff(name):
    act = pdlt.get_activation(name)
    z = jnp.linspace(-3, 3, 13)
    np.testing.assert_allclose(act.dsigma(z), jax.vmap(jax.grad(act.sigma))(z), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(act.d2sigma(z), jax.vmap(jax.grad(jax.grad(act.sigma)))(z), rtol=1e-9, atol=1e-12)


def test_kernel_recursion_relu_critical_preserves_K():
    Ks = pdlt.kernel_recursion(1.3, C_b=0.0, C_W=2.0, L=20, activation="relu")
    np.testing.assert_allclose(Ks, 1.3, rtol=1e-12)


def test_ntk_recursion_relu_closed_form():
    x = jnp.ones((1, 4))
    K, T = pdlt.ntk_recursion(x, C_b=0.0, C_W=2.0, L=6, activation="relu", lambda_b=1.0, lambda_W=1.0)
    # Theta^(l) = l (lambda_b + lambda_W K/2) at criticality with K = 2 |x|^2 / n0 = 2
    np.testing.assert_allclose(T[:, 0, 0], np.arange(1, 7) * (1 + 2.0 / 2), rtol=1e-12)


def test_samplers_agree_in_mean():
    x = jnp.array([[1.0, 0.5, -0.2], [0.3, -1.0, 0.8]])
    kw = dict(widths=(32, 32, 1), C_b=0.1, C_W=1.5, activation="tanh", n_nets=3000)
    Gc, _ = pdlt.ensemble_metrics(jax.random.key(1), x, method="conditional", **kw)
    Ge, _ = pdlt.ensemble_metrics(jax.random.key(2), x, method="explicit", **kw)
    mc, sc = pdlt.mean_and_se(Gc[:, -1].reshape(3000, -1))
    me, se = pdlt.mean_and_se(Ge[:, -1].reshape(3000, -1))
    assert np.all(np.abs(mc - me) <= 4.5 * np.sqrt(sc**2 + se**2))


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize("call, word", [
    (lambda: pdlt.kernel_recursion(1.0, C_b=0.0, C_W=-1.0, L=3), "C_W"),
    (lambda: pdlt.kernel_recursion(1.0, C_b=0.0, C_W=1.0, L=0), "L"),
    (lambda: pdlt.kernel_recursion(1.0, C_b=0.0, C_W=1.0, L=3, activation="tahn"), "activation"),
    (lambda: pdlt.ensembles.init_mlp(jax.random.key(0), 3, (4, 0), C_W=1.0), "widths"),
    (lambda: pdlt.ntk_recursion(jnp.ones((2, 3)), C_b=0.0, C_W=1.0, L=3, lambda_W=(1.0, 1.0)), "lambda_W"),
    (lambda: pdlt.ntk_recursion(jnp.ones((2, 3)), C_b=0.0, C_W=1.0, L=2, lambda_b=-1.0), "lambda_b"),
])
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_parameters_cell_parsing_and_rules():
    specs = _params.parse_parameters_cell("seed: int = 0  # PRNG seed\nwidths: list = [4, 8]  # widths n\n")
    assert specs["seed"].help == "PRNG seed" and specs["widths"].default == [4, 8]
    _params.validate({"seed": 3, "widths": [16]}, specs)
    for bad, word in [({"seeds": 1}, "unknown parameter `seeds`"), ({"seed": "x"}, "type int"),
                      ({"widths": [0]}, "widths"), ({"seed": -1}, "seed")]:
        with pytest.raises(_params.ParameterError, match=word):
            _params.validate(bad, specs)


# ----------------------------------------------------------------- ledger
def test_ledger_rule_and_controls():
    led = pdlt.Ledger("chX")
    a = led.check("a", equation="eq", quantity="q", theory=1.0, measured=1.04, se=0.01, null=0.0)
    b = led.check("b", equation="eq", quantity="q", theory=1.0, measured=1.06, se=0.01, null=0.0)
    c = led.check("c", equation="eq", quantity="q", theory=1.0, measured=1.06, se=0.01, expect="fail", null=1.0)
    assert a.passed and a.ok and not b.passed and not b.ok and c.ok
    assert led.failures() == [b]
    with pytest.raises(ValueError, match="duplicate"):
        led.check("a", equation="eq", quantity="q", theory=1.0, measured=1.0)
    assert not pdlt.book.within(float("nan"), 1.0, 1.0)


# ----------------------------------------------------------------- runner
def test_chapters_are_discovered_in_toc_order():
    chapters = find_chapters(ROOT / "book")
    assert chapters and chapter_id(chapters[0]) == "ch01"
    for p in chapters:
        assert parameters_of(p), f"{p} has no parameters cell"


def test_ledger_and_status_pages_execute_after_chapters():
    """Sphinx reads documents in sorted order; the pages that read results must sort last."""
    chapters = [p.relative_to(ROOT).with_suffix("").as_posix() for p in find_chapters(ROOT / "book")]
    for page in ("book/ledger", "book/status"):
        assert all(c < page for c in chapters), f"{page} would execute before some chapter"


@pytest.mark.parametrize("args, word", [
    (["-p", "width", "4"], "unknown parameter `width`"),
    (["-p", "samples", "0"], "`samples` must be an integer >= 1"),
    (["-p", "seed", "abc"], "`seed` must be of type int"),
])
def test_runner_rejects_bad_parameters_before_compute(tmp_path, args, word):
    proc = subprocess.run([sys.executable, "-m", "pdlt.run", "book/ch01_pretraining.md", *args,
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert word in proc.stderr and proc.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir()), "nothing may run before validation"


def test_runner_executes_a_chapter_with_parameters(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pdlt.run", "ch01", "-p", "samples", "100000", "-p", "seed", "7",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((tmp_path / "ch01" / "results.json").read_text())
    assert res["params"]["samples"] == 100000 and res["seed"] == 7
    assert res["provenance"]["lib_hash"] == pdlt.book.lib_hash()
    assert res["ledger"] and all(e["ok"] for e in res["ledger"])
    assert (tmp_path / "ch01" / "ch01.ipynb").exists()


# ----------------------------------------------------------------- empirical NTK and a GD step
def _net(key=0, widths=(7, 5, 3), n0=4, act="tanh"):
    params = pdlt.ensembles.init_mlp(jax.random.key(key), n0, widths, C_b=0.3, C_W=1.4)
    x = jax.random.normal(jax.random.key(key + 100), (3, n0))
    return params, x


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_empirical_ntk_matches_autodiff(act):
    params, x = _net(act=act)
    lb, lw = (0.5, 1.0, 2.0), (1.5, 0.7, 1.1)
    fast = pdlt.empirical_ntk(params, x, act, lambda_b=lb, lambda_W=lw)
    ref = pdlt.learning.empirical_ntk_autodiff(params, x, act, lambda_b=lb, lambda_W=lw)
    np.testing.assert_allclose(fast, ref, rtol=1e-11, atol=1e-12)
    per = pdlt.empirical_ntk(params, x, act, lambda_b=lb, lambda_W=lw, per_layer=True)
    np.testing.assert_allclose(per.sum(0), fast, rtol=1e-12)


def test_empirical_ntk_matches_finite_differences():
    """H_{i1 i2; a1 a2} = sum_mu lambda_mu dz_{i1;a1}/dθ_mu dz_{i2;a2}/dθ_mu, derivatives by central differences."""
    params, x = _net(widths=(4, 2))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    lam = jax.flatten_util.ravel_pytree(tuple((jnp.full(W.shape, 0.8 / W.shape[1]), jnp.full(b.shape, 1.3))
                                              for W, b in params))[0]
    f = lambda v: pdlt.ensembles.mlp_apply(unravel(v), x, "tanh").ravel()   # noqa: E731
    eps = 1e-6
    J = jnp.stack([(f(flat + eps * e) - f(flat - eps * e)) / (2 * eps) for e in jnp.eye(flat.size)], axis=1)
    H_fd = (J * lam) @ J.T                                        # ((a,i), (b,j))
    H = pdlt.empirical_ntk(params, x, "tanh", lambda_b=1.3, lambda_W=0.8)
    N, nL = 3, 2
    np.testing.assert_allclose(H_fd.reshape(N, nL, N, nL).transpose(1, 3, 0, 2), H, rtol=1e-7, atol=1e-9)


def test_gd_step_moves_outputs_by_minus_eta_H_eps():
    params, x = _net()
    y = jnp.zeros((3, 3))
    H = pdlt.empirical_ntk(params, x, "tanh", lambda_b=0.5, lambda_W=2.0)
    eps = pdlt.ensembles.mlp_apply(params, x, "tanh") - y
    pred = -jnp.einsum("ijab,bj->ai", H, eps)
    res = []
    for eta in (1e-2, 5e-3, 2.5e-3):
        new = pdlt.learning.gd_step(params, x, y, eta=eta, activation="tanh", lambda_b=0.5,
                                    lambda_W=2.0)
        dz = pdlt.ensembles.mlp_apply(new, x, "tanh") - pdlt.ensembles.mlp_apply(params, x, "tanh")
        res.append(float(jnp.max(jnp.abs(dz - eta * pred))))
    assert 3.6 < res[0] / res[1] < 4.4 and 3.6 < res[1] / res[2] < 4.4   # O(eta^2) residual


def test_learning_rate_tensor_validation():
    with pytest.raises(ValueError, match="lambda_W"):
        pdlt.learning.learning_rate_tensor(3, 1.0, (1.0, 2.0))
    with pytest.raises(ValueError, match="lambda_b"):
        pdlt.learning.learning_rate_tensor(2, -0.1, 1.0)


def test_public_names_are_exported_once():
    """Two modules exporting one name would silently shadow each other in a subpackage."""
    from collections import Counter

    for s in pdlt.__all__:
        sub = getattr(pdlt, s)
        if hasattr(sub, "__all__"):
            assert not [n for n, c in Counter(sub.__all__).items() if c > 1], s
    assert len(pdlt._layout.flat_index()) > 100


def test_even_chunk_uses_one_shape_and_wastes_less_than_a_network_per_chunk():
    from pdlt.ensembles import even_chunk

    for n_nets in range(1, 300):
        for chunk in (1, 7, 64, 100, 500):
            size = even_chunk(n_nets, chunk)
            n_chunks = -(-n_nets // size)
            assert size <= chunk and n_chunks == -(-n_nets // chunk)   # as few chunks as `chunk` allows
            assert 0 <= n_chunks * size - n_nets < n_chunks               # padding below one per chunk
    assert even_chunk(600, 500) == 300


@pytest.mark.parametrize("fn", [pdlt.ensembles.init_mlp, pdlt.learning.init_ensemble, pdlt.ensembles.sample_weights,
                                pdlt.theory.resnet_kernel_recursion, pdlt.theory.resnet_kernel_ode,
                                pdlt.theory.resnet_ensemble, pdlt.theory.resnet_fluctuation,
                                pdlt.theory.residual_vertex_closure, pdlt.theory.linear_resnet_log_norm])
def test_weight_variance_has_no_default(fn):
    """C_W is always the caller's choice: no function draws or evolves a network at a default C_W."""
    import inspect

    p = inspect.signature(fn).parameters["C_W"]
    assert p.default is inspect.Parameter.empty and p.kind is inspect.Parameter.KEYWORD_ONLY
