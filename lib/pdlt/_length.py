r"""Length distortion of input curves by random ReLU networks (Hanin, Jeong & Rolnick, ICLR 2022).

A network :math:`f` maps a curve :math:`x(t)` to :math:`f(x(t))`, whose length is
:math:`\int\lVert J(x(t))\,\dot x(t)\rVert\,dt` with :math:`J = \partial f/\partial x`. The *length
distortion* is the ratio of output to input length.

**Exact law (our derivation).** For a zero-bias ReLU network with hidden weights
:math:`W^{(\ell)}\sim\mathcal N(0, C_W/n_{\ell-1})` and a linear readout of variance
:math:`C_{\rm out}/n_{L-1}`, the squared directional derivative at any input :math:`x\neq0` in any unit
direction :math:`u` has the law

.. math:: \lVert J(x)u\rVert^2 \overset{d}{=} \prod_{\ell=1}^{L-1}\frac{C_W}{n_{\ell-1}}\chi^2_{k_\ell}
          \times\frac{C_{\rm out}}{n_{L-1}}\chi^2_{n_L},\qquad k_\ell\sim{\rm Bin}(n_\ell, \tfrac12),

all factors independent: a unit's derivative :math:`w\cdot v` and its gate :math:`1\{w\cdot h>0\}` are
independent because :math:`(w\cdot v)^2` is even under :math:`w\to-w`. The law does not depend on ``x``
or ``u``, so the expected distortion of *any* curve (and of any Riemann sum of its length) equals
:math:`\mathbb E\lVert Ju\rVert`. At :math:`C_W = 2`, :math:`\mathbb E\lVert Ju\rVert^2 = C_{\rm out}n_L/n_0`
for every depth, and each hidden layer multiplies the second moment by exactly
:math:`1 + 5/n_\ell` -- the book's ReLU constant in the relative four-point vertex
:math:`V^{(\ell)}/(n\,(K^{(\ell)})^2) = 5(\ell-1)/n` (exactly :math:`(1+5/n)^{\ell-1}-1`; PDLT §5.4, numbering
unverified); the mean distortion is then
:math:`\approx\sqrt{n_L/n_0}\,\exp(-\tfrac58\sum_\ell 1/n_\ell)`: it shrinks slightly with depth.
The same product law holds for the forward norm :math:`\lVert z^{(\ell)}\rVert^2`.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._mlp import init_mlp, mlp_preactivations, network_key

__all__ = [
    "jacobian_norm_moments", "jacobian_log_norm_moments", "sample_jacobian_norm_law", "circle_curve", "curve_speeds",
    "length_distortion_ensemble", "layer_moments",
]


def _layer_specs(fn, n0, widths, C_W, C_out):
    _checks.positive_int(fn, n0=n0)
    widths = _checks.widths(fn, "widths", widths)
    _checks.positive(fn, C_W=C_W, C_out=C_out)
    return widths


def _sqrt_chi2_mean(k):
    r""":math:`\mathbb E\sqrt{\chi^2_k} = \sqrt2\,\Gamma(\tfrac{k+1}2)/\Gamma(\tfrac k2)` (0 at k = 0)."""
    from scipy.special import gammaln

    k = np.asarray(k, float)
    safe = np.where(k > 0, k, 1.0)
    return np.where(k > 0, np.sqrt(2.0) * np.exp(gammaln((safe + 1) / 2) - gammaln(safe / 2)), 0.0)


def jacobian_norm_moments(n0: int, widths, *, C_W=2.0, C_out=1.0):
    r"""Exact :math:`\mathbb E\lVert Ju\rVert`, :math:`\mathbb E\lVert Ju\rVert^2`, :math:`\mathbb E\lVert Ju\rVert^4`.

    Args:
      n0: input dimension. widths: ``(n_1, ..., n_L)``: ``L-1`` hidden ReLU layers and the readout width.
      C_W: hidden weight variance times fan-in (criticality: 2). C_out: readout variance times fan-in.
    Returns:
      ``(m1, m2, m4)`` as floats.
    Raises:
      PDLTValueError on bad arguments.
    """
    from scipy.stats import binom

    widths = _layer_specs("jacobian_norm_moments", n0, widths, C_W, C_out)
    m1 = m2 = m4 = 1.0
    fan_in = n0
    for n in widths[:-1]:
        k = np.arange(n + 1)
        p = binom.pmf(k, n, 0.5)
        c = C_W / fan_in
        m1 *= np.sqrt(c) * float(p @ _sqrt_chi2_mean(k))
        m2 *= c * n / 2
        m4 *= c**2 * (n / 4 + n**2 / 4 + n)  # E[k(k+2)] for k ~ Bin(n, 1/2)
        fan_in = n
    nL, c = widths[-1], C_out / fan_in
    m1 *= np.sqrt(c) * float(_sqrt_chi2_mean(nL))
    m2 *= c * nL
    m4 *= c**2 * nL * (nL + 2)
    return float(m1), float(m2), float(m4)


def jacobian_log_norm_moments(n0: int, widths, *, C_W=2.0, C_out=1.0):
    r"""Exact mean and variance of :math:`\ln\lVert Ju\rVert^2` given that no hidden layer is entirely off.

    Each factor contributes :math:`\ln c + \ln 2 + \psi(k/2)` to the mean and :math:`\psi'(k/2)` to the
    variance (:math:`\ln\chi^2_k`), averaged over :math:`k\sim{\rm Bin}(n_\ell,\frac12)` conditioned on
    :math:`k\ge1` (the excluded event has probability :math:`2^{-n_\ell}` per layer). At large width a
    hidden layer adds :math:`5/n_\ell + O(n_\ell^{-2})` to the variance: :math:`1/n` from the number of
    active units and :math:`4/n` from the :math:`\chi^2` of the active ones.

    Returns:
      ``(mean, var)``.
    """
    from scipy.special import digamma, polygamma
    from scipy.stats import binom

    widths = _layer_specs("jacobian_log_norm_moments", n0, widths, C_W, C_out)
    mean = var = 0.0
    fan_in = n0
    for n in widths[:-1]:
        k = np.arange(1, n + 1)
        p = binom.pmf(k, n, 0.5)
        p = p / p.sum()
        mu = np.log(C_W / fan_in) + np.log(2.0) + digamma(k / 2)
        m = float(p @ mu)
        mean += m
        var += float(p @ polygamma(1, k / 2)) + float(p @ (mu - m) ** 2)
        fan_in = n
    nL = widths[-1]
    mean += np.log(C_out / fan_in) + np.log(2.0) + digamma(nL / 2)
    var += float(polygamma(1, nL / 2))
    return float(mean), float(var)


def sample_jacobian_norm_law(key, n0: int, widths, n_samples: int, *, C_W=2.0, C_out=1.0):
    r"""Samples of :math:`\lVert Ju\rVert^2` drawn directly from the product law (no network).

    Returns:
      array ``(n_samples,)``.
    """
    fn = "sample_jacobian_norm_law"
    widths = _layer_specs(fn, n0, widths, C_W, C_out)
    _checks.positive_int(fn, n_samples=n_samples)
    keys = jax.random.split(key, 2 * len(widths))
    dtype = jnp.result_type(float)
    out, fan_in = jnp.ones((n_samples,), dtype), n0
    for ell, n in enumerate(widths):
        if ell < len(widths) - 1:
            k = jax.random.binomial(keys[2 * ell], n, 0.5, (n_samples,), dtype)
            c = C_W / fan_in
        else:
            k, c = jnp.full((n_samples,), float(n), dtype), C_out / fan_in
        chi2 = 2.0 * jax.random.gamma(keys[2 * ell + 1], jnp.maximum(k, 1e-300) / 2, (n_samples,), dtype)
        out = out * c * jnp.where(k > 0, chi2, 0.0)
        fan_in = n
    return out


def circle_curve(n0: int, points: int, radius=1.0):
    r"""A circle of radius ``radius`` in the plane of the first two input coordinates.

    Returns ``(x, dx, dt, length)``: points ``(P, n0)``, velocities ``(P, n0)`` (unit-speed
    parametrisation), the quadrature weight ``dt`` (a scalar) and the exact length :math:`2\pi r`.
    A midpoint grid is used, so the Riemann sum of the speeds is exact for the input circle.
    """
    fn = "circle_curve"
    _checks.positive_int(fn, points=points)
    _checks.positive(fn, radius=radius)
    if n0 < 2:
        raise _checks.PDLTValueError(f"{fn}: `n0` must be >= 2 for a circle, got {n0!r}")
    th = (jnp.arange(points) + 0.5) * (2 * jnp.pi / points)
    x = jnp.zeros((points, n0)).at[:, 0].set(radius * jnp.cos(th)).at[:, 1].set(radius * jnp.sin(th))
    dx = jnp.zeros((points, n0)).at[:, 0].set(-jnp.sin(th)).at[:, 1].set(jnp.cos(th))
    length = 2 * jnp.pi * radius
    return x, dx, length / points, length


def curve_speeds(params, x, dx, activation="relu"):
    r"""Speeds :math:`\lVert \partial z^{(\ell)}/\partial x\,(x_i)\,\dot x_i\rVert` of every layer along a curve (``jvp``).

    Args:
      params: MLP parameters from :func:`pdlt.init_mlp`. x, dx: points and velocities ``(P, n0)``.
      activation: registry name.
    Returns:
      ``(L, P)``; row ``ell-1`` is layer ``ell`` and the last row the network output. The
      length of the image curve at layer ``ell`` is approximated by ``sum(speeds[ell-1]) * dt``.
    """
    def one(xi, vi):
        f = lambda y: tuple(z[0] for z in mlp_preactivations(params, y[None], activation))  # noqa: E731
        _, tangents = jax.jvp(f, (xi,), (vi,))
        return jnp.stack([jnp.linalg.norm(t) for t in tangents])

    return jax.vmap(one)(jnp.asarray(x), jnp.asarray(dx)).T


def length_distortion_ensemble(key, x, dx, *, widths, C_W=2.0, C_out=1.0, n_nets: int, chunk: int = 512,
                               progress: bool | None = None):
    r"""Per-network, per-layer length statistics of a curve through ``n_nets`` zero-bias ReLU networks.

    Network ``i`` draws its weights from ``fold_in(key, i)`` (hidden :math:`C_W`, readout :math:`C_{\rm out}`,
    :math:`C_b = 0`). For each network and layer the speeds
    :math:`v_i = \lVert \partial_x z^{(\ell)}\,\dot x_i\rVert/\lVert\dot x_i\rVert` at the curve points are
    averaged: ``mean(v)`` is the (Riemann-sum) length distortion of the map :math:`x\mapsto z^{(\ell)}`, and
    ``mean(v^2)``, ``mean(v^4)`` are unbiased estimators of its :math:`\mathbb E\lVert Ju\rVert^{2}`,
    :math:`\mathbb E\lVert Ju\rVert^{4}` (whose exact values are :func:`layer_moments`).

    Args:
      key: PRNG key. x, dx: curve points and velocities ``(P, n0)``. widths: ``(n_1..n_L)``.
      C_W, C_out: hidden and readout variances times fan-in. n_nets, chunk: ensemble size and vmap chunk.
    Returns:
      array ``(n_nets, L, 4)``: columns ``mean(v)``, ``mean(v^2)``, ``mean(v^4)`` and
      :math:`\ln v^2` at the first curve point, per layer.
    Raises:
      PDLTValueError on bad arguments.
    """
    from ._sharding import ensemble_map

    fn = "length_distortion_ensemble"
    x, dx = jnp.asarray(x, float), jnp.asarray(dx, float)
    if x.ndim != 2 or x.shape != dx.shape:
        raise _checks.PDLTValueError(f"{fn}: `x` and `dx` must both have shape (P, n0), got {x.shape}, {dx.shape}")
    widths = _layer_specs(fn, x.shape[1], widths, C_W, C_out)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    return ensemble_map(_length_one, key, n_nets, (x, dx, float(C_W), float(C_out)), static=(("widths", widths),),
                        chunk=chunk, progress=progress, desc="length distortion")


def layer_moments(n0: int, widths, *, C_W=2.0, C_out=1.0):
    r"""Exact moments for every layer of a network: array ``(L, 5)`` with columns
    :math:`\mathbb E v`, :math:`\mathbb E v^2`, :math:`\mathbb E v^4` (:func:`jacobian_norm_moments`) and the
    mean and variance of :math:`\ln v^2` (:func:`jacobian_log_norm_moments`), :math:`v = \lVert J^{(\ell)}u\rVert`.

    Layer ``ell < L`` is a preactivation of variance :math:`C_W/n_{\ell-1}` (not yet gated), the last
    layer the readout.
    """
    widths = _layer_specs("layer_moments", n0, widths, C_W, C_out)
    L = len(widths)
    rows = []
    for ell in range(L):
        c = C_W if ell < L - 1 else C_out
        rows.append(jacobian_norm_moments(n0, widths[: ell + 1], C_W=C_W, C_out=c)
                    + jacobian_log_norm_moments(n0, widths[: ell + 1], C_W=C_W, C_out=c))
    return np.array(rows)


def _length_one(key, i, x, dx, C_W, C_out, *, widths):
    """Length statistics ``(L, 4)`` of network ``i`` (weights from ``fold_in(key, i)``)."""
    Cw = (C_W,) * (len(widths) - 1) + (C_out,)
    params = init_mlp(network_key(key, i), x.shape[1], widths, C_b=0.0, C_W=1.0, dtype=x.dtype)
    params = tuple((W * jnp.sqrt(c), b) for (W, b), c in zip(params, Cw))
    v = curve_speeds(params, x, dx, "relu") / jnp.linalg.norm(dx, axis=-1)
    return jnp.stack([jnp.mean(v, -1), jnp.mean(v**2, -1), jnp.mean(v**4, -1), jnp.log(v[:, 0] ** 2)], axis=-1)
