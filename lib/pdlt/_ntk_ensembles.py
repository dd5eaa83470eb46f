r"""Monte Carlo statistics of the NTK over ensembles of networks at initialization (PDLT §8.2-§8.3, §9).

* :func:`ensemble_ntk`: the empirical NTK (multi-input, multi-output) and the outputs of ``n_nets``
  networks, :func:`pdlt.empirical_ntk` of each through :func:`pdlt.ensemble_map`; network ``i`` uses ``fold_in(key, i)``.
* :func:`ntk_conditional_samples` and :func:`ntk_fluctuation_estimates`: single-input estimators of
  H, V, A, B, D, F that average analytically over the last layer's weights (Rao-Blackwellised).
  Given layer :math:`\ell` of a network (preactivations :math:`z_j`, full NTK :math:`\hat H_{jk}`), with
  :math:`M_{jk} = \sigma'_j\sigma'_k\hat H_{jk}`, :math:`c = C_W/n` and for two different output neurons
  :math:`i\ne k` of layer :math:`\ell+1`,

  .. math::
     \mu &\equiv E[\hat H'_{ii}\mid\ell] = \lambda_b + \tfrac{\lambda_W}{n}\textstyle\sum_j\sigma_j^2 + c\,\mathrm{tr}M,\qquad
     \hat G' \equiv E[z_i'^2\mid\ell] = C_b + c\textstyle\sum_j\sigma_j^2,\\
     E[\hat H_{ik}'^2\mid\ell] &= c^2\,\mathrm{tr}(M^2),\qquad E[\hat H'_{ik}z'_iz'_k\mid\ell] = c^2\,\sigma^{\!\top}\!M\sigma,

  and rows i, k are independent given layer :math:`\ell`, so that exactly
  :math:`H = E[\mu]`, :math:`V/n = \mathrm{Var}(\hat G')`, :math:`A/n = \mathrm{Var}(\mu)`,
  :math:`D/n = \mathrm{Cov}(\mu,\hat G')`, :math:`B/n = E[c^2\mathrm{tr}M^2]`, :math:`F/n = E[c^2\sigma^{\!\top}M\sigma]`.
* :func:`ntk_conditional_samples_multi` and :func:`ntk_statistics_estimates`: the same for N inputs, with
  :math:`M_{jk;\alpha\beta} = \sigma'_{j;\alpha}\sigma'_{k;\beta}\hat H_{jk;\alpha\beta}`: Wick's theorem over the next layer's
  weights gives, for output neurons of layer :math:`\ell+1`, exactly
  :math:`E[\hat H'_{12}z'_3z'_4\mid\ell] = \delta_{12}\delta_{34}\mu_{12}\hat G'_{34} + \delta_{13}\delta_{24}f_{1324} + \delta_{14}\delta_{23}f_{1423}` and
  :math:`E[\hat H'_{12}\hat H'_{34}\mid\ell] = \delta_{12}\delta_{34}\mu_{12}\mu_{34} + \delta_{13}\delta_{24}b_{1324} + \delta_{14}\delta_{23}b_{1423}` with
  :math:`f_{\alpha_1\alpha_3\alpha_2\alpha_4} = c^2\sigma_{\alpha_3}^{\!\top}M_{\alpha_1\alpha_2}\sigma_{\alpha_4}`,
  :math:`b_{\alpha_1\alpha_3\alpha_2\alpha_4} = c^2\sum_{jk}M_{jk;\alpha_1\alpha_2}M_{jk;\alpha_3\alpha_4}`: each Kronecker structure
  (D vs F, A vs B) is its own conditional average, as if read off from distinct output neurons
  (i1 = i2 != i3 = i4 for D and A, i1 = i3 != i2 = i4 for F and B).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._empirical_ntk import empirical_ntk, learning_rate_tensor
from ._mlp import init_mlp, mlp_apply, network_key
from ._sharding import ensemble_map
from ._stats import covariance_and_se, mean_and_se, variance_and_se

__all__ = ["ensemble_ntk", "ntk_conditional_samples", "ntk_fluctuation_estimates", "relative_ntk_variance_estimate",
           "ntk_conditional_samples_multi", "ntk_statistics_estimates"]


def _validate(fn, x, widths, C_b, C_W, activation, lambda_b, lambda_W, n_nets, chunk, ndim):
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != ndim:
        want = "(N, n0)" if ndim == 2 else "(n0,) (one input)"
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape {want}, got {x.shape}")
    widths = _checks.widths(fn, "widths", widths)
    L = len(widths)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn=fn)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    return x, widths, act, lb, lw


@_checks.warns_nonfinite("samples")
def ensemble_ntk(key, x, *, widths, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                 n_nets: int, per_layer: bool = False, chunk: int = 1024, progress: bool | None = None):
    r"""Empirical NTKs and outputs of networks ``0..n_nets-1`` drawn from ``key``.

    Args:
      key: ensemble key (network i uses ``fold_in(key, i)``).
      x: inputs ``(N, n0)``. widths: ``(n_1, ..., n_L)``. C_b, C_W: scalars.
      activation: registry name. lambda_b, lambda_W: scalars or per-layer sequences of length L.
      n_nets: networks. per_layer: keep each layer's contribution (as :func:`pdlt.empirical_ntk`).
      chunk: networks per step of :func:`pdlt.ensemble_map` (the one ensemble engine: micro-batched on a CPU,
        sharded over the devices; the chunk size never changes a number). progress: progress bar (default: env).
    Returns:
      ``(H, z)``: ``H`` of shape ``(n_nets, n_L, n_L, N, N)`` (``(n_nets, L, n_L, n_L, N, N)`` with
      ``per_layer``) and ``z`` of shape ``(n_nets, N, n_L)``.
    Raises:
      PDLTValueError: bad shapes, widths, hyperparameters or learning-rate tensor, before compute.
    """
    fn = "ensemble_ntk"
    x, widths, act, lb, lw = _validate(fn, x, widths, C_b, C_W, activation, lambda_b, lambda_W, n_nets, chunk, 2)
    H, z = ensemble_map(_ntk_one, key, n_nets, (x,), chunk=chunk, progress=progress, desc=f"{act.name} NTK ensemble",
                        static=(("widths", widths), ("C_b", float(C_b)), ("C_W", float(C_W)), ("act", act.name),
                                ("lb", lb), ("lw", lw), ("per_layer", per_layer)))
    return jnp.asarray(H), jnp.asarray(z)


def _ntk_one(key, i, x, *, widths, C_b, C_W, act, lb, lw, per_layer):
    """Empirical NTK and outputs of network ``i``."""
    p = init_mlp(network_key(key, i), x.shape[1], widths, C_b=C_b, C_W=C_W, dtype=x.dtype)
    return empirical_ntk(p, x, act, lambda_b=lb, lambda_W=lw, per_layer=per_layer), mlp_apply(p, x, act)


@_checks.warns_nonfinite("samples")
def ntk_conditional_samples(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                            n_nets: int, chunk: int = 1024, progress: bool | None = None) -> dict:
    r"""Per-network conditional NTK moments of layers 1..L for one input (module docstring).

    The networks have L-1 hidden layers of width n with explicit weights in the book's convention
    (network i from ``fold_in(key, i)``, layer ell's weights from a ``fold_in`` of that key by ell,
    so a network's weights do not depend on the chunking); the statistics of layer ell+1 are
    averages over its weights given layer ell, so the output layer is never sampled and its width
    drops out. (The layer after the last one used is drawn and discarded by the scan.)

    Args:
      key: ensemble key. x: one input ``(n0,)``. n: hidden width. L: depth (>= 2 for any fluctuation).
      C_b, C_W: scalars. activation: registry name. lambda_b, lambda_W: scalars or sequences of length L.
      n_nets, chunk, progress: as :func:`ensemble_ntk`.
    Returns:
      dict of arrays of shape ``(n_nets, L)`` (column ell-1 = layer ell; layer 1 is deterministic):
      ``mu`` (E[H_ii | previous layer]), ``G`` (conditional metric), ``b2`` (E[H_ik^2 | .]),
      ``f2`` (E[H_ik z_i z_k | .]); and ``"n"``.
    """
    return _conditional("ntk_conditional_samples", _cond_one, 1, key, x, n, L, C_b, C_W, activation, lambda_b,
                        lambda_W, n_nets, chunk, progress)


def _conditional(fn, batch, ndim, key, x, n, L, C_b, C_W, activation, lambda_b, lambda_W, n_nets, chunk, progress):
    """Validate, then map ``batch`` (``_cond_one`` or ``_cond_one_multi``) over the networks (:func:`pdlt.ensemble_map`)."""
    _checks.positive_int(fn, n=n, L=L)
    x, _, act, lb, lw = _validate(fn, x, (n,) * L, C_b, C_W, activation, lambda_b, lambda_W, n_nets, chunk, ndim)
    lbv, lwv = jnp.asarray(lb, x.dtype), jnp.asarray(lw, x.dtype)
    inputs = f" N={x.shape[0]}" if ndim == 2 else ""
    cv = jnp.asarray([C_b, C_W], x.dtype)
    res = ensemble_map(batch, key, n_nets, (x, cv, lbv, lwv), static=(("n", n), ("L", L), ("act", act.name)),
                       chunk=chunk, progress=progress, desc=f"{act.name} NTK statistics{inputs} n={n}")
    res = {k: jnp.asarray(v) for k, v in res.items()}
    res["n"] = n
    return res


def _cond_one(key, i, x, cv, lb, lw, *, n, L, act):
    """Conditional NTK moments of network ``i``, one input: dict of ``(L,)`` arrays."""
    C_b, C_W = cv[0], cv[1]
    a = get_activation(act)
    c = C_W / n
    g0 = jnp.sum(x * x) / x.shape[0]

    def parts(H, z, b, w):
        s, ds = a.sigma(z), a.dsigma(z)
        M = ds[:, None] * ds[None, :] * H
        Lam = b + w * jnp.sum(s * s) / n
        return s, M, Lam

    def stats(H, z, b, w):
        s, M, Lam = parts(H, z, b, w)
        return jnp.stack([Lam + c * jnp.trace(M), C_b + c * jnp.sum(s * s), c * c * jnp.sum(M * M), c * c * (s @ M @ s)])

    def one(i):
        first = jnp.stack([lb[0] + lw[0] * g0, C_b + C_W * g0, 0.0 * g0, 0.0 * g0])
        if L == 1:
            return first[None]
        k1, kw, kb = jax.random.split(network_key(key, i), 3)
        kW1, kb1 = jax.random.split(k1)
        z = jax.random.normal(kW1, (n, x.shape[0]), x.dtype) @ x * jnp.sqrt(C_W / x.shape[0]) \
            + jax.random.normal(kb1, (n,), x.dtype) * jnp.sqrt(C_b)
        H = jnp.eye(n, dtype=x.dtype) * (lb[0] + lw[0] * g0)

        def step(carry, inp):
            H, z = carry
            ell, b0, w0 = inp
            row = stats(H, z, b0, w0)                       # layer ell+1 given layer ell
            s, M, Lam = parts(H, z, b0, w0)                 # forward equation, one input
            W = jax.random.normal(jax.random.fold_in(kw, ell), (n, n), x.dtype) * jnp.sqrt(c)
            b = jax.random.normal(jax.random.fold_in(kb, ell), (n,), x.dtype) * jnp.sqrt(C_b)
            return (Lam * jnp.eye(n, dtype=H.dtype) + W @ M @ W.T, W @ s + b), row

        _, rows = jax.lax.scan(step, (H, z), (jnp.arange(1, L), lb[1:], lw[1:]))
        return jnp.concatenate([first[None], rows])

    out = one(i)                                           # (L, 4)
    return {k: out[:, j] for j, k in enumerate(("mu", "G", "b2", "f2"))}


@_checks.warns_nonfinite("estimates")
def ntk_fluctuation_estimates(samples: dict) -> dict:
    r"""Estimates and standard errors of H, V, A, B, D, F per layer from :func:`ntk_conditional_samples`.

    :math:`H = E[\mu]`, :math:`V = n\,\mathrm{Var}(\hat G)`, :math:`A = n\,\mathrm{Var}(\mu)`,
    :math:`D = n\,\mathrm{Cov}(\mu,\hat G)`, :math:`B = n\,E[b_2]`, :math:`F = n\,E[f_2]`; variances use the
    fourth-moment SE (:func:`pdlt.variance_and_se`).

    Returns:
      dict ``name -> (estimate, se)``, each an array of shape ``(L,)``.
    """
    n = samples["n"]
    mu, G = samples["mu"], samples["G"]
    out = {"H": mean_and_se(mu), "G": mean_and_se(G)}
    for name, (est, se) in {"V": variance_and_se(G), "A": variance_and_se(mu), "D": covariance_and_se(mu, G),
                            "B": mean_and_se(samples["b2"]), "F": mean_and_se(samples["f2"])}.items():
        out[name] = (n * est, n * se)
    return out


@_checks.warns_nonfinite("estimates")
def relative_ntk_variance_estimate(samples: dict):
    r"""Relative NTK variance :math:`\mathrm{Var}(\hat H_{ii})/E[\hat H_{ii}]^2` per layer, with its SE (delta method).

    Given layer :math:`\ell-1`, :math:`\hat H_{ii}` is :math:`\mu` plus a Gaussian quadratic form of variance
    :math:`2c^2\mathrm{tr}M^2 = 2b_2`, so :math:`\mathrm{Var}(\hat H_{ii}) = E[(\mu-E\mu)^2 + 2b_2] = (A+2B)/n`.

    Args:
      samples: output of :func:`ntk_conditional_samples`.
    Returns:
      ``(estimate, se)``, arrays of shape ``(L,)``.
    """
    mu, b2 = samples["mu"], samples["b2"]
    S = mu.shape[0]
    M = jnp.mean(mu, axis=0)
    u = (mu - M) ** 2 + 2 * b2
    U = jnp.var(mu, axis=0, ddof=1) + 2 * jnp.mean(b2, axis=0)
    r = U / M**2
    infl = (u - jnp.mean(u, axis=0)) / M**2 - 2 * U * (mu - M) / M**3
    return r, jnp.std(infl, axis=0, ddof=1) / jnp.sqrt(S)


@_checks.warns_nonfinite("samples")
def ntk_conditional_samples_multi(key, x, *, n: int, L: int, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                                  n_nets: int, chunk: int = 256, progress: bool | None = None) -> dict:
    r"""Per-network conditional NTK statistics of layers 1..L for N inputs (module docstring).

    Networks as :func:`ntk_conditional_samples` (hidden width n, explicit weights, network i from
    ``fold_in(key, i)``); the statistics of layer ell+1 are exact averages over its weights given layer ell.

    Args:
      key: ensemble key. x: inputs ``(N, n0)``. n: hidden width. L: depth. C_b, C_W: scalars.
      activation: registry name. lambda_b, lambda_W: scalars or sequences of length L.
      n_nets, chunk, progress: as :func:`ensemble_ntk`.
    Returns:
      dict with ``mu`` and ``G`` of shape ``(n_nets, L, N, N)`` (conditional mean NTK and metric),
      ``f`` and ``b`` of shape ``(n_nets, L, N, N, N, N)`` (indexed ``[a1, a3, a2, a4]`` as F and B), and ``"n"``.
    Raises:
      PDLTValueError: bad shapes or values, before compute.
    """
    return _conditional("ntk_conditional_samples_multi", _cond_one_multi, 2, key, x, n, L, C_b, C_W, activation,
                        lambda_b, lambda_W, n_nets, chunk, progress)


def _cond_one_multi(key, i, x, cv, lb, lw, *, n, L, act):
    """Conditional NTK statistics of network ``i``, N inputs: ``mu, G`` ``(L, N, N)``, ``f, b`` ``(L, N, N, N, N)``."""
    C_b, C_W = cv[0], cv[1]
    a = get_activation(act)
    c = C_W / n
    N = x.shape[0]
    g0 = x @ x.T / x.shape[1]
    eye = jnp.eye(n, dtype=x.dtype)

    def stats(H, z, b0, w0):                             # H: (N, N, n, n), z: (n, N)
        s, ds = a.sigma(z), a.dsigma(z)
        M = ds.T[:, None, :, None] * ds.T[None, :, None, :] * H
        Lam = b0 + w0 * (s.T @ s) / n
        mu = Lam + c * jnp.trace(M, axis1=-2, axis2=-1)
        G = C_b + c * (s.T @ s)
        f = c * c * jnp.einsum("jc,abjk,kd->acbd", s, M, s)
        bb = c * c * jnp.einsum("abjk,cdjk->acbd", M, M)
        return (mu, G, f, bb), (s, M, Lam)

    def one(i):
        z4 = jnp.zeros((N,) * 4, x.dtype)
        first = (lb[0] + lw[0] * g0, C_b + C_W * g0, z4, z4)
        if L == 1:
            return tuple(f[None] for f in first)
        k1, kw, kb = jax.random.split(network_key(key, i), 3)
        kW1, kb1 = jax.random.split(k1)
        z = (jax.random.normal(kW1, (n, x.shape[1]), x.dtype) * jnp.sqrt(C_W / x.shape[1])) @ x.T \
            + jax.random.normal(kb1, (n, 1), x.dtype) * jnp.sqrt(C_b)
        H = first[0][:, :, None, None] * eye

        def step(carry, inp):
            H, z = carry
            ell, b0, w0 = inp
            row, (s, M, Lam) = stats(H, z, b0, w0)      # layer ell+1 given layer ell
            W = jax.random.normal(jax.random.fold_in(kw, ell), (n, n), x.dtype) * jnp.sqrt(c)
            b = jax.random.normal(jax.random.fold_in(kb, ell), (n, 1), x.dtype) * jnp.sqrt(C_b)
            Hn = Lam[:, :, None, None] * eye + jnp.einsum("ij,abjk,lk->abil", W, M, W)
            return (Hn, W @ s + b), row

        _, rows = jax.lax.scan(step, (H, z), (jnp.arange(1, L), lb[1:], lw[1:]))
        return tuple(jnp.concatenate([f[None], r]) for f, r in zip(first, rows))

    mu, G, f, bb = one(i)
    return {"mu": mu, "G": G, "f": f, "b": bb}


def _cov_and_se(X, Y):
    """Sample covariance over axis 0 of X (S, ..., P) and Y (S, ..., Q) -> (..., P, Q), with the influence-function SE."""
    S = X.shape[0]
    dX, dY = X - jnp.mean(X, axis=0), Y - jnp.mean(Y, axis=0)
    u = dX[..., :, None] * dY[..., None, :]
    return jnp.sum(u, axis=0) / (S - 1), jnp.std(u, axis=0, ddof=1) / jnp.sqrt(S)


@_checks.warns_nonfinite("estimates")
def ntk_statistics_estimates(samples: dict) -> dict:
    r"""Estimates and SEs of the multi-input statistics per layer from :func:`ntk_conditional_samples_multi`.

    ``Theta_n`` = :math:`E[\mu] = \Theta + H^{\{1\}}/n + \ldots`, ``K_n`` = :math:`E[\hat G] = K + G^{\{1\}}/n + \ldots`,
    :math:`V = n\,\mathrm{Cov}(\hat G,\hat G)`, :math:`D = n\,\mathrm{Cov}(\mu,\hat G)`, :math:`A = n\,\mathrm{Cov}(\mu,\mu)`,
    :math:`F = n\,E[f]`, :math:`B = n\,E[b]` (index conventions of :class:`pdlt.NTKStatistics`).

    Returns:
      dict ``name -> (estimate, se)``; shapes ``(L, N, N)`` and ``(L, N, N, N, N)``.
    """
    n = samples["n"]
    mu, G = samples["mu"], samples["G"]
    S, L, N = mu.shape[:3]
    m2, g2 = mu.reshape(S, L, N * N), G.reshape(S, L, N * N)
    out = {"Theta_n": mean_and_se(mu), "K_n": mean_and_se(G)}
    for name, (X, Y) in {"V": (g2, g2), "D": (m2, g2), "A": (m2, m2)}.items():
        est, se = _cov_and_se(X, Y)
        out[name] = (n * est.reshape(L, N, N, N, N), n * se.reshape(L, N, N, N, N))
    for name, key in (("F", "f"), ("B", "b")):
        est, se = mean_and_se(samples[key])
        out[name] = (n * est, n * se)
    return out
