r"""Kink crossings in trained ReLU-like networks: the :math:`n^{-1/2}` terms of the trained mean and of the NTK.

For a scale-invariant activation, :math:`\sigma'(u) = a_+` for :math:`u > 0` and :math:`a_-` for :math:`u < 0`
(ReLU: :math:`a_+ = 1, a_- = 0`), the expansion of :func:`pdlt.learning.trained_outputs_expansion` in the derivative
tensors fails for gradient descent with more than one step: the correlators it needs contain products of two delta
functions at one input, which have no finite value. The reason is a correction of lower order than 1/n, which we
derive here (ours) for a network with one hidden layer of width n, one output and one training input :math:`x_A`.

Picture. Hidden neuron j has preactivations :math:`u_j(x) = b_j + w_j\cdot x` and output weight
:math:`v_j \sim N(0, C_W/n)`. Gradient descent moves :math:`u_j(x)` by
:math:`-v_j\sigma'(u_j(x_A))\,\Theta^{(1)}_{xA}\,\Delta S_t` per step, with :math:`\Delta S_t = \eta\,\epsilon(t)` and
:math:`S(t) = \sum_{s<t}\eta\,\epsilon(s)` common to every neuron; the output weights move by :math:`O(1/n)`.
A neuron whose :math:`u_j(x_A)` starts within :math:`O(1/\sqrt n)` of the kink and is pushed towards it crosses
(a fraction :math:`O(1/\sqrt n)` of the neurons), and from then on moves at the other slope. Flipping
:math:`v_j` flips the direction of the push, so for either sign half of the neurons near the kink are pushed
towards it, and a crossing changes the NTK (:math:`\sum_j v_j^2\sigma'\sigma'\Theta^{(1)}`) and the outputs with
one sign: the effect does not average away, and it is :math:`n\cdot\tfrac1n\cdot n^{-1/2}`. With :math:`p(0) = (2\pi K^{(1)}_{AA})^{-1/2}` and
:math:`n\,\mathbb E|v|^3 = 2\sqrt{2/\pi}\,C_W^{3/2}/\sqrt n`, every term below carries

.. math:: \gamma = \frac{(a_+-a_-)^2(a_++a_-)\,C_W^{3/2}}{\pi\sqrt{K^{(1)}_{AA}}} .

At leading order :math:`\epsilon(t) = (1-s)^t\epsilon_0` with :math:`s = \eta\Theta_{AA}` and
:math:`\epsilon_0 = z_A - y \sim N(-y, K_{AA})`, so for :math:`0 < s \le 1` the drive :math:`S` is monotone and ends at
:math:`S_0 = \epsilon_0/\Theta_{AA}`. Three consequences, each averaged over the crossing window (uniform density
:math:`p(0)` at this order) and over the sign of :math:`v_j`:

* the training output as a function of the drive is
  :math:`z_A(S) = z_A - \hat H_{AA}S + \gamma(\Theta^{(1)}_{AA})^2 S|S|/(2\sqrt n)`, exactly along any path, since a
  crossed neuron's contribution depends only on where it crossed; gradient descent runs until :math:`z_A(S_\infty) = y`, so
  :math:`S_\infty` exceeds the own linear model's :math:`\epsilon_0/\hat H_{AA}` by :math:`\gamma(\Theta^{(1)}_{AA})^2S_0|S_0|/(2\sqrt n\,\Theta_{AA})`;
* the test preactivation :math:`u_j(x_\delta)` of a neuron that crossed at :math:`x_A` keeps the old slope until the step
  after the crossing (the overshoot). Its deficit, summed over the crossing window, is
  :math:`\int_0^{S_\infty}(S_\infty - S_{\rm stop}(w))\,dw = \tfrac12S_\infty^2 - \tfrac12\sum_t\Delta S_t^2 = S_0|S_0|\,\frac{1-s}{2-s}`
  (:math:`S_{\rm stop}(w)`: the first :math:`S(t) \ge w`), weighted by :math:`\mathbb E[\sigma'(u_\delta)\mid u_A = 0] = (a_++a_-)/2`;
* crossings of the test preactivation itself are symmetric in :math:`v_j` and cancel, and the per-step
  nonlinearity of a test output is odd in :math:`v_j`.

Hence, for gradient descent to convergence, against each network's own linear model
:math:`z^{\rm own}_\delta = z_\delta - \hat H_{\delta A}\hat H_{AA}^{-1}\epsilon_0`,

.. math:: \sqrt n\,\mathbb E[z_\delta(T) - z^{\rm own}_\delta] \to \frac\gamma2\,\Theta^{(1)}_{AA}\,\mathbb E[S_0|S_0|]
          \Big[\Theta^{(1)}_{\delta A}\,\frac{1-s}{2-s} - \Theta^{(1)}_{AA}\frac{\Theta_{\delta A}}{\Theta_{AA}}\Big],

the first term (the overshoot) depending on the learning rate, the second (the residual) not. One second-order step
(``"leap-fixed"``, ``"leap"``) has neither at this order: there is no overshoot, and nothing trains the
residual away, which stays on the training output, :math:`\sqrt n\,\mathbb E[z_A(1) - y] \to \tfrac\gamma2(\Theta^{(1)}_{AA})^2\mathbb E[S_0|S_0|]`.
The mean NTK at the end of training, for every algorithm, moves by

.. math:: \sqrt n\,\mathbb E[\hat H_{AA}(T) - \hat H_{AA}(0)] \to -\gamma(\Theta^{(1)}_{AA})^2\,\mathbb E|S_0|,\qquad
          \sqrt n\,\mathbb E[\hat H_{\delta A}(T) - \hat H_{\delta A}(0)] \to -\tfrac\gamma2\Theta^{(1)}_{AA}\Theta^{(1)}_{\delta A}\,\mathbb E|S_0| ,

where a smooth activation's moves by :math:`O(1/n)`. The Gaussian averages are closed forms:
:math:`\mathbb E[X|X|] = (\mu^2+\sigma^2)(2\Phi(\mu/\sigma)-1) + 2\mu\sigma\varphi(\mu/\sigma)` and
:math:`\mathbb E|X| = \sigma\sqrt{2/\pi}\,e^{-\mu^2/2\sigma^2} + \mu(2\Phi(\mu/\sigma)-1)` for :math:`X\sim N(\mu,\sigma^2)`.
These are the leading terms; the :math:`1/n` terms behind them are not computed here (for kinked activations the
expansion that would give them has no finite value).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.stats import norm

from . import _checks

__all__ = ["trained_kink_correction", "trained_kink_correction_depth2"]


def _gauss_abs_moments(mu, sd):
    """``(E[X|X|], E|X|)`` for X ~ N(mu, sd²), closed forms."""
    r = mu / sd
    erf_part = 2 * norm.cdf(r) - 1
    e_xabs = (mu**2 + sd**2) * erf_part + 2 * mu * sd * norm.pdf(r)
    e_abs = sd * math.sqrt(2 / math.pi) * jnp.exp(-0.5 * r**2) + mu * erf_part
    return e_xabs, e_abs


def _rate(fn, alg, theta_AA):
    """``s = η Θ_AA`` of a converged gradient descent, or None for a one-step algorithm."""
    from ._trained_dynamics import GD

    if not isinstance(alg, GD):
        return None
    s = float(alg.eta) * float(theta_AA)
    if not 0.0 < s <= 1.0:
        raise _checks.PDLTValueError(
            f"{fn}: `algorithm` GD needs 0 < η Θ_AA <= 1 (a monotone drive), got η Θ_AA = {s:.4g}")
    if alg.steps < 2 or (1.0 - s) ** alg.steps * alg.steps > 1e-6:
        raise _checks.PDLTValueError(
            f"{fn}: `algorithm` GD must converge (steps >= 2 and (1 - η Θ_AA)^steps · steps <= 1e-6), "
            f"got steps = {alg.steps} at η Θ_AA = {s:.4g}")
    return s


def trained_kink_correction(Theta1, K1, Theta, K, y, *, a_plus, a_minus, C_W, algorithm, parts: bool = False):
    r"""The :math:`n^{-1/2}` coefficients of the trained mean of a kinked network (module docstring; ours).

    One hidden layer, one output, one training input (index 0), the test inputs after it.

    Args:
      Theta1, K1: ``(N, N)`` NTK and kernel of the hidden layer's preactivations (:math:`\Theta^{(1)}, K^{(1)}`).
      Theta, K: ``(N, N)`` NTK and kernel of the output. y: ``(1,)`` target.
      a_plus, a_minus: the slopes of σ. C_W: the output layer's weight variance.
      algorithm: ``"leap-fixed"``, ``"leap"``, or a converged :class:`pdlt.learning.GD` with
        :math:`0 < \eta\Theta_{AA} \le 1`.
      parts: also return the parts (below).
    Returns: ``(N - 1,)`` coefficient of :math:`n^{-1/2}` in :math:`\mathbb E[z_\delta(T) - z^{\rm own}_\delta]`; with ``parts``
      a dict ``total, overshoot, residual`` (test inputs), ``train_residual`` (the training output's
      :math:`\sqrt n\,\mathbb E[z_A(T) - y]`, scalar) and ``ntk`` (``(N,)``: :math:`\sqrt n\,\mathbb E[\Delta\hat H_{xA}]`, x = A first).
    """
    from ._trained import TRAINED_ALGORITHMS
    from ._trained_dynamics import GD

    fn = "trained_kink_correction"
    if not isinstance(algorithm, GD):
        _checks.one_of(fn, "algorithm", algorithm, TRAINED_ALGORITHMS)
    Theta1, K1, Theta, K, y = (jnp.asarray(v, dtype=jnp.result_type(float)) for v in (Theta1, K1, Theta, K, y))
    N = Theta.shape[0]
    for name, v in (("Theta1", Theta1), ("K1", K1), ("Theta", Theta), ("K", K)):
        if v.shape != (N, N) or N < 2:
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape (N, N) with N >= 2, got {v.shape}")
    if y.shape != (1,):
        raise _checks.PDLTValueError(f"{fn}: one training input: `y` must have shape (1,), got {y.shape}")
    _checks.finite(fn, Theta1=Theta1, K1=K1, Theta=Theta, K=K, y=y)
    s = _rate(fn, algorithm, Theta[0, 0])
    gam = (a_plus - a_minus) ** 2 * (a_plus + a_minus) * float(C_W) ** 1.5 / (math.pi * jnp.sqrt(K1[0, 0]))
    e_xabs, e_abs = _gauss_abs_moments(-y[0], jnp.sqrt(K[0, 0]))
    S2, S1 = e_xabs / Theta[0, 0] ** 2, e_abs / Theta[0, 0]          # E[S0|S0|], E|S0|
    t1A, t1D = Theta1[0, 0], Theta1[1:, 0]
    ntk = jnp.concatenate([(-gam * t1A**2 * S1)[None], -0.5 * gam * t1A * t1D * S1])
    zero = jnp.zeros(N - 1, Theta.dtype)
    if s is None:
        out = dict(total=zero, overshoot=zero, residual=zero, train_residual=0.5 * gam * t1A**2 * S2)
    else:
        over = 0.5 * gam * t1A * t1D * (1 - s) / (2 - s) * S2
        res = -0.5 * gam * t1A**2 * Theta[1:, 0] / Theta[0, 0] * S2
        out = dict(total=over + res, overshoot=over, residual=res, train_residual=jnp.zeros((), Theta.dtype))
    out["ntk"] = ntk
    return out if parts else out["total"]


def trained_kink_correction_depth2(x_train, y, x_test, *, C_b, C_W, activation="relu", lambda_b=1.0, lambda_W=1.0,
                                   algorithm, parts: bool = False):
    r"""The :math:`n^{-1/2}` coefficients of :func:`trained_kink_correction` for a network with one hidden layer.

    :math:`K^{(1)} = C_b + C_W\,x\cdot x'/n_0`, :math:`\Theta^{(1)} = \lambda_b + \lambda_W\,x\cdot x'/n_0` (layer-1
    values) and the output's K and Θ, all from :func:`pdlt.ntk_recursion` at depth two.

    Args: x_train ``(1, n0)`` (one training input), y ``(1,)``, x_test ``(N_D, n0)``; C_b, C_W scalars or per-layer
      pairs; activation: a scale-invariant registry name with :math:`a_+ \ne a_-` (ReLU, leaky ReLU); lambda_b,
      lambda_W: scalars or per-layer pairs; algorithm, parts: as in :func:`trained_kink_correction`.
    Raises: PDLTValueError before any compute for more than one training input, an activation without a kink, or a
      gradient descent that does not converge monotonically.
    """
    from ._activations import get_activation
    from ._ntk import ntk_recursion

    fn = "trained_kink_correction_depth2"
    act = get_activation(activation, fn)
    if not act.scale_invariant or act.a_plus == act.a_minus:
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} has no kink; only scale-invariant activations with a_+ != a_- cross one")
    x_train, x_test, y = (jnp.asarray(v, dtype=jnp.result_type(float)) for v in (x_train, x_test, y))
    if x_train.ndim != 2 or x_train.shape[0] != 1:
        raise _checks.PDLTValueError(f"{fn}: `x_train` must be one training input, shape (1, n0), got {x_train.shape}")
    if x_test.ndim != 2 or x_test.shape[1] != x_train.shape[1]:
        raise _checks.PDLTValueError(f"{fn}: `x_test` must have shape (N_D, {x_train.shape[1]}), got {x_test.shape}")
    _checks.finite(fn, x_train=x_train, x_test=x_test, y=y)
    Cb, Cw = _checks.per_layer_variances(fn, C_b, C_W, 2)
    lb, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, 2)
    K, Th = ntk_recursion(jnp.concatenate([x_train, x_test]), C_b=Cb, C_W=Cw, L=2, activation=act.name,
                          lambda_b=lb, lambda_W=lw)
    return trained_kink_correction(Th[0], K[0], Th[1], K[1], y, a_plus=act.a_plus, a_minus=act.a_minus, C_W=Cw[1],
                                   algorithm=algorithm, parts=parts)
