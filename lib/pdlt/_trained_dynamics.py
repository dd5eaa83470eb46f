r"""Training dynamics to second order in the derivative tensors, and the 1/n mean of trained outputs it implies.

The outputs of a network trained on the MSE loss, expanded around its initial parameters, depend on the
parameters only through a few contractions of the derivatives of :math:`z` with λ-weighted gradients. With
:math:`J_\alpha = \partial z_\alpha`, :math:`\mathcal H_\alpha = \partial^2 z_\alpha`, :math:`\mathcal T_\alpha = \partial^3 z_\alpha`:

* the NTK :math:`H_{\delta\alpha} = J_\delta\lambda J_\alpha`;
* the dNTK, through :math:`M_{\delta;\alpha\beta} = \mathcal H_\delta[\lambda J_\alpha, \lambda J_\beta]`
  (:math:`\widehat{dH}_{a_0a_1a_2} = M_{a_1;a_2a_0} + M_{a_2;a_1a_0}`);
* the ddNTK of one third derivative, :math:`\widehat{dd_IH}_{\delta\alpha\beta\gamma} = \mathcal T_\delta[\lambda J_\alpha,\lambda J_\beta,\lambda J_\gamma]`;
* the ddNTK of two second derivatives, :math:`\widehat{dd_{II}H}_{\alpha\beta\gamma\epsilon} = (\mathcal H_\alpha\lambda J_\gamma)\lambda(\mathcal H_\beta\lambda J_\epsilon)`.

Reduced dynamics (derived here). A step :math:`\Delta\theta = -\lambda\sum_\alpha\partial z_\alpha(\theta_t)\,c_\alpha(t)`,
:math:`c(t) = \kappa_t\,\epsilon(t)`, :math:`\epsilon = z_A - y` (gradient descent: :math:`\kappa_t = \eta\,1`; a second-order
step with a fixed matrix: :math:`\kappa_t = \kappa`), keeps the displacement :math:`w_t = \theta_t - \theta_0` in the span

.. math:: w = -\lambda J_\alpha a_\alpha + \lambda(\mathcal H_\beta\lambda J_\gamma)B_{\beta\gamma}
          + \lambda\mathcal T_\alpha[\lambda J_\beta,\lambda J_\gamma]C_{\alpha\beta\gamma}
          + \lambda\mathcal H_\alpha\lambda\mathcal H_\beta\lambda J_\gamma D_{\alpha\beta\gamma} + \dots

with :math:`a \mathrel{+}= c`, :math:`B_{\alpha\beta} \mathrel{+}= c_\alpha a_\beta`, :math:`C_{\alpha\beta\gamma} \mathrel{-}= \tfrac12c_\alpha a_\beta a_\gamma`,
:math:`D_{\alpha\beta\gamma} \mathrel{-}= c_\alpha B_{\beta\gamma}` (right-hand sides before the step), and the outputs are

.. math:: z_\delta(w) = z_\delta - H_{\delta\alpha}a_\alpha + M_{\beta;\delta\gamma}B_{\beta\gamma}
          + \widehat{dd_IH}_{\alpha\delta\beta\gamma}C_{\alpha\beta\gamma} + \widehat{dd_{II}H}_{\alpha\beta\delta\gamma}D_{\alpha\beta\gamma}
          + \tfrac12M_{\delta;\alpha\beta}a_\alpha a_\beta - \widehat{dd_{II}H}_{\delta\beta\epsilon\gamma}a_\epsilon B_{\beta\gamma}
          - \tfrac16\widehat{dd_IH}_{\delta\alpha\beta\gamma}a_\alpha a_\beta a_\gamma .

Every term with at most two second derivatives, or one third derivative, is kept; dropped are three second
derivatives, a second with a third, and fourth derivatives. In a network of width n, :math:`M`, both ddNTKs
and their fluctuations are :math:`O(1/n)`, so the dropped terms are :math:`O(1/n^2)`, as are products of two
dNTKs. The dynamics is exact for any number of steps, inputs and depth, given the tensors.

Mean at order 1/n (derived here). With one output neuron, :math:`\mathbb E\hat H = \Theta + H^{\{1\}}/n`,
:math:`n\,\mathrm{Cov}(\hat H) = A + B + B`, :math:`n\,\mathbb E[M_{\delta;\alpha\beta}z_\gamma]` from P and Q,
:math:`n\,\mathbb E[\widehat{dd_IH}_{0123}] = R_{0123} + R_{0231} + R_{0312}` and
:math:`n\,\mathbb E[\widehat{dd_{II}H}_{1234}] = S_{1234} + T_{1342} + U_{1423}` (:func:`pdlt.ddntk_mean_samples`),
the test outputs :math:`F(z, \hat H, M, dd_I, dd_{II})` after the steps have

.. math:: n\big(\mathbb E F - F(0,\Theta,0,0,0)\big) = \partial_HF\cdot H^{\{1\}} + \tfrac12\partial_H^2F:(A+B+B)
          + \sum_\gamma\partial_{z_\gamma}\big(\partial_MF\cdot n\mathbb E[Mz_\gamma]\big)
          + \mathbb E_{z\sim N(0,K)}\big[\partial_{dd_I}F\cdot R^{(3)} + \partial_{dd_{II}}F\cdot\overline{dd_{II}}\big],

all derivatives at :math:`(z, \hat H, M, dd_I, dd_{II}) = (0, \Theta, 0, 0, 0)` except the last bracket, a cubic polynomial
in z averaged exactly as :math:`g(0) + \tfrac12K:\partial_z^2g(0)`. The terms dropped: those odd under flipping
the last layer (zero), correlators of the dNTK with the NTK fluctuation or with two outputs (:math:`O(1/n^2)` and
zero), the connected parts of the ddNTKs with two outputs (:math:`O(1/n^2)`), and :math:`O(1/n^2)` corrections to K.
The NTK part at zeroth order in the dNTK is the network's own linear model, :math:`F(0,\hat H,0,0,0)`; its mean
needs A, B, H¹ only.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["GD", "trained_outputs_expansion", "trained_mean_correction_steps", "model_ddntks"]


class GD(NamedTuple):
    """Full-batch gradient descent on the MSE loss: ``steps`` steps at global learning rate ``eta``."""

    eta: float
    steps: int


def model_ddntks(f, w):
    r"""The two ddNTKs of a model ``f(w) -> (N,)`` at ``w`` (learning-rate tensor 1), by automatic differentiation.

    Returns: ``(ddI, ddII)``, each ``(N,)*4`` in the index order of :func:`pdlt.ddntk_mean_samples`.
    """
    J = jax.jacfwd(f)(w)
    Hs = jax.jacfwd(jax.jacfwd(f))(w)
    T3 = jax.jacfwd(jax.jacfwd(jax.jacfwd(f)))(w)
    ddI = jnp.einsum("dpqr,ap,bq,cr->dabc", T3, J, J, J)
    ddII = jnp.einsum("apq,bpr,cq,dr->abcd", Hs, Hs, J, J)
    return ddI, ddII


def _ddII_to_Y(ddII):
    r""":math:`Y_{\alpha\beta\gamma\epsilon} = (\mathcal H_\alpha\lambda J_\beta)\lambda(\mathcal H_\gamma\lambda J_\epsilon) = \widehat{dd_{II}H}_{\alpha\gamma\beta\epsilon}`."""
    return jnp.einsum("acbd->abcd", ddII)


def _dntk_to_M(dH):
    r""":math:`M_{a;bc} = \tfrac12(dH_{cab} + dH_{bac} - dH_{abc})` from the book's dNTK."""
    return 0.5 * (jnp.einsum("cab->abc", dH) + jnp.einsum("bac->abc", dH) - dH)


def _outputs(state, z, H, M, I, Y, nA):
    a, B, C, D = state
    A = slice(0, nA)
    return (z - H[:, A] @ a
            + jnp.einsum("bdg,bg->d", M[A, :, A], B)
            + jnp.einsum("adbg,abg->d", I[A, :, A, A], C)
            + jnp.einsum("adbg,abg->d", Y[A, :, A, A], D)
            + 0.5 * jnp.einsum("dab,a,b->d", M[:, A, A], a, a)
            - jnp.einsum("debg,e,bg->d", Y[:, A, A, A], a, B)
            - jnp.einsum("dabg,a,b,g->d", I[:, A, A, A], a, a, a) / 6.0)


def _run(z, H, M, I, Y, y, kappas):
    r"""Outputs on all inputs after the steps ``kappas`` ``(steps, nA, nA)``; M, I, Y in the ``Y`` layout."""
    nA = y.shape[0]
    zero = jnp.zeros((nA,), z.dtype)
    state = (zero, jnp.zeros((nA, nA), z.dtype), jnp.zeros((nA,) * 3, z.dtype), jnp.zeros((nA,) * 3, z.dtype))

    def step(state, kap):
        a, B, C, D = state
        c = kap @ (_outputs(state, z, H, M, I, Y, nA)[:nA] - y)
        new = (a + c, B + jnp.outer(c, a), C - 0.5 * jnp.einsum("a,b,g->abg", c, a, a),
               D - jnp.einsum("a,bg->abg", c, B))
        return new, None

    state, _ = jax.lax.scan(step, state, kappas)
    return _outputs(state, z, H, M, I, Y, nA)


def _kappas(fn, nA, dtype, eta, steps, kappa):
    _checks.positive_int(fn, steps=steps)
    if (eta is None) == (kappa is None):
        raise _checks.PDLTValueError(f"{fn}: give exactly one of `eta` (gradient descent) and `kappa` (fixed second-order steps)")
    if eta is not None:
        _checks.positive(fn, eta=eta)
        kap = float(eta) * jnp.eye(nA, dtype=dtype)
    else:
        kap = jnp.asarray(kappa, dtype)
        if kap.shape != (nA, nA):
            raise _checks.PDLTValueError(f"{fn}: `kappa` must have shape (n_train, n_train) = {(nA, nA)}, got {kap.shape}")
    return jnp.broadcast_to(kap, (int(steps), nA, nA))


def trained_outputs_expansion(z0, H, dH, ddI, ddII, y, n_train: int, *, eta=None, steps: int = 1, kappa=None):
    r"""Outputs of one network after ``steps`` training steps, to second order in its derivative tensors (module docstring).

    Args:
      z0: ``(N,)`` initial outputs (one output neuron; training inputs first). H: ``(N, N)`` NTK.
      dH: ``(N, N, N)`` the book's dNTK ``[a0, a1, a2]``; ddI, ddII: ``(N,)*4`` the two ddNTKs in the index order
        of :func:`pdlt.ddntk_mean_samples` (all with the same learning-rate tensor as the training).
      y: ``(n_train,)`` targets. eta: gradient descent at this rate; or kappa ``(n_train, n_train)``: steps
        :math:`\Delta\theta = -\lambda\,\partial z_A\,\kappa\,\epsilon_A`.
    Returns: ``(N,)`` outputs after training on every input.
    """
    fn = "trained_outputs_expansion"
    z0, H, dH, ddI, ddII, y = (jnp.asarray(v) for v in (z0, H, dH, ddI, ddII, y))
    N = z0.shape[0]
    _checks.positive_int(fn, n_train=n_train)
    for name, v, r in (("z0", z0, 1), ("H", H, 2), ("dH", dH, 3), ("ddI", ddI, 4), ("ddII", ddII, 4)):
        if v.shape != (N,) * r:
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape {(N,) * r}, got {v.shape}")
    if y.shape != (n_train,) or n_train > N:
        raise _checks.PDLTValueError(f"{fn}: `y` must have shape (n_train,) with n_train <= N = {N}, got {y.shape}")
    kaps = _kappas(fn, n_train, z0.dtype, eta, steps, kappa)
    return _run(z0, H, _dntk_to_M(dH), ddI, _ddII_to_Y(ddII), y, kaps)


@jax.jit
def _mean_parts(Theta, K, y, kaps, H1, C, EMz, R3, Ybar):
    N = Theta.shape[0]
    nA = y.shape[0]
    z0 = jnp.zeros((N,), Theta.dtype)
    M0, I0 = jnp.zeros((N,) * 3, Theta.dtype), jnp.zeros((N,) * 4, Theta.dtype)

    def F(z, H, M, I, Y):
        return _run(z, 0.5 * (H + H.T), M, I, Y, y, kaps)[nA:]

    f = lambda H: F(z0, H, M0, I0, I0)                                     # noqa: E731
    ntk = (jnp.einsum("dab,ab->d", jax.jacfwd(f)(Theta), H1)
           + 0.5 * jnp.einsum("dabce,abce->d", jax.jacfwd(jax.jacfwd(f))(Theta), C))

    def dM(z, m):
        return jax.jvp(lambda M: F(z, Theta, M, I0, I0), (M0,), (m,))[1]

    # sum over g of d/dz_g of dM(z, E[M z_g]); dM is linear in m and quadratic in z
    per_g = jax.jacfwd(lambda z: jax.vmap(lambda m: dM(z, m), in_axes=3, out_axes=0)(EMz))(z0)   # (g, d, z)
    dntk = jnp.einsum("gdg->d", per_g)

    def gauss(g):
        return g(z0) + 0.5 * jnp.einsum("dab,ab->d", jax.jacfwd(jax.jacfwd(g))(z0), K)

    ddI = gauss(lambda z: jax.jvp(lambda I: F(z, Theta, M0, I, I0), (I0,), (R3,))[1])
    ddII = gauss(lambda z: jax.jvp(lambda Y: F(z, Theta, M0, I0, Y), (I0,), (Ybar,))[1])
    return ntk, dntk, ddI, ddII


def trained_mean_correction_steps(Theta, K, y, n_train: int, *, P, Q, R, S, T, U, H1=None, A=None, B=None,
                                  eta=None, steps: int = 1, kappa=None, parts: bool = False):
    r"""The :math:`1/n` coefficient of :math:`\mathbb E[z_\delta] - m^{\infty,t}_\delta` after ``steps`` steps (module docstring; ours).

    The reference :math:`m^{\infty,t} = F(0,\Theta,0,0,0)` is the infinite-width mean after the same steps (the
    kernel prediction :math:`m^\infty` once gradient descent has converged). Gradient descent at rate ``eta``,
    or second-order steps with a fixed ``kappa`` (one step with :math:`\kappa = \Theta_{AA}^{-1}` is the
    ``"leap-fixed"`` case of :func:`trained_mean_correction`).

    Args:
      Theta, K: ``(N, N)`` NTK and kernel of the output layer (training inputs first). y: ``(n_train,)``.
      P, Q, R, S, T, U: ``(N,)*4`` coefficients of 1/n (:func:`pdlt.dntk_statistics`, :func:`pdlt.ddntk_second_layer`).
      H1: ``(N, N)`` NTK mean shift (default 0, exact at depth two); A, B: NTK fluctuations (default 0: the
        NTK part then has the mean shift only).
      parts: also return ``ntk`` (A, B, H¹), ``dntk`` (P, Q), ``ddntk_I`` (R), ``ddntk_II`` (S, T, U).
    Returns: ``(N - n_train,)`` for the test inputs, or a dict ``total, ntk, dntk, ddntk_I, ddntk_II, ddntk``.
    """
    from ._trained import _dntk_z_second_derivative

    fn = "trained_mean_correction_steps"
    Theta, K, y = jnp.asarray(Theta), jnp.asarray(K), jnp.asarray(y)
    N = Theta.shape[0]
    _checks.positive_int(fn, n_train=n_train)
    if Theta.shape != (N, N) or K.shape != (N, N) or n_train >= N or y.shape != (n_train,):
        raise _checks.PDLTValueError(f"{fn}: need Theta, K (N, N) and y (n_train,) with n_train < N; "
                                     f"got {Theta.shape}, {K.shape}, {y.shape}")
    ts = {}
    for name, v in (("P", P), ("Q", Q), ("R", R), ("S", S), ("T", T), ("U", U), ("A", A), ("B", B)):
        if v is None and name in "AB":
            v = jnp.zeros((N,) * 4, Theta.dtype)
        v = jnp.asarray(v, Theta.dtype)
        if v.shape != (N,) * 4:
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape {(N,) * 4}, got {v.shape}")
        ts[name] = v
    H1 = jnp.zeros_like(Theta) if H1 is None else jnp.asarray(H1, Theta.dtype)
    kaps = _kappas(fn, n_train, Theta.dtype, eta, steps, kappa)
    C = ts["A"] + jnp.einsum("acbd->abcd", ts["B"]) + jnp.einsum("adbc->abcd", ts["B"])
    EMz = _dntk_z_second_derivative(ts["P"], ts["Q"])
    Rr = ts["R"]
    R3 = Rr + jnp.einsum("acdb->abcd", Rr) + jnp.einsum("adbc->abcd", Rr)
    ddII = ts["S"] + jnp.einsum("acdb->abcd", ts["T"]) + jnp.einsum("adbc->abcd", ts["U"])
    ntk, dntk, dI, dII = _mean_parts(Theta, K, y, kaps, H1, C, EMz, R3, _ddII_to_Y(ddII))
    total = ntk + dntk + dI + dII
    if parts:
        return {"total": total, "ntk": ntk, "dntk": dntk, "ddntk_I": dI, "ddntk_II": dII, "ddntk": dI + dII}
    return total
