r"""Estimators with standard errors for Monte Carlo ensembles.

All functions reduce over ``axis`` (the ensemble axis, default 0) and return ``(estimate, se)``.
Standard errors of variances use the fourth central moment (delta method), not the
normal-theory formula, since the quantities we measure are far from Gaussian.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["mean_and_se", "variance_and_se", "covariance_and_se", "batch_means_se", "fit_line",
           "excess_kurtosis_and_se", "fit_power_law", "fit_linear"]


def mean_and_se(x, axis=0):
    """Sample mean and its standard error ``s / sqrt(S)``."""
    x = jnp.asarray(x)
    S = x.shape[axis]
    return jnp.mean(x, axis=axis), jnp.std(x, axis=axis, ddof=1) / jnp.sqrt(S)


def variance_and_se(x, axis=0):
    r"""Unbiased sample variance and its SE, :math:`\sqrt{(m_4 - m_2^2)/S}` (delta method)."""
    x = jnp.asarray(x)
    S = x.shape[axis]
    d = x - jnp.mean(x, axis=axis, keepdims=True)
    m2 = jnp.mean(d**2, axis=axis)
    m4 = jnp.mean(d**4, axis=axis)
    return m2 * S / (S - 1), jnp.sqrt(jnp.maximum(m4 - m2**2, 0.0) / S)


def covariance_and_se(x, y, axis=0):
    r"""Sample covariance of x and y and its SE from the variance of the centred products."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    S = x.shape[axis]
    p = (x - jnp.mean(x, axis=axis, keepdims=True)) * (y - jnp.mean(y, axis=axis, keepdims=True))
    return jnp.sum(p, axis=axis) / (S - 1), jnp.std(p, axis=axis, ddof=1) / jnp.sqrt(S)


def batch_means_se(values, n_batches: int = 20):
    """SE of the mean of a (possibly correlated) sequence by batch means; returns (mean, se)."""
    v = np.asarray(values, dtype=float).ravel()
    m = len(v) // n_batches
    b = v[: m * n_batches].reshape(n_batches, m).mean(axis=1)
    return float(v.mean()), float(b.std(ddof=1) / np.sqrt(n_batches))


def fit_line(x, y, se=None):
    """Weighted least squares y = a + b x. Returns ((a, b), (se_a, se_b)) from the covariance.

    With ``se`` given, the weights are 1/se^2 and the parameter errors are the standard ones;
    without it, the residual scatter sets the scale.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(y) if se is None else 1.0 / np.asarray(se, float) ** 2
    A = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(A.T @ (w[:, None] * A))
    coef = cov @ A.T @ (w * y)
    if se is None:
        r = y - A @ coef
        cov = cov * (r @ (w * r)) / max(len(y) - 2, 1)
    return (float(coef[0]), float(coef[1])), (float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])))


def excess_kurtosis_and_se(x, axis=0):
    r"""Excess kurtosis :math:`\kappa = m_4/m_2^2 - 3` (central moments) and its delta-method SE.

    The influence of sample s is :math:`(d_s^4 - m_4)/m_2^2 - 2m_4(d_s^2 - m_2)/m_2^3`, :math:`d = x - \bar x`.
    """
    x = jnp.asarray(x)
    S = x.shape[axis]
    d = x - jnp.mean(x, axis=axis, keepdims=True)
    m2, m4 = jnp.mean(d**2, axis=axis, keepdims=True), jnp.mean(d**4, axis=axis, keepdims=True)
    infl = (d**4 - m4) / m2**2 - 2 * m4 * (d**2 - m2) / m2**3
    k = jnp.squeeze(m4 / m2**2, axis) - 3.0
    return k, jnp.std(infl, axis=axis, ddof=1) / jnp.sqrt(S)
def fit_power_law(x, y, se):
    """Fit y = c x^p on log axes (weights from the relative SE). Returns ((c, p), (se_logc, se_p)).

    The relative errors ``se/y`` are the standard errors of ``log y`` (delta method); ``y`` must be > 0.
    """
    x, y, se = np.asarray(x, float), np.asarray(y, float), np.asarray(se, float)
    (a, p), (sa, sp) = fit_line(np.log(x), np.log(y), se / y)
    return (float(np.exp(a)), p), (sa, sp)



def fit_linear(X, y, se):
    """Weighted least squares y = X c (X: (m, k) design matrix, weights 1/se^2). Returns (c, cov)."""
    X, y, w = np.asarray(X, float), np.asarray(y, float), 1.0 / np.asarray(se, float) ** 2
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    return cov @ X.T @ (w * y), cov
