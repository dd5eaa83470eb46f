r"""Kernel learning: the fully trained infinite-width ensemble (PDLT §10.2-10.4, numbering unverified).

At infinite width the NTK is frozen at :math:`\Theta` (:func:`pdlt.ntk_recursion`) and the network is a
linear model in its parameters, so GD on the MSE loss moves the outputs of the training set ``A`` as
:math:`z_A(t) - y_A = (1 - \eta\Theta_{AA})^t\,(z_A(0) - y_A)` and those of any other input ``d`` as

.. math::  z_d(t) = z_d(0) - \Theta_{dA}\Theta_{AA}^{-1}\big[1 - (1 - \eta\Theta_{AA})^t\big](z_A(0) - y_A).

At the end of training (:math:`t\to\infty`, :math:`0<\eta<2/\lambda_{\max}(\Theta_{AA})`) the answer does
not depend on :math:`\eta`. With the initial outputs Gaussian with covariance :math:`K` (the kernel of the
last layer), the trained ensemble is Gaussian with mean and covariance

.. math::
   m^\infty_d = \Theta_{dA}\Theta_{AA}^{-1}y_A,\qquad
   \Sigma^\infty_{d_1d_2} = K_{d_1d_2} - \Theta_{d_1A}\Theta_{AA}^{-1}K_{Ad_2} - \Theta_{d_2A}\Theta_{AA}^{-1}K_{Ad_1}
     + \Theta_{d_1A}\Theta_{AA}^{-1}K_{AA}\Theta_{AA}^{-1}\Theta_{Ad_2}.

Convention: a kernel over all inputs is one ``(N, N)`` matrix whose first ``n_train`` rows/columns are
the training inputs ``A`` and the rest the test inputs ``D``.
"""
from __future__ import annotations

import jax.numpy as jnp

from . import _checks
from ._ntk import ntk_recursion

__all__ = ["frozen_ntk_prediction", "trained_ensemble_moments", "infinite_width_ensemble", "bias_variance",
           "synthetic_task"]


def _split(M, n_train, fn):
    M = jnp.asarray(M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise _checks.PDLTValueError(f"{fn}: kernels must be square (N, N) matrices, got shape {M.shape}")
    _checks.positive_int(fn, n_train=n_train)
    if n_train >= M.shape[0]:
        raise _checks.PDLTValueError(f"{fn}: `n_train`={n_train} must be smaller than the number of inputs {M.shape[0]}")
    return M[:n_train, :n_train], M[n_train:, :n_train], M[n_train:, n_train:]


def frozen_ntk_prediction(Theta, z0, y, n_train: int, *, eta: float | None = None, steps: int | None = None):
    r"""Outputs of the linear model with frozen NTK after ``steps`` GD steps (``None``: end of training).

    Args:
      Theta: ``(N, N)`` frozen NTK over train+test inputs (train first).
      z0: initial outputs ``(..., N, n_L)`` (any leading axes, e.g. networks).
      y: targets ``(n_train, n_L)``.
      n_train: number of training inputs; eta, steps: learning rate and steps (both or neither).
    Returns:
      outputs ``(..., N, n_L)`` on all inputs (training rows first).
    """
    fn = "frozen_ntk_prediction"
    TAA, TDA, _ = _split(Theta, n_train, fn)
    z0 = jnp.asarray(z0)
    eps = z0[..., :n_train, :] - y
    if steps is None:
        sol = jnp.linalg.solve(TAA, eps)                    # Θ^{-1} ε0 (broadcast over leading axes)
        zA = jnp.broadcast_to(jnp.asarray(y, z0.dtype), eps.shape)
    else:
        _checks.positive(fn, eta=eta)
        w, U = jnp.linalg.eigh(TAA)
        decay = (1.0 - eta * w) ** steps
        sol = U @ (((1.0 - decay) / w)[:, None] * (U.T @ eps))
        zA = y + U @ (decay[:, None] * (U.T @ eps))
    zD = z0[..., n_train:, :] - TDA @ sol
    return jnp.concatenate([zA, zD], axis=-2)


def trained_ensemble_moments(K, Theta, y, n_train: int):
    r"""Mean :math:`m^\infty` ``(N_D, n_L)`` and covariance :math:`\Sigma^\infty` ``(N_D, N_D)`` of the trained ensemble.

    Args:
      K, Theta: ``(N, N)`` kernel and frozen NTK of the output layer (train first); y: ``(n_train, n_L)``.
    """
    fn = "trained_ensemble_moments"
    KAA, KDA, KDD = _split(K, n_train, fn)
    TAA, TDA, _ = _split(Theta, n_train, fn)
    P = jnp.linalg.solve(TAA, TDA.T).T                    # Θ_DA Θ_AA^{-1}
    m = P @ jnp.asarray(y)
    S = KDD - P @ KDA.T - KDA @ P.T + P @ KAA @ P.T
    return m, 0.5 * (S + S.T)


def infinite_width_ensemble(x_train, y_train, x_test, *, C_b, C_W, L: int, activation="relu",
                            lambda_b=1.0, lambda_W=1.0):
    r"""m∞, Σ∞ and the output-layer (K, Θ) for a network of depth L from the K and Θ recursions.

    Returns:
      dict with ``m`` ``(N_D, n_L)``, ``Sigma`` ``(N_D, N_D)``, ``K`` and ``Theta`` ``(N, N)`` (train first).
    """
    x = jnp.concatenate([jnp.asarray(x_train), jnp.asarray(x_test)])
    K, T = ntk_recursion(x, C_b=C_b, C_W=C_W, L=L, activation=activation, lambda_b=lambda_b, lambda_W=lambda_W)
    m, S = trained_ensemble_moments(K[-1], T[-1], y_train, len(x_train))
    return {"m": m, "Sigma": S, "K": K[-1], "Theta": T[-1]}


def bias_variance(m, Sigma, f_test):
    r"""Mean test error of the trained ensemble split as bias² + variance (averaged over test inputs).

    :math:`\mathbb E\,\overline{(z_d - f_d)^2} = \overline{(m_d - f_d)^2} + \overline{\Sigma_{dd}}` (per output component).
    Returns:
      ``(bias2, variance)``.
    """
    m, f = jnp.asarray(m), jnp.asarray(f_test)
    return jnp.mean((m - f) ** 2), jnp.mean(jnp.diag(Sigma))


def synthetic_task(key, *, n_train: int, n_test: int, n0: int, n_out: int = 1):
    r"""A small regression task generated in code: inputs on the sphere :math:`|x|^2 = n_0`, smooth target.

    The target of output ``i`` is :math:`f_i(x) = \sin(u_i\cdot x/\sqrt{n_0}) + \tfrac12\cos(v_i\cdot x/\sqrt{n_0})`
    with fixed random unit-scale directions :math:`u_i, v_i`.

    Returns:
      ``(x_train (n_train, n0), y_train (n_train, n_out), x_test (n_test, n0), f_test (n_test, n_out))``.
    """
    import jax

    fn = "synthetic_task"
    _checks.positive_int(fn, n_train=n_train, n_test=n_test, n0=n0, n_out=n_out)
    kx, ku, kv = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n_train + n_test, n0))
    x = x * jnp.sqrt(n0) / jnp.linalg.norm(x, axis=1, keepdims=True)
    u = jax.random.normal(ku, (n0, n_out)) * 1.5
    v = jax.random.normal(kv, (n0, n_out)) * 1.5
    f = jnp.sin(x @ u / jnp.sqrt(n0)) + 0.5 * jnp.cos(x @ v / jnp.sqrt(n0))
    return x[:n_train], f[:n_train], x[n_train:], f[n_train:]

