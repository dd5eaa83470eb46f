r"""The differential of the NTK (dNTK) of a real network, from JAX derivatives (PDLT ch. 11, numbering unverified).

.. math::
   \widehat{dH}_{i_0i_1i_2;a_0a_1a_2} = \sum_{\mu,\nu}\lambda_{\mu\nu}
     \frac{\partial \hat H_{i_1i_2;a_1a_2}}{\partial\theta_\mu}\frac{\partial z_{i_0;a_0}}{\partial\theta_\nu},

the rate at which the NTK moves when the parameters move along the learning-rate-weighted gradient of
one output. One GD step on the MSE loss changes the NTK by
:math:`\Delta\hat H_{i_1i_2;a_1a_2} = -\eta\sum_{i_0,a_0}\widehat{dH}_{i_0i_1i_2;a_0a_1a_2}\,\epsilon_{i_0;a_0} + O(\eta^2)`.
For a one-layer network (linear in its parameters) the dNTK vanishes identically.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._empirical_ntk import empirical_ntk, learning_rate_tensor
from ._mlp import init_mlp, mlp_apply, network_key

__all__ = ["empirical_dntk", "ensemble_dntk_moment", "ntk_relative_variance", "relu_ntk_relative_variance_leading",
           "dntk_pq_samples", "dntk_pq_estimates", "ddntk_mean_samples", "ddntk_mean_estimates", "ntk_motion_pq_estimates",
           "train_quadratic_model", "dntk_moment_mean"]


def empirical_dntk(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    r"""dNTK of one MLP: array ``(n_L, n_L, n_L, N, N, N)`` indexed ``[i0, i1, i2, a0, a1, a2]``.

    Computed as directional derivatives (``jax.jvp``) of :func:`pdlt.empirical_ntk` along the tangents
    :math:`\lambda\,\partial z_{i_0;a_0}/\partial\theta`.
    """
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="empirical_dntk")
    return _dntk(params, x, activation, lb, lw)


@partial(jax.jit, static_argnames=("activation", "lb", "lw"))
def _dntk(params, x, activation, lb, lw):
    Jac = jax.jacrev(lambda p: mlp_apply(p, x, activation))(params)      # leaves (N, nL, *shape)
    N, nL = x.shape[0], Jac[0][1].shape[1]
    scaled = tuple((lw[ell] / W.shape[1] * JW, lb[ell] * Jb)
                   for ell, ((W, _), (JW, Jb)) in enumerate(zip(params, Jac)))
    flat = jax.tree_util.tree_map(lambda t: t.reshape((N * nL,) + t.shape[2:]), scaled)

    def H(p):
        return empirical_ntk(p, x, activation, lambda_b=lb, lambda_W=lw)

    def along(t):
        return jax.jvp(H, (params,), (t,))[1]                                 # (nL, nL, N, N)

    d = jax.vmap(along)(flat)                                                 # (N*nL, nL, nL, N, N)
    d = d.reshape((N, nL) + d.shape[1:])                                      # (a0, i0, i1, i2, a1, a2)
    return jnp.transpose(d, (1, 2, 3, 0, 4, 5))


def ensemble_dntk_moment(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    r"""Per-network :math:`\widehat{dH}_{000;aaa}\,z_{0;a}` and the NTK :math:`\hat H_{00;aa}` on a single input.

    Args: params: stacked ensemble (leading network axis); x: ``(1, n0)``.
    Returns: ``(dHz, H)``, each ``(n_nets,)``; the mean of ``dHz`` estimates :math:`\mathbb E[\widehat{dH}\,z]`.
    """
    L = len(jax.tree_util.tree_leaves(params)) // 2
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="ensemble_dntk_moment")
    return _moment(params, x, activation, lb, lw)


@partial(jax.jit, static_argnames=("activation", "lb", "lw"))
def _moment(params, x, activation, lb, lw):
    def one(p):
        dH = _dntk(p, x, activation, lb, lw)[0, 0, 0, 0, 0, 0]
        z = mlp_apply(p, x, activation)[0, 0]
        H = empirical_ntk(p, x, activation, lambda_b=lb, lambda_W=lw)[0, 0, 0, 0]
        return dH * z, H

    return jax.vmap(one)(params)


def ntk_relative_variance(key, x, *, n: int, L: int, C_b, C_W, activation="relu", n_nets: int, chunk: int = 200,
                          lambda_b=1.0, lambda_W=1.0):
    r"""Relative variance :math:`\mathrm{Var}(\hat H)/\mathbb E[\hat H]^2` of the NTK of one input across an ensemble.

    Networks of depth L with hidden widths n and one output; network ``i`` from ``fold_in(key, i)``,
    built ``chunk`` networks at a time (memory). At leading order this grows like :math:`L/n` (PDLT §8-9).
    Args: x: ``(1, n0)``. Returns: ``(relative variance, se)`` (delta-method SE, mean treated as exact).
    """
    from ._checks import positive_int
    from ._stats import variance_and_se
    from ._progress import even_chunk
    from ._training import init_ensemble, stacked_ntk

    positive_int("ntk_relative_variance", n=n, L=L, n_nets=n_nets, chunk=chunk)
    Hs, size = [], even_chunk(n_nets, chunk)
    for start in range(0, n_nets, size):  # every chunk has one shape (one compilation); the last is cut back
        P = init_ensemble(key, x.shape[1], [n] * (L - 1) + [1], C_b=C_b, C_W=C_W, n_nets=size, start=start)
        Hs.append(stacked_ntk(P, x, activation, lambda_b=lambda_b, lambda_W=lambda_W)[:, 0, 0, 0, 0])
    H = jnp.concatenate(Hs)[:n_nets]
    v, se = variance_and_se(H / jnp.mean(H))
    return float(v), float(se)


def relu_ntk_relative_variance_leading(L, rho: float = 1.0):
    r"""Leading-order :math:`n\,\mathrm{Var}(\hat H)/H^2` of a critical ReLU network, single input.

    From the scale-invariant NTK-variance recursions of PDLT §9.2 (re-derived for this project, see
    ``/shared/reference/pdlt-results.md`` §9; constants of the book not checked against its text), with
    :math:`\kappa = 2`, :math:`\nu = 5` and weight fraction :math:`\rho` of the NTK:

    .. math:: \frac{(1+\rho+5\rho^2+4)\,(L-1)L(2L-1)/6 + \rho L(L-1)/2}{L^2}\ \to\ \frac{L}{3}(5+\rho+5\rho^2)

    (``rho = 1`` when only weights are trained, ``lambda_b = 0``). Args: L: depth (scalar or array).
    """
    L = np.asarray(L, float)
    return ((1 + rho + 5 * rho**2 + 4) * (L - 1) * L * (2 * L - 1) / 6 + rho * L * (L - 1) / 2) / L**2


def dntk_moment_mean(key, x, *, n: int, L: int, C_b, C_W, activation="relu", n_nets: int, chunk: int = 500,
                     lambda_b=1.0, lambda_W=1.0, start: int = 0):
    r""":math:`\mathbb E[\widehat{dH}\,z]` on one input for networks of depth L, widths n, one output (mean, se).

    Networks ``start .. start+n_nets-1`` of ``key`` (``fold_in``), built ``chunk`` at a time (memory); network
    ``i`` depends only on ``i``, so the chunk size does not change the numbers.
    """
    from ._checks import positive_int
    from ._stats import mean_and_se
    from ._progress import even_chunk
    from ._training import init_ensemble

    positive_int("dntk_moment_mean", n=n, L=L, n_nets=n_nets, chunk=chunk)
    vals, size = [], even_chunk(n_nets, chunk)
    for s0 in range(start, start + n_nets, size):  # one chunk shape (one compilation); the last is cut back
        P = init_ensemble(key, x.shape[1], [n] * (L - 1) + [1], C_b=C_b, C_W=C_W, n_nets=size, start=s0)
        vals.append(ensemble_dntk_moment(P, x, activation, lambda_b=lambda_b, lambda_W=lambda_W)[0])
    m, se = mean_and_se(jnp.concatenate(vals)[:n_nets])
    return float(m), float(se)


def _quadratic_outputs(params0, delta, x, activation):
    r""":math:`z(\theta_0) + J\delta + \tfrac12\,\delta^\top\nabla^2 z\,\delta` (nested ``jvp``)."""
    def f(p):
        return mlp_apply(p, x, activation)

    def lin(p):
        return jax.jvp(f, (p,), (delta,))

    (z0, Jd), (_, dJd) = jax.jvp(lin, (params0,), (delta,))
    return z0 + Jd + 0.5 * dJd


@partial(jax.jit, static_argnames=("activation", "steps", "lb", "lw"))
def _train_quadratic(params0, x, y, x_eval, eta, steps, activation, lb, lw):
    def one(p0):
        def loss(d):
            return 0.5 * jnp.sum((_quadratic_outputs(p0, d, x, activation) - y) ** 2)

        def step(d, _):
            g = jax.grad(loss)(d)
            d = tuple((dW - eta * (lw[ell] / W.shape[1]) * gW, db - eta * lb[ell] * gb)
                      for ell, ((dW, db), (gW, gb), (W, _)) in enumerate(zip(d, g, p0)))
            return d, None

        d0 = jax.tree_util.tree_map(jnp.zeros_like, p0)
        d, _ = jax.lax.scan(step, d0, None, length=steps)
        return _quadratic_outputs(p0, d, x_eval, activation), loss(d)

    return jax.vmap(one)(params0)


def train_quadratic_model(params0, x_train, y_train, x_eval, *, eta: float, steps: int, activation="relu",
                          lambda_b=1.0, lambda_W=1.0):
    r"""GD on the quadratic ("nearly-kernel") model of each network of a stacked ensemble (PDLT §11.4).

    The model is the second-order Taylor expansion of the network in its parameters around
    initialization, :math:`z(\theta_0+\delta) \approx z_0 + J\delta + \tfrac12\delta^\top\nabla^2z\,\delta`: its NTK moves
    exactly with the dNTK at initialization; of its two ddNTKs, the one from third derivatives vanishes and the
    one from products of second derivatives does not. Trained with the same learning-rate tensor as the
    network.

    Returns:
      ``(z_eval (n_nets, N, n_L), final_loss (n_nets,))``.
    """
    L = len(params0)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="train_quadratic_model")
    from ._checks import positive, positive_int

    positive("train_quadratic_model", eta=eta)
    positive_int("train_quadratic_model", steps=steps)
    return _train_quadratic(params0, jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_eval), float(eta),
                            int(steps), activation, lb, lw)


# --------------------------------------------------------------------------- ensembles: P and Q

def _pq_one(p, x, activation, lb, lw):
    r"""Per-network P and Q samples from the output dNTK (``n_L >= 2`` outputs), before the factor n.

    P: mean over ordered pairs i != k of :math:`\widehat{dH}_{ikk;\alpha_0\alpha_1\alpha_2}z_{i;\alpha_3}`;
    Q: mean over i != k of :math:`\tfrac12[\widehat{dH}_{iik;\alpha_0\alpha_1\alpha_2} + \widehat{dH}_{iki;\alpha_0\alpha_2\alpha_1}]z_{k;\alpha_3}`.
    """
    dH = _dntk(p, x, activation, lb, lw)                       # (i0, i1, i2, a0, a1, a2)
    z = mlp_apply(p, x, activation)                            # (a3, i)
    nL = z.shape[1]
    off = 1.0 - jnp.eye(nL, dtype=z.dtype)
    npair = nL * (nL - 1)
    P = jnp.einsum("ik,ikkxab,yi->xaby", off, dH, z) / npair
    Q1 = jnp.einsum("ik,iikxab,yk->xaby", off, dH, z)
    Q2 = jnp.einsum("ik,ikixba,yk->xaby", off, dH, z)
    return P, 0.5 * (Q1 + Q2) / npair


def _pq_net(key, i, x, *, widths, C_b, C_W, act, lb, lw):
    """P, Q samples of network ``i`` (per-network function of :func:`pdlt.ensemble_map`)."""
    p = init_mlp(network_key(key, i), x.shape[1], widths, C_b=C_b, C_W=C_W, dtype=x.dtype)
    return _pq_one(p, x, act, lb, lw)


def dntk_pq_samples(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                    n_nets: int, n_out: int = 2, chunk: int = 256, progress: bool | None = None):
    r"""Per-network estimates of :math:`nP` and :math:`nQ` (output layer of depth L, hidden widths n) for N inputs.

    Network i is drawn from ``fold_in(key, i)`` (:func:`pdlt.init_ensemble`, widths ``[n]*(L-1) + [n_out]``); its
    autodiff dNTK (:func:`empirical_dntk`) and outputs give, with the Kronecker structure of
    :math:`E[\widehat{dH}z]`, the unbiased samples of :func:`_pq_one` (off-diagonal output pairs: the
    pair :math:`i_0 = i_3 \ne i_1 = i_2` sees only P, :math:`i_0 = i_1 \ne i_2 = i_3` only Q). Multiplied by n.

    Args:
      key: PRNG key. x: inputs ``(N, n0)``. n: hidden width. L: depth (>= 2).
      C_b, C_W, activation, lambda_b, lambda_W: as :func:`pdlt.ntk_statistics`. n_nets: networks.
      n_out: output neurons (>= 2). chunk: networks per compiled batch.
    Returns:
      ``(nP, nQ)``, each ``(n_nets, N, N, N, N)`` indexed ``[a0, a1, a2, a3]``.
    """
    from ._checks import PDLTValueError, nonnegative, positive, positive_int
    from ._ensembles import warn_nonfinite
    from ._sharding import ensemble_map

    fn = "dntk_pq_samples"
    positive_int(fn, n=n, L=L, n_nets=n_nets, n_out=n_out, chunk=chunk)
    if L < 2 or n_out < 2:
        raise PDLTValueError(f"{fn}: need L >= 2 (got {L}) and n_out >= 2 (got {n_out}) to see P and Q")
    nonnegative(fn, C_b=C_b)
    positive(fn, C_W=C_W)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    from ._activations import get_activation
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn=fn)
    widths = (n,) * (L - 1) + (n_out,)
    # one network at a time (micro_batch=1): the same numbers as a vmap, a far smaller program to compile
    P, Q = ensemble_map(_pq_net, key, n_nets, (x,), chunk=chunk, progress=progress, micro_batch=1,
                        desc=f"dNTK P, Q n={n} L={L}",
                        static=(("widths", widths), ("C_b", float(C_b)), ("C_W", float(C_W)), ("act", act.name),
                                ("lb", lb), ("lw", lw)))
    P, Q = n * jnp.asarray(P), n * jnp.asarray(Q)
    warn_nonfinite(fn, P)
    return P, Q


def dntk_pq_estimates(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                      n_nets: int, n_out: int = 2, chunk: int = 256, progress: bool | None = None) -> dict:
    r"""Ensemble means and standard errors of :math:`nP`, :math:`nQ` (:func:`dntk_pq_samples`).

    Returns: dict ``P, P_se, Q, Q_se`` (arrays ``(N, N, N, N)``) and ``n``.
    """
    from ._stats import mean_and_se

    P, Q = dntk_pq_samples(key, x, n=n, L=L, C_b=C_b, C_W=C_W, activation=activation, lambda_b=lambda_b,
                           lambda_W=lambda_W, n_nets=n_nets, n_out=n_out, chunk=chunk, progress=progress)
    Pm, Pse = mean_and_se(P)
    Qm, Qse = mean_and_se(Q)
    return {"P": Pm, "P_se": Pse, "Q": Qm, "Q_se": Qse, "n": n}


# --------------------------------------------------------------------------- ensembles: the two ddNTKs

def _tangents(params, x, activation, lb, lw):
    r"""The learning-rate weighted gradients :math:`t_{i;\alpha} = \lambda\,\partial z_{i;\alpha}/\partial\theta`, leaves ``(N, n_L, *shape)``."""
    Jac = jax.jacrev(lambda p: mlp_apply(p, x, activation))(params)
    return tuple((lw[ell] / W.shape[1] * JW, lb[ell] * Jb) for ell, ((W, _), (JW, Jb)) in enumerate(zip(params, Jac)))


def _pick(tree, a, i):
    return jax.tree_util.tree_map(lambda t: t[a, i], tree)


def _dot_lambda_inv(u, v, params, lb, lw):
    r""":math:`\sum_\mu u_\mu v_\mu/\lambda_\mu` for two λ-weighted vectors (so that :math:`\sum\lambda\,\partial\,\partial` is recovered)."""
    tot = 0.0
    for ell, ((W, _), (uW, ub), (vW, vb)) in enumerate(zip(params, u, v)):
        if lw[ell] > 0:
            tot = tot + jnp.sum(uW * vW) * W.shape[1] / lw[ell]
        if lb[ell] > 0:
            tot = tot + jnp.sum(ub * vb) / lb[ell]
    return tot


def _ddntk_one(p, x, activation, lb, lw):
    r"""Per-network ddNTK samples for output neurons a = 0, b = 1 (module :func:`ddntk_mean_samples`)."""
    N = x.shape[0]
    t = _tangents(p, x, activation, lb, lw)

    def f(q):
        return mlp_apply(q, x, activation)                    # (N, n_L)

    def d3(t1, t2, t3):                                       # third directional derivative of every output
        g = lambda q: jax.jvp(f, (q,), (t1,))[1]             # noqa: E731
        h = lambda q: jax.jvp(g, (q,), (t2,))[1]             # noqa: E731
        return jax.jvp(h, (p,), (t3,))[1]                     # (N, n_L)

    a, b = 0, 1
    R = jnp.stack([jnp.stack([jnp.stack([d3(_pick(t, d1, a), _pick(t, d2, b), _pick(t, d3_, b))[:, a]
                                         for d3_ in range(N)], -1) for d2 in range(N)], -1) for d1 in range(N)], -1)
    R = jnp.transpose(R, (0, 3, 2, 1))                        # R[d0, d1, d2, d3] = ddI_{a a b b; d0 d1 d2 d3}

    def hvp(tv):                                              # λ-weighted Hessian-vector products of every output
        return jax.jvp(lambda q: _tangents(q, x, activation, lb, lw), (p,), (tv,))[1]   # leaves (N, n_L, *shape)

    H = [[hvp(_pick(t, d, i)) for i in range(2)] for d in range(N)]   # H[d][i]: λ ∇² z · t_{i;d}

    def dd2(i1, d1, i2, d2, i3, d3_, i4, d4):
        w = _pick(H[d3_][i3], d1, i1)                         # λ ∇²z_{i1;d1} t_{i3;d3}
        u = _pick(H[d4][i4], d2, i2)                          # λ ∇²z_{i2;d2} t_{i4;d4}
        return _dot_lambda_inv(w, u, p, lb, lw)

    rng = range(N)
    S = jnp.array([[[[dd2(a, d1, a, d2, b, d3_, b, d4) for d4 in rng] for d3_ in rng] for d2 in rng] for d1 in rng])
    Tt = jnp.array([[[[dd2(a, d1, b, d2, a, d3_, b, d4) for d4 in rng] for d3_ in rng] for d2 in rng] for d1 in rng])
    Uu = jnp.array([[[[dd2(a, d1, b, d2, b, d3_, a, d4) for d4 in rng] for d3_ in rng] for d2 in rng] for d1 in rng])
    # ddII_{abab; 1234} = T_{1342}/n, ddII_{abba; 1234} = U_{1423}/n
    T = jnp.transpose(Tt, (0, 2, 3, 1))
    U = jnp.transpose(Uu, (0, 3, 1, 2))
    return R, S, T, U


def _ddntk_net(key, i, x, *, widths, C_b, C_W, act, lb, lw):
    """R, S, T, U samples of network ``i`` (per-network function of :func:`pdlt.ensemble_map`)."""
    p = init_mlp(network_key(key, i), x.shape[1], widths, C_b=C_b, C_W=C_W, dtype=x.dtype)
    return _ddntk_one(p, x, act, lb, lw)


def ddntk_mean_samples(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                       n_nets: int, n_out: int = 2, chunk: int = 128, progress: bool | None = None):
    r"""Per-network estimates of :math:`nR, nS, nT, nU`, the means of the two ddNTKs (PDLT §∞.1; definitions ours).

    .. math::
       \widehat{dd_IH}_{i_0i_1i_2i_3;\delta_0\delta_1\delta_2\delta_3} &= \sum\lambda_{\mu_1\nu_1}\lambda_{\mu_2\nu_2}\lambda_{\mu_3\nu_3}
         \frac{\partial^3 z_{i_0;\delta_0}}{\partial\theta_{\mu_1}\partial\theta_{\mu_2}\partial\theta_{\mu_3}}
         \frac{\partial z_{i_1;\delta_1}}{\partial\theta_{\nu_1}}\frac{\partial z_{i_2;\delta_2}}{\partial\theta_{\nu_2}}\frac{\partial z_{i_3;\delta_3}}{\partial\theta_{\nu_3}},\\
       \widehat{dd_{II}H}_{i_1i_2i_3i_4;\delta_1\delta_2\delta_3\delta_4} &= \sum\lambda_{\mu_1\nu_1}\lambda_{\mu_2\nu_2}\lambda_{\mu_3\nu_3}
         \frac{\partial^2 z_{i_1;\delta_1}}{\partial\theta_{\mu_1}\partial\theta_{\mu_2}}\frac{\partial^2 z_{i_2;\delta_2}}{\partial\theta_{\nu_1}\partial\theta_{\mu_3}}
         \frac{\partial z_{i_3;\delta_3}}{\partial\theta_{\nu_2}}\frac{\partial z_{i_4;\delta_4}}{\partial\theta_{\nu_3}},

    with means :math:`E[dd_I H] = \tfrac1n[\delta_{i_0i_1}\delta_{i_2i_3}R_{0123} + \delta_{i_0i_2}\delta_{i_3i_1}R_{0231} + \delta_{i_0i_3}\delta_{i_1i_2}R_{0312}]`
    and :math:`E[dd_{II}H] = \tfrac1n[\delta_{i_1i_2}\delta_{i_3i_4}S_{1234} + \delta_{i_1i_3}\delta_{i_4i_2}T_{1342} + \delta_{i_1i4}\delta_{i_2i_3}U_{1423}]`
    (ddI is symmetric in its last three (neuron, input) pairs, hence one tensor R). Two output neurons a ≠ b
    separate the structures: :math:`dd_I H_{aabb}` sees only R, :math:`dd_{II}H_{aabb}` only S, :math:`_{abab}` only T,
    :math:`_{abba}` only U. Third derivatives by nested ``jax.jvp``; the λ-weighted Hessian-vector products by
    ``jvp`` of the λ-weighted gradient. The means of both vanish for a one-layer network; ddI vanishes for the
    quadratic model and for a two-layer linear network.

    Args: as :func:`dntk_pq_samples` (``n_out >= 2``; only neurons 0 and 1 are used; all learning rates > 0 where used).
    Returns: ``(nR, nS, nT, nU)``, each ``(n_nets, N, N, N, N)`` in the index order of R, S, T, U.
    """
    from ._checks import PDLTValueError, nonnegative, positive, positive_int
    from ._sharding import ensemble_map

    fn = "ddntk_mean_samples"
    positive_int(fn, n=n, L=L, n_nets=n_nets, n_out=n_out, chunk=chunk)
    if n_out < 2:
        raise PDLTValueError(f"{fn}: need n_out >= 2 (got {n_out}) to separate R, S, T, U")
    nonnegative(fn, C_b=C_b)
    positive(fn, C_W=C_W)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2 or x.shape[0] > 3:
        raise PDLTValueError(f"{fn}: `x` must have shape (N, n0) with N <= 3, got {x.shape}")
    from ._activations import get_activation
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn=fn)
    widths = (n,) * (L - 1) + (n_out,)
    out = ensemble_map(_ddntk_net, key, n_nets, (x,), chunk=chunk, progress=progress, micro_batch=1,
                       desc=f"ddNTK n={n} L={L}",
                       static=(("widths", widths), ("C_b", float(C_b)), ("C_W", float(C_W)), ("act", act.name),
                               ("lb", lb), ("lw", lw)))
    return tuple(n * jnp.asarray(o) for o in out)


def ddntk_mean_estimates(key, x, **kw) -> dict:
    r"""Means and SEs of :func:`ddntk_mean_samples`: dict ``R, R_se, S, S_se, T, T_se, U, U_se`` (each ``(N,)*4``) and ``n``."""
    from ._stats import mean_and_se

    res = ddntk_mean_samples(key, x, **kw)
    out = {"n": kw["n"]}
    for name, v in zip("RSTU", res):
        out[name], out[name + "_se"] = mean_and_se(v)
    return out


# --------------------------------------------------------------------------- ensembles: the averaged motion of the NTK

def _motion_one(p, x, activation, lb, lw, eps):
    r"""Symmetric differences :math:`[\hat H(\theta+\epsilon t_{i_0;\alpha_0}) - \hat H(\theta-\epsilon t_{i_0;\alpha_0})]/2\epsilon` times outputs."""
    t = _tangents(p, x, activation, lb, lw)                   # leaves (N, n_L, *shape)
    z = mlp_apply(p, x, activation)                           # (N, n_L)
    N, nL = z.shape
    off = 1.0 - jnp.eye(nL, dtype=z.dtype)
    npair = nL * (nL - 1)

    def diff(a0, i0):
        tv = _pick(t, a0, i0)
        Hp = empirical_ntk(jax.tree_util.tree_map(lambda q, u: q + eps * u, p, tv), x, activation, lambda_b=lb, lambda_W=lw)
        Hm = empirical_ntk(jax.tree_util.tree_map(lambda q, u: q - eps * u, p, tv), x, activation, lambda_b=lb, lambda_W=lw)
        return (Hp - Hm) / (2 * eps)                          # (n_L, n_L, N, N): [i1, i2, a1, a2]

    d = jnp.stack([jnp.stack([diff(a0, i0) for a0 in range(N)]) for i0 in range(nL)])   # [i0, a0, i1, i2, a1, a2]
    P = jnp.einsum("ik,ixkkab,yi->xaby", off, d, z) / npair
    Q = 0.5 * (jnp.einsum("ik,ixikab,yk->xaby", off, d, z) + jnp.einsum("ik,ixkiba,yk->xaby", off, d, z)) / npair
    return P, Q


@partial(jax.jit, static_argnames=("activation", "lb", "lw", "eps"))
def _motion_batch(params, x, activation, lb, lw, eps):
    return jax.lax.map(lambda p: _motion_one(p, x, activation, lb, lw, eps), params)


def ntk_motion_pq_estimates(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                            n_nets: int, n_out: int = 2, eps: float = 1e-2, chunk: int = 2000,
                            progress: bool | None = None) -> dict:
    r"""nP, nQ of the ensemble-averaged motion of the NTK along a gradient, by symmetric finite differences.

    For each network, :math:`[\hat H(\theta+\epsilon t) - \hat H(\theta-\epsilon t)]/(2\epsilon)` with
    :math:`t = \lambda\,\partial z_{i_0;\alpha_0}/\partial\theta`, contracted with the outputs as in :func:`dntk_pq_samples`.
    For a smooth activation it equals the autodiff dNTK up to :math:`O(\epsilon^2)`; for a kinked one it also
    counts the changes of the activation pattern (preactivations crossing zero within :math:`\pm\epsilon`), the
    :math:`\sigma'' = \delta` terms of ``kink="distributional"`` in :func:`pdlt.dntk_statistics`. Those rare jumps make the
    per-network variance grow like :math:`1/\epsilon`, so many networks are needed.

    Returns: dict ``P, P_se, Q, Q_se`` (``(N,)*4``) and ``n``, ``eps``.
    """
    from ._checks import PDLTValueError, nonnegative, positive, positive_int
    from ._progress import even_chunk, progress_range
    from ._stats import mean_and_se
    from ._training import init_ensemble

    fn = "ntk_motion_pq_estimates"
    positive_int(fn, n=n, L=L, n_nets=n_nets, n_out=n_out, chunk=chunk)
    positive(fn, eps=eps, C_W=C_W)
    nonnegative(fn, C_b=C_b)
    if L < 2 or n_out < 2:
        raise PDLTValueError(f"{fn}: need L >= 2 (got {L}) and n_out >= 2 (got {n_out})")
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    from ._activations import get_activation
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn=fn)
    widths = [n] * (L - 1) + [n_out]
    Ps, Qs = [], []
    size = even_chunk(n_nets, chunk)
    for start in progress_range(0, n_nets, size, desc=f"NTK motion n={n} L={L}", enable=progress):
        params = init_ensemble(key, x.shape[1], widths, C_b=C_b, C_W=C_W, n_nets=size, start=start)
        P, Q = _motion_batch(params, x, act.name, lb, lw, float(eps))
        Ps.append(P)
        Qs.append(Q)
    P, Q = n * jnp.concatenate(Ps)[:n_nets], n * jnp.concatenate(Qs)[:n_nets]
    Pm, Pse = mean_and_se(P)
    Qm, Qse = mean_and_se(Q)
    return {"P": Pm, "P_se": Pse, "Q": Qm, "Q_se": Qse, "n": n, "eps": eps}
