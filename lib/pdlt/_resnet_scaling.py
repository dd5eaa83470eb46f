r"""Residual networks with branch multiplier :math:`L^{-\alpha}` at large depth (beyond the book).

The network (single residual stream of width n, block depth one, Gaussian weights):

.. math::
   y^{(0)} = W^{(0)} x + b^{(0)},\qquad
   y^{(\ell)} = \xi\,y^{(\ell-1)} + L^{-\alpha}\big[b^{(\ell)} + W^{(\ell)}\sigma(y^{(\ell-1)})\big],
   \quad \ell = 1..L,

with :math:`W^{(\ell)}_{ij}\sim\mathcal N(0, C_W/n)`, :math:`b^{(\ell)}_i\sim\mathcal N(0, C_b)` and
:math:`\xi = 1` (``skip=1.0``). ``skip=0`` with ``alpha=0`` is the book's MLP. The book's residual
MLP (PDLT Appendix B, numbering unverified) uses general :math:`(\xi,\gamma)`; here
:math:`\gamma = L^{-\alpha}`, the branch scaling of Hayou & Yang (arXiv 2302.00453) and of
Depth-muP, which keeps the depth-L kernel finite and non-trivial only at ``alpha = 1/2``.

Contents:

* samplers: :func:`resnet_ensemble` (exact conditional-Gaussian sampler: given layer ell-1 the
  branch output is Gaussian with covariance :math:`C_b + C_W\sigma\sigma^\top/n`), and
  :func:`resnet_explicit` (real weight matrices, for tests);
* mean kernel: :func:`resnet_kernel_recursion` (infinite width, any depth) and
  :func:`resnet_kernel_ode` (its :math:`L\to\infty` limit at ``alpha = 1/2``, RK4);
* fluctuations: :func:`resnet_fluctuation` (leading order in 1/n, exact in L, scale-invariant
  activations), :func:`residual_vertex_closure` (the quartic, V-only closure; exact for linear nets
  and MLPs, not for nonlinear residual nets), and :func:`linear_resnet_log_norm` (exact law of
  the log-norm of a linear ResNet at finite n and L).
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gamma, ndtr, roots_genlaguerre

from . import _checks
from ._activations import get_activation
from ._gaussian import kernel_map, psd_factor
from ._kernel import input_kernel
from ._mlp import forward_pass, init_mlp, network_key
from ._residual import kernel_steps, sigma_moments

__all__ = [
    "branch_multiplier",
    "resnet_kernel_recursion",
    "resnet_kernel_ode",
    "resnet_ensemble",
    "resnet_explicit",
    "resnet_fluctuation",
    "residual_vertex_closure",
    "linear_resnet_log_norm",
    "sigma_moments",
]


def branch_multiplier(L: int, alpha: float) -> float:
    r"""The residual-branch multiplier :math:`\gamma = L^{-\alpha}`."""
    _checks.positive_int("branch_multiplier", L=L)
    _checks.nonnegative("branch_multiplier", alpha=alpha)
    return float(L) ** (-float(alpha))


def _validate(fn, L, alpha, C_W, C_b, activation, skip):
    _checks.positive_int(fn, L=L)
    _checks.nonnegative(fn, alpha=alpha, C_b=C_b, skip=skip)
    _checks.positive(fn, C_W=C_W)
    return get_activation(activation, fn)


# --------------------------------------------------------------------------- mean kernel

@_checks.warns_nonfinite("recursion")
def resnet_kernel_recursion(K0, *, L: int, alpha: float = 0.5, C_W: float, C_b: float = 0.0,
                            activation="relu", skip: float = 1.0):
    r"""Infinite-width kernels of the residual stream,
    :math:`K^{(\ell)} = \xi^2 K^{(\ell-1)} + L^{-2\alpha}\,[C_b + C_W\langle\sigma\sigma\rangle_{K^{(\ell-1)}}]`.

    Exact for the ensemble mean at any depth as n -> infinity (the cross term between the stream and a
    fresh zero-mean branch vanishes). For ReLU, ``C_b = 0``, ``skip = 1``, one input:
    :math:`K^{(L)} = K^{(0)}(1 + C_W/(2L^{2\alpha}))^L`.

    Args:
      K0: kernel of ``y^(0)``: a scalar or an ``(N, N)`` matrix.
      L: number of residual blocks; alpha: branch exponent (multiplier ``L**-alpha``).
      C_W, C_b: branch weight and bias variances. activation: registry name. skip: :math:`\xi`.
    Returns:
      array of shape ``(L + 1,) + K0.shape``; entry ``ell`` is :math:`K^{(\ell)}` (entry 0 is K0).
    Raises:
      PDLTValueError on a bad argument.
    """
    act = _validate("resnet_kernel_recursion", L, alpha, C_W, C_b, activation, skip)
    _checks.kernel("resnet_kernel_recursion", "K0", K0)
    K0 = jnp.asarray(K0, dtype=jnp.result_type(float))
    scalar = K0.ndim == 0
    K = K0[None, None] if scalar else K0
    g2 = branch_multiplier(L, alpha) ** 2
    out = kernel_steps(K, float(skip) * float(skip), g2, float(C_b), float(C_W), L, act.name)
    return out[:, 0, 0] if scalar else out


@_checks.warns_nonfinite("recursion")
def resnet_kernel_ode(K0, *, t_grid, C_W: float, C_b: float = 0.0, activation="relu",
                      substeps: int = 64):
    r"""The depth-continuum kernel flow :math:`dK/dt = C_b + C_W\langle\sigma\sigma\rangle_{K(t)}`
    (``alpha = 1/2``, ``skip = 1``, t = ell/L), integrated by classical RK4.

    The discrete recursion is its Euler scheme with step 1/L, so it converges at rate O(1/L).

    Args:
      K0: scalar or ``(N, N)`` kernel at t = 0. t_grid: increasing times >= 0 (shape ``(T,)``).
      substeps: RK4 steps between consecutive grid times (and from 0 to the first).
    Returns:
      array ``(T,) + K0.shape`` with :math:`K(t)` on the grid.
    """
    fn = "resnet_kernel_ode"
    act = _validate(fn, 1, 0.0, C_W, C_b, activation, 1.0)
    _checks.positive_int(fn, substeps=substeps)
    t = np.asarray(t_grid, dtype=float)
    if t.ndim != 1 or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise _checks.PDLTValueError(f"{fn}: `t_grid` must be a 1-D non-decreasing array of times >= 0")
    _checks.kernel(fn, "K0", K0)
    K = jnp.asarray(K0, dtype=jnp.result_type(float))
    scalar = K.ndim == 0
    K = K[None, None] if scalar else K

    def f(K):
        return C_b + C_W * kernel_map(act.name, K)

    out, t_prev = [], 0.0
    for tk in t:
        h = (tk - t_prev) / substeps
        for _ in range(substeps if h > 0 else 0):
            k1 = f(K)
            k2 = f(K + 0.5 * h * k1)
            k3 = f(K + 0.5 * h * k2)
            k4 = f(K + h * k3)
            K = K + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(K)
        t_prev = tk
    out = jnp.stack(out)
    return out[:, 0, 0] if scalar else out


# --------------------------------------------------------------------------- samplers

def _conditional_one(key, K0, n, L, g, C_W, C_b, skip, act):
    """Gram matrices Q^(ell) = y^(ell) y^(ell)^T / n, ell = 0..L, of one network (N inputs)."""
    sigma = get_activation(act).sigma
    k0, kl = jax.random.split(key)
    N = K0.shape[0]
    y = psd_factor(K0) @ jax.random.normal(k0, (N, n), K0.dtype)          # (N, n)

    def step(y, k):
        s = sigma(y)
        G = C_b + C_W * (s @ s.T) / n                                         # branch covariance
        y = skip * y + g * (psd_factor(G) @ jax.random.normal(k, (N, n), y.dtype))
        return y, y @ y.T / n

    _, Qs = jax.lax.scan(step, y, jax.random.split(kl, L))
    return jnp.concatenate([(y @ y.T / n)[None], Qs], axis=0)


def _conditional_net(key, i, K0, g, C_W, C_b, skip, *, n, L, act):
    """Gram matrices of network ``i`` (the per-network function of :func:`pdlt.ensemble_map`)."""
    return _conditional_one(network_key(key, i), K0, n, L, g, C_W, C_b, skip, act)


@_checks.warns_nonfinite("samples")
def resnet_ensemble(key, x, *, n: int, L: int, alpha: float = 0.5, C_W: float, C_b: float = 0.0,
                    activation="relu", skip: float = 1.0, n_nets: int, C_W0: float = 1.0, C_b0: float = 0.0,
                    chunk: int = 2048, progress: bool | None = None):
    r"""Gram matrices :math:`Q^{(\ell)}_{ab} = y^{(\ell)}_a\!\cdot y^{(\ell)}_b/n` of ``n_nets`` residual nets.

    Exact conditional-Gaussian sampler: given :math:`y^{(\ell-1)}` the rows of the branch
    :math:`b + W\sigma(y^{(\ell-1)})` are iid Gaussian with covariance
    :math:`C_b + C_W\sigma\sigma^\top/n` (an N x N matrix), so each block costs O(N^2 n).
    Network ``i`` uses ``fold_in(key, i)``.

    Args:
      key: PRNG key. x: inputs ``(N, n0)``; ``y^(0)`` has kernel ``input_kernel(x, C_b0, C_W0)``.
      n: width; L: blocks; alpha: branch exponent; C_W, C_b: branch variances; activation; skip: xi.
      n_nets: ensemble size; chunk: networks per step of :func:`pdlt.ensemble_map` (never changes a number).
    Returns:
      array ``(n_nets, L + 1, N, N)``; ``[:, ell]`` is :math:`Q^{(\ell)}`.
    Raises:
      PDLTValueError on a bad argument (before any compute).
    """
    from ._sharding import ensemble_map

    fn = "resnet_ensemble"
    act = _validate(fn, L, alpha, C_W, C_b, activation, skip)
    _checks.positive_int(fn, n=n, n_nets=n_nets, chunk=chunk)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    K0 = input_kernel(x, C_b=C_b0, C_W=C_W0)
    g = branch_multiplier(L, alpha)
    hp = tuple(jnp.asarray(float(v), K0.dtype) for v in (g, C_W, C_b, skip))
    return jnp.asarray(ensemble_map(_conditional_net, key, n_nets, (K0, *hp),
                                    static=(("n", n), ("L", L), ("act", act.name)), chunk=chunk,
                                    progress=progress, desc=f"resnet n={n} L={L}"))


@_checks.warns_nonfinite("samples")
def resnet_explicit(key, x, *, n: int, L: int, alpha: float = 0.5, C_W: float, C_b: float = 0.0,
                    activation="relu", skip: float = 1.0, C_W0: float = 1.0, C_b0: float = 0.0):
    r"""One residual network with every weight sampled; returns the stream :math:`y^{(0..L)}`.

    Args:
      as :func:`resnet_ensemble` (one network drawn from ``key``).
    Returns:
      array ``(L + 1, N, n)``; entry ``ell`` is :math:`y^{(\ell)}` for the N inputs.
    """
    fn = "resnet_explicit"
    act = _validate(fn, L, alpha, C_W, C_b, activation, skip)
    _checks.positive_int(fn, n=n)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    params = init_mlp(key, x.shape[1], (n,) * (L + 1), C_b=(C_b0,) + (C_b,) * L, C_W=(C_W0,) + (C_W,) * L,
                      dtype=x.dtype)
    return jnp.stack(forward_pass(params, x, act.sigma, xi=skip, gamma=branch_multiplier(L, alpha)))


# --------------------------------------------------------------------------- fluctuations

_X = np.linspace(-10.0, 10.0, 801)
_WX = np.exp(-_X**2 / 2) / np.sqrt(2 * np.pi) * (_X[1] - _X[0])      # trapezoid (kink at the node 0)


def _gauss(vals):
    return vals @ _WX


def _smoothed_relu2(y, t2):
    r""":math:`R_\tau(y) = E[(y+\tau g)_+^2] = (y^2+\tau^2)\Phi(y/\tau) + y\tau\phi(y/\tau)`; rows: taus."""
    t2 = np.asarray(t2, float)[:, None]
    t = np.sqrt(np.where(t2 > 0, t2, 1.0))
    u = y[None, :] / t
    smooth = (y**2 + t2) * ndtr(u) + y * t * np.exp(-u**2 / 2) / np.sqrt(2 * np.pi)
    return np.where(t2 > 0, smooth, np.maximum(y, 0.0)[None, :] ** 2)


@_checks.warns_nonfinite("recursion")
@np.errstate(over="ignore", invalid="ignore")  # an overflow gives inf, reported by warns_nonfinite
def resnet_fluctuation(K0: float, *, L: int, alpha: float = 0.5, C_W: float, C_b: float = 0.0,
                       activation="relu"):
    r"""Leading-order (in 1/n) kernel fluctuation of a residual net, exact in L: the limit
    :math:`\lim_{n\to\infty} n\,\mathrm{Var}[Q^{(L)}]/K^{(L)2}` for one input, ``skip = 1``.

    Derivation (ours): write :math:`Q^{(\ell)} = \langle y^2,\mu_\ell\rangle` for the empirical
    measure :math:`\mu_\ell` of the n coordinates. Given layer ell, every coordinate moves by
    :math:`\gamma s g_i` with :math:`s^2 = C_b + C_W\langle\sigma^2,\mu_\ell\rangle`. Linearising in
    :math:`\delta\mu` gives, for a test function f, :math:`\delta\langle f,\mu_{\ell+1}\rangle =
    \langle A_\ell f, \delta\mu_\ell\rangle + \text{(sampling noise)}` with
    :math:`A_\ell f = T_\ell f + C_W\kappa_\ell\,\sigma^2`, :math:`T_\ell` the Gaussian smoothing by
    :math:`\gamma^2\bar s_\ell^2`, :math:`\kappa_\ell = \tfrac{\gamma^2}{2}\langle f''\rangle_{K^{(\ell+1)}}`.
    With :math:`f_L = y^2`, :math:`f_\ell = A_\ell f_{\ell+1}`:

    .. math:: n\,\mathrm{Var}[Q^{(L)}] = \mathrm{Var}_{K^{(0)}}[f_0]
              + \sum_{\ell=0}^{L-1}\big(\langle f_{\ell+1}^2\rangle_{K^{(\ell+1)}}
              - \langle (T_\ell f_{\ell+1})^2\rangle_{K^{(\ell)}}\big) + O(1/n).

    For the scale-invariant family :math:`\sigma^2 = a_-^2 y^2 + (a_+^2-a_-^2)\,y_+^2`, and every
    :math:`f_\ell` is a constant plus :math:`y^2` plus smoothed :math:`y_+^2` terms in closed form.
    Unlike :func:`residual_vertex_closure`, this keeps the full function-valued correlation between
    coordinates, which a nonlinear residual stream carries. O(L^2) terms, numpy.

    Args:
      K0 > 0: variance of ``y^(0)``; L, alpha, C_W, C_b: as :func:`resnet_kernel_recursion`;
      activation: a scale-invariant registry name (linear, relu, leaky_relu).
    Returns:
      ``(nvar, K_L)``: :math:`n\mathrm{Var}[Q^{(L)}]/K^{(L)2}` at leading order, and :math:`K^{(L)}`.
    Raises:
      PDLTValueError for a bad argument or a non-scale-invariant activation.
    """
    fn = "resnet_fluctuation"
    act = _validate(fn, L, alpha, C_W, C_b, activation, 1.0)
    _checks.positive(fn, K0=K0)
    if not act.scale_invariant:
        raise _checks.PDLTValueError(f"{fn}: `activation` must be scale-invariant (linear, relu, leaky_relu), "
                                     f"got {act.name!r}")
    A, B = act.a_minus**2, act.a_plus**2 - act.a_minus**2               # sigma^2 = A y^2 + B y_+^2
    g2 = branch_multiplier(L, alpha) ** 2
    K = [np.float64(K0)]
    for _ in range(L):
        K.append(K[-1] + g2 * (C_b + C_W * (A + B / 2) * K[-1]))
    a, b, c, t2 = 0.0, 1.0, np.zeros(0), np.zeros(0)                    # f = a + b y^2 + sum c R_t2

    def ev(y, a, b, c, t2):
        return a + b * y**2 + (c @ _smoothed_relu2(y, t2) if len(c) else 0.0)

    nvar = 0.0
    for ell in range(L - 1, -1, -1):
        v = g2 * (C_b + C_W * (A + B / 2) * K[ell])                     # smoothing variance of T_ell
        y1, y0 = np.sqrt(K[ell + 1]) * _X, np.sqrt(K[ell]) * _X
        f1 = ev(y1, a, b, c, t2)
        aT, tT = a + b * v, t2 + v
        nvar += _gauss(f1**2) - _gauss(ev(y0, aT, b, c, tT) ** 2)
        kappa = 0.5 * g2 * _gauss(f1 * (y1**2 - K[ell + 1])) / K[ell + 1] ** 2
        a, b = aT, b + C_W * kappa * A
        c, t2 = np.append(c, C_W * kappa * B), np.append(tT, 0.0)
    f0 = ev(np.sqrt(K[0]) * _X, a, b, c, t2)
    nvar += _gauss(f0**2) - _gauss(f0) ** 2
    return float(nvar / K[-1] ** 2), float(K[-1])


@_checks.warns_nonfinite("recursion")
def residual_vertex_closure(K0: float, *, L: int, alpha: float = 0.5, C_W: float, C_b: float = 0.0,
                            activation="relu", skip: float = 1.0):
    r"""The quartic (V-only) closure for the four-point vertex of the residual stream, one input:

    .. math:: V^{(\ell+1)} = (\xi^2 + \gamma^2 C_W d)^2 V^{(\ell)} + 4\xi^2\gamma^2 C_W K^2 d
              + \gamma^4 C_W^2 c_2,\qquad V^{(0)} = 0,

    with :math:`d, c_2` from :func:`sigma_moments` at :math:`K^{(\ell)}`. It assumes that coordinates
    correlate only through a common random variance (a Gaussian scale mixture). That is exact for
    the MLP (``skip = 0``: the book's V recursion, PDLT §4.3/§5, numbering unverified) and for linear
    residual nets, but *not* for nonlinear residual streams; see :func:`resnet_fluctuation`.

    Returns:
      ``(nvar, K_L)`` with :math:`n\mathrm{Var}[Q^{(L)}]/K^{(L)2} = (2K^2 + V)/K^2` at leading order.
    """
    fn = "residual_vertex_closure"
    _validate(fn, L, alpha, C_W, C_b, activation, skip)
    _checks.positive(fn, K0=K0)
    g2 = branch_multiplier(L, alpha) ** 2
    K, V = float(K0), 0.0
    for _ in range(L):
        m, d, c2 = sigma_moments(activation, K)
        V = (skip**2 + g2 * C_W * d) ** 2 * V + 4 * skip**2 * g2 * C_W * K**2 * d + g2**2 * C_W**2 * c2
        K = skip**2 * K + g2 * (C_b + C_W * m)
    return float((2 * K**2 + V) / K**2), float(K)


@_checks.warns_nonfinite("recursion")
def linear_resnet_log_norm(n: int, L: int, *, alpha: float = 0.5, C_W: float, deg: int = 96):
    r"""Exact mean and variance of :math:`\log(Q^{(L)}/Q^{(0)})` for a linear residual net, one input.

    By rotation invariance the per-block ratios :math:`r_\ell = |y^{(\ell)}|^2/|y^{(\ell-1)}|^2` are iid,
    :math:`r = (1 + a h)^2 + a^2\chi^2_{n-1}` with :math:`a^2 = C_W L^{-2\alpha}/n`, h ~ N(0,1). The
    log-norm is a sum of L iid terms: mean :math:`L\,E\log r`, variance :math:`L\,\mathrm{Var}\log r`,
    computed by Gauss-Hermite (h) times generalised Gauss-Laguerre (the chi-square) quadrature. At
    ``alpha = 1/2`` and L -> infinity (Ito): mean :math:`C_W(1 - 2/n)`, variance :math:`4C_W/n`.

    Also returns the exact :math:`E[Q^{(L)}/Q^{(0)}] = (1 + C_W L^{-2\alpha})^L`.

    Args:
      n >= 2 width; L blocks; alpha; C_W; deg: nodes per axis.
    Returns:
      ``(mean, var, mean_ratio)`` floats.
    """
    fn = "linear_resnet_log_norm"
    _checks.positive_int(fn, n=n, L=L, deg=deg)
    if n < 2:
        raise _checks.PDLTValueError(f"{fn}: `n` must be >= 2, got {n}")
    _checks.nonnegative(fn, alpha=alpha)
    _checks.positive(fn, C_W=C_W)
    a2 = C_W * float(L) ** (-2 * alpha) / n
    xh, wh = np.polynomial.hermite_e.hermegauss(deg)
    wh = wh / np.sqrt(2 * np.pi)
    k = (n - 1) / 2.0                                                   # chi2_{n-1} = 2 Gamma(k)
    xg, wg = roots_genlaguerre(deg, k - 1)
    wg = wg / gamma(k)
    lr = np.log((1 + np.sqrt(a2) * xh[:, None]) ** 2 + a2 * 2 * xg[None, :])
    W = wh[:, None] * wg[None, :]
    m1, m2 = float(np.sum(W * lr)), float(np.sum(W * lr**2))
    return L * m1, L * (m2 - m1**2), (1 + C_W * float(L) ** (-2 * alpha)) ** L
