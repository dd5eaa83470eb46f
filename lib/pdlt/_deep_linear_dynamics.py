r"""Exact gradient-descent dynamics of deep linear networks (Saxe, McClelland & Ganguli 2013).

A deep linear network of depth ``D`` (``D`` weight matrices) computes :math:`P = W_D\cdots W_1`.
With whitened inputs (input covariance the identity) and a target map :math:`T = U\,{\rm diag}(s)\,V^T`,
the squared loss is :math:`\mathcal L = \tfrac12\lVert T - P\rVert_F^2` and gradient descent with
step :math:`\eta` is the Euler discretisation, with time step 1, of the gradient flow
:math:`\tau\,\dot W_k = -\partial\mathcal L/\partial W_k` with :math:`\tau = 1/\eta` (time in steps).

*Aligned* (decoupled and balanced) initial weights,
:math:`W_1 = R_1 a V^T,\ W_k = R_k a R_{k-1}^T,\ W_D = U a R_{D-1}^T` with orthonormal :math:`R_k`
and a diagonal :math:`a`, stay aligned under the flow *and* under discrete gradient descent; each
mode strength :math:`u_\alpha = (U^T P V)_{\alpha\alpha} = a_\alpha^D` then obeys

.. math:: \tau\,\dot u = D\,u^{2-2/D}(s-u),

whose ``D = 2`` solution is the logistic curve

.. math:: u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau}-1+s/u_0},\qquad
          t_{1/2} = \frac{\tau}{2s}\ln\!\Big(\frac{s}{u_0}-1\Big),

so the time to learn a mode is inversely proportional to its strength ``s``. (Our conventions: the
factor 1/2 in the loss, ``tau = 1/eta``; the paper writes the same equations with its own
normalisation of the input-output correlations -- the mode equations above are derived here.)

All functions are pure; keys are explicit.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._haar import haar_frame

__all__ = [
    "saxe_logistic", "saxe_half_time", "deep_mode_rhs", "deep_mode_ode", "deep_mode_time",
    "aligned_deep_linear_init", "random_deep_linear_init", "deep_linear_product", "deep_linear_gd",
    "mode_strengths", "aligned_gd_map", "first_crossing", "learning_times", "nested_orthogonal_learning_times",
    "gaussian_product_log_norm",
]


def _check_mode(fn, s, u0, tau):
    _checks.positive(fn, s=s, u0=u0, tau=tau)
    s_, u_ = np.asarray(s, float), np.asarray(u0, float)
    if np.any(u_ >= s_):
        raise _checks.PDLTValueError(f"{fn}: the initial strength `u0` must be below the target `s`, "
                                     f"got u0={u0!r}, s={s!r}")


def saxe_logistic(t, s, u0, tau=1.0):
    r"""Mode strength of a one-hidden-layer (``D = 2``) linear net from aligned initial weights.

    :math:`u(t) = s e^{2st/\tau} / (e^{2st/\tau} - 1 + s/u_0)` (Saxe et al. 2013, their one-hidden-layer
    solution; our normalisation, see the module docstring).

    Args:
      t: times (any shape), in units where ``tau = 1/eta`` steps.
      s: target singular value(s) > 0 (broadcast against ``t``).
      u0: initial strength(s), ``0 < u0 < s``.
      tau: time constant ``1/eta``.
    Returns:
      ``u(t)`` with the broadcast shape.
    Raises:
      PDLTValueError if ``s``, ``u0`` or ``tau`` are not positive, or ``u0 >= s``.
    """
    _check_mode("saxe_logistic", s, u0, tau)
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    e = jnp.exp(-2.0 * s * t / tau)  # written with exp(-x) to stay finite at large t
    return s / (1.0 + (s / u0 - 1.0) * e)


def saxe_half_time(s, u0, tau=1.0):
    r"""Time at which a ``D = 2`` mode reaches half its target, :math:`\tfrac{\tau}{2s}\ln(s/u_0 - 1)`."""
    _check_mode("saxe_half_time", s, u0, tau)
    s, u0 = np.asarray(s, float), np.asarray(u0, float)
    return tau / (2.0 * s) * np.log(s / u0 - 1.0)


def deep_mode_rhs(u, s, depth):
    r"""Right-hand side :math:`D\,u^{2-2/D}(s-u)` of the aligned mode equation (times ``1/tau``)."""
    return depth * u ** (2.0 - 2.0 / depth) * (s - u)


def deep_mode_ode(t, s, u0, depth: int, tau=1.0, substeps: int = 8):
    r"""Solve :math:`\tau\dot u = D u^{2-2/D}(s-u)` by classical RK4 on the grid ``t``.

    Args:
      t: increasing 1-D grid of times starting at 0, shape ``(T,)``.
      s, u0: target and initial strengths, scalars or arrays of shape ``(M,)`` (one per mode).
      depth: number of weight matrices ``D >= 1``.
      tau: time constant. substeps: RK4 steps between consecutive grid points.
    Returns:
      ``u`` of shape ``(T,)`` or ``(T, M)``.
    Raises:
      PDLTValueError on bad arguments (non-increasing grid, ``u0 >= s``, ...).
    """
    fn = "deep_mode_ode"
    _check_mode(fn, s, u0, tau)
    _checks.positive_int(fn, depth=depth, substeps=substeps)
    t = np.asarray(t, float)
    if t.ndim != 1 or t.size < 2 or t[0] != 0.0 or np.any(np.diff(t) <= 0):
        raise _checks.PDLTValueError(f"{fn}: `t` must be an increasing 1-D grid starting at 0, got shape {t.shape}")
    return _rk4(jnp.asarray(t), jnp.asarray(s, float), jnp.asarray(u0, float), depth, float(tau), substeps)


@partial(jax.jit, static_argnames=("depth", "substeps"))
def _rk4(t, s, u0, depth, tau, substeps):
    f = lambda u: deep_mode_rhs(u, s, depth) / tau  # noqa: E731

    def step(u, dt):
        h = dt / substeps

        def sub(u, _):
            k1 = f(u)
            k2 = f(u + 0.5 * h * k1)
            k3 = f(u + 0.5 * h * k2)
            k4 = f(u + h * k3)
            return u + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0, None

        u, _ = jax.lax.scan(sub, u, None, length=substeps)
        return u, u

    u0 = jnp.broadcast_to(u0, jnp.broadcast_shapes(jnp.shape(s), jnp.shape(u0)))
    _, us = jax.lax.scan(step, u0, jnp.diff(t))
    return jnp.concatenate([u0[None], us])


def deep_mode_time(u, s, u0, depth: int, tau=1.0):
    r"""Exact time to go from ``u0`` to ``u``: :math:`t = \frac{\tau}{D}\int_{u_0}^{u}\frac{dv}{v^{2-2/D}(s-v)}`.

    Computed by adaptive quadrature (SciPy) -- an independent route to the same solution as
    :func:`deep_mode_ode`. Scalars only.
    """
    from scipy.integrate import quad

    fn = "deep_mode_time"
    _check_mode(fn, s, u0, tau)
    _checks.positive_int(fn, depth=depth)
    if not (u0 <= u < s):
        raise _checks.PDLTValueError(f"{fn}: need u0 <= u < s, got u={u!r}, u0={u0!r}, s={s!r}")
    # substitute v = exp(x) so that the integrand is smooth on a log grid
    g = lambda x: np.exp(x) / (np.exp(x) ** (2.0 - 2.0 / depth) * (s - np.exp(x)))  # noqa: E731
    val, _ = quad(g, np.log(u0), np.log(u), epsabs=0.0, epsrel=1e-11, limit=500)
    return tau / depth * val


def _orthonormal(key, n, k, dtype):
    return haar_frame(key, n, k, dtype)  # Gram-Schmidt, no LAPACK: see pdlt._haar


def aligned_deep_linear_init(key, U, V, u0, depth: int, hidden: int):
    r"""Aligned (decoupled, balanced) weights whose product is :math:`U\,{\rm diag}(u_0)\,V^T`.

    :math:`W_1 = R_1 a V^T`, :math:`W_k = R_k a R_{k-1}^T`, :math:`W_D = U a R_{D-1}^T`, with
    :math:`a = u_0^{1/D}` and Haar-random orthonormal :math:`R_k` of shape ``(hidden, M)``.

    Args:
      key: PRNG key (for the hidden-layer frames ``R_k``).
      U: ``(n_out, M)`` and V: ``(n_in, M)`` with orthonormal columns (the target's singular vectors).
      u0: initial strengths, shape ``(M,)`` or scalar, > 0.
      depth: number of weight matrices ``D >= 1``. hidden: hidden width ``>= M`` (used if ``D >= 2``).
    Returns:
      tuple of ``D`` matrices, ``W_1`` of shape ``(hidden, n_in)`` ... ``W_D`` of shape ``(n_out, hidden)``.
    Raises:
      PDLTValueError on bad shapes or values.
    """
    fn = "aligned_deep_linear_init"
    _checks.positive_int(fn, depth=depth, hidden=hidden)
    U, V = jnp.asarray(U, float), jnp.asarray(V, float)
    if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
        raise _checks.PDLTValueError(f"{fn}: `U` (n_out, M) and `V` (n_in, M) need the same M, got {U.shape}, {V.shape}")
    M = U.shape[1]
    if depth >= 2 and hidden < M:
        raise _checks.PDLTValueError(f"{fn}: `hidden` must be >= the number of modes M={M}, got {hidden}")
    _checks.positive(fn, u0=u0)
    a = jnp.broadcast_to(jnp.asarray(u0, float), (M,)) ** (1.0 / depth)
    if depth == 1:
        return (U @ jnp.diag(a) @ V.T,)
    keys = jax.random.split(key, depth - 1)
    Rs = [_orthonormal(k, hidden, M, U.dtype) for k in keys]
    Ws = [Rs[0] @ jnp.diag(a) @ V.T]
    for k in range(1, depth - 1):
        Ws.append(Rs[k] @ jnp.diag(a) @ Rs[k - 1].T)
    Ws.append(U @ jnp.diag(a) @ Rs[-1].T)
    return tuple(Ws)


INITS = ("orthogonal", "gaussian")


def random_deep_linear_init(key, n: int, depth: int, kind: str = "orthogonal", scale=1.0):
    r"""``depth`` square ``(n, n)`` weight matrices: ``scale`` times a Haar orthogonal matrix, or
    Gaussian entries :math:`\mathcal N(0, \text{scale}^2/n)` (the book's :math:`C_W = \text{scale}^2`).

    Both keep :math:`\mathbb E\lVert Wx\rVert^2 = \text{scale}^2\lVert x\rVert^2`; only the orthogonal
    product keeps every singular value equal to :math:`\text{scale}^D` (dynamical isometry).
    """
    fn = "random_deep_linear_init"
    _checks.positive_int(fn, n=n, depth=depth)
    _checks.one_of(fn, "kind", kind, INITS)
    _checks.positive(fn, scale=scale)
    keys = jax.random.split(key, depth)
    dtype = jnp.result_type(float)
    if kind == "orthogonal":
        return tuple(scale * _orthonormal(k, n, n, dtype) for k in keys)
    return tuple(jax.random.normal(k, (n, n), dtype) * (scale / np.sqrt(n)) for k in keys)


def deep_linear_product(Ws):
    """The end-to-end map :math:`P = W_D \\cdots W_1` of a tuple ``(W_1, ..., W_D)``."""
    P = Ws[0]
    for W in Ws[1:]:
        P = W @ P
    return P


def _loss(Ws, T):
    return 0.5 * jnp.sum((T - deep_linear_product(Ws)) ** 2)


def deep_linear_gd(Ws, T, eta, steps: int, every: int = 1):
    r"""Full-batch gradient descent on :math:`\tfrac12\lVert T - W_D\cdots W_1\rVert_F^2` (whitened inputs).

    Args:
      Ws: initial weights ``(W_1, ..., W_D)``; ``T``: target map of shape ``(n_out, n_in)``.
      eta: learning rate > 0. steps: number of GD steps. every: record every ``every`` steps.
    Returns:
      ``(products, losses, Ws_final)``: ``products`` of shape ``(steps//every + 1, n_out, n_in)`` (the
      end-to-end map at steps ``0, every, 2 every, ...``), ``losses`` of shape ``(steps + 1,)``.
    Raises:
      PDLTValueError on bad arguments or shapes.
    """
    fn = "deep_linear_gd"
    _checks.positive(fn, eta=eta)
    _checks.positive_int(fn, steps=steps, every=every)
    if steps % every:
        raise _checks.PDLTValueError(f"{fn}: `every` must divide `steps`, got steps={steps}, every={every}")
    Ws = tuple(jnp.asarray(W, float) for W in Ws)
    T = jnp.asarray(T, float)
    if deep_linear_product(Ws).shape != T.shape:
        raise _checks.PDLTValueError(f"{fn}: the product of `Ws` has shape {deep_linear_product(Ws).shape}, "
                                     f"`T` has shape {T.shape}")
    return _gd(Ws, T, float(eta), steps, every)


@partial(jax.jit, static_argnames=("steps", "every"))
def _gd(Ws, T, eta, steps, every):
    grad = jax.value_and_grad(_loss)

    def step(Ws, _):
        loss, g = grad(Ws, T)
        return tuple(W - eta * gW for W, gW in zip(Ws, g)), loss

    def block(Ws, _):
        Ws, losses = jax.lax.scan(step, Ws, None, length=every)
        return Ws, (deep_linear_product(Ws), losses)

    P0 = deep_linear_product(Ws)
    Wf, (Ps, losses) = jax.lax.scan(block, Ws, None, length=steps // every)
    losses = jnp.concatenate([losses.reshape(-1), _loss(Wf, T)[None]])
    return jnp.concatenate([P0[None], Ps]), losses, Wf


def mode_strengths(products, U, V):
    r"""Mode strengths :math:`u_\alpha = (U^T P V)_{\alpha\alpha}` of maps ``products`` of shape ``(..., n_out, n_in)``."""
    return jnp.einsum("ia,...ij,ja->...a", U, products, V)


def aligned_gd_map(u0, s, eta, depth: int, steps: int):
    r"""Discrete GD of aligned weights, exactly: :math:`a_{k+1} = a_k + \eta\,a_k^{D-1}(s - a_k^D)`, :math:`u = a^D`.

    Returns ``u`` of shape ``(steps + 1, M)`` -- what :func:`deep_linear_gd` gives on
    :func:`aligned_deep_linear_init` weights, up to rounding.
    """
    fn = "aligned_gd_map"
    _checks.positive(fn, eta=eta)
    _checks.positive_int(fn, depth=depth, steps=steps)
    s = jnp.atleast_1d(jnp.asarray(s, float))
    a0 = jnp.broadcast_to(jnp.asarray(u0, float), s.shape) ** (1.0 / depth)

    def step(a, _):
        a = a + eta * a ** (depth - 1) * (s - a**depth)
        return a, a**depth

    _, us = jax.lax.scan(step, a0, None, length=steps)
    return jnp.concatenate([a0[None] ** depth, us])


def first_crossing(t, y, level):
    """First time at which ``y`` (increasing through ``level``) crosses ``level``, by linear interpolation.

    Args:
      t: times, shape ``(T,)``.
      y: values, shape ``(T,)`` or ``(T, M)``.
      level: the level crossed.
    Returns:
      the crossing times (NaN where the level is never reached).
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    if y.ndim == 1:
        return float(first_crossing(t, y[:, None], level)[0])
    level = np.broadcast_to(np.asarray(level, float), y.shape[1:])
    out = np.full(y.shape[1], np.nan)
    for m in range(y.shape[1]):
        above = np.nonzero(y[:, m] >= level[m])[0]
        if above.size and above[0] > 0:
            i = above[0]
            y0, y1 = y[i - 1, m], y[i, m]
            out[m] = t[i - 1] + (level[m] - y0) / (y1 - y0) * (t[i] - t[i - 1])
        elif above.size:
            out[m] = t[0]
    return out


def learning_times(key, T, depths, *, kind: str = "orthogonal", eta0=0.05, steps: int = 4000,
                   n_seeds: int = 8, threshold=1e-2, scale=1.0):
    r"""Steps needed to bring the loss below ``threshold`` times its target value :math:`\tfrac12\lVert T\rVert_F^2`.

    For each depth ``D`` in ``depths`` and each seed ``i < n_seeds``, square ``(n, n)`` weights are drawn with
    :func:`random_deep_linear_init` from ``fold_in(fold_in(key, D), i)`` and trained by gradient descent with
    step ``eta0 / D`` (the end-to-end map then moves at a depth-independent speed when the product is an
    isometry). Seeds run in parallel (``vmap``).

    Args:
      key: PRNG key. T: square target ``(n, n)``. depths: sequence of depths ``D >= 1``.
      kind: ``"orthogonal"`` or ``"gaussian"``. eta0, steps, n_seeds, threshold, scale: as described.
    Returns:
      array ``(n_seeds, len(depths))`` of crossing times in steps (linear interpolation);
      NaN where the criterion is not reached within ``steps``.
    Raises:
      PDLTValueError on bad arguments.
    """
    fn = "learning_times"
    T = jnp.asarray(T, float)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise _checks.PDLTValueError(f"{fn}: `T` must be a square matrix, got shape {T.shape}")
    depths = _checks.widths(fn, "depths", depths)
    _checks.one_of(fn, "kind", kind, INITS)
    _checks.positive(fn, eta0=eta0, threshold=threshold, scale=scale)
    _checks.positive_int(fn, steps=steps, n_seeds=n_seeds)
    n = T.shape[0]
    target = 0.5 * float(jnp.sum(T**2))
    out = np.full((n_seeds, len(depths)), np.nan)
    for j, D in enumerate(depths):
        Ws = _init_batch(jax.random.fold_in(key, D), n, D, kind, float(scale), n_seeds)
        losses = _gd_losses(Ws, T, eta0 / D, steps)
        for i in range(n_seeds):
            out[i, j] = first_crossing(np.arange(steps + 1), -np.asarray(losses[i]), -threshold * target)
    return out


def nested_orthogonal_learning_times(key, T, depths, *, eta0=0.05, steps: int = 4000, n_seeds: int = 8,
                                     threshold=1e-2):
    r"""Learning times of orthogonally initialized networks of several depths that share one end-to-end map.

    For each seed ``i``, ``D_max = max(depths)`` Haar orthogonal ``(n, n)`` matrices
    :math:`O_1,\dots,O_{D_{\max}}` are drawn from ``fold_in(key, i)``. The depth-``D`` network (``D`` must
    divide ``D_max``) takes as its ``k``-th layer the product of the ``k``-th run of ``D_max/D`` consecutive
    :math:`O`'s. A product of independent Haar matrices is Haar, and the runs are disjoint, so every depth
    has exactly the law of :func:`random_deep_linear_init` (``kind="orthogonal"``); but all depths of one
    seed start from the *same* end-to-end map :math:`P = O_{D_{\max}}\cdots O_1` (common random numbers).
    Orthogonal layers are balanced, :math:`W_{k+1}^TW_{k+1} = W_kW_k^T`, which gradient flow preserves; the
    end-to-end map then obeys a closed equation in :math:`P` alone, whose preconditioner
    :math:`\frac1D\sum_{k=1}^{D}(PP^T)^{(D-k)/D}\,(\cdot)\,(P^TP)^{(k-1)/D}` is a Riemann sum in
    :math:`k/D` (with the step ``eta0 / D``). Under the flow the learning time is therefore a function of
    :math:`P` and ``D`` only, smooth in ``1/D``, and the coupling removes the seed-to-seed spread of
    :math:`P` from differences between depths. (The coupling and this argument are ours.)

    Each network is trained as in :func:`learning_times` (step ``eta0 / D``, loss below ``threshold`` times
    :math:`\tfrac12\lVert T\rVert_F^2`).

    Args:
      key: PRNG key. T: square target ``(n, n)``. depths: depths ``D >= 1``, each dividing ``max(depths)``.
      eta0, steps, n_seeds, threshold: as in :func:`learning_times`.
    Returns:
      array ``(n_seeds, len(depths))`` of crossing times in steps (linear interpolation);
      NaN where the criterion is not reached within ``steps``.
    Raises:
      PDLTValueError on bad arguments.
    """
    fn = "nested_orthogonal_learning_times"
    T = jnp.asarray(T, float)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise _checks.PDLTValueError(f"{fn}: `T` must be a square matrix, got shape {T.shape}")
    depths = _checks.widths(fn, "depths", depths)
    d_max = max(depths)
    if any(d_max % D for D in depths):
        raise _checks.PDLTValueError(f"{fn}: every entry of `depths` must divide max(depths) = {d_max}, "
                                     f"got {depths}")
    _checks.positive(fn, eta0=eta0, threshold=threshold)
    _checks.positive_int(fn, steps=steps, n_seeds=n_seeds)
    n = T.shape[0]
    target = 0.5 * float(jnp.sum(T**2))
    O = _init_batch(key, n, d_max, "orthogonal", 1.0, n_seeds)
    out = np.full((n_seeds, len(depths)), np.nan)
    for j, D in enumerate(depths):
        m = d_max // D
        Ws = tuple(_run_product(O[k * m:(k + 1) * m]) for k in range(D))
        losses = _gd_losses(Ws, T, eta0 / D, steps)
        for i in range(n_seeds):
            out[i, j] = first_crossing(np.arange(steps + 1), -np.asarray(losses[i]), -threshold * target)
    return out


def _run_product(Os):
    """O_m ... O_1 for a run (O_1, ..., O_m) of batched matrices."""
    P = Os[0]
    for O in Os[1:]:
        P = O @ P
    return P


@partial(jax.jit, static_argnames=("n", "depth", "kind", "n_seeds"))
def _init_batch(key, n, depth, kind, scale, n_seeds):
    return jax.vmap(lambda i: random_deep_linear_init(jax.random.fold_in(key, i), n, depth, kind, scale))(
        jnp.arange(n_seeds))


def gaussian_product_log_norm(n: int, depth: int):
    r"""Exact mean and variance of :math:`\ln\lVert W_D\cdots W_1 u\rVert^2` for unit ``u`` and Gaussian
    ``(n, n)`` weights of variance ``1/n`` (the book's deep linear network at :math:`C_W = 1`, §3).

    Each layer multiplies the squared norm by an independent :math:`\chi^2_n/n`, so
    :math:`\mathbb E = D[\psi(n/2) + \ln(2/n)]` and :math:`{\rm Var} = D\,\psi'(n/2)\approx 2D/n`.
    (An orthogonal product has both equal to 0.) Returns ``(mean, var)``.
    """
    from scipy.special import digamma, polygamma

    _checks.positive_int("gaussian_product_log_norm", n=n, depth=depth)
    return depth * (digamma(n / 2) + np.log(2.0 / n)), depth * float(polygamma(1, n / 2))


@partial(jax.jit, static_argnames=("steps",))
def _gd_losses(Ws, T, eta, steps):
    return jax.vmap(lambda W: _gd(W, T, eta, steps, steps)[1])(Ws)
