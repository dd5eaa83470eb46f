r"""Trained finite-width ensembles: the second-order "giant leap" and control-variate estimators.

Giant leap (PDLT §10.2 and §∞.2, numbering unverified). For the MSE loss the second-order (Newton,
here Gauss-Newton) update with learning-rate tensor :math:`\lambda` and a symmetric matrix
:math:`\kappa` on the training inputs is

.. math:: \Delta\theta_\mu = -\sum_\nu\lambda_{\mu\nu}\sum_{\alpha_1,\alpha_2\in A}
          \frac{\partial z_{\alpha_1}}{\partial\theta_\nu}\,\kappa^{\alpha_1\alpha_2}\,\epsilon_{\alpha_2},
          \qquad \epsilon = z - y .

It moves the outputs by :math:`\Delta z_\delta = -\hat H_{\delta A}\kappa\,\epsilon_A + O(\Delta\theta^2)`.
With :math:`\kappa = \hat H_{AA}^{-1}` (the network's own empirical NTK, the default) a linear model
reaches zero training error in one step; with :math:`\kappa = \Theta_{AA}^{-1}` (the frozen
infinite-width NTK) it does so only at infinite width. Either way, at infinite width the test
outputs land on :math:`z_D(0) - \Theta_{DA}\Theta_{AA}^{-1}(z_A(0) - y_A)`, the end point of gradient
descent: the trained ensemble has the same :math:`m^\infty` and :math:`\Sigma^\infty`
(:func:`pdlt.trained_ensemble_moments`) whatever the algorithm. At finite width the algorithms
differ at :math:`O(1/n)`.

Control variates (ours). The frozen-NTK linear model of the same network,
:math:`z^{\rm lin}_D = z_D(0) - \Theta_{DA}\Theta_{AA}^{-1}(z_A(0) - y_A)`, is linear in the initial
outputs, whose mean vanishes at any width, so :math:`\mathbb E[z^{\rm lin}] = m^\infty` exactly and

.. math:: \mathbb E[z_T] - m^\infty = \mathbb E[z_T - z^{\rm lin}],

estimated from the same networks with the (small) variance of :math:`z_T - z^{\rm lin}`. Likewise
:math:`\mathrm{Cov}(z_T) = [\mathrm{Cov}(z_T) - \mathrm{Cov}(z^{\rm lin})] + \mathrm{Cov}(z^{\rm lin})`:
the bracket is estimated from the trained networks (its influence per network is the difference of
the two centred products, small), the last term from a large, independent, untrained ensemble
(forward passes only).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._empirical_ntk import empirical_ntk, learning_rate_tensor
from ._kernel_learning import _split
from ._mlp import mlp_apply
from ._training import _update, init_ensemble, ensemble_apply

__all__ = ["giant_leap", "giant_leap_ensemble", "linear_control", "control_variate_mean",
           "control_variate_cov", "untrained_linear_cov", "fit_inverse_width", "trained_outputs", "nearly_kernel_prediction",
           "quadratic_model_apply", "train_quadratic_explicit", "model_ntk_dntk", "ntk_mean_shift_coefficient",
           "trained_mean_correction", "trained_mean_correction_depth2", "trained_mean_correction_mlp"]


def _flat_ntk(params, x, activation, lb, lw):
    H = empirical_ntk(params, x, activation, lambda_b=lb, lambda_W=lw)      # (nL, nL, N, N)
    nL, N = H.shape[0], H.shape[2]
    return jnp.transpose(H, (2, 0, 3, 1)).reshape(N * nL, N * nL)          # index (a, i)


def _leap(params, x, y, activation, lb, lw, kappa):
    z = mlp_apply(params, x, activation)
    eps = z - y                                                             # (N_A, nL)
    if kappa is None:
        c = jnp.linalg.solve(_flat_ntk(params, x, activation, lb, lw), eps.reshape(-1)).reshape(eps.shape)
    else:
        c = jnp.einsum("ab,bi->ai", kappa, eps)
    c = jax.lax.stop_gradient(c)
    g = jax.grad(lambda p: jnp.sum(c * mlp_apply(p, x, activation)))(params)
    return _update(params, g, 1.0, lb, lw)


def giant_leap(params, x, y, *, activation="relu", lambda_b=1.0, lambda_W=1.0, kappa=None):
    r"""One second-order step :math:`\Delta\theta = -\lambda\,\partial z_A^\top\,\kappa\,\epsilon_A` (module docstring).

    Args:
      params: tuple of L pairs ``(W, b)``. x: training inputs ``(N_A, n0)``. y: targets ``(N_A, n_L)``.
      kappa: ``(N_A, N_A)`` matrix (the same for every output component); ``None``: the inverse of the
        network's own empirical NTK on ``x`` (all output components together).
    Returns: the updated params.
    """
    fn = "giant_leap"
    get_activation(activation, fn)
    lb, lw = learning_rate_tensor(len(params), lambda_b, lambda_W, fn=fn)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if kappa is not None:
        kappa = jnp.asarray(kappa, x.dtype)
        if kappa.shape != (x.shape[0], x.shape[0]):
            raise _checks.PDLTValueError(f"{fn}: `kappa` must have shape (N_A, N_A) = {(x.shape[0],) * 2}, got {kappa.shape}")
    return _leap(params, x, y, activation, lb, lw, kappa)


@partial(jax.jit, static_argnames=("activation", "lb", "lw", "steps"))
def _leap_ensemble(params, x, y, kappa, activation, lb, lw, steps):
    def one(p):
        def body(p, _):
            return _leap(p, x, y, activation, lb, lw, kappa), None

        return jax.lax.scan(body, p, None, length=steps)[0]

    return jax.vmap(one)(params)


def giant_leap_ensemble(params, x, y, *, steps: int = 1, activation="relu", lambda_b=1.0, lambda_W=1.0,
                        kappa=None):
    r"""``steps`` successive giant leaps for every network of a stacked ensemble (leading axis = network).

    With the default :math:`\kappa = \hat H_{AA}^{-1}` the training error after one leap is
    :math:`O(1/\sqrt n)` (set by the dNTK) and each further leap squares it (Gauss-Newton).
    Returns: the trained stacked params.
    """
    fn = "giant_leap_ensemble"
    _checks.positive_int(fn, steps=steps)
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(len(params), lambda_b, lambda_W, fn=fn)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise _checks.PDLTValueError(f"{fn}: `y` must have shape (N_A, n_L) with N_A = {x.shape[0]}, got {y.shape}")
    if kappa is not None:
        kappa = jnp.asarray(kappa, x.dtype)
        if kappa.shape != (x.shape[0], x.shape[0]):
            raise _checks.PDLTValueError(f"{fn}: `kappa` must have shape (N_A, N_A), got {kappa.shape}")
    return _leap_ensemble(params, x, y, kappa, act.name, lb, lw, int(steps))


def linear_control(Theta, z0, y, n_train: int):
    r"""Test outputs of the frozen-NTK linear model of each network, :math:`z^{\rm lin}_D` ``(..., N_D, n_L)``.

    Args: Theta: ``(N, N)`` infinite-width NTK (train first); z0: ``(..., N, n_L)`` initial outputs;
      y: ``(n_train, n_L)``.
    """
    TAA, TDA, _ = _split(Theta, n_train, "linear_control")
    z0 = jnp.asarray(z0)
    P = jnp.linalg.solve(TAA, TDA.T).T
    return z0[..., n_train:, :] - jnp.einsum("da,...ai->...di", P, z0[..., :n_train, :] - y)


def control_variate_mean(zT, zlin):
    r"""Estimate of :math:`\mathbb E[z_T] - m^\infty = \mathbb E[z_T - z^{\rm lin}]` and its SE.

    Args: zT, zlin: ``(S, ...)`` trained and linear-model outputs of the same S networks.
    Returns: ``(mean, se)`` of shape ``zT.shape[1:]``.
    """
    d = np.asarray(zT, float) - np.asarray(zlin, float)
    S = d.shape[0]
    return d.mean(0), d.std(0, ddof=1) / np.sqrt(S)


def _centred_products(z):
    c = z - z.mean(0, keepdims=True)
    return np.einsum("si,sj->sij", c, c)


def control_variate_cov(zT, zlin, cov_lin, cov_lin_se=None):
    r"""Covariance of trained outputs, :math:`[\widehat{\mathrm{Cov}}(z_T) - \widehat{\mathrm{Cov}}(z^{\rm lin})] + \mathrm{Cov}(z^{\rm lin})`.

    Args:
      zT, zlin: ``(S, N_D)`` one output component of S trained networks and of their linear models.
      cov_lin: ``(N_D, N_D)`` covariance of :math:`z^{\rm lin}` from an independent ensemble; cov_lin_se its SE.
    Returns: ``(cov, se)``, each ``(N_D, N_D)``; the SE combines the per-network influence of the
      bracket and ``cov_lin_se`` in quadrature.
    """
    zT, zlin = np.asarray(zT, float), np.asarray(zlin, float)
    S = zT.shape[0]
    u = _centred_products(zT) - _centred_products(zlin)
    diff = u.sum(0) / (S - 1)
    se = u.std(0, ddof=1) / np.sqrt(S)
    if cov_lin_se is not None:
        se = np.sqrt(se**2 + np.asarray(cov_lin_se, float) ** 2)
    return diff + np.asarray(cov_lin, float), se


def untrained_linear_cov(key, Theta, x_all, y, n_train: int, *, widths, C_b, C_W, activation="relu",
                         n_nets: int, chunk: int = 4096, start: int = 0):
    r"""Covariance of :math:`z^{\rm lin}_D` (first output component) and its SE from ``n_nets`` untrained networks.

    Networks ``start .. start+n_nets-1`` of ``key`` (forward passes only).
    Returns: ``(cov, se)`` each ``(N_D, N_D)``.
    """
    x_all = jnp.asarray(x_all)
    done, parts = 0, []
    while done < n_nets:
        m = min(chunk, n_nets - done)
        p = init_ensemble(key, x_all.shape[1], widths, C_b=C_b, C_W=C_W, n_nets=m, start=start + done)
        zl = np.asarray(linear_control(Theta, ensemble_apply(p, x_all, activation), y, n_train))[:, :, 0]
        parts.append(zl)
        done += m
    zl = np.concatenate(parts)
    u = _centred_products(zl)
    S = zl.shape[0]
    return u.sum(0) / (S - 1), u.std(0, ddof=1) / np.sqrt(S)


def fit_inverse_width(widths, values, ses, *, power: float = 1.0):
    r"""Weighted fit :math:`v(n) = a + b/n^p` over widths (``p = power``, default 1), with the fit's chi².

    Returns: ``(a, b, se_a, se_b, chi2)``; chi2 has ``len(widths) - 2`` degrees of freedom.
    """
    n = np.asarray(widths, float)
    v, s = np.asarray(values, float), np.asarray(ses, float)
    X = np.stack([np.ones_like(n), 1.0 / n if power == 1 else n ** (-float(power))], axis=1)
    w = 1.0 / s**2
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    c = cov @ X.T @ (w * v)
    r = v - X @ c
    return float(c[0]), float(c[1]), float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])), float(r @ (w * r))


def trained_outputs(key, x_train, y_train, x_eval, *, widths, C_b, C_W, activation="relu", n_nets: int,
                    algorithm: str = "gd", eta: float | None = None, steps: int = 1, lambda_b=1.0, lambda_W=1.0):
    r"""Initial and trained outputs on ``x_eval`` of ``n_nets`` networks (network i from ``fold_in(key, i)``).

    Args:
      algorithm: ``"gd"`` (``steps`` full-batch GD steps at global rate ``eta``) or ``"leap"`` (``steps``
        giant leaps with the network's own NTK, :func:`giant_leap_ensemble`).
    Returns: dict with ``z0``, ``zT`` ``(n_nets, N, n_L)`` and ``lossT`` ``(n_nets,)`` (training MSE loss at the end).
    """
    fn = "trained_outputs"
    if algorithm not in ("gd", "leap"):
        raise _checks.PDLTValueError(f"{fn}: `algorithm` must be 'gd' or 'leap', got {algorithm!r}")
    x_train = jnp.asarray(x_train)
    y_train = jnp.asarray(y_train, x_train.dtype)
    p0 = init_ensemble(key, x_train.shape[1], widths, C_b=C_b, C_W=C_W, n_nets=n_nets)
    if algorithm == "gd":
        from ._training import train_ensemble

        if eta is None:
            raise _checks.PDLTValueError(f"{fn}: `eta` is required for algorithm 'gd'")
        pT, _ = train_ensemble(p0, x_train, y_train, eta=eta, steps=steps, activation=activation,
                               lambda_b=lambda_b, lambda_W=lambda_W)
    else:
        pT = giant_leap_ensemble(p0, x_train, y_train, steps=steps, activation=activation, lambda_b=lambda_b,
                                 lambda_W=lambda_W)
    zT_train = ensemble_apply(pT, x_train, activation)
    return {"z0": ensemble_apply(p0, x_eval, activation), "zT": ensemble_apply(pT, x_eval, activation),
            "lossT": 0.5 * jnp.sum((zT_train - y_train) ** 2, axis=(1, 2)), "params0": p0, "paramsT": pT}


def _dntk_second_derivative(dH):
    r""":math:`M_{\delta;\alpha\beta} = \sum\lambda\lambda\,\partial^2 z_\delta\,\partial z_\alpha\,\partial z_\beta` from the book's dNTK.

    With :math:`dH_{\delta_0\delta_1\delta_2} = \sum\lambda\lambda\,\partial_\mu H_{\delta_1\delta_2}\,\partial_\nu z_{\delta_0}
    = M_{\delta_1;\delta_2\delta_0} + M_{\delta_2;\delta_1\delta_0}`, inverted as
    :math:`M_{a;bc} = \tfrac12(dH_{cab} + dH_{bac} - dH_{abc})`.
    """
    return 0.5 * (jnp.einsum("cab->abc", dH) + jnp.einsum("bac->abc", dH) - dH)


def nearly_kernel_prediction(H, dH, z0, y, n_train: int, *, eta: float | None = None):
    r"""End of training of a model with NTK :math:`H` and dNTK :math:`dH` at initialization, to first order in dH (derived here).

    For a model whose second derivative in the parameters is constant (the quadratic model of §11.4,
    :math:`z = z_0 + J w + \tfrac12 w^\top\Psi w`; its third derivative vanishes) trained on the MSE loss to zero
    training error, with :math:`c = H_{AA}^{-1}\epsilon_0`, :math:`\epsilon_0 = z_{0,A} - y` and the projector
    :math:`\Pi_\delta[X] = X_\delta - H_{\delta A}H_{AA}^{-1}X_A`,

    .. math:: z_\delta(\infty) = z_{0,\delta} - H_{\delta A}c
              + \Pi_\delta\Big[\sum_{\alpha\beta} dH_{\alpha\,\cdot\,\beta}X^{(1)}_{\alpha\beta}
              + \tfrac12\sum_{\alpha\beta}M_{\cdot;\alpha\beta}X^{(2)}_{\alpha\beta}\Big] + O(dH^2),

    where :math:`M` is the second derivative of the outputs contracted with two gradients
    (:func:`_dntk_second_derivative`). The algorithm enters only through :math:`X^{(1)}, X^{(2)}`:

    * gradient descent at rate :math:`\eta` (``eta``), in the eigenbasis :math:`H_{AA} = U\Lambda U^\top`,
      :math:`e = U^\top\epsilon_0`, :math:`a_i = 1 - \eta\lambda_i`:
      :math:`X^{(1)} = U\big[\tfrac{e_ie_j}{\lambda_i}\big(\tfrac1{\lambda_j} - \tfrac{\eta}{1-a_ia_j}\big)\big]U^\top`
      (the NTK moved by the accumulated step :math:`s_t = \eta\sum_{t'<t}\epsilon_{t'}` acting on the error
      :math:`\epsilon_t`), :math:`X^{(2)} = U\big[\tfrac{\eta^2e_ie_j}{1-a_ia_j}\big]U^\top` (the second-order part of
      each step); gradient flow is :math:`\eta\to0`;
    * giant leaps with the model's own NTK (``eta=None``): :math:`X^{(1)} = 0`, :math:`X^{(2)} = cc^\top`
      (one leap lands at :math:`\tfrac12 M[c,c]` off the linear answer; the next removes the training residual
      through :math:`\Pi`; later leaps change :math:`O(dH^2)`).

    Args:
      H: ``(N, N)`` NTK (train first); dH: ``(N, N, N)`` book dNTK ``[a0, a1, a2]``; z0: ``(N,)`` initial outputs;
      y: ``(n_train,)`` targets. eta: GD learning rate, or None for giant leaps.
    Returns: ``(z_kernel, correction)``, each ``(N - n_train,)``: the frozen-NTK prediction with ``H`` and the
      first-order correction.
    """
    fn = "nearly_kernel_prediction"
    HAA, HDA, _ = _split(H, n_train, fn)
    H, dH, z0, y = jnp.asarray(H), jnp.asarray(dH), jnp.asarray(z0), jnp.asarray(y)
    N = H.shape[0]
    if dH.shape != (N, N, N) or z0.shape != (N,) or y.shape != (n_train,):
        raise _checks.PDLTValueError(f"{fn}: need dH (N, N, N), z0 (N,), y (n_train,); got {dH.shape}, {z0.shape}, {y.shape}")
    eps = z0[:n_train] - y
    c = jnp.linalg.solve(HAA, eps)
    M = _dntk_second_derivative(dH)[:, :n_train, :n_train]
    dHa = dH[:n_train, :, :n_train]                                        # [alpha, ., beta]
    if eta is None:
        X1 = jnp.zeros((n_train, n_train), H.dtype)
        X2 = jnp.outer(c, c)
    else:
        _checks.positive(fn, eta=eta)
        lam, U = jnp.linalg.eigh(HAA)
        e = U.T @ eps
        a = 1.0 - eta * lam
        den = 1.0 - a[:, None] * a[None, :]
        X1 = U @ ((e[:, None] * e[None, :]) / lam[:, None] * (1.0 / lam[None, :] - eta / den)) @ U.T
        X2 = U @ (eta**2 * (e[:, None] * e[None, :]) / den) @ U.T
    g = jnp.einsum("adb,ab->d", dHa, X1) + 0.5 * jnp.einsum("dab,ab->d", M, X2)   # over all inputs
    P = jnp.linalg.solve(HAA, HDA.T).T
    return z0[n_train:] - P @ eps, g[n_train:] - P @ g[:n_train]


def quadratic_model_apply(w, phi, psi, eps):
    r"""The quadratic model :math:`z(x) = \sum_j w_j\phi_j(x) + \tfrac{\epsilon}2\sum_{jk}w_jw_k\psi_{jk}(x)` (§11.4).

    Args: w: ``(P,)`` parameters; phi: ``(N, P)`` features; psi: ``(N, P, P)`` symmetric meta-features; eps: scalar.
    Returns: ``(N,)``.
    """
    return phi @ w + 0.5 * eps * jnp.einsum("npq,p,q->n", psi, w, w)


@partial(jax.jit, static_argnames=("steps", "n_train"))
def _train_quadratic_explicit(w0, phi, psi, eps, y, n_train, eta, steps):
    def loss(w):
        return 0.5 * jnp.sum((quadratic_model_apply(w, phi[:n_train], psi[:n_train], eps) - y) ** 2)

    def step(w, _):
        return w - eta * jax.grad(loss)(w), None

    w, _ = jax.lax.scan(step, w0, None, length=steps)
    return quadratic_model_apply(w, phi, psi, eps)


@partial(jax.jit, static_argnames=("leaps", "n_train"))
def _leap_quadratic_explicit(w0, phi, psi, eps, y, n_train, leaps):
    def body(w, _):
        J = jax.jacfwd(lambda v: quadratic_model_apply(v, phi[:n_train], psi[:n_train], eps))(w)
        r = quadratic_model_apply(w, phi[:n_train], psi[:n_train], eps) - y
        return w - J.T @ jnp.linalg.solve(J @ J.T, r), None

    w, _ = jax.lax.scan(body, w0, None, length=leaps)
    return quadratic_model_apply(w, phi, psi, eps)


def train_quadratic_explicit(w0, phi, psi, eps, y, n_train: int, *, eta: float | None = None, steps: int = 1):
    r"""Train the explicit quadratic model (learning-rate tensor 1) on the first ``n_train`` inputs.

    ``eta`` given: ``steps`` GD steps at rate ``eta``; ``eta=None``: ``steps`` giant leaps.
    Returns: outputs ``(N,)`` on all inputs after training.
    """
    fn = "train_quadratic_explicit"
    _checks.positive_int(fn, steps=steps, n_train=n_train)
    args = (jnp.asarray(w0), jnp.asarray(phi), jnp.asarray(psi), float(eps), jnp.asarray(y), int(n_train))
    if eta is None:
        return _leap_quadratic_explicit(*args, int(steps))
    _checks.positive(fn, eta=eta)
    return _train_quadratic_explicit(*args, float(eta), int(steps))


def model_ntk_dntk(f, w):
    r"""NTK :math:`H_{ab} = \partial z_a\cdot\partial z_b` and book dNTK :math:`dH_{a_0a_1a_2} = \partial H_{a_1a_2}\cdot\partial z_{a_0}`
    of a model ``f(w) -> (N,)`` at ``w`` (learning-rate tensor 1), by automatic differentiation.

    Returns: ``(H (N, N), dH (N, N, N))``.
    """
    J = jax.jacfwd(f)(w)

    def H(v):
        Jv = jax.jacfwd(f)(v)
        return Jv @ Jv.T

    dHdw = jax.jacfwd(H)(w)                                                # (N, N, P)
    return J @ J.T, jnp.einsum("bcp,ap->abc", dHdw, J)


def ntk_mean_shift_coefficient(Theta, H1, A, B, y, n_train: int):
    r"""The :math:`1/n` coefficient of :math:`\mathbb E[\hat H_{DA}\hat H_{AA}^{-1}]\,y - m^\infty` (one output; derived here).

    The end point of training with a *frozen* empirical NTK :math:`\hat H` (either algorithm, at zeroth order
    in the dNTK) is :math:`z_D(0) - \hat H_{DA}\hat H_{AA}^{-1}(z_A(0) - y)`. Its deviation from the control
    :math:`z^{\rm lin}` (frozen at :math:`\Theta`) has mean :math:`\mathbb E[f(\hat H)] - f(\Theta)`,
    :math:`f(H) = H_{DA}H_{AA}^{-1}y`: the terms odd in the initial outputs vanish because
    :math:`(\hat H, z)\to(\hat H, -z)` under :math:`W^{(L)}\to -W^{(L)}`. With :math:`\mathbb E\hat H = \Theta + H^{\{1\}}/n`
    and :math:`n\,\mathrm{Cov}(\hat H_{a_1a_2},\hat H_{a_3a_4}) = A_{a_1a_2a_3a_4} + B_{a_1a_3a_2a_4} + B_{a_1a_4a_2a_3}`
    (the :func:`pdlt.ntk_statistics` convention for one output neuron),

    .. math:: n\,\big(\mathbb E f(\hat H) - f(\Theta)\big) = \partial f\cdot H^{\{1\}} + \tfrac12\,\partial^2 f : C + O(1/n).

    Args: Theta, H1: ``(N, N)``; A, B: ``(N, N, N, N)``; y: ``(n_train,)``.
    Returns: ``(N - n_train,)``.
    """
    fn = "ntk_mean_shift_coefficient"
    _split(Theta, n_train, fn)
    Theta, H1, A, B, y = (jnp.asarray(v) for v in (Theta, H1, A, B, y))
    C = A + jnp.einsum("acbd->abcd", B) + jnp.einsum("adbc->abcd", B)

    def f(H):
        H = 0.5 * (H + H.T)
        return H[n_train:, :n_train] @ jnp.linalg.solve(H[:n_train, :n_train], y)

    J = jax.jacfwd(f)(Theta)
    Hs = jax.jacfwd(jax.jacfwd(f))(Theta)
    return jnp.einsum("dab,ab->d", J, H1) + 0.5 * jnp.einsum("dabce,abce->d", Hs, C)


TRAINED_ALGORITHMS = ("leap-fixed", "leap")


def _dntk_z_second_derivative(P, Q):
    r""":math:`n\,E[M_{\delta;\alpha\beta}z_\gamma]` ``[d, a, b, g]`` for one output neuron, from the dNTK's P and Q.

    With :math:`n\,E[\widehat{dH}_{a_0a_1a_2}z_{a_3}] = P_{a_0a_1a_2a_3} + Q_{a_0a_1a_2a_3} + Q_{a_0a_2a_1a_3}` (one output
    neuron, :func:`pdlt.dntk_statistics` convention) and :math:`M_{a;bc} = \tfrac12(dH_{cab} + dH_{bac} - dH_{abc})`.
    """
    G = P + Q + jnp.einsum("acbd->abcd", Q)
    return 0.5 * (jnp.einsum("cabd->abcd", G) + jnp.einsum("bacd->abcd", G) - G)


def trained_mean_correction(Theta, K, y, n_train: int, *, P, Q, R, H1=None, A=None, B=None,
                            algorithm: str = "leap-fixed", parts: bool = False):
    r"""The :math:`1/n` coefficient of :math:`\mathbb E[z_\delta(T)] - m^\infty_\delta` after one second-order step (MSE; ours).

    The step is :math:`\Delta\theta_\mu = -\sum_\nu\lambda_{\mu\nu}\,\partial_\nu z_{\alpha}\,\kappa^{\alpha\beta}\epsilon_\beta`,
    :math:`\epsilon = z_A - y`, one output neuron, with ``algorithm``:

    * ``"leap-fixed"``: :math:`\kappa = \Theta_{AA}^{-1}` (the infinite-width NTK, fixed);
    * ``"leap"``: :math:`\kappa = \hat H_{AA}^{-1}` (the network's own NTK at initialization; :func:`giant_leap`).

    Derivation (ours; the book's §∞.2 treats the same problem, its printed result is not used here).
    Taylor-expand the test output in :math:`\Delta\theta` to third order, with :math:`c = \kappa\epsilon`,
    :math:`M_{\delta;\alpha\beta} = \partial^2z_\delta[\lambda\partial z_\alpha,\lambda\partial z_\beta]` (the dNTK,
    :math:`\widehat{dH}_{a_0a_1a_2} = M_{a_1;a_2a_0} + M_{a_2;a_1a_0}`) and the ddNTK
    :math:`\widehat{ddI}_{\delta\alpha\beta\gamma} = \partial^3z_\delta[\lambda\partial z_\alpha,\lambda\partial z_\beta,\lambda\partial z_\gamma]`:

    .. math:: z_\delta(T) = z_\delta - \hat H_{\delta A}c + \tfrac12 M_{\delta;\alpha\beta}c_\alpha c_\beta
              - \tfrac16\widehat{ddI}_{\delta\alpha\beta\gamma}c_\alpha c_\beta c_\gamma + \dots

    Flipping the last layer's weights and bias maps a product of m derivative tensors of z to
    :math:`(-1)^m` times itself, so every mean with an odd total number of z-factors vanishes
    (:math:`z`: 1, :math:`\hat H`: 2, :math:`M`, :math:`\widehat{dH}`: 3, :math:`\widehat{ddI}`: 4). With
    :math:`c^0 = \Theta_{AA}^{-1}y` this leaves, at order :math:`1/n`,

    .. math:: n\,(\mathbb E z_\delta(T) - m^\infty_\delta) = b^{\rm NTK}_\delta
              - n\,E[M_{\delta;\alpha\beta}z_\gamma]\,(\Theta^{-1}_{AA})_{\alpha\gamma}c^0_\beta
              + R^{(3)}_{\delta\alpha\beta\gamma}\big[\tfrac16c^0_\alpha c^0_\beta c^0_\gamma
              + \tfrac12(\Theta_{AA}^{-1}K_{AA}\Theta_{AA}^{-1})_{\alpha\beta}c^0_\gamma\big],

    * the NTK term :math:`b^{\rm NTK}`: for the fixed :math:`\kappa`, :math:`H^{\{1\}}_{\delta A}c^0` (only the NTK's mean
      shift: :math:`\kappa` is fixed and :math:`E[\hat H z] = 0`); for the own-NTK leap, the expansion of
      :math:`E[\hat H_{\delta A}\hat H_{AA}^{-1}]y` to second order, :func:`ntk_mean_shift_coefficient` (H¹, A, B);
    * the dNTK term: :math:`n E[M z]` from P, Q (:func:`_dntk_z_second_derivative`); the dNTK-z-z correlators
      vanish by parity, and for the own-NTK leap the dNTK-NTK-z correlator is :math:`O(1/n^2)`;
    * the ddNTK term: :math:`n E[\widehat{ddI}_{0123}] = R^{(3)}_{0123} = R_{0123} + R_{0231} + R_{0312}`; the
      correlator :math:`E[\widehat{ddI}\,zz] = E[\widehat{ddI}]\,K + O(1/n^2)` (its connected part needs four weights
      of one neuron, derived at depth two). S, T, U (the ddNTK built from two second derivatives) do not
      enter one step; they enter multi-step algorithms (not implemented).

    Dropped: fourth and higher derivatives (:math:`O(1/n^2)`), the :math:`O(1/n)` shift of K in the ddNTK term
    (:math:`O(1/n^2)`). At depth two every input tensor is exact (:math:`H^{\{1\}} = 0` there); deeper
    networks need R at that depth (the formula itself is depth-independent, given the tensors).
    Kinked activations: the expansion assumes three derivatives. A ReLU network's preactivations cross the
    kink during the step, which the tensors see only through the delta functions of σ'' and σ'''
    (``kink="distributional"`` of :func:`trained_mean_correction_depth2`); their almost-everywhere values miss it.

    Args:
      Theta, K: ``(N, N)`` NTK and kernel of the output layer (training inputs first).
      y: ``(n_train,)`` targets. P, Q, R: ``(N,)*4`` in the :func:`pdlt.dntk_statistics` /
        :func:`pdlt.ddntk_second_layer` conventions (coefficients of 1/n).
      H1: ``(N, N)`` NTK mean shift (default 0, exact at depth two). A, B: needed for ``"leap"``.
      parts: also return the three terms separately.
    Returns: ``(N - n_train,)`` coefficient for the test inputs; with ``parts`` a dict ``total, ntk, dntk, ddntk``.
    """
    fn = "trained_mean_correction"
    _checks.one_of(fn, "algorithm", algorithm, TRAINED_ALGORITHMS)
    _split(Theta, n_train, fn)
    Theta, K, y, P, Q, R = (jnp.asarray(v) for v in (Theta, K, y, P, Q, R))
    N = Theta.shape[0]
    if y.shape != (n_train,) or K.shape != (N, N):
        raise _checks.PDLTValueError(f"{fn}: need K (N, N) and y (n_train,); got {K.shape}, {y.shape}")
    for name, v in (("P", P), ("Q", Q), ("R", R)):
        if v.shape != (N,) * 4:
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape {(N,) * 4}, got {v.shape}")
    H1 = jnp.zeros_like(Theta) if H1 is None else jnp.asarray(H1)
    a = slice(0, n_train)
    kap = jnp.linalg.inv(Theta[a, a])
    c0 = kap @ y
    if algorithm == "leap":
        if A is None or B is None:
            raise _checks.PDLTValueError(f"{fn}: algorithm 'leap' needs the NTK fluctuation tensors A and B")
        ntk = ntk_mean_shift_coefficient(Theta, H1, A, B, y, n_train)
    else:
        ntk = (H1[:, a] @ c0)[n_train:]
    EMz = _dntk_z_second_derivative(P, Q)[:, a, a, a]
    dntk = -jnp.einsum("dabg,ag,b->d", EMz, kap, c0)[n_train:]
    R3 = R + jnp.einsum("acdb->abcd", R) + jnp.einsum("adbc->abcd", R)
    R3 = R3[:, a, a, a]
    X = kap @ K[a, a] @ kap
    ddntk = (jnp.einsum("dabg,a,b,g->d", R3, c0, c0, c0) / 6
             + 0.5 * jnp.einsum("dabg,ab,g->d", R3, X, c0))[n_train:]
    total = ntk + dntk + ddntk
    if parts:
        return {"total": total, "ntk": ntk, "dntk": dntk, "ddntk": ddntk}
    return total


def trained_mean_correction_depth2(x_train, y, x_test, *, C_b, C_W, activation="tanh", lambda_b=1.0,
                                   lambda_W=1.0, algorithm="leap-fixed", parts: bool = False,
                                   kink: str = "almost-everywhere"):
    r"""The trained-mean :math:`1/n` coefficient of a depth-two network (one hidden layer of width n, one output), all tensors exact.

    Computes K, Θ, P, Q (:func:`pdlt.dntk_statistics`), R, S, T, U (:func:`pdlt.ddntk_second_layer`) and, where
    needed, A, B, H¹ (:func:`pdlt.ntk_statistics`) on the training inputs plus one test input at a time (the
    tensors are implemented for N <= 3 inputs, so ``n_train <= 2``). One second-order step (``"leap-fixed"``,
    ``"leap"``) goes to :func:`trained_mean_correction`; gradient descent (:class:`pdlt.learning.GD`) to
    :func:`pdlt.learning.trained_mean_correction_steps`, whose reference is the infinite-width mean after the
    same steps. For a smooth activation ``kink`` does not matter. For a kinked one (ReLU, leaky ReLU; one
    training input, as the kinked tensors take N <= 2 inputs) ``kink="distributional"`` takes P, Q and R with
    σ'' = (a+ - a-)δ, σ''' = (a+ - a-)δ' (the preactivations that cross the kink during the step); only
    entries whose first index, the test input, differs from the training input enter, and those are finite
    (:func:`pdlt.ddntk_second_layer`); a test input equal to the training input raises. Gradient descent also
    needs S, T, U, which have no finite distributional form, so it refuses ``kink="distributional"``
    (those infinities mark the kink crossings at order :math:`n^{-1/2}` of :func:`pdlt.learning.trained_kink_correction`).
    ``kink="almost-everywhere"`` drops the delta functions (σ'' = σ''' = 0).

    Args: x_train ``(n_train, n0)``, y ``(n_train,)``, x_test ``(N_D, n0)``; the rest as in :func:`pdlt.ntk_statistics`.
      algorithm: a name of :data:`TRAINED_ALGORITHMS`, a :class:`pdlt.learning.GD`, or a tuple of these.
      kink: ``"almost-everywhere"`` (default) or ``"distributional"`` (kinked activations, above).
    Returns: ``(N_D,)`` coefficients of 1/n (with ``parts``: a dict of such arrays); for a tuple of
      algorithms, a dict keyed by algorithm.
    """
    return trained_mean_correction_mlp(x_train, y, x_test, L=2, C_b=C_b, C_W=C_W, activation=activation,
                                       lambda_b=lambda_b, lambda_W=lambda_W, algorithm=algorithm, parts=parts,
                                       kink=kink)


def trained_mean_correction_mlp(x_train, y, x_test, *, L: int, C_b, C_W, activation="tanh", lambda_b=1.0,
                                lambda_W=1.0, algorithm="leap-fixed", parts: bool = False,
                                kink: str = "almost-everywhere"):
    r"""The trained-mean :math:`1/n` coefficient of an MLP of depth ``L`` (L - 1 hidden layers of width n, one output).

    At ``L = 2`` it is :func:`trained_mean_correction_depth2` (every tensor exact). Deeper, the tensors are the
    leading-order recursions at layer L: K, Θ, P, Q (:func:`pdlt.dntk_statistics`), R, S, T, U
    (:func:`pdlt.ddntk_statistics`) and H¹, A, B (:func:`pdlt.ntk_statistics`), with the 1/n mean shift H¹ of the
    NTK now nonzero; the assembly is the same (:func:`trained_mean_correction`,
    :func:`pdlt.learning.trained_mean_correction_steps`). For L > 2 ``kink`` must be ``"almost-everywhere"``
    (the distributional R is implemented at depth two only).

    Args: L: depth (>= 2); the rest as in :func:`trained_mean_correction_depth2`.
    Returns: as :func:`trained_mean_correction_depth2`.
    """
    from ._ddntk_stats import ddntk_statistics
    from ._dntk_stats import ddntk_second_layer, dntk_statistics
    from ._ntk_stats import ntk_statistics
    from ._trained_dynamics import GD, _algorithms, trained_mean_correction_steps

    fn = "trained_mean_correction_mlp"
    _checks.positive_int(fn, L=L)
    if L < 2:
        raise _checks.PDLTValueError(f"{fn}: `L` must be >= 2 (a hidden layer), got {L}")
    if L > 2 and kink != "almost-everywhere":
        raise _checks.PDLTValueError(f"{fn}: `kink` {kink!r} is implemented at L = 2 only; use 'almost-everywhere'")
    single, algs = _algorithms(fn, algorithm, TRAINED_ALGORITHMS)
    if kink == "distributional" and any(isinstance(a, GD) for a in algs):
        raise _checks.PDLTValueError(f"{fn}: `kink` 'distributional' has no finite S, T, U, which gradient descent needs "
                                     "(for one training input see pdlt.learning.trained_kink_correction_depth2)")
    x_train, x_test = jnp.asarray(x_train), jnp.asarray(x_test)
    nA = x_train.shape[0]
    if nA > 2:
        raise _checks.PDLTValueError(f"{fn}: at most 2 training inputs (the dNTK tensors need N <= 3), got {nA}")
    kw = dict(C_b=C_b, C_W=C_W, activation=activation, lambda_b=lambda_b, lambda_W=lambda_W)
    need_ab = any(a == "leap" or isinstance(a, GD) for a in algs)
    out = {a: [] for a in algs}
    for d in range(x_test.shape[0]):
        x = jnp.concatenate([x_train, x_test[d:d + 1]])
        if L == 2:
            dd = ddntk_second_layer(x, kink=kink, **kw)   # first: it refuses coincident inputs for a kinked σ
        else:
            d4 = ddntk_statistics(x, L=L, kink=kink, **kw)
            dd = dict(R=d4.R[-1], S=d4.S[-1], T=d4.T[-1], U=d4.U[-1])
        st = dntk_statistics(x, L=L, kink=kink, **kw)
        Th, K, P, Q = st.Theta[-1], st.K[-1], st.P[-1], st.Q[-1]
        extra = {}
        if need_ab or L > 2:
            ns = ntk_statistics(x, L=L, **kw)
            extra = dict(H1=ns.H1[-1], A=ns.A[-1], B=ns.B[-1])
        for a in algs:
            if isinstance(a, GD):
                r = trained_mean_correction_steps(Th, K, jnp.asarray(y), nA, P=P, Q=Q, R=dd["R"], S=dd["S"],
                                                  T=dd["T"], U=dd["U"], eta=a.eta, steps=a.steps, parts=True, **extra)
            else:
                r = trained_mean_correction(Th, K, jnp.asarray(y), nA, P=P, Q=Q, R=dd["R"], algorithm=a, parts=True,
                                            **extra)
            out[a].append(r)
    res = {a: {k: jnp.concatenate([o[k] for o in out[a]]) for k in out[a][0]} for a in algs}
    if not parts:
        res = {a: r["total"] for a, r in res.items()}
    return res[algorithm] if single else res
