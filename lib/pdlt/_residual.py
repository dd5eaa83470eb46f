r"""Residual MLPs at initialization (PDLT Appendix B; numbering unverified).

Convention of this module: all layers have width n; the first layer is an ordinary affine layer,
:math:`z^{(1)} = b^{(1)} + W^{(1)}x`, and every later layer adds a residual branch to a skip
connection,

.. math:: z^{(\ell+1)}_i = \xi\, z^{(\ell)}_i + \gamma\Big[b^{(\ell+1)}_i + \sum_j W^{(\ell+1)}_{ij}\,\sigma(z^{(\ell)}_j)\Big],

with :math:`b\sim\mathcal N(0,C_b)`, :math:`W\sim\mathcal N(0,C_W/n)`; :math:`\xi` is the skip
strength and :math:`\gamma` the residual-branch strength (:math:`\xi=0,\gamma=1` is the plain MLP).

Given layer :math:`\ell`, the outputs of layer :math:`\ell+1` are independent Gaussians
:math:`z^{(\ell+1)}_i \sim \mathcal N(\xi z^{(\ell)}_i, \gamma^2\hat G^{(\ell+1)})`, with
:math:`\hat G^{(\ell+1)} = C_b + C_W\frac1n\sum_j\sigma(z^{(\ell)}_j)^2`; this gives an exact
conditional sampler at O(n) cost per layer and network. Infinite-width theory, single input:

.. math::
   K^{(\ell+1)} &= \xi^2 K + \gamma^2\big(C_b + C_W\langle\sigma^2\rangle_K\big),\qquad
   \chi = \xi^2 + \gamma^2\chi_\parallel,\ \ \chi_\parallel = C_W\,\tfrac{d}{dK}\langle\sigma^2\rangle_K,\\
   V^{(\ell+1)} &= \chi^2 V + 4\xi^2\gamma^2\chi_\parallel K^2
                 + \gamma^4 C_W^2\big(\langle\sigma^4\rangle_K - \langle\sigma^2\rangle_K^2\big),\qquad V^{(1)} = 0,

the second line derived from the conditional law *if* two distinct neurons were correlated only
through a common scale, :math:`\mathrm{Cov}(z_i^2, f(z_j)) = \tfrac{V}{n}\,\tfrac{d}{dK}\langle f\rangle_K`
(i != j; ``closure="scale"``). With a skip connection that is not so at leading order: the
complete O(1/n) two-neuron correlation is propagated by ``closure="full"`` (see
:func:`residual_vertex_recursion`). The two agree for the plain MLP and for linear sigma, share the
large-depth slope for tanh, differ by a few percent for tanh at moderate depth, and differ at
leading order for ReLU (odd Hermite modes of sigma^2); the ensembles follow the full closure.
Criticality: :math:`\chi = 1` at the fixed point, i.e. :math:`\xi^2+\gamma^2 = 1` with the plain
critical :math:`(C_b, C_W)`. The NTK mean (learning rates :math:`\lambda_b`, :math:`\lambda_W/n`):
:math:`H^{(\ell+1)} = (\xi^2 + \gamma^2\chi_\perp)H + \gamma^2(\lambda_b + \lambda_W\langle\sigma^2\rangle_K)`,
:math:`\chi_\perp = C_W\langle\sigma'^2\rangle_K`.
"""
from __future__ import annotations

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._gaussian import derivative_kernel_map, gaussian_expectation, kernel_map
from ._mlp import forward_pass, init_mlp, network_key

__all__ = [
    "residual_kernel_recursion", "residual_vertex_recursion", "residual_chi", "residual_nu",
    "residual_critical_xi", "effective_aspect_ratio", "residual_ntk_recursion",
    "init_residual_mlp", "residual_apply", "residual_ensemble", "vertex_from_pairs",
]

METHODS = ("conditional", "explicit")


def _validate_branch(fn, xi, gamma):
    _checks.nonnegative(fn, xi=xi)
    _checks.positive(fn, gamma=gamma)


def residual_critical_xi(gamma):
    r"""Skip strength on the critical line :math:`\xi^2 + \gamma^2 = 1`: :math:`\xi = \sqrt{1-\gamma^2}`."""
    _checks.positive("residual_critical_xi", gamma=gamma)
    if np.any(np.asarray(gamma) > 1):
        raise _checks.PDLTValueError(f"residual_critical_xi: `gamma` must be <= 1, got {gamma}")
    return jnp.sqrt(1.0 - jnp.asarray(gamma, dtype=jnp.result_type(float)) ** 2)


def _moments(act, K):
    """<sigma^2>_K, <sigma^4>_K and chi_par/C_W = d<sigma^2>/dK = <sigma^2 (z^2-K)>/(2K^2) (arrays; jit-friendly)."""
    s = act.sigma
    m2 = gaussian_expectation(lambda z: s(z) ** 2, K)
    m4 = gaussian_expectation(lambda z: s(z) ** 4, K)
    d2 = gaussian_expectation(lambda z: s(z) ** 2 * (z * z - K), K) / (2 * K * K)
    return m2, m4, d2


def sigma_moments(activation, K):
    r"""Single-input Gaussian moments used by the vertex recursions, at variance K:

    :math:`m = \langle\sigma^2\rangle_K`, :math:`d = \partial_K\langle\sigma^2\rangle_K
    = \langle\sigma^2(z^2-K)\rangle_K/(2K^2)`, :math:`c_2 = \langle\sigma^4\rangle_K - m^2`.

    Args:
      activation: registry name. K > 0 (scalar). Returns: ``(m, d, c2)`` as floats.
    """
    act = get_activation(activation, "sigma_moments")
    m2, m4, d2 = _moments(act, float(K))
    m = float(m2)
    return m, float(d2), float(m4) - m**2


def residual_chi(K, *, xi, gamma, C_W, activation):
    r"""Residual susceptibility :math:`\chi = \xi^2 + \gamma^2 C_W\,d\langle\sigma^2\rangle_K/dK` (single input)."""
    _validate_branch("residual_chi", xi, gamma)
    _checks.positive("residual_chi", K=K, C_W=C_W)
    act = get_activation(activation, "residual_chi")
    _, _, d2 = _moments(act, jnp.asarray(K, dtype=jnp.result_type(float)))
    return xi**2 + gamma**2 * C_W * d2


@_checks.warns_nonfinite("recursion")
def residual_kernel_recursion(K1, *, xi, gamma, C_b, C_W, L: int, activation="tanh"):
    r""":math:`K^{(\ell+1)} = \xi^2K^{(\ell)} + \gamma^2(C_b + C_W\langle\sigma\sigma\rangle_{K^{(\ell)}})`.

    Args:
      K1: first-layer kernel, scalar or ``(N, N)``. xi, gamma: skip and branch strengths.
      C_b, C_W: scalars. L: depth. activation: registry name.
    Returns:
      ``(L,) + K1.shape``; entry ``ell-1`` is layer ``ell``.
    """
    fn = "residual_kernel_recursion"
    _validate_branch(fn, xi, gamma)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    _checks.positive_int(fn, L=L)
    act = get_activation(activation, fn)
    _checks.kernel(fn, "K1", K1)
    K1 = jnp.asarray(K1, dtype=jnp.result_type(float))
    scalar = K1.ndim == 0
    K = K1[None, None] if scalar else K1
    out = kernel_steps(K, float(xi) * float(xi), float(gamma) * float(gamma), float(C_b), float(C_W), L - 1, act.name)
    return out[:, 0, 0] if scalar else out


@partial(jax.jit, static_argnames=("steps", "act"))
def kernel_steps(K1, xi2, g2, C_b, C_W, steps, act):
    r"""``steps`` residual kernel steps :math:`K \to \xi^2K + \gamma^2(C_b + C_W\langle\sigma\sigma\rangle_K)` from
    ``K1`` ``(N, N)``, given the squared multipliers ``xi2``, ``g2``: array ``(steps + 1, N, N)`` (K1 first).

    The one implementation behind :func:`residual_kernel_recursion` and :func:`pdlt.resnet_kernel_recursion`.
    """
    def step(K, _):
        Kn = xi2 * K + g2 * (C_b + C_W * kernel_map(act, K))
        return Kn, Kn

    _, Ks = jax.lax.scan(step, K1, None, length=steps)
    return jnp.concatenate([K1[None], Ks], axis=0)


@_checks.warns_nonfinite("recursion")
def residual_vertex_recursion(K1, *, xi, gamma, C_b, C_W, L: int, activation="tanh", closure: str = "full",
                              degree: int = 24):
    r"""Single-input kernel and four-point vertex :math:`(K^{(\ell)}, V^{(\ell)})`, :math:`\ell=1..L`,
    normalised as :math:`\mathrm{Cov}(z_i^2, z_j^2) = V/n` (i != j), :math:`V^{(1)} = 0`.

    ``closure="scale"``: the closed recursion
    :math:`V' = \chi^2V + 4\xi^2\gamma^2\chi_\parallel K^2 + \gamma^4C_W^2(\langle\sigma^4\rangle-\langle\sigma^2\rangle^2)`,
    which assumes that two distinct neurons are correlated only through a common scale (exact for the
    plain MLP, ``xi=0``; with ``xi=0, gamma=1`` it is PDLT's V recursion, a private stand-in that the
    vertex module can replace).

    ``closure="full"`` (default): the complete leading-order two-neuron treatment. With a skip
    connection a neuron remembers its own past, and its past also sets everybody's next variance; the
    O(1/n) connected two-neuron density is then not of scale form. We track it as a matrix
    :math:`M_{ab}` in orthonormal Hermite polynomials of the layer's Gaussian (degrees < ``degree``),
    :math:`n\,\mathrm{Cov}(f(z_i), g(z_j)) = \sum_{ab} f_a M_{ab} g_b`, and propagate

    .. math:: M' = DMD + C_W\gamma^2(e\,(Dw)^\top + (Dw)\,e^\top) + C_W^2\gamma^4(s^\top Ms + \mathrm{Var}_K\sigma^2)\,ee^\top,

    :math:`D = \mathrm{diag}(\rho^a)`, :math:`\rho = \xi\sqrt{K/K'}`, :math:`s` = coefficients of
    :math:`\sigma^2` (a >= 1), :math:`w = Ms + s`, :math:`e_a = \delta_{a2}/(\sqrt2K')`; then
    :math:`V = 2K^2M_{22}`. Odd and even Hermite modes are both kept, so ReLU is covered.
    (Derived here; checked against Monte Carlo in the tests and in the Appendix B chapter.)

    Returns:
      ``(K, V)``, each of shape ``(L,)``.
    """
    fn = "residual_vertex_recursion"
    _validate_branch(fn, xi, gamma)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W, K1=K1)
    _checks.positive_int(fn, L=L, degree=degree)
    _checks.one_of(fn, "closure", closure, CLOSURES)
    if degree < 3:
        raise _checks.PDLTValueError(f"{fn}: `degree` must be >= 3, got {degree}")
    act = get_activation(activation, fn)
    K1 = jnp.asarray(K1, dtype=jnp.result_type(float))
    if closure == "scale":
        return _res_vertex(K1, float(xi), float(gamma), float(C_b), float(C_W), L, act.name)
    X, W, H = _hermite_tables(degree)
    return _res_vertex_full(K1, float(xi), float(gamma), float(C_b), float(C_W), L, act.name,
                            jnp.asarray(X), jnp.asarray(W), jnp.asarray(H))


CLOSURES = ("full", "scale")


@partial(jax.jit, static_argnames=("L", "act"))
def _res_vertex(K1, xi, gamma, C_b, C_W, L, act):
    a = get_activation(act)

    def step(carry, _):
        K, V = carry
        m2, m4, d2 = _moments(a, K)
        chi_par = C_W * d2
        chi = xi**2 + gamma**2 * chi_par
        Kn = xi**2 * K + gamma**2 * (C_b + C_W * m2)
        Vn = chi**2 * V + 4 * xi**2 * gamma**2 * chi_par * K**2 + gamma**4 * C_W**2 * (m4 - m2**2)
        return (Kn, Vn), (Kn, Vn)

    _, (Ks, Vs) = jax.lax.scan(step, (K1, jnp.zeros_like(K1)), None, length=L - 1)
    return jnp.concatenate([K1[None], Ks]), jnp.concatenate([jnp.zeros_like(K1)[None], Vs])


@functools.lru_cache(maxsize=8)
def _hermite_tables(degree, nodes=200, cut=14.0):
    """Standard-normal quadrature split at 0 (Gauss-Legendre on [-cut, 0] and [0, cut]) and the
    orthonormal Hermite polynomials He_a(x)/sqrt(a!) at the nodes: (X, W, H (degree, 2*nodes))."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    x, w = (x + 1) * cut / 2, w * cut / 2
    X = np.concatenate([-x[::-1], x])
    W = np.concatenate([w[::-1], w]) * np.exp(-X**2 / 2) / np.sqrt(2 * np.pi)
    H = np.zeros((degree, X.size))
    H[0] = 1.0
    H[1] = X
    for a in range(1, degree - 1):           # He_{a+1} = x He_a - a He_{a-1}, normalised
        H[a + 1] = (X * H[a] - np.sqrt(a) * H[a - 1]) / np.sqrt(a + 1)
    return X, W, H


@partial(jax.jit, static_argnames=("L", "act"))
def _res_vertex_full(K1, xi, gamma, C_b, C_W, L, act, X, W, H):
    sigma = get_activation(act).sigma
    deg = H.shape[0]
    idx = jnp.arange(deg)

    def step(carry, _):
        K, M = carry
        s2 = sigma(jnp.sqrt(K) * X) ** 2
        s = (H @ (W * s2)).at[0].set(0.0)
        G = C_b + C_W * jnp.sum(W * s2)
        Kn = xi**2 * K + gamma**2 * G
        Dg = (xi * jnp.sqrt(K / Kn)) ** idx
        e = jnp.where(idx == 2, 1.0 / (jnp.sqrt(2.0) * Kn), 0.0)
        Dw = Dg * (M @ s + s)
        var_s2 = jnp.sum(W * s2**2) - jnp.sum(W * s2) ** 2       # exact Gaussian Var(sigma^2)
        Mn = (Dg[:, None] * M * Dg[None, :] + C_W * gamma**2 * (jnp.outer(e, Dw) + jnp.outer(Dw, e))
              + C_W**2 * gamma**4 * (s @ M @ s + var_s2) * jnp.outer(e, e))
        return (Kn, Mn), (Kn, 2 * Kn**2 * Mn[2, 2])

    M0 = jnp.zeros((deg, deg), K1.dtype)
    _, (Ks, Vs) = jax.lax.scan(step, (K1, M0), None, length=L - 1)
    return jnp.concatenate([K1[None], Ks]), jnp.concatenate([jnp.zeros_like(K1)[None], Vs])


def residual_nu(gamma, *, activation, xi=None, closure: str = "full"):
    r"""Large-depth slope :math:`\nu` of :math:`V/K^2 \simeq \nu\,\ell` at criticality (single input).

    K*=0 class (e.g. tanh at :math:`C_b=0`, :math:`C_W=1/\sigma'(0)^2`), from the V recursion as
    :math:`K\to0` (both closures agree there): :math:`\nu = \tfrac23\gamma^2(2\xi^2+\gamma^2)`.
    Scale-invariant class (:math:`C_W = 2/(a_+^2+a_-^2)`, K constant): ``closure="scale"`` gives
    :math:`\nu = 4\xi^2\gamma^2 + \gamma^4(6A_4/A_2^2 - 1)`, :math:`A_k = a_+^k + a_-^k`;
    ``closure="full"`` (the valid one when :math:`\xi\neq0`) is evaluated numerically as the
    per-layer increment of :math:`V/K^2` from :func:`residual_vertex_recursion` deep in the linear regime.
    ``xi=None`` puts the network on the critical line :math:`\xi^2 = 1-\gamma^2`.
    Returns:
      a float (scalar ``gamma``).
    """
    fn = "residual_nu"
    act = get_activation(activation, fn)
    _checks.positive(fn, gamma=gamma)
    _checks.one_of(fn, "closure", closure, CLOSURES)
    g = float(gamma)
    if xi is None and g > 1:
        raise _checks.PDLTValueError(f"{fn}: `gamma` must be <= 1 on the critical line, got {gamma}")
    x2 = 1.0 - g**2 if xi is None else float(xi) ** 2
    if act.family == "K*=0":
        return (2.0 / 3.0) * g**2 * (2 * x2 + g**2)
    if act.scale_invariant:
        A2 = act.a_plus**2 + act.a_minus**2
        if closure == "scale":
            A4 = act.a_plus**4 + act.a_minus**4
            return 4 * x2 * g**2 + g**4 * (6 * A4 / A2**2 - 1)
        L = int(np.ceil(60.0 / max(g**2, 1e-3))) + 100
        K, V = residual_vertex_recursion(1.0, xi=np.sqrt(x2), gamma=g, C_b=0.0, C_W=2.0 / A2, L=L,
                                         activation=act.name, closure="full")
        v = V / K**2
        return float(v[-1] - v[-2])
    raise _checks.PDLTValueError(
        f"{fn}: only the K*=0 and scale-invariant classes have a linear V/K^2, got `{act.name}` ({act.family})")


def effective_aspect_ratio(r, gamma, *, activation, xi=None, closure: str = "full"):
    r"""Aspect ratio of the plain MLP with the same :math:`V/(nK^2)`: :math:`r_{\rm eff} = r\,\nu(\gamma)/\nu(1)`."""
    _checks.nonnegative("effective_aspect_ratio", r=r)
    nu = residual_nu(gamma, activation=activation, xi=xi, closure=closure)
    return r * nu / residual_nu(1.0, activation=activation, xi=0.0, closure=closure)


@_checks.warns_nonfinite("recursion")
def residual_ntk_recursion(x, *, xi, gamma, C_b, C_W, L: int, activation="tanh", lambda_b=1.0, lambda_W=1.0):
    r"""Infinite-width kernel and NTK mean of the residual MLP for N inputs.

    :math:`H^{(1)} = \lambda_b + \lambda_W x\cdot x/n_0`,
    :math:`H^{(\ell+1)} = \xi^2H + \gamma^2 C_W\langle\sigma'\sigma'\rangle_K\odot H + \gamma^2(\lambda_b + \lambda_W\langle\sigma\sigma\rangle_K)`
    (learning rates :math:`\lambda_b` and :math:`\lambda_W/n` per parameter, in every layer).

    Args:
      x: inputs ``(N, n0)``. Returns: ``(K, H)``, each ``(L, N, N)``.
    """
    fn = "residual_ntk_recursion"
    _validate_branch(fn, xi, gamma)
    _checks.nonnegative(fn, C_b=C_b, lambda_b=lambda_b, lambda_W=lambda_W)
    _checks.positive(fn, C_W=C_W)
    _checks.positive_int(fn, L=L)
    act = get_activation(activation, fn)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    K1 = C_b + C_W * (x @ x.T) / x.shape[1]
    H1 = lambda_b + lambda_W * (x @ x.T) / x.shape[1]
    return _res_ntk(K1, H1, float(xi), float(gamma), float(C_b), float(C_W), float(lambda_b),
                    float(lambda_W), L, act.name)


@partial(jax.jit, static_argnames=("L", "act"))
def _res_ntk(K1, H1, xi, gamma, C_b, C_W, lb, lw, L, act):
    def step(carry, _):
        K, H = carry
        ss = kernel_map(act, K)
        dd = derivative_kernel_map(act, K)
        Kn = xi**2 * K + gamma**2 * (C_b + C_W * ss)
        Hn = xi**2 * H + gamma**2 * (C_W * dd * H + lb + lw * ss)
        return (Kn, Hn), (Kn, Hn)

    _, (Ks, Hs) = jax.lax.scan(step, (K1, H1), None, length=L - 1)
    return jnp.concatenate([K1[None], Ks]), jnp.concatenate([H1[None], Hs])


# ---------------------------------------------------------------- explicit networks

def init_residual_mlp(key, n0: int, n: int, L: int, *, C_b, C_W, dtype=None):
    r"""Weights and biases ``[(W1, b1), ..., (WL, bL)]``: ``W1`` is ``(n, n0)``, the rest ``(n, n)``;
    :math:`W\sim\mathcal N(0, C_W/n_{\rm in})`, :math:`b\sim\mathcal N(0, C_b)` (:func:`pdlt.init_mlp` of
    widths ``(n,) * L``, as a list)."""
    _checks.positive_int("init_residual_mlp", n0=n0, n=n, L=L)
    return list(init_mlp(key, n0, (n,) * L, C_b=C_b, C_W=C_W, dtype=dtype))


def residual_apply(params, x, *, xi, gamma, activation="tanh"):
    r"""Preactivations of every layer for inputs ``x`` ``(N, n0)``: a list of ``(N, n)`` arrays."""
    return forward_pass(params, x, get_activation(activation, "residual_apply").sigma, xi=xi, gamma=gamma)


# ---------------------------------------------------------------- ensembles

def _pair_stats(m):
    """Per-layer statistics of the conditional second moments m_i (n,): mean, and mean over i != j of m_i m_j."""
    n = m.shape[-1]
    S1 = jnp.sum(m, axis=-1)
    return S1 / n, (S1**2 - jnp.sum(m * m, axis=-1)) / (n * (n - 1))


def _one_net(key, x, n, L, xi, gamma, C_b, C_W, act, method):
    sigma = get_activation(act).sigma
    G1 = C_b + C_W * jnp.dot(x, x) / x.shape[0]
    if method == "explicit":
        params = init_residual_mlp(key, x.shape[0], n, L, C_b=C_b, C_W=C_W, dtype=x.dtype)
        zs = jnp.stack([z[0] for z in residual_apply(params, x[None], xi=xi, gamma=gamma, activation=act)])
    else:
        keys = jax.random.split(key, L)
        z1 = jnp.sqrt(G1) * jax.random.normal(keys[0], (n,), x.dtype)

        def layer(z, k):
            G = C_b + C_W * jnp.mean(sigma(z) ** 2)
            zn = xi * z + gamma * jnp.sqrt(G) * jax.random.normal(k, (n,), x.dtype)
            return zn, zn

        _, rest = jax.lax.scan(layer, z1, keys[1:])
        zs = jnp.concatenate([z1[None], rest])
    # conditional second moments of layer ell given layer ell-1 (layer 1: G1)
    zp = zs[:-1]
    m_rest = xi**2 * zp**2 + gamma**2 * (C_b + C_W * jnp.mean(sigma(zp) ** 2, axis=-1, keepdims=True))
    ms = jnp.concatenate([jnp.full((1, n), G1, x.dtype), m_rest])
    P, Q = _pair_stats(ms)
    return P, Q, zs[-1]


def _net(key, i, x, xi, gamma, C_b, C_W, *, n, L, act, method):
    """Pair statistics and output of network ``i`` (the per-network function of :func:`pdlt.ensemble_map`)."""
    return _one_net(network_key(key, i), x, n, L, xi, gamma, C_b, C_W, act, method)


@_checks.warns_nonfinite("samples")
def residual_ensemble(key, x, *, n: int, L: int, xi, gamma, C_b, C_W, activation="tanh", n_nets: int,
                      method="conditional", chunk: int = 4096, progress: bool | None = None):
    r"""Single-input ensemble of residual MLPs: per-layer conditional pair statistics and outputs.

    For layer ``ell`` let :math:`m_i = E[z^{(\ell)2}_i\,|\,\text{layer }\ell-1] = \xi^2 z^{(\ell-1)2}_i + \gamma^2\hat G^{(\ell)}`.
    Then :math:`E[P] = E[z_i^2]` and :math:`E[Q] = E[z_i^2z_j^2]` (i != j) exactly, with
    :math:`P = \frac1n\sum_i m_i`, :math:`Q = \frac{1}{n(n-1)}\sum_{i\neq j}m_im_j` (conditional
    independence of the neurons of a layer): Rao-Blackwellised estimators of K and V.

    Args:
      key: ensemble key (network i uses ``fold_in(key, i)``). x: one input ``(n0,)``.
      n: width of every layer (>= 2). L: depth. xi, gamma: skip and branch strengths.
      C_b, C_W: scalars. activation: registry name. n_nets: networks.
      method: ``"conditional"`` (exact chain, O(n) per layer) or ``"explicit"`` (real weights).
    Returns:
      ``(P, Q, z)`` with shapes ``(n_nets, L)``, ``(n_nets, L)``, ``(n_nets, n)``.
    Raises:
      PDLTValueError on bad arguments (before any compute).
    """
    from ._sharding import ensemble_map

    fn = "residual_ensemble"
    _checks.positive_int(fn, n=n, L=L, n_nets=n_nets, chunk=chunk)
    if n < 2:
        raise _checks.PDLTValueError(f"{fn}: `n` must be >= 2 (pair statistics), got {n}")
    _validate_branch(fn, xi, gamma)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    act = get_activation(activation, fn)
    _checks.one_of(fn, "method", method, METHODS)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 1:
        raise _checks.PDLTValueError(f"{fn}: `x` must be one input of shape (n0,), got {x.shape}")
    hp = tuple(jnp.asarray(v, x.dtype) for v in (xi, gamma, C_b, C_W))
    out = ensemble_map(_net, key, n_nets, (x, *hp), static=(("n", n), ("L", L), ("act", act.name), ("method", method)),
                       chunk=chunk, progress=progress, desc=f"residual {act.name} ({method})")
    return tuple(jnp.asarray(o) for o in out)


def vertex_from_pairs(P, Q, n: int):
    r"""Estimate :math:`V/K^2 = n\,(E[Q]/E[P]^2 - 1)` and its delta-method standard error.

    Args:
      P, Q: ``(S,)`` or ``(S, L)`` per-network statistics from :func:`residual_ensemble` (or, for
      a plain MLP, ``P = Ghat``, ``Q = Ghat^2``). n: the width.
    Returns:
      ``(estimate, se)`` of shape ``P.shape[1:]``.
    """
    P, Q = jnp.asarray(P), jnp.asarray(Q)
    S = P.shape[0]
    a, b = jnp.mean(P, 0), jnp.mean(Q, 0)
    ga, gb = -2 * n * b / a**3, n / a**2
    infl = ga * (P - a) + gb * (Q - b)
    return n * (b / a**2 - 1), jnp.std(infl, axis=0, ddof=1) / jnp.sqrt(S)
