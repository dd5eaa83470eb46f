r"""Leading-order means of the two ddNTKs at any depth: the tensors R, S, T, U (PDLT §∞.1), for N <= 3 inputs.

Definitions and Kronecker structures as in :func:`pdlt.ddntk_mean_samples` (the book's objects); the recursion
below is derived by us. Notation: layer-:math:`\ell` preactivations :math:`z_j`, their gradients
:math:`e_j = \partial z_j/\partial\theta`, Hessians :math:`h_j`, third derivatives :math:`t_j` (all parameters of
layers :math:`\le\ell`); :math:`\langle u, v\rangle = \sum_\mu\lambda_\mu u_\mu v_\mu`. Besides the NTK
:math:`\hat H_{jk} = \langle e_j, e_k\rangle` and the two ddNTKs, the recursion needs the contraction of one Hessian with two
gradients, :math:`\hat G_{j;k_1k_2} = h_j[e_{k_1}, e_{k_2}]` (a half of the dNTK: :math:`\widehat{dH}_{i_0i_1i_2} = \hat G_{i_1;i_0i_2} + \hat G_{i_2;i_0i_1}`),
whose correlators with one preactivation have two structures, for distinct neurons :math:`j \ne k`:

.. math::
   E[\hat G_{j;(k,y)(k,w);x}\, z_{j;\beta}] = \tfrac1n\,\mathcal P_{x;yw;\beta},\qquad
   E[\hat G_{j;(k,y)(j,w);x}\, z_{k;\beta}] = \tfrac1n\,\mathcal Q_{x;yw;\beta}

(:math:`x`: the input of the Hessian; :math:`y, w`: those of the two gradients; :math:`\beta`: the preactivation's). Then
:math:`Q_{0123} = \mathcal Q_{1;20;3} + \mathcal P_{2;01;3}` and :math:`P_{0123} = \mathcal Q_{1;02;3} + \mathcal Q_{2;01;3}`
(checked against :func:`pdlt.dntk_statistics`); P and Q alone do not determine :math:`\mathcal P, \mathcal Q`.

Forward equation (exact). With :math:`z'_i = b_i + \sum_m W_{im}\sigma_m` and :math:`\tilde\lambda = \lambda_W^{(\ell+1)}`,
:math:`g_i = \partial z'_i/\partial\theta` has components :math:`\delta_{ik}\sigma_m` (weight :math:`W_{km}`, rate :math:`\tilde\lambda/n`),
:math:`\delta_{ik}` (bias) and :math:`\sum_m W_{im}\sigma'_me_m` (earlier parameters); the derivatives of :math:`z'_i` are
:math:`\partial^2_{W_{km}\theta}z'_i = \delta_{ik}\sigma'_me_m`, :math:`\partial^2_{\theta\theta}z'_i = \sum_m W_{im}(\sigma''_me_me_m + \sigma'_mh_m)`,
:math:`\partial^3_{W_{km}\theta\theta}z'_i = \delta_{ik}(\sigma''_me_me_m + \sigma'_mh_m)`,
:math:`\partial^3_{\theta\theta\theta}z'_i = \sum_m W_{im}(\sigma'''_me^{\otimes3}_m + 3\,\mathrm{sym}\,\sigma''_mh_m\otimes e_m + \sigma'_mt_m)`, and
every derivative with two new weights or a new bias vanishes. :math:`dd_IH' = \partial^3z'_{i_0}[g_{i_1}, g_{i_2}, g_{i_3}]`;
:math:`dd_{II}H'_{i_1i_2i_3i_4} = \langle v_{i_1;i_3}, v_{i_2;i_4}\rangle` with :math:`v_{i;k} = \partial^2z'_i\cdot g_k`, whose new-weight component
is :math:`\delta_{iu}\sigma'_m\langle e_m, g_k\rangle` and whose earlier component is
:math:`\delta_{ik}\tfrac{\tilde\lambda}n\sum_m\sigma'_m\sigma_me_m + \sum_{mp}W_{im}W_{kp}\sigma'_p(\sigma''_m\hat H_{mp}e_m + \sigma'_mh_me_p)`.

Recursion (ours). Take two distinct output neurons (a, b) in the pattern of each structure, average the fresh
weights (Wick; a Kronecker delta per pair, :math:`C_W/n`), and expand the double sums over layer-:math:`\ell` neurons
m, p at leading order: the diagonal m = p gives a Gaussian average at :math:`K = K^{(\ell)}` times :math:`\Theta = \Theta^{(\ell)}`
(the depth-two terms); for m ≠ p, a pair :math:`\hat H_{mp}\hat H_{mp}` gives B, one off-diagonal :math:`\hat H_{mp}` against
:math:`f(z_m)g(z_p)` gives F, :math:`\hat G` against :math:`f(z)` gives :math:`\mathcal P` or :math:`\mathcal Q` through
:math:`\langle\partial_\beta f\rangle`, and the layer-:math:`\ell` ddNTKs give R, S, T, U. Products of an off-diagonal
:math:`\hat H_{mp}` with a :math:`\hat G` (odd under the sign flip of a layer's weights and biases), three off-diagonal NTK
entries, and every diagonal (m = p) layer-:math:`\ell` mean are O(1/n²) and dropped. Digits are input indices; in
:math:`D_{\beta;xy}[f,g] = \langle\partial_\beta(f_xg_y)\rangle = \sum_\gamma K^{-1}_{\beta\gamma}\langle z_\gamma f_xg_y\rangle`, :math:`E_{xy} = \langle\sigma'_x\sigma'_y\rangle`,
:math:`C = C_W`, and F, B as in :func:`pdlt.dntk_statistics` (:math:`E[\hat H_{mp;12}\hat H_{mp;34}] = B_{1324}/n`):

.. math::
   R'_{0123} &= C^2\big[\langle\sigma'''_0\sigma'_1\sigma'_2\sigma'_3\rangle\Theta_{01}\Theta_{02}\Theta_{03}
       + \Theta_{01}\langle\sigma'''_0\sigma'_1\rangle E_{23}B_{0023}
       + \Theta_{01}E_{23}\textstyle\sum_\beta\mathcal P_{0;23;\beta}D_{\beta;01}[\sigma'',\sigma'] + E_{01}E_{23}R_{0123}\big]\\
     &\quad + \tilde\lambda C\big[\langle\sigma''_0\sigma_1\sigma'_2\sigma'_3\rangle\Theta_{02}\Theta_{03} + \langle\sigma''_0\sigma_1\rangle E_{23}B_{0023}
       + E_{23}\textstyle\sum_\beta\mathcal P_{0;23;\beta}D_{\beta;01}[\sigma',\sigma]\big],\\
   S'_{1234} &= \tilde\lambda C\big[\langle\sigma'_1\sigma'_2\sigma'_3\sigma'_4\rangle\Theta_{13}\Theta_{24} + E_{12}E_{34}B_{1234}\big]
     + C^2\big[X_{1234} + \langle\sigma''_1\sigma''_2\rangle E_{34}\Theta_{12}B_{1234} + E_{12}E_{34}S_{1234}\big],\\
   T'_{1342} &= \tilde\lambda^2\big[\langle\sigma'_1\sigma'_2\sigma_3\sigma_4\rangle\Theta_{12} + \textstyle\sum F_{1\beta2\gamma}D_{\beta;13}[\sigma',\sigma]D_{\gamma;24}[\sigma',\sigma]\big]
     + \tilde\lambda C\big[\langle\sigma'_1\sigma''_2\sigma_3\sigma'_4\rangle\Theta_{12}\Theta_{24} + \Theta_{24}\textstyle\sum F_{1\beta2\gamma}D_{\beta;13}[\sigma',\sigma]D_{\gamma;24}[\sigma'',\sigma']\\
     &\qquad + E_{24}\textstyle\sum_\beta\mathcal Q_{2;14;\beta}D_{\beta;13}[\sigma',\sigma] + (1\leftrightarrow2, 3\leftrightarrow4)\big]
     + C^2\big[X_{1234} + \Theta_{13}\Theta_{24}\textstyle\sum F_{1\beta2\gamma}D_{\beta;13}[\sigma'',\sigma']D_{\gamma;24}[\sigma'',\sigma']\\
     &\qquad + \Theta_{13}E_{24}\textstyle\sum_\beta\mathcal Q_{2;14;\beta}D_{\beta;13}[\sigma'',\sigma'] + \Theta_{24}E_{13}\textstyle\sum_\beta\mathcal Q_{1;23;\beta}D_{\beta;24}[\sigma'',\sigma'] + E_{13}E_{24}T_{1342}\big],\\
   U'_{1423} &= C^2\big[X_{1234} + E_{14}E_{23}U_{1423}\big],\qquad
   X_{1234} = \langle\sigma''_1\sigma''_2\sigma'_3\sigma'_4\rangle\Theta_{12}\Theta_{13}\Theta_{24},

and, from the forward equation of :math:`\hat G`,

.. math::
   \mathcal P'_{x;yw;\beta} &= C^2\big[\langle\sigma''_x\sigma'_y\sigma'_w\sigma_\beta\rangle\Theta_{xy}\Theta_{xw} + \langle\sigma''_x\sigma_\beta\rangle E_{yw}B_{xxyw}
      + E_{yw}\textstyle\sum_\gamma\mathcal P_{x;yw;\gamma}D_{\gamma;x\beta}[\sigma',\sigma]\big],\\
   \mathcal Q'_{x;yw;\beta} &= \tilde\lambda C\big[\langle\sigma_w\sigma'_x\sigma'_y\sigma_\beta\rangle\Theta_{xy} + \textstyle\sum F_{x\gamma y\delta}D_{\gamma;wx}[\sigma,\sigma']D_{\delta;y\beta}[\sigma',\sigma]\big]
      + C^2\big[\langle\sigma''_x\sigma'_w\sigma'_y\sigma_\beta\rangle\Theta_{xy}\Theta_{xw}\\
     &\qquad + \Theta_{xw}\textstyle\sum F_{x\gamma y\delta}D_{\gamma;xw}[\sigma'',\sigma']D_{\delta;y\beta}[\sigma',\sigma] + E_{xw}\textstyle\sum_\gamma\mathcal Q_{x;yw;\gamma}D_{\gamma;y\beta}[\sigma',\sigma]\big].

Every tensor vanishes in the first layer (linear in its parameters); at depth two the recursion reproduces
:func:`pdlt.ddntk_second_layer` (exact there). Neither A, D, V nor P, Q themselves enter, only their halves
:math:`\mathcal P, \mathcal Q`. A deep linear network (σ'' = 0) keeps only S and T at this order, with closed forms in
:func:`deep_linear_ddntk_closed_form` (its R and U are O(1/n²): a third derivative across three layers' weights
does not vanish in one network, but its mean does at order 1/n).

Kinks: σ'' of ReLU-like activations is a delta function. Only ``kink="almost-everywhere"`` is implemented for them
(σ'' = σ''' = 0 in the explicit derivatives, as the per-network autodiff ddNTK computes, so R = U = 0 at order 1/n; the Stein derivatives
:math:`D_\beta` of σ' stay distributional, since they describe the Gaussian law of z, not a derivative of the network).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._dntk_stats import KINKS, _einsum_moment, _funcs, _kinked, _si_moment, _validate_common
from ._gaussian import _grid_np, psd_factor

__all__ = ["DDNTKStatistics", "ddntk_statistics", "ddntk_statistics_single", "deep_linear_ddntk_closed_form",
           "scale_invariant_ddntk_closed_form", "kstar0_ddntk_slopes"]


class DDNTKStatistics(NamedTuple):
    """Per-layer leading-order ddNTK means; entry ``ell-1`` is layer ``ell``; all ``(L, N, N, N, N)``, coefficients of 1/n.

    R, S, T, U in the index order of :func:`pdlt.ddntk_mean_samples`; Pc, Qc: the halves :math:`\\mathcal P_{x;yw;\\beta}`,
    :math:`\\mathcal Q_{x;yw;\\beta}` of the dNTK-preactivation correlator (module docstring), indexed ``[x, y, w, β]``.
    """

    R: jax.Array
    S: jax.Array
    T: jax.Array
    U: jax.Array
    Pc: jax.Array
    Qc: jax.Array


def _moment_fn(act, K, kinked):
    N = K.shape[0]
    if kinked:
        def mom(kinds):
            if set(kinds) & {"dd", "ddd"}:
                return jnp.zeros((N,) * len(kinds), K.dtype)
            return _si_moment(act, K, kinds, "almost-everywhere")
        return mom
    d3 = jax.vmap(jax.grad(lambda z: act.d2sigma(z)))
    X, W = _grid_np(N, {1: 128, 2: 96, 3: 64}[N])
    z = jnp.asarray(X, K.dtype) @ psd_factor(K).T
    w = jnp.asarray(W, K.dtype)
    vals = {k: (d3(z.ravel()).reshape(z.shape) if k == "ddd" else _funcs(act, k)(z)) for k in ("s", "d", "dd", "ddd", "z")}
    return lambda kinds: _einsum_moment([vals[k] for k in kinds], w)


@partial(jax.jit, static_argnames=("name",))
def _moments(K, name):
    act = get_activation(name)
    mom = _moment_fn(act, K, _kinked(act))
    Ki = jnp.linalg.inv(K)
    dm = lambda a, b: jnp.einsum("bg,gxy->bxy", Ki, mom(("z", a, b)))  # noqa: E731  <∂_β(f_x g_y)>
    return {
        "R3": mom(("ddd", "d", "d", "d")), "R2": mom(("dd", "s", "d", "d")), "X": mom(("dd", "dd", "d", "d")),
        "T4": mom(("d", "d", "d", "d")), "Tss": mom(("d", "d", "s", "s")), "Tb": mom(("d", "dd", "s", "d")),
        "Tc": mom(("dd", "d", "d", "s")), "Q1": mom(("s", "d", "d", "s")),
        "E3": mom(("ddd", "d")), "E2s": mom(("dd", "s")), "E22": mom(("dd", "dd")), "Edd": mom(("d", "d")),
        "Dds": dm("d", "s"), "D21": dm("dd", "d"),
    }


@jax.jit
def _step(m, Th, F, B, R, S, Tl, Ul, Pc, Qc, C, lw):
    r"""One layer of the recursion (module docstring), in the internal orders ``Tl[1234] = T_{1342}``, ``Ul[1234] = U_{1423}``."""
    E, Dds, D21 = m["Edd"], m["Dds"], m["D21"]
    Dsd = jnp.swapaxes(Dds, 1, 2)                                    # <∂_β(σ_x σ'_y)>
    Bdiag = jnp.einsum("xxyw->xyw", B)                               # B_{xxyw}
    # the halves of the dNTK-preactivation correlator
    Pn = C**2 * (jnp.einsum("xywb,xy,xw->xywb", m["Tc"], Th, Th)
                 + jnp.einsum("xb,yw,xyw->xywb", m["E2s"], E, Bdiag)
                 + jnp.einsum("xywg,gxb,yw->xywb", Pc, Dds, E))
    Qn = (lw * C * (jnp.einsum("wxyb,xy->xywb", m["Q1"], Th) + jnp.einsum("xgyd,gwx,dyb->xywb", F, Dsd, Dds))
          + C**2 * (jnp.einsum("xwyb,xy,xw->xywb", m["Tc"], Th, Th)
                    + jnp.einsum("xw,xgyd,gxw,dyb->xywb", Th, F, D21, Dds)
                    + jnp.einsum("xw,xywg,gyb->xywb", E, Qc, Dds)))
    # R
    Rn = (C**2 * (jnp.einsum("abcd,ab,ac,ad->abcd", m["R3"], Th, Th, Th)
                  + jnp.einsum("ab,ab,cd,acd->abcd", Th, m["E3"], E, Bdiag)
                  + jnp.einsum("ab,cd,acdg,gab->abcd", Th, E, Pc, D21)
                  + jnp.einsum("ab,cd,abcd->abcd", E, E, R))
          + lw * C * (jnp.einsum("abcd,ac,ad->abcd", m["R2"], Th, Th)
                      + jnp.einsum("ab,cd,acd->abcd", m["E2s"], E, Bdiag)
                      + jnp.einsum("cd,acdg,gab->abcd", E, Pc, Dds)))
    X = jnp.einsum("abcd,ab,ac,bd->abcd", m["X"], Th, Th, Th)
    Sn = (lw * C * (jnp.einsum("abcd,ac,bd->abcd", m["T4"], Th, Th) + jnp.einsum("ab,cd,abcd->abcd", E, E, B))
          + C**2 * (X + jnp.einsum("ab,cd,ab,abcd->abcd", m["E22"], E, Th, B) + jnp.einsum("ab,cd,abcd->abcd", E, E, S)))
    FDD = lambda u, v: jnp.einsum("agbh,gac,hbd->abcd", F, u, v)    # noqa: E731  Σ F_{1β2γ} u_{β;13} v_{γ;24}
    Tn = (lw**2 * (jnp.einsum("abcd,ab->abcd", m["Tss"], Th) + FDD(Dds, Dds))
          + lw * C * (jnp.einsum("abcd,bd,ab->abcd", m["Tb"], Th, Th) + jnp.einsum("bd,abcd->abcd", Th, FDD(Dds, D21))
                      + jnp.einsum("abcd,ac,ab->abcd", m["Tc"], Th, Th) + jnp.einsum("ac,abcd->abcd", Th, FDD(D21, Dds))
                      + jnp.einsum("badg,gac,bd->abcd", Qc, Dds, E) + jnp.einsum("abcg,gbd,ac->abcd", Qc, Dds, E))
          + C**2 * (X + jnp.einsum("ac,bd,abcd->abcd", Th, Th, FDD(D21, D21))
                    + jnp.einsum("ac,badg,gac,bd->abcd", Th, Qc, D21, E) + jnp.einsum("bd,abcg,gbd,ac->abcd", Th, Qc, D21, E)
                    + jnp.einsum("ac,bd,abcd->abcd", E, E, Tl)))
    Un = C**2 * (X + jnp.einsum("ad,bc,abcd->abcd", E, E, Ul))
    return Rn, Sn, Tn, Un, Pn, Qn


@_checks.warns_nonfinite("recursion")
def ddntk_statistics(x, *, C_b, C_W, L: int, activation="tanh", lambda_b=1.0, lambda_W=1.0,
                     kink: str = "almost-everywhere", feed_in: bool = True) -> DDNTKStatistics:
    r"""Leading-order R, S, T, U (and the dNTK halves :math:`\mathcal P, \mathcal Q`) of layers 1..L for N <= 3 inputs.

    The recursion of the module docstring (ours), fed by K, Θ, F, B of :func:`pdlt.dntk_statistics`.

    Args:
      x: inputs ``(N, n0)``, N <= 3 (distinct, so that K is invertible).
      C_b, C_W: initialization (scalars). L: depth. activation: a registry name with σ'' (smooth; σ''' by autodiff),
        or a scale-invariant one with N <= 2 and ``kink="almost-everywhere"``.
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L.
      kink: only ``"almost-everywhere"`` (the delta functions of a kinked σ'' are not implemented).
      feed_in: ``False`` drops every layer-:math:`\ell` finite-width tensor (B, F, :math:`\mathcal P, \mathcal Q`, R, S, T, U)
        from the right-hand side, leaving the diagonal (depth-two) terms at :math:`K^{(\ell)}, \Theta^{(\ell)}`: a null, not a theory.
    Returns: :class:`DDNTKStatistics` (coefficients of 1/n; layer 1 zero; layer 2 equal to :func:`pdlt.ddntk_second_layer`).
    Raises: PDLTValueError before any compute for bad arguments or an activation without the needed derivatives.
    """
    fn = "ddntk_statistics"
    x, lb, lw = _validate_common(fn, x, L, C_b, C_W, lambda_b, lambda_W, kink)
    act = get_activation(activation, fn)
    if _kinked(act):
        if kink != "almost-everywhere":
            raise _checks.PDLTValueError(
                f"{fn}: kinked activation {act.name!r}: σ'' is a delta function; only kink='almost-everywhere' is implemented")
        if x.shape[0] > 2:
            raise _checks.PDLTValueError(f"{fn}: kinked activation {act.name!r} supports N <= 2 inputs, got N={x.shape[0]}")
    elif not act.smooth:
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} ({act.family}) has no usable second derivative")
    from ._dntk_stats import dntk_statistics

    st = dntk_statistics(x, C_b=C_b, C_W=C_W, L=L, activation=act.name, lambda_b=lb, lambda_W=lw, kink="almost-everywhere")
    N = x.shape[0]
    z4 = jnp.zeros((N,) * 4, st.K.dtype)
    cur = (z4,) * 6
    out = [cur]
    for ell in range(1, L):
        m = _moments(st.K[ell - 1], act.name)
        R, S, Tl, Ul, Pc, Qc = cur
        F, B = st.F[ell - 1], st.B[ell - 1]
        if not feed_in:
            F, B, R, S, Tl, Ul, Pc, Qc = (z4,) * 8
        cur = _step(m, st.Theta[ell - 1], F, B, R, S, Tl, Ul, Pc, Qc, float(C_W), float(lw[ell]))
        out.append(cur)
    R, S, Tl, Ul, Pc, Qc = (jnp.stack([o[k] for o in out]) for k in range(6))
    # T[e0,e1,e2,e3] = T_{1342} = Tl[e0,e3,e1,e2]; U[e0,e1,e2,e3] = U_{1423} = Ul[e0,e2,e3,e1]
    return DDNTKStatistics(R, S, jnp.transpose(Tl, (0, 1, 3, 4, 2)), jnp.transpose(Ul, (0, 1, 4, 2, 3)), Pc, Qc)


@_checks.warns_nonfinite("recursion")
def ddntk_statistics_single(x, *, C_b, C_W, L: int, activation="tanh", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Single-input R, S, T, U (and :math:`\mathcal P, \mathcal Q`) of layers 1..L, vectorized over layers (any depth).

    The N = 1 case of :func:`ddntk_statistics` (the same layer step, scanned), fed by K, H, F, B of
    :func:`pdlt.ntk_fluctuations`, with the Gaussian averages of every layer computed in one batch, so that
    depths like :math:`L = 10^4` cost one compiled call. Kinked activations use the almost-everywhere convention.

    Args:
      x: one input ``(n0,)``. C_b, C_W: scalars. L: depth. activation: as :func:`ddntk_statistics`.
      lambda_b, lambda_W: scalars or per-layer sequences of length L.
    Returns: dict ``K, H, F, B, R, S, T, U, Pc, Qc`` of shape ``(L,)`` (coefficients of 1/n; layer 1 zero).
    Raises: PDLTValueError before any compute for bad arguments.
    """
    fn = "ddntk_statistics_single"
    _checks.positive_int(fn, L=L)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    lb, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, L)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 1:
        raise _checks.PDLTValueError(f"{fn}: `x` must be one input of shape (n0,), got {x.shape}")
    act = get_activation(activation, fn)
    if not (_kinked(act) or act.smooth):
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} ({act.family}) has no usable second derivative")
    from ._ntk_fluctuations import ntk_fluctuations

    st = ntk_fluctuations(x, C_b=C_b, C_W=C_W, L=L, activation=act.name, lambda_b=lb, lambda_W=lw)
    out = _scan_single(st.K[:-1], st.H[:-1], st.F[:-1], st.B[:-1], jnp.asarray(lw[1:], st.K.dtype), float(C_W), act.name)
    z = jnp.zeros((1,), st.K.dtype)
    res = {k: jnp.concatenate([z, v]) for k, v in zip(("R", "S", "T", "U", "Pc", "Qc"), out)}
    return {"K": st.K, "H": st.H, "F": st.F, "B": st.B, **res}


@partial(jax.jit, static_argnames=("name",))
def _scan_single(K, H, F, B, lw, C, name):
    m = jax.vmap(lambda k: _moments(k.reshape(1, 1), name))(K)
    def body(cur, inp):
        mm, Th, Fl, Bl, w = inp
        new = _step(mm, Th.reshape(1, 1), Fl.reshape(1, 1, 1, 1), Bl.reshape(1, 1, 1, 1), *cur, C, w)
        return new, tuple(v.reshape(()) for v in new)

    z4 = jnp.zeros((1, 1, 1, 1), K.dtype)
    _, ys = jax.lax.scan(body, (z4,) * 6, (m, H, F, B, lw))
    return ys


def deep_linear_ddntk_closed_form(ell, *, K, lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Leading-order R, S, T, U of a deep linear network at :math:`C_W = 1`, :math:`C_b = 0`, constant rates (ours), layer ``ell``.

    With σ' = 1, σ'' = 0 the recursion keeps :math:`S' = S + \lambda_W(\Theta_{13}\Theta_{24} + B_{1234})` and
    :math:`T'_{1342} = T_{1342} + \lambda_W^2(K_{34}\Theta_{12} + F_{1324}) + \lambda_W(\mathcal Q_{2;14;3} + \mathcal Q_{1;23;4})`, with
    :math:`\Theta^{(\ell)} = \ell\theta`, :math:`\theta = \lambda_b + \lambda_WK`, :math:`B^{(\ell)}_{1234} = \theta_{13}\theta_{24}\sum_{m<\ell}m^2`,
    :math:`F^{(\ell)}_{1324} = K_{34}\theta_{12}\ell(\ell-1)/2`, :math:`\mathcal Q^{(\ell)}_{x;yw;\beta} = \lambda_WK_{w\beta}\theta_{xy}(\ell-1)\ell(\ell+1)/6`; summed,

    .. math:: S^{(\ell)}_{1234} = \lambda_W\theta_{13}\theta_{24}\,c_\ell,\qquad T^{(\ell)}_{1342} = \lambda_W^2\theta_{12}K_{34}\,c_\ell,\qquad
              R = U = 0,\qquad c_\ell = \frac{(\ell-1)\ell^2(\ell+1)}{12}.

    Returns dict ``R, S, T, U`` of shape ``(N,)*4`` (index order of :func:`pdlt.ddntk_mean_samples`).
    """
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    th = lambda_b + lambda_W * K
    c = (ell - 1) * ell**2 * (ell + 1) / 12
    S = lambda_W * jnp.einsum("ac,bd->abcd", th, th) * c
    T = lambda_W**2 * jnp.einsum("ad,bc->abcd", th, K) * c      # T[e0,e1,e2,e3] = T_{1342}: 1=e0, 3=e1, 4=e2, 2=e3
    z = jnp.zeros_like(S)
    return {"R": z, "S": S, "T": T, "U": z}


def scale_invariant_ddntk_closed_form(ell, *, K, activation="relu", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Single-input R, S, T, U at layer ``ell`` of a critical scale-invariant MLP (:math:`C_b = 0`, :math:`C_W = 1/A_2`; ours).

    Almost-everywhere convention (σ'' = σ''' = 0 in the explicit derivatives), constant learning rates. With
    :math:`A_2, A_4`, :math:`\kappa = A_4/A_2^2`, :math:`\theta = \lambda_b + \lambda_WA_2K` and the weight share
    :math:`\rho = \lambda_WA_2K/\theta` of :func:`pdlt.scale_invariant_ntk_closed_form`, the single-input averages are
    :math:`C_W\langle\sigma'^2\rangle = C_W\langle z\sigma\sigma'\rangle/K = 1`, :math:`\langle\sigma'^4\rangle = A_4`,
    :math:`\langle\sigma'^2\sigma^2\rangle = A_4K`, so the recursion of :func:`ddntk_statistics` keeps
    :math:`\mathcal P = 0`, :math:`\mathcal Q' = \mathcal Q + \lambda_WA_2(\kappa KH + F)`,
    :math:`S' = S + \lambda_WA_2(\kappa H^2 + B)`, :math:`T' = T + \lambda_W^2A_2^2(\kappa KH + F) + 2\lambda_WA_2\mathcal Q`,
    :math:`R' = R`, :math:`U' = U`. With :math:`H = \theta\ell`, :math:`F = \kappa K\theta\ell(\ell-1)/2`,
    :math:`B = \kappa\theta^2(\ell-1)\ell(2\ell-1)/6`, the sums are

    .. math:: S^{(\ell)} = \frac{\rho\kappa\theta^3}{K}\,c_\ell,\qquad T^{(\ell)} = \frac{\rho^2\kappa\theta^3}{K}\,c_\ell,
              \qquad R = U = 0,\qquad c_\ell = \frac{(\ell-1)\ell^2(\ell+1)}{12}

    (the deep linear network of :func:`deep_linear_ddntk_closed_form` is :math:`A_2 = \kappa = 1`). A ddNTK scales as
    :math:`H^3/K` under a rescaling of the input (three gradients, two Hessians), so the dimensionless ratios are

    .. math:: \frac{K S^{(\ell)}}{n(H^{(\ell)})^3} = \frac{\rho\kappa}{12}\,\frac{\ell^2-1}{\ell^2}\,\frac{\ell}{n},\qquad
              \frac{K T^{(\ell)}}{n(H^{(\ell)})^3} = \frac{\rho^2\kappa}{12}\,\frac{\ell^2-1}{\ell^2}\,\frac{\ell}{n}.

    ReLU: :math:`\kappa = 2`. Args: ell: layer or array of layers (>= 1). K: the (preserved) kernel. lambda_b,
    lambda_W: scalars. Returns: dict ``H, R, S, T, U`` (arrays of ``ell``'s shape) and the slopes ``slope_S``,
    ``slope_T`` (:math:`\rho\kappa/12`, :math:`\rho^2\kappa/12`) of :math:`KS/(nH^3)`, :math:`KT/(nH^3)` in :math:`\ell/n`.
    Raises: PDLTValueError for a non-scale-invariant activation, K <= 0, negative rates, or a vanishing NTK.
    """
    from ._ntk_fluctuations import _si_constants

    theta, rho, kappa, _ = _si_constants(activation, K, lambda_b, lambda_W, "scale_invariant_ddntk_closed_form")
    l = jnp.asarray(ell, dtype=jnp.result_type(float))
    c = (l - 1) * l**2 * (l + 1) / 12
    S = rho * kappa * theta**3 / K * c
    return {"H": theta * l, "R": jnp.zeros_like(l), "S": S, "T": rho * S, "U": jnp.zeros_like(l),
            "slope_S": rho * kappa / 12, "slope_T": rho**2 * kappa / 12}


def kstar0_ddntk_slopes(*, lambda_b=0.0, lambda_W=1.0, activation="tanh") -> dict:
    r"""Large-depth laws of the single-input R, S, T, U for the K*=0 class at criticality (derivation ours).

    Setting: an odd activation :math:`\sigma(z) = \sigma_1(z + c\,z^3/6) + O(z^5)` with :math:`c = \sigma_3/\sigma_1 < 0`
    (tanh, erf: c = -2; sin: c = -1), :math:`C_b = 0`, :math:`C_W = 1/\sigma_1^2`, constant learning rates; write
    :math:`\sigma_1 = 1` (a general :math:`\sigma_1` enters only as :math:`\lambda_W\sigma_1^2`). Normalization: a ddNTK
    scales as :math:`H^3/K` (three gradients, two Hessians), so we follow :math:`x_X = KX/(nH^3)`, as for the
    scale-invariant class (:func:`scale_invariant_ddntk_closed_form`).

    Derivation. With :math:`u = -cK \simeq 1/\ell` the averages in the single-input recursion of
    :func:`ddntk_statistics` are, at leading order, :math:`C_W\langle\sigma'^2\rangle = 1-u`,
    :math:`C_W\langle z\sigma\sigma'\rangle/K = 1-2u`, :math:`\langle z\sigma'\sigma''\rangle/K = c`,
    :math:`\langle\sigma'''\sigma'^3\rangle = \langle\sigma'''\sigma'\rangle = c`,
    :math:`\langle\sigma''\sigma\sigma'^2\rangle = \langle\sigma''\sigma\rangle = -u`,
    :math:`\langle\sigma''^2\sigma'^2\rangle = \langle\sigma''^2\rangle = -cu`, :math:`\langle\sigma'^4\rangle = 1`,
    :math:`\langle\sigma^2\sigma'^2\rangle = K`. Each tensor then obeys :math:`X' = (1-g/\ell)X + s\,\ell^m` (g = 2 for R, S, T, U;
    3 for :math:`\mathcal P, \mathcal Q`), so :math:`X \simeq s\,\ell^{m+1}/(m+1+g)`. With the NTK statistics:

    * :math:`\lambda_b = 0`: :math:`H\to h = -\lambda_W/c`, :math:`F\to -h/(4c)`, :math:`B\simeq h^2\ell/3`. Then
      :math:`\mathcal P\simeq -h^2\ell/12` (source :math:`\langle\sigma''\sigma\rangle B`); in :math:`\mathcal Q` and T the
      order-one sources cancel (:math:`\lambda_WF + HFc = 0`, :math:`\lambda_W^2F + 2\lambda_WHFc + H^2Fc^2 = 0`,
      :math:`2\lambda_W\mathcal Q + 2Hc\,\mathcal Q = 0`). R: the sources :math:`HcB + Hc\,\mathcal P + \lambda_W\langle\sigma''\sigma\rangle B + \lambda_W\mathcal P`
      add to :math:`ch^3\ell/3`, so :math:`R\simeq ch^3\ell^2/12`; S: source :math:`\lambda_WB`, :math:`S\simeq -ch^3\ell^2/12`;
      U: source :math:`-cuh^3`, :math:`U\to -ch^3/2`. With :math:`K\simeq -1/(c\ell)`:

      .. math:: \frac{KR}{nH^3}\to -\frac1{12}\frac{\ell}{n},\qquad \frac{KS}{nH^3}\to \frac1{12}\frac{\ell}{n},\qquad
                \frac{KU}{nH^3}\to \frac{1}{2\,\ell n},

      and T grows more slowly than :math:`\ell H^3/K` (its leading coefficient cancels; the next order is not universal
      and no constant is derived: :math:`\ell KT/H^3` is about 2.5 for tanh, 1.1 for erf and 0 for sin at :math:`\ell = 10^4`).
    * :math:`\lambda_b > 0`: :math:`H\simeq h\ell`, :math:`h = \lambda_b/2`, :math:`F\simeq -H/(5c)`, :math:`B\simeq H^2\ell/5`
      (the weight-gradient terms are down by :math:`1/\ell`, except in S). Then :math:`\mathcal P\simeq\mathcal Q\simeq -h^2\ell^3/30`;
      R: sources :math:`HcB + Hc\,\mathcal P = ch^3\ell^4/6`, :math:`R\simeq ch^3\ell^5/42`; T: source :math:`2Hc\,\mathcal Q`,
      :math:`T\simeq -ch^3\ell^5/105`; U: source :math:`-cuH^3`, :math:`U\simeq -ch^3\ell^3/5`; S: sources
      :math:`\lambda_WB + \langle\sigma''^2\rangle HB = h^2(\lambda_W - ch)\ell^3/5`, :math:`S\simeq h^2(\lambda_W - ch)\ell^4/30`:

      .. math:: \frac{KR}{nH^3}\to -\frac1{42}\frac{\ell}{n},\qquad \frac{KT}{nH^3}\to \frac1{105}\frac{\ell}{n},\qquad
                \frac{KU}{nH^3}\to \frac{1}{5\,\ell n},\qquad
                \frac{KS}{nH^3}\to \frac1{30}\Big(1 - \frac{2\lambda_W\sigma_1^2}{c\,\lambda_b}\Big)\frac1n.

    The slopes in :math:`\ell/n` and the :math:`1/\ell` laws of U are universal (independent of c, :math:`\sigma_1` and the
    rates); the level of S at :math:`\lambda_b > 0` is not (it needs ``lambda_W`` and ``activation``). The approach is
    :math:`O(\log\ell/\ell)` relative (from the corrections to K and H).

    Args:
      lambda_b: the constant bias learning rate (>= 0).
      lambda_W: the constant weight learning rate (>= 0).
      activation: a registry name of the K*=0 class with :math:`\sigma_2 = 0` (it enters only ``S_level``).

    Returns:
      dict with ``R, S, T, U``, the slopes of :math:`KX/(nH^3)` in :math:`\ell/n` (0 where X grows more slowly);
      ``U_level``, the limit of :math:`\ell KU/H^3`; and ``S_level``, the limit of :math:`KS/H^3` for
      :math:`\lambda_b > 0` (None at :math:`\lambda_b = 0`, where S grows like :math:`\ell H^3/K`).

    Raises:
      PDLTValueError: negative rates, or an activation outside the K*=0 class or with :math:`\sigma_2 \ne 0`.
    """
    from ._criticality import taylor_coefficients
    from ._ntk_fluctuations import _kstar0_coefficients

    fn = "kstar0_ddntk_slopes"
    _checks.nonnegative(fn, lambda_b=lambda_b, lambda_W=lambda_W)
    act = get_activation(activation, fn)
    _kstar0_coefficients(act, fn)
    _, s1, s2, s3 = taylor_coefficients(act)
    if abs(s2) > 1e-12 * abs(s1):
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} has sigma_2 = {s2:.3g} != 0 (the derivation needs an odd activation)")
    if lambda_b > 0:
        c = s3 / s1
        return {"R": -1.0 / 42, "S": 0.0, "T": 1.0 / 105, "U": 0.0, "U_level": 0.2,
                "S_level": (1 - 2 * lambda_W * s1**2 / (c * lambda_b)) / 30}
    return {"R": -1.0 / 12, "S": 1.0 / 12, "T": 0.0, "U": 0.0, "U_level": 0.5, "S_level": None}
