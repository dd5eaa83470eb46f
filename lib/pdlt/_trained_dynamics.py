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
in z averaged exactly (a 3-point Gauss-Hermite rule per input; the z-derivative of the dNTK term is taken the
same way, by Stein's identity :math:`\mathbb E[\partial_\gamma h] = (K^{-1}\mathbb E[z\,h])_\gamma`). The terms dropped: those odd under flipping
the last layer (zero), correlators of the dNTK with the NTK fluctuation or with two outputs (:math:`O(1/n^2)` and
zero), the connected parts of the ddNTKs with two outputs (:math:`O(1/n^2)`), and :math:`O(1/n^2)` corrections to K.
The NTK part at zeroth order in the dNTK is the network's own linear model, :math:`F(0,\hat H,0,0,0)`; its mean
needs A, B, H¹ only.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["GD", "trained_outputs_expansion", "trained_mean_correction_steps", "trained_cov_correction_steps",
           "trained_variance_correction_depth2", "model_ddntks"]


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


def _run_linear(z, H, y, kappas):
    r""":func:`_run` with every derivative tensor zero (the linear model of NTK ``H``), as a smaller program."""
    nA = y.shape[0]

    def step(a, kap):
        return a + kap @ (z[:nA] - H[:nA, :nA] @ a - y), None

    a, _ = jax.lax.scan(step, jnp.zeros((nA,), z.dtype), kappas)
    return z - H[:, :nA] @ a


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
    from ._trained import _dntk_second_derivative

    kaps = _kappas(fn, n_train, z0.dtype, eta, steps, kappa)
    return _run(z0, H, _dntk_second_derivative(dH), ddI, _ddII_to_Y(ddII), y, kaps)


def _algorithms(fn, algorithm, names):
    r"""``(single, algs)``: ``algorithm`` (a name of ``names``, a :class:`GD`, or a tuple of these) as a tuple, validated."""
    single = isinstance(algorithm, (str, GD))
    algs = (algorithm,) if single else tuple(algorithm)
    for a in algs:
        if isinstance(a, GD):
            _checks.positive(fn, eta=a.eta)
            _checks.positive_int(fn, steps=a.steps)
        else:
            _checks.one_of(fn, "algorithm", a, names)
    return single, algs


def _gauss_points(K):
    r"""Points and weights of :math:`N(0, K)` exact for polynomials of degree <= 5 (3-point Gauss-Hermite per axis)."""
    N = K.shape[0]
    u1 = jnp.array([-jnp.sqrt(3.0), 0.0, jnp.sqrt(3.0)], K.dtype)
    w1 = jnp.array([1 / 6, 2 / 3, 1 / 6], K.dtype)
    grids = jnp.meshgrid(*([jnp.arange(3)] * N), indexing="ij")
    idx = jnp.stack([g.ravel() for g in grids], axis=1)                  # (3^N, N)
    u, w = u1[idx], jnp.prod(w1[idx], axis=1)
    return u @ jnp.linalg.cholesky(K).T, w


def _expect(g, pts, w):
    """Gaussian expectation of ``g`` (a polynomial of degree <= 5 in z) on the points of :func:`_gauss_points`."""
    return jnp.tensordot(w, jax.vmap(g)(pts), axes=1)


@partial(jax.jit, static_argnames=("cov",))
def _parts(Theta, K, y, kaps, H1, G1, C, DF, EMz, R3, Ybar, cov):
    r"""The four 1/n parts (NTK, dNTK, ddI, ddII) of the mean of the test outputs, or with ``cov`` of their covariance."""
    N = Theta.shape[0]
    nA = y.shape[0]
    z0 = jnp.zeros((N,), Theta.dtype)
    M0, I0 = jnp.zeros((N,) * 3, Theta.dtype), jnp.zeros((N,) * 4, Theta.dtype)
    pts, w = _gauss_points(K)
    Kinv = jnp.linalg.inv(K)

    def F(z, H, M, I, Y):
        return _run(z, 0.5 * (H + H.T), M, I, Y, y, kaps)[nA:]

    # the network's own linear model F0 = Lz(H) z + c(H), exactly linear in z
    F0 = lambda z, H: _run_linear(z, 0.5 * (H + H.T), y, kaps)[nA:]       # noqa: E731
    c = lambda H: F0(z0, H)                                                # noqa: E731
    c0 = c(Theta)
    Ms = jnp.moveaxis(EMz, 3, 0)                                           # (g, N, N, N): E[M z_g]

    def lin_M(z, m):
        return jax.jvp(lambda M: F(z, Theta, M, I0, I0), (M0,), (m,))[1]

    lin_I = lambda z: jax.jvp(lambda I: F(z, Theta, M0, I, I0), (I0,), (R3,))[1]    # noqa: E731
    lin_II = lambda z: jax.jvp(lambda Y: F(z, Theta, M0, I0, Y), (I0,), (Ybar,))[1]  # noqa: E731
    # a dNTK correlator E[M h(z)] = sum_g E[M z_g] E[d_g h(z)], and E[d_g h] = (K^-1 E[z h])_g (Stein)
    stein = lambda h: jnp.einsum("gc,gc...->...", Kinv, _expect(                   # noqa: E731
        lambda z: jax.vmap(lambda m: jnp.einsum("c,...->c...", z, h(z, m)))(Ms), pts, w))
    if not cov:
        dc, d2c = jax.jacfwd(c)(Theta), jax.jacfwd(jax.jacfwd(c))(Theta)
        ntk = jnp.einsum("dab,ab->d", dc, H1) + 0.5 * jnp.einsum("dabce,abce->d", d2c, C)
        return ntk, stein(lin_M), _expect(lin_I, pts, w), _expect(lin_II, pts, w)
    Lz = lambda H: jax.jacfwd(lambda z: F0(z, H))(z0)                     # (D, N)   # noqa: E731
    L0 = Lz(Theta)
    dL, d2L = jax.jacfwd(Lz)(Theta), jax.jacfwd(jax.jacfwd(Lz))(Theta)   # (D, N, N, N), (D, N, N, N, N, N)
    dc = jax.jacfwd(c)(Theta)
    X = jnp.einsum("xcab,abcd,yd->xy", dL, DF, L0) + jnp.einsum("xcab,ab,cd,yd->xy", dL, H1, K, L0)
    X2 = 0.5 * jnp.einsum("xcabef,abef,cd,yd->xy", d2L, C, K, L0)
    ntk = (L0 @ G1 @ L0.T + X + X.T + X2 + X2.T
           + jnp.einsum("xcab,ydef,abef,cd->xy", dL, dL, C, K) + jnp.einsum("xab,yef,abef->xy", dc, dc, C))
    sym = lambda x: x + x.T                                                # noqa: E731
    # the part c0 (x) E[F_.] of each cross term cancels in the covariance
    dntk = sym(stein(lambda z, m: jnp.outer(F0(z, Theta) - c0, lin_M(z, m))))
    ddI = sym(_expect(lambda z: jnp.outer(F0(z, Theta) - c0, lin_I(z)), pts, w))
    ddII = sym(_expect(lambda z: jnp.outer(F0(z, Theta) - c0, lin_II(z)), pts, w))
    return ntk, dntk, ddI, ddII


def _prepare(fn, Theta, K, y, n_train, tensors, mats, eta, steps, kappa):
    r"""Validated inputs of :func:`_parts`: the tensors (missing NTK ones as 0) in the combinations the expansion uses."""
    from ._trained import _dntk_z_second_derivative

    Theta, K, y = jnp.asarray(Theta), jnp.asarray(K), jnp.asarray(y)
    N = Theta.shape[0]
    _checks.positive_int(fn, n_train=n_train)
    if Theta.shape != (N, N) or K.shape != (N, N) or n_train >= N or y.shape != (n_train,):
        raise _checks.PDLTValueError(f"{fn}: need Theta, K (N, N) and y (n_train,) with n_train < N; "
                                     f"got {Theta.shape}, {K.shape}, {y.shape}")
    ts, ms = {}, {}
    for name, v in tensors.items():
        v = jnp.zeros((N,) * 4, Theta.dtype) if v is None and name in "ABDF" else jnp.asarray(v, Theta.dtype)
        if v.shape != (N,) * 4:
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape {(N,) * 4}, got {v.shape}")
        ts[name] = v
    for name, v in mats.items():
        v = jnp.zeros_like(Theta) if v is None else jnp.asarray(v, Theta.dtype)
        if v.shape != (N, N):
            raise _checks.PDLTValueError(f"{fn}: `{name}` must have shape {(N, N)}, got {v.shape}")
        ms[name] = v
    kaps = _kappas(fn, n_train, Theta.dtype, eta, steps, kappa)
    zero = jnp.zeros((N,) * 4, Theta.dtype)
    A, B, D, Fd = (ts.get(k, zero) for k in "ABDF")
    # the symmetries of the definitions: Ĥ_ab = Ĥ_ba, z_c z_d = z_d z_c, and the exchange of the two NTKs
    sym2 = lambda X: 0.25 * (X + jnp.einsum("abcd->bacd", X) + jnp.einsum("abcd->abdc", X)  # noqa: E731
                             + jnp.einsum("abcd->badc", X))
    C = A + jnp.einsum("acbd->abcd", B) + jnp.einsum("adbc->abcd", B)
    C = sym2(0.5 * (C + jnp.einsum("abcd->cdab", C)))
    DF = sym2(D + jnp.einsum("acbd->abcd", Fd) + jnp.einsum("adbc->abcd", Fd))
    R = ts["R"]
    R3 = R + jnp.einsum("acdb->abcd", R) + jnp.einsum("adbc->abcd", R)
    ddII = ts["S"] + jnp.einsum("acdb->abcd", ts["T"]) + jnp.einsum("adbc->abcd", ts["U"])
    return dict(Theta=Theta, K=K, y=y, kaps=kaps, H1=ms.get("H1", jnp.zeros_like(Theta)),
                G1=ms.get("G1", jnp.zeros_like(Theta)), C=C, DF=DF, EMz=_dntk_z_second_derivative(ts["P"], ts["Q"]),
                R3=R3, Ybar=_ddII_to_Y(ddII))


def _named_parts(ntk, dntk, dI, dII, parts):
    total = ntk + dntk + dI + dII
    if parts:
        return {"total": total, "ntk": ntk, "dntk": dntk, "ddntk_I": dI, "ddntk_II": dII, "ddntk": dI + dII}
    return total


def trained_mean_correction_steps(Theta, K, y, n_train: int, *, P, Q, R, S, T, U, H1=None, A=None, B=None,
                                  eta=None, steps: int = 1, kappa=None, parts: bool = False):
    r"""The :math:`1/n` coefficient of :math:`\mathbb E[z_\delta] - m^{\infty,t}_\delta` after ``steps`` steps (module docstring; ours).

    The reference :math:`m^{\infty,t} = F(0,\Theta,0,0,0)` is the infinite-width mean after the same steps (the
    kernel prediction :math:`m^\infty` once gradient descent has converged). Gradient descent at rate ``eta``,
    or second-order steps with a fixed ``kappa`` (one step with :math:`\kappa = \Theta_{AA}^{-1}` is the
    ``"leap-fixed"`` case of :func:`trained_mean_correction`). The Gaussian averages are exact (a 3-point
    Gauss-Hermite rule per input, the averaged functions being polynomials of degree <= 5 in z).

    Args:
      Theta, K: ``(N, N)`` NTK and kernel of the output layer (training inputs first). y: ``(n_train,)``.
      P, Q, R, S, T, U: ``(N,)*4`` coefficients of 1/n (:func:`pdlt.dntk_statistics`, :func:`pdlt.ddntk_second_layer`).
      H1: ``(N, N)`` NTK mean shift (default 0, exact at depth two); A, B: NTK fluctuations (default 0: the
        NTK part then has the mean shift only).
      parts: also return ``ntk`` (A, B, H¹), ``dntk`` (P, Q), ``ddntk_I`` (R), ``ddntk_II`` (S, T, U).
    Returns: ``(N - n_train,)`` for the test inputs, or a dict ``total, ntk, dntk, ddntk_I, ddntk_II, ddntk``.
    """
    a = _prepare("trained_mean_correction_steps", Theta, K, y, n_train,
                 dict(P=P, Q=Q, R=R, S=S, T=T, U=U, A=A, B=B), dict(H1=H1), eta, steps, kappa)
    return _named_parts(*_parts(**a, cov=False), parts)


def trained_cov_correction_steps(Theta, K, y, n_train: int, *, P, Q, R, S, T, U, A=None, B=None, D=None, F=None,
                                 H1=None, G1=None, eta=None, steps: int = 1, kappa=None, parts: bool = False):
    r"""The :math:`1/n` coefficient of the covariance of the test outputs after ``steps`` steps, minus :math:`\Sigma^{\infty,t}` (ours).

    The same expansion as :func:`trained_mean_correction_steps`, squared. With :math:`F = F_0(z,\hat H) + F_M + F_I + F_{II}`
    (:math:`F_0` the network's own linear model, linear in z; the others linear in M, :math:`dd_I`, :math:`dd_{II}`):

    * NTK part: :math:`\mathrm{Cov}(F_0)` to order 1/n from :math:`E[zz] = K + G^{\{1\}}/n`, :math:`nE[\Delta\hat H] = H^{\{1\}}`,
      :math:`nE[\Delta\hat H_{ab}z_cz_d] = D_{abcd} + F_{acbd} + F_{adbc}` (:func:`pdlt.ntk_statistics` convention, one
      output neuron), :math:`n\mathrm{Cov}(\hat H) = A + B + B`; the correlator of two NTK fluctuations with two
      outputs factorizes at this order;
    * dNTK part: :math:`2\,\mathrm{sym}\,\mathrm{Cov}(F_0, F_M)` with :math:`E[M\,h(z)] = \sum_\gamma E[Mz_\gamma]\,E[\partial_\gamma h]`
      (the dNTK's only correlators at this order are with one output; Stein's identity for the Gaussian z);
    * ddNTK parts: :math:`2\,\mathrm{sym}\,\mathrm{Cov}(F_0, F_I)` and the same for :math:`dd_{II}`, with the ddNTKs at
      their means and z Gaussian.

    Dropped: products of two dNTKs, dNTK with NTK fluctuations, connected ddNTK correlators (all :math:`O(1/n^2)`),
    and the four-point vertex V (the linear model is linear in z, so V does not enter).

    Args:
      D, F: NTK-preactivation tensors; G1: kernel shift (default 0, exact at depth two); missing A, B, D, F
        count as 0. The rest as in :func:`trained_mean_correction_steps`.
    Returns: ``(N_D, N_D)`` for the test inputs, or a dict ``total, ntk, dntk, ddntk_I, ddntk_II, ddntk``.
    """
    a = _prepare("trained_cov_correction_steps", Theta, K, y, n_train,
                 dict(P=P, Q=Q, R=R, S=S, T=T, U=U, A=A, B=B, D=D, F=F), dict(H1=H1, G1=G1), eta, steps, kappa)
    return _named_parts(*_parts(**a, cov=True), parts)


def trained_variance_correction_depth2(x_train, y, x_test, *, C_b, C_W, activation="tanh", lambda_b=1.0,
                                       lambda_W=1.0, algorithm="leap-fixed", parts: bool = False):
    r"""The :math:`1/n` coefficient of the variance of each test output after training, depth two, all tensors exact (ours).

    :func:`trained_cov_correction_steps` with K, Θ, P, Q (:func:`pdlt.dntk_statistics`), R, S, T, U
    (:func:`pdlt.ddntk_second_layer`), A, B, D, F, H¹, G¹ (:func:`pdlt.ntk_statistics`) on the training inputs plus one
    test input at a time (N <= 3, so ``n_train <= 2``). ``algorithm``: ``"leap-fixed"`` (one step with
    :math:`\kappa = \Theta_{AA}^{-1}`), a :class:`GD`, or a tuple of these. Smooth activations only (the kinked tensors
    have no distributional S, T, U).

    Returns: ``(N_D,)`` coefficients of 1/n of :math:`\mathrm{Var}(z_\delta) - \Sigma^{\infty,t}_{\delta\delta}` (with ``parts``: a dict
      of such arrays); for a tuple of algorithms, a dict keyed by algorithm.
    """
    from ._activations import get_activation
    from ._dntk_stats import ddntk_second_layer, dntk_statistics
    from ._ntk_stats import ntk_statistics

    fn = "trained_variance_correction_depth2"
    single, algs = _algorithms(fn, algorithm, ("leap-fixed",))
    if not get_activation(activation, fn).smooth:
        raise _checks.PDLTValueError(f"{fn}: `activation` must be smooth (S, T, U of kinked activations are "
                                     f"almost-everywhere only), got {activation!r}")
    x_train, x_test = jnp.asarray(x_train), jnp.asarray(x_test)
    nA = x_train.shape[0]
    if nA > 2:
        raise _checks.PDLTValueError(f"{fn}: at most 2 training inputs (the dNTK tensors need N <= 3), got {nA}")
    kw = dict(C_b=C_b, C_W=C_W, activation=activation, lambda_b=lambda_b, lambda_W=lambda_W)
    out = {a: [] for a in algs}
    for d in range(x_test.shape[0]):
        x = jnp.concatenate([x_train, x_test[d:d + 1]])
        dd = ddntk_second_layer(x, **kw)
        st = dntk_statistics(x, L=2, **kw)
        ns = ntk_statistics(x, L=2, **kw)
        Th = st.Theta[-1]
        tens = dict(P=st.P[-1], Q=st.Q[-1], R=dd["R"], S=dd["S"], T=dd["T"], U=dd["U"], A=ns.A[-1], B=ns.B[-1],
                    D=ns.D[-1], F=ns.F[-1], H1=ns.H1[-1], G1=ns.G1[-1])
        for a in algs:
            step = (dict(eta=a.eta, steps=a.steps) if isinstance(a, GD)
                    else dict(kappa=jnp.linalg.inv(Th[:nA, :nA]), steps=1))
            r = trained_cov_correction_steps(Th, st.K[-1], jnp.asarray(y), nA, parts=True, **step, **tens)
            out[a].append({k: v[0, 0][None] for k, v in r.items()})
    res = {a: {k: jnp.concatenate([o[k] for o in out[a]]) for k in out[a][0]} for a in algs}
    if not parts:
        res = {a: r["total"] for a, r in res.items()}
    return res[algorithm] if single else res
