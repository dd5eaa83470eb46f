r"""Nearly-Gaussian distributions (PDLT §1.2-§1.3): the single-variable quartic action.

.. math:: p(z) \propto \exp\Big(-\frac{z^2}{2K} - \frac{\lambda}{4!} z^4\Big),\qquad \lambda \ge 0.

To first order in the quartic coupling (PDLT eq. (1.82)-(1.84) for one variable, numbering unverified):
:math:`\langle z^2\rangle = K - \tfrac{\lambda}{2}K^3 + O(\lambda^2)` and the connected four-point
function :math:`\langle z^4\rangle - 3\langle z^2\rangle^2 = -\lambda K^4 + O(\lambda^2)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

from . import _checks

__all__ = ["quartic_moments_exact", "quartic_moments_first_order", "sample_quartic"]


def quartic_moments_exact(K: float, lam: float) -> tuple[float, float]:
    r"""Exact :math:`(\langle z^2\rangle, \langle z^4\rangle_{\rm connected})` of the quartic action by
    adaptive quadrature (scipy, relative accuracy ~1e-12)."""
    _checks.positive("quartic_moments_exact", K=K)
    _checks.nonnegative("quartic_moments_exact", lam=lam)

    def w(z):
        return np.exp(-z * z / (2 * K) - lam * z**4 / 24.0)

    Z = integrate.quad(w, -np.inf, np.inf, epsabs=0, epsrel=1e-13)[0]
    m2 = integrate.quad(lambda z: z * z * w(z), -np.inf, np.inf, epsabs=0, epsrel=1e-13)[0] / Z
    m4 = integrate.quad(lambda z: z**4 * w(z), -np.inf, np.inf, epsabs=0, epsrel=1e-13)[0] / Z
    return m2, m4 - 3 * m2 * m2


def quartic_moments_first_order(K: float, lam: float) -> tuple[float, float]:
    r"""First-order perturbation theory: :math:`(K - \lambda K^3/2,\ -\lambda K^4)`."""
    return K - 0.5 * lam * K**3, -lam * K**4


@_checks.warns_nonfinite("samples")
def sample_quartic(key, K: float, lam: float, n: int, *, batch: int | None = None):
    r"""Exact samples of the quartic action by rejection from :math:`\mathcal N(0, K)`.

    A Gaussian proposal ``z`` is accepted with probability :math:`e^{-\lambda z^4/24}\le 1`, which is
    exactly the ratio of the two densities up to a constant. Returns ``n`` samples (float64 if x64).
    """
    _checks.positive("sample_quartic", K=K)
    _checks.nonnegative("sample_quartic", lam=lam)
    _checks.positive_int("sample_quartic", n=n)
    batch = batch or max(2 * n, 1024)
    out, have, i = [], 0, 0
    while have < n:
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        z = jnp.sqrt(K) * jax.random.normal(k1, (batch,))
        u = jax.random.uniform(k2, (batch,))
        acc = z[u < jnp.exp(-lam * z**4 / 24.0)]
        out.append(acc)
        have += acc.shape[0]
        i += 1
    return jnp.concatenate(out)[:n]
