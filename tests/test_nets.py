"""The network descriptions (pdlt.nets): validation, hashability, and that every consumer gives
bitwise the same arrays through the description as through the keyword functions."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt import nets

X = np.random.default_rng(0).normal(size=(3, 4))


def same(a, b):
    a, b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(a) == len(b) and all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))


# ------------------------------------------------------------------ construction

def test_defaults_are_the_critical_point():
    for act in ("relu", "tanh", "gelu"):
        c = pdlt.critical_point(act)
        net = nets.MLP(4, (5, 5, 2), act)
        assert net.C_b == (c.C_b,) * 3 and net.C_W == (c.C_W,) * 3


def test_per_layer_convention_and_frozen():
    net = nets.MLP(4, [5, 6, 2], "tanh", C_b=0.1, C_W=(1.0, 1.5, 2.0))
    assert net.widths == (5, 6, 2) and net.L == 3 and net.n_out == 2
    assert net.C_b == (0.1, 0.1, 0.1) and net.C_W == (1.0, 1.5, 2.0)
    assert net.is_plain and not net.uniform and isinstance(net, nets.ResidualMLP)
    assert hash(net) == hash(nets.MLP(4, (5, 6, 2), "tanh", C_b=0.1, C_W=(1.0, 1.5, 2.0)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.n0 = 3
    # static under jit
    f = jax.jit(lambda n, x: nets.kernels(n, x), static_argnums=0)
    assert same(f(net, X), nets.kernels(net, X))


@pytest.mark.parametrize("kw, field", [
    (dict(n0=0, widths=(3,)), "n0"),
    (dict(n0=2, widths=(3, 0)), "widths"),
    (dict(n0=2, widths=()), "widths"),
    (dict(n0=2, widths=(3,), activation="tahn"), "activation"),
    (dict(n0=2, widths=(3, 3), C_b=0.0, C_W=(1.0, 2.0, 3.0)), "C_W"),
    (dict(n0=2, widths=(3, 3), C_b=-0.1, C_W=1.0), "C_b"),
    (dict(n0=2, widths=(3, 3), C_b=0.0, C_W=0.0), "C_W"),
    (dict(n0=2, widths=(3,), activation="sigmoid"), "C_W"),
    (dict(n0=2, widths=(3, 4), xi=0.5), "widths"),
    (dict(n0=2, widths=(3, 3), gamma=0.0), "gamma"),
    (dict(n0=2, widths=(3, 3), xi=-1.0), "xi"),
    (dict(n0=2, widths=(3,), weights="orthogonal"), "weights"),
])
def test_errors_name_the_field(kw, field):
    with pytest.raises(pdlt.PDLTValueError, match=f"`{field}`"):
        nets.ResidualMLP(**kw)


@pytest.mark.parametrize("kw, field", [(dict(kind="orth"), "kind"), (dict(density=0.0), "density"),
                                       (dict(rank=-1), "rank"), (dict(rank_fraction=2.0), "rank_fraction"),
                                       (dict(input_kind="x"), "input_kind")])
def test_weight_law_errors(kw, field):
    with pytest.raises(pdlt.PDLTValueError, match=f"`{field}`"):
        nets.WeightLaw(**kw)


def test_learning_rates():
    r = nets.LearningRates(0.5, (1.0, 2.0, 3.0))
    assert r.per_layer(3) == ((0.5,) * 3, (1.0, 2.0, 3.0))
    with pytest.raises(pdlt.PDLTValueError, match="`lambda_W`"):
        r.per_layer(2)
    with pytest.raises(pdlt.PDLTValueError, match="`lambda_b`"):
        nets.LearningRates(-1.0)


def test_mlp_fixes_xi_and_gamma():
    with pytest.raises(TypeError):
        nets.MLP(3, (4,), xi=0.5)


# ------------------------------------------------------------------ both routes give the same arrays

@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_kernels_route(act):
    net = nets.MLP(4, (6, 6, 6, 2), act, C_b=0.1, C_W=(1.2, 1.5, 1.7, 1.9))
    K1 = pdlt.theory.input_kernel(X, C_b=0.1, C_W=1.2)
    assert same(nets.kernels(net, X), pdlt.kernel_recursion(K1, C_b=0.1, C_W=(1.5, 1.7, 1.9), L=4, activation=act))
    net1 = nets.MLP(4, (6,), act, C_b=0.1, C_W=1.2)
    assert same(nets.kernels(net1, X), pdlt.kernel_recursion(K1, C_b=0.1, C_W=1.2, L=1, activation=act))


def test_residual_kernels_and_ntk_route():
    net = nets.ResidualMLP(4, (6,) * 5, "tanh", C_b=0.0, C_W=1.0, xi=0.6, gamma=0.8)
    K1 = pdlt.theory.input_kernel(X, C_b=0.0, C_W=1.0)
    assert same(nets.kernels(net, X), pdlt.theory.residual_kernel_recursion(K1, xi=0.6, gamma=0.8, C_b=0.0, C_W=1.0, L=5))
    r = nets.LearningRates(0.5, 2.0)
    assert same(nets.ntk(net, X, r), pdlt.theory.residual_ntk_recursion(X, xi=0.6, gamma=0.8, C_b=0.0, C_W=1.0, L=5,
                                                                 lambda_b=0.5, lambda_W=2.0))


@pytest.mark.parametrize("L", [1, 3, 14])
def test_ntk_route(L):
    net = nets.MLP(4, (6,) * L, "tanh", C_b=0.1, C_W=1.3)
    lw = tuple(0.5 + 0.1 * i for i in range(L))
    r = nets.LearningRates(0.3, lw)
    ref = pdlt.ntk_recursion(X, C_b=0.1, C_W=1.3, L=L, activation="tanh", lambda_b=0.3, lambda_W=lw)
    assert same(nets.ntk(net, X, r), ref)
    # per-layer variances equal at every layer are the scalar call, bitwise
    assert same(pdlt.ntk_recursion(X, C_b=(0.1,) * L, C_W=(1.3,) * L, L=L, activation="tanh", lambda_b=0.3,
                                   lambda_W=lw), ref)


def test_ntk_per_layer_variances_match_kernel_recursion():
    net = nets.MLP(4, (6, 6, 6), "tanh", C_b=(0.0, 0.1, 0.2), C_W=(1.0, 1.5, 2.0))
    K, _ = nets.ntk(net, X)
    np.testing.assert_allclose(K, nets.kernels(net, X), rtol=1e-13, atol=0)


def test_init_apply_sample_empirical_ntk_routes():
    net = nets.MLP(4, (5, 7, 2), "tanh", C_b=0.1, C_W=1.4)
    key = jax.random.key(3)
    p = nets.init(net, key)
    assert same(p, pdlt.ensembles.init_mlp(key, 4, (5, 7, 2), C_b=0.1, C_W=1.4))
    assert same(nets.apply(net, p, X), pdlt.ensembles.mlp_preactivations(p, X, "tanh"))
    assert same(nets.sample(net, key, X, n_nets=6),
                pdlt.ensemble_metrics(key, X, widths=(5, 7, 2), C_b=0.1, C_W=1.4, activation="tanh", n_nets=6))
    r = nets.LearningRates(0.5, (1.0, 2.0, 3.0))
    assert same(nets.empirical_ntk(net, p, X, r),
                pdlt.empirical_ntk(p, X, "tanh", lambda_b=0.5, lambda_W=(1.0, 2.0, 3.0)))


def test_weight_law_routes():
    law = nets.WeightLaw("sparse", density=0.5, input_kind="gaussian")
    net = nets.MLP(4, (6, 6, 6), "tanh", C_b=0.0, C_W=1.0, weights=law)
    key = jax.random.key(5)
    s, s0 = pdlt.ensembles.weight_sampler("sparse",
                                          density=0.5), pdlt.ensembles.weight_sampler("gaussian")
    ref = pdlt.ensembles.weights_ensemble_metrics(key, X, widths=(6, 6, 6), sampler=s, input_sampler=s0, C_b=0.0, C_W=1.0,
                                        activation="tanh", n_nets=4)
    assert same(nets.sample(net, key, X, n_nets=4), ref)
    # explicit parameters of the same law and layout give the same forward pass as mlp_forward_with
    zs = pdlt.ensembles.mlp_forward_with(key, X, widths=(6, 6, 6), sampler=s, input_sampler=s0, C_b=0.0, C_W=1.0,
                               activation="tanh")
    assert same(nets.apply(net, nets.init(net, key), X), zs)


def test_residual_routes():
    net = nets.ResidualMLP(4, (6,) * 4, "tanh", C_b=0.1, C_W=1.0, xi=0.6, gamma=0.8)
    key = jax.random.key(2)
    assert same(nets.init(net, key), pdlt.theory.init_residual_mlp(key, 4, 6, 4, C_b=0.1, C_W=1.0))
    p = nets.init(net, key)
    assert same(nets.apply(net, p, X), pdlt.theory.residual_apply(p, X, xi=0.6, gamma=0.8, activation="tanh"))
    assert same(nets.sample(net, key, X[0], n_nets=5),
                pdlt.theory.residual_ensemble(key, X[0], n=6, L=4, xi=0.6, gamma=0.8, C_b=0.1, C_W=1.0, n_nets=5))


def test_resnet_description_matches_resnet_explicit():
    key = jax.random.key(9)
    net = nets.resnet(4, 6, 3, alpha=0.5, C_W=1.5, C_b=0.1, C_W0=1.2, C_b0=0.05, activation="relu")
    assert net.L == 4 and net.gamma == pdlt.theory.branch_multiplier(3, 0.5) and net.xi == 1.0
    ys = pdlt.theory.resnet_explicit(key, X, n=6, L=3, alpha=0.5, C_W=1.5, C_b=0.1, C_W0=1.2,
                                     C_b0=0.05)
    assert same(jnp.stack(nets.apply(net, nets.init(net, key), X)), ys)


def test_parametrizations():
    base = nets.MLP(3, (16, 16, 16, 1), "relu", C_b=0.0, C_W=1.0)
    p = nets.to_parametrization("muP", base, base_width=8)
    assert p == pdlt.learning.parametrization("muP", n0=3, n=16, n_out=1, hidden=2, base_width=8,
                                              C_W=1.0)
    net, r = nets.parametrized("muP", base, base_width=8)
    fans = (3, 16, 16, 16)
    # the book's weight rate lambda_W / n_{l-1} equals the SGD multiplier of each group, and the output
    # variance C_W^(L) / n_(L-1) equals the parametrization's
    mult = tuple(lw / f for lw, f in zip(r.lambda_W, fans))
    assert mult == (p.lr[0], p.lr[1], p.lr[1], p.lr[2])
    np.testing.assert_allclose(net.C_W[-1] / 16, p.var[-1], rtol=1e-15)
    for name in ("SP", "NTK"):
        _, r = nets.parametrized(name, base, base_width=8)
        q = nets.to_parametrization(name, base, base_width=8)
        assert tuple(lw / f for lw, f in zip(r.lambda_W, fans)) == (q.lr[0], q.lr[1], q.lr[1], q.lr[2])


# ------------------------------------------------------------------ the API reference pages

def _api_pages():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pages = sorted((root / "book" / "api").glob("*.rst"))
    names = set()
    for p in pages:
        names |= set(re.findall(r"^\.\. auto(?:function|class|data):: (\S+)", p.read_text(), flags=re.M))
    return root, pages, names


def test_api_pages_are_in_the_toc_and_configured():
    import yaml

    root, pages, _ = _api_pages()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    library = [p for p in toc["parts"] if p["caption"] == "Library"]
    assert library, "_toc.yml has no Library part"
    listed = {library[0]["chapters"][0]["file"]} | {s["file"] for s in library[0]["chapters"][0]["sections"]}
    assert listed == {f"book/api/{p.stem}" for p in pages}
    ext = yaml.safe_load((root / "_config.yml").read_text())["sphinx"]["extra_extensions"]
    assert {"sphinx.ext.autodoc", "sphinx.ext.autosummary"} <= set(ext)


def test_every_documented_name_imports_and_every_public_name_is_documented():
    import importlib

    _, _, names = _api_pages()
    for full in names:
        name = full[len("pdlt."):] if full.startswith("pdlt.") else full
        obj = pdlt
        for part in name.split("."):
            obj = getattr(obj, part)          # what autodoc imports
        assert obj is not None, full
    subs = {"nets", "gauss", "theory", "ensembles", "learning", "stats", "topics", "book"}
    public = {f"pdlt.{s}.{n}" for s in subs for n in getattr(pdlt, s).__all__}
    assert public <= names, f"undocumented public names: {sorted(public - names)}"
    top = {n for n in dir(pdlt) if not n.startswith("_")} - subs
    assert top <= {n.rsplit(".", 1)[1] for n in names}, "undocumented top-level names"
    assert importlib.import_module("pdlt.nets")


def test_gpu_check_plan():
    """`make gpu-check` (bench/gpu_check.py): the plan in both modes, without running it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for scale in ("full", "ci"):
        out = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--dry-run"], capture_output=True,
                             text=True, env=dict(os.environ, GPU_CHECK_SCALE=scale))
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert plan["budget_s"] <= 480
        names = [s["name"] for s in plan["stages"]]
        assert names[0] == "bench" and len(names) >= 2
        for s in plan["stages"][1:]:
            assert s["cmd"][1:4] == ["-m", "pdlt.run", s["name"]]
            assert s["cmd"][s["cmd"].index("--scale") + 1] == scale
            assert (root / "book" / "params" / f"{s['name']}.full.yaml").exists()
        assert abs(sum(s["share"] for s in plan["stages"]) - 1.0) < 1e-12
    bad = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--dry-run"], capture_output=True,
                         text=True, env=dict(os.environ, GPU_CHECK_SCALE="huge"))
    assert bad.returncode == 2 and "GPU_CHECK_SCALE" in bad.stderr


def test_statistics_and_ntk_samples_route():
    net = nets.MLP(4, (6, 6, 1), "tanh", C_b=0.1, C_W=1.2)
    r = nets.LearningRates(0.5, 1.0)
    key = jax.random.key(4)
    kw = dict(C_b=0.1, C_W=1.2, L=3, activation="tanh", lambda_b=0.5, lambda_W=1.0)
    assert same(nets.statistics(net, X[:2], r), pdlt.theory.ntk_statistics(X[:2], **kw))
    assert same(nets.dntk(net, X[:2], r), pdlt.theory.dntk_statistics(X[:2], **kw))
    assert same(nets.ntk_samples(net, key, X[0], r, n_nets=5),
                pdlt.ensembles.ntk_conditional_samples(key, X[0], n=6, n_nets=5, **kw))
    assert same(nets.ntk_samples(net, key, X[:2], r, n_nets=5),
                pdlt.ensembles.ntk_conditional_samples_multi(key, X[:2], n=6, n_nets=5, **kw))
    with pytest.raises(pdlt.PDLTValueError, match="equal hidden widths"):
        nets.ntk_samples(net.replace(widths=(6, 7, 1)), key, X[0], n_nets=5)
    with pytest.raises(pdlt.PDLTValueError, match="plain MLPs"):
        nets.statistics(nets.ResidualMLP(4, (6, 6, 6), "tanh", C_b=0.1, C_W=1.0, xi=0.5), X[:2])
