r"""Leading-order finite-width statistics of the NTK for any set of N inputs (PDLT §8.2-§8.3, §9; the
multi-input recursions below are derived here, the single-input ones are the book's).

Conventions (equal hidden widths n; i output-neuron indices, α sample indices; every tensor is the
coefficient of 1/n):

.. math::
   E[z_{i_1;\alpha_1}z_{i_2;\alpha_2}] &= \delta_{i_1i_2}\big(K_{\alpha_1\alpha_2} + G^{\{1\}}_{\alpha_1\alpha_2}/n\big),\qquad
   E[\hat H_{i_1i_2;\alpha_1\alpha_2}] = \delta_{i_1i_2}\big(\Theta_{\alpha_1\alpha_2} + H^{\{1\}}_{\alpha_1\alpha_2}/n\big),\\
   n\,\mathrm{Cov}(\hat G_{\alpha_1\alpha_2},\hat G_{\alpha_3\alpha_4}) &= V_{(\alpha_1\alpha_2)(\alpha_3\alpha_4)},\\
   n\,E[\widehat{\Delta H}_{i_1i_2;\alpha_1\alpha_2} z_{i_3;\alpha_3} z_{i_4;\alpha_4}] &=
      \delta_{i_1i_2}\delta_{i_3i_4}D_{\alpha_1\alpha_2\alpha_3\alpha_4} + \delta_{i_1i_3}\delta_{i_2i_4}F_{\alpha_1\alpha_3\alpha_2\alpha_4}
      + \delta_{i_1i_4}\delta_{i_2i_3}F_{\alpha_1\alpha_4\alpha_2\alpha_3},\\
   n\,E[\widehat{\Delta H}_{i_1i_2;\alpha_1\alpha_2}\widehat{\Delta H}_{i_3i_4;\alpha_3\alpha_4}] &=
      \delta_{i_1i_2}\delta_{i_3i_4}A_{(\alpha_1\alpha_2)(\alpha_3\alpha_4)} + \delta_{i_1i_3}\delta_{i_2i_4}B_{\alpha_1\alpha_3\alpha_2\alpha_4}
      + \delta_{i_1i_4}\delta_{i_2i_3}B_{\alpha_1\alpha_4\alpha_2\alpha_3}.

Arrays: ``D[a1,a2,a3,a4]`` (first pair: the NTK's samples, second pair: the preactivations'),
``F[a1,a3,a2,a4]`` (first pair: the samples carried by neuron i1 = i3, second pair: by i2 = i4), and
likewise ``B[a1,a3,a2,a4]``. Symmetries: V, A under a1<->a2, a3<->a4, (a1a2)<->(a3a4); D under
a1<->a2 and a3<->a4; F and B under the neuron swap ``[a1,a3,a2,a4] -> [a2,a4,a1,a3]``; B also under
``[a1,a3,a2,a4] -> [a3,a1,a4,a2]``.

Derivation. Given layer ℓ (preactivations :math:`z_{j;\alpha}`, NTK :math:`\hat H_{jk;\alpha\beta}`), the rows
:math:`w_i` of :math:`W^{(\ell+1)}` are iid :math:`\mathcal N(0, c\,I)`, :math:`c = C_W/n`, and the forward equation is
:math:`\hat H'_{ik;\alpha\beta} = \delta_{ik}\hat\Lambda_{\alpha\beta} + w_i^\top M_{\alpha\beta}w_k` with
:math:`M_{jk;\alpha\beta} = \sigma'_{j;\alpha}\sigma'_{k;\beta}\hat H_{jk;\alpha\beta}` and
:math:`\hat\Lambda = \lambda_b + \tfrac{\lambda_W}{n}\sum_j\sigma_j\sigma_j`. Wick's theorem over the w's gives exactly

.. math::
   E[\hat H'_{12}z'_3z'_4\mid\ell] = \delta_{12}\delta_{34}\hat\mu_{12}\hat G'_{34} + \delta_{13}\delta_{24}\hat f_{1324} + \delta_{14}\delta_{23}\hat f_{1423},\quad
   E[\hat H'_{12}\hat H'_{34}\mid\ell] = \delta_{12}\delta_{34}\hat\mu_{12}\hat\mu_{34} + \delta_{13}\delta_{24}\hat b_{1324} + \delta_{14}\delta_{23}\hat b_{1423},

with the collective variables :math:`\hat G' = C_b + c\sum_j\sigma_j\sigma_j`, :math:`\hat\mu = \hat\Lambda + c\,\mathrm{tr}M`,
:math:`\hat f_{\alpha_1\alpha_3\alpha_2\alpha_4} = c^2\sigma_{\alpha_3}^\top M_{\alpha_1\alpha_2}\sigma_{\alpha_4}`,
:math:`\hat b_{\alpha_1\alpha_3\alpha_2\alpha_4} = c^2\sum_{jk}M_{jk;\alpha_1\alpha_2}M_{jk;\alpha_3\alpha_4}`. Hence
:math:`V' = n\mathrm{Cov}(\hat G',\hat G')`, :math:`D' = n\mathrm{Cov}(\hat\mu,\hat G')`, :math:`A' = n\mathrm{Cov}(\hat\mu,\hat\mu)`,
:math:`F' = nE[\hat f]`, :math:`B' = nE[\hat b]`, :math:`\Theta + H^{\{1\}}/n = E[\hat\mu]`. These averages over layer ℓ
are sums of one-neuron terms (Gaussian at :math:`K`, to leading order) and two-neuron covariances.
For the latter, condition on layer ℓ-1: neurons of layer ℓ are then independent, and Gaussian
integration by parts over the layer-ℓ weights gives the exact conditional means

.. math::
   E[\sigma_\alpha\sigma_\beta\mid\ell-1] = \Phi_{\alpha\beta}(\hat G),\qquad
   E[\sigma'_\alpha\sigma'_\beta\hat H_{jj;\alpha\beta}\mid\ell-1] = \hat\mu_{\alpha\beta}\Psi_{\alpha\beta}(\hat G)
      + 2\textstyle\sum_{ab}\hat f_{\alpha a\beta b}\,\partial\Psi_{\alpha\beta}/\partial K_{ab}(\hat G),

with :math:`\Phi = \langle\sigma\sigma\rangle_K`, :math:`\Psi = \langle\sigma'\sigma'\rangle_K` (the heat equation
:math:`\langle\partial_a\partial_b g\rangle_K = 2\,\partial\langle g\rangle_K/\partial K_{ab}`, derivatives of the symmetrised
map), and likewise :math:`E[\hat H_{jk}g_1(z_j)g_2(z_k)\mid\ell-1] = \sum_{ab}\hat f_{\alpha a\beta b}\langle\partial_ag_1\rangle\langle\partial_bg_2\rangle`
for :math:`j\neq k` and :math:`E[\hat H_{jk;12}\hat H_{jk;34}g_1g_2\mid\ell-1] = \hat b\,\langle g_1\rangle\langle g_2\rangle + O(n^{-2})`.
Expanding around :math:`\hat G = K + \ldots`, :math:`\hat\mu = \Theta + \ldots` with the layer-ℓ covariances V, D, A
and means :math:`G^{\{1\}}, H^{\{1\}}, F/n, B/n` gives, with pair indices :math:`P = (\alpha_1\alpha_2)`, :math:`Q = (\alpha_3\alpha_4)`,
:math:`J^\Phi = \partial\Phi/\partial K`, :math:`J^\Psi = \partial\Psi/\partial K` and their Hessians :math:`H^\Phi, H^\Psi`
(:math:`\lambda = \lambda^{(\ell+1)}`, :math:`C = C^{(\ell+1)}`):

.. math::
   C_{uu} &= \langle\sigma_1\sigma_2\sigma_3\sigma_4\rangle - \Phi_P\Phi_Q + (J^\Phi VJ^{\Phi\top})_{PQ},\\
   C_{vu} &= \Theta_P\big(\langle\sigma'_1\sigma'_2\sigma_3\sigma_4\rangle - \Psi_P\Phi_Q\big) + \big[(\Psi_P D_{P\cdot} + \Theta_P(J^\Psi V)_{P\cdot})J^{\Phi\top}\big]_Q,\\
   C_{vv} &= \Theta_P\Theta_Q\big(\langle\sigma'_1\sigma'_2\sigma'_3\sigma'_4\rangle - \Psi_P\Psi_Q\big) + (\mathcal JW\mathcal J^\top)_{PQ},\quad
      \mathcal J = [\,\mathrm{diag}(\Theta)J^\Psi,\ \mathrm{diag}(\Psi)\,],\ W = \begin{pmatrix}V & D^\top\\ D & A\end{pmatrix},\\
   V' &= C_W^2C_{uu},\qquad D' = \tfrac{\lambda_W}{C_W}V' + C_W^2C_{vu},\qquad
   A' = \lambda_W^2C_{uu} + \lambda_WC_W(C_{vu} + C_{vu}^\top) + C_W^2C_{vv},\\
   F'_{\alpha_1\alpha_3\alpha_2\alpha_4} &= C_W^2\Big[\Theta_{\alpha_1\alpha_2}\langle\sigma'_{\alpha_1}\sigma_{\alpha_3}\sigma'_{\alpha_2}\sigma_{\alpha_4}\rangle
      + \textstyle\sum_{ab}F_{\alpha_1a\alpha_2b}\,E_{\alpha_1\alpha_3a}E_{\alpha_2\alpha_4b}\Big],\qquad
      E_{pqa} = \langle\partial_a(\sigma'_p\sigma_q)\rangle = (2-\delta_{pq})J^\Phi_{(pq)(ap)},\\
   B'_{\alpha_1\alpha_3\alpha_2\alpha_4} &= C_W^2\big[\Theta_{\alpha_1\alpha_2}\Theta_{\alpha_3\alpha_4}\langle\sigma'_1\sigma'_2\sigma'_3\sigma'_4\rangle
      + \Psi_{\alpha_1\alpha_3}\Psi_{\alpha_2\alpha_4}B_{\alpha_1\alpha_3\alpha_2\alpha_4}\big],\\
   K' &= C_b + C_W\Phi,\quad \Theta' = \lambda_b + \lambda_W\Phi + C_W\,\Theta\circ\Psi,\quad
   G^{\{1\}\prime} = C_W\big[J^\Phi G^{\{1\}} + \tfrac12H^\Phi\!:\!V\big],\\
   H^{\{1\}\prime}_P &= \tfrac{\lambda_W}{C_W}G^{\{1\}\prime}_P + C_W\Big[H^{\{1\}}_P\Psi_P + \Theta_P\big(J^\Psi G^{\{1\}} + \tfrac12H^\Psi\!:\!V\big)_P
      + \textstyle\sum_QJ^\Psi_{PQ}D_{PQ} + 2\sum_{ab}J^\Psi_{(\alpha_1\alpha_2)(ab)}F_{\alpha_1a\alpha_2b}\Big],

all Gaussian averages at :math:`K^{(\ell)}`; every tensor vanishes in the first layer (exactly Gaussian).
For N = 1 these are the book's single-input recursions (:func:`pdlt.ntk_fluctuations` calls this code).

Gaussian averages: Φ, Ψ and their derivatives by automatic differentiation of :func:`pdlt.kernel_map`
and :func:`pdlt.derivative_kernel_map` (closed forms for the scale-invariant family, so exact for ReLU);
the four-point averages by the one-variable composite rule (N = 1), exact polar quadrature
(scale-invariant, N = 2), tensor Gauss-Hermite (N <= 4: 96, 64, 20 nodes per axis for N = 2, 3, 4) or
per index tuple in the 4 x 4 sub-kernel (N > 4, 12 nodes per axis). Kinked activations with N >= 3
are therefore only algebraically accurate in the four-point averages (relative error ~1e-4).
"""
from __future__ import annotations

import itertools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._criticality import dense_expectation
from ._gaussian import (_grid_np, psd_factor, scale_invariant_derivative_kernel, scale_invariant_expectation2,
                        scale_invariant_kernel)

__all__ = ["NTKStatistics", "ntk_statistics"]


class NTKStatistics(NamedTuple):
    """Leading-order multi-input NTK statistics per layer (entry ``ell-1`` = layer ``ell``; module docstring).

    K, Theta, G1, H1: ``(L, N, N)``. V, A: ``(L, N, N, N, N)`` as ``[a1, a2, a3, a4]`` = ``(a1a2)(a3a4)``.
    D: ``(L, N, N, N, N)`` as ``D[a1, a2, a3, a4]`` (NTK pair, preactivation pair).
    F, B: ``(L, N, N, N, N)`` as ``F[a1, a3, a2, a4]`` (neuron i1 = i3's pair, neuron i2 = i4's pair).
    """

    K: jax.Array
    Theta: jax.Array
    V: jax.Array
    D: jax.Array
    F: jax.Array
    A: jax.Array
    B: jax.Array
    G1: jax.Array
    H1: jax.Array


# --------------------------------------------------------------------------- Gaussian averages

def _sym(K):
    return 0.5 * (K + K.T)


def _egrad(f):
    g = jax.grad(f)
    return lambda z: jax.vmap(g)(z.ravel()).reshape(z.shape)


def _derivatives(act, m):
    """Elementwise sigma^(k), k = 0..m (the registry's first two derivatives, then autodiff)."""
    fs = [act.sigma, act.dsigma, act.d2sigma]
    while len(fs) <= m:
        fs.append(_egrad(fs[-1]))
    return fs[: m + 1]


_PAIR_DEG = 64


def _pair_terms_smooth(act, K, a, b):
    r"""For each pair (a < b) and g = σ^(o), o = 0, 1: :math:`\langle g_ag_b\rangle`, its gradient in
    :math:`(K_{aa}, K_{ab}, K_{bb})` and Hessian, by the heat equation
    :math:`\partial_{K_{aa}} = \tfrac12\partial_a^2`, :math:`\partial_{K_{ab}} = \partial_a\partial_b` under the average
    (tensor Gauss-Hermite, 64 nodes per axis); the diagonal by the composite rule."""
    fs = _derivatives(act, 5)
    x, w = (jnp.asarray(v, K.dtype) for v in _grid_np(2, _PAIR_DEG))
    s1 = jnp.sqrt(K[a, a])[:, None]
    c = (K[a, b] / jnp.sqrt(K[a, a]))[:, None]
    r = jnp.sqrt(jnp.clip(K[b, b][:, None] - c * c, 0.0))
    z1, z2 = s1 * x[:, 0], c * x[:, 0] + r * x[:, 1]
    P = [f(z1) for f in fs]
    Q = [f(z2) for f in fs]
    E = lambda i, j: (P[i] * Q[j]) @ w  # noqa: E731
    dk = jnp.diagonal(K)
    out = []
    for o in (0, 1):
        v = E(o, o)
        g1 = jnp.stack([0.5 * E(o + 2, o), E(o + 1, o + 1), 0.5 * E(o, o + 2)], -1)
        h = jnp.stack([jnp.stack([0.25 * E(o + 4, o), 0.5 * E(o + 3, o + 1), 0.25 * E(o + 2, o + 2)], -1),
                       jnp.stack([0.5 * E(o + 3, o + 1), E(o + 2, o + 2), 0.5 * E(o + 1, o + 3)], -1),
                       jnp.stack([0.25 * E(o + 2, o + 2), 0.5 * E(o + 1, o + 3), 0.25 * E(o, o + 4)], -1)], -2)
        g = fs[o:]
        d0 = dense_expectation(lambda z: g[0](z) ** 2, dk)
        d1 = dense_expectation(lambda z: g[1](z) ** 2 + g[0](z) * g[2](z), dk)
        d2 = 0.5 * dense_expectation(lambda z: g[0](z) * g[4](z) + 4 * g[1](z) * g[3](z) + 3 * g[2](z) ** 2, dk)
        out.append((v, g1, h, d0, d1, d2))
    return out


def _pair_terms_scale_invariant(act, K, a, b):
    """As :func:`_pair_terms_smooth` from the arc-cosine closed forms (autodiff) and the exact diagonal."""
    A2 = act.slope_moment(2)
    dk = jnp.diagonal(K)
    out = []
    for o, closed in ((0, scale_invariant_kernel), (1, scale_invariant_derivative_kernel)):
        def off(k, closed=closed):
            M = jnp.stack([jnp.stack([k[0], k[1]]), jnp.stack([k[1], k[2]])])
            return closed(M, act.a_plus, act.a_minus)[0, 1]
        kv = jnp.stack([K[a, a], K[a, b], K[b, b]], axis=-1)
        v, g1, h = jax.vmap(off)(kv), jax.vmap(jax.grad(off))(kv), jax.vmap(jax.hessian(off))(kv)
        d0 = A2 * dk if o == 0 else A2 * jnp.ones_like(dk)
        d1 = A2 * jnp.ones_like(dk) if o == 0 else jnp.zeros_like(dk)
        out.append((v, g1, h, d0, d1, jnp.zeros_like(dk)))
    return out


def _pair_derivatives(act, K):
    r"""Φ = ⟨σσ⟩ and Ψ = ⟨σ'σ'⟩ at K with their symmetric-convention Jacobians and V-contracted Hessians.

    Entry ⟨g_αg_β⟩ depends on :math:`(K_{\alpha\alpha}, K_{\alpha\beta}, K_{\beta\beta})` only, so each off-diagonal entry
    is a function of three scalars and each diagonal one of one. Returns two triples ``(val (N,N), J (N,N,N,N),
    hess)`` (Φ, then Ψ), with ``J[α,β,a,b] = ∂val_αβ/∂K_ab`` for the map of the symmetrised matrix (an
    off-diagonal derivative is shared equally by K_ab and K_ba) and ``hess(V)[α,β] = Σ ∂²val_αβ/∂K∂K V``.
    """
    N = K.shape[0]
    a, b = np.triu_indices(N, 1)
    terms = (_pair_terms_scale_invariant if act.scale_invariant else _pair_terms_smooth)(act, K, a, b)
    ar = np.arange(N)
    va, vb = np.stack([a, a, b], -1), np.stack([a, b, b], -1)       # the three variables of each pair
    res = []
    for (o0, o1, o2, d0, d1, d2) in terms:
        val = jnp.zeros((N, N), K.dtype).at[ar, ar].set(d0).at[a, b].set(o0).at[b, a].set(o0)
        J = jnp.zeros((N,) * 4, K.dtype).at[ar, ar, ar, ar].set(d1)
        for (p, q) in ((a, b), (b, a)):
            J = (J.at[p, q, a, a].set(o1[:, 0]).at[p, q, b, b].set(o1[:, 2])
                 .at[p, q, a, b].set(0.5 * o1[:, 1]).at[p, q, b, a].set(0.5 * o1[:, 1]))

        def hess(V, o2=o2, d2=d2):
            Vloc = V[va[:, :, None], vb[:, :, None], va[:, None, :], vb[:, None, :]]
            h = jnp.sum(o2 * Vloc, axis=(-2, -1))
            out = jnp.zeros((N, N), K.dtype).at[ar, ar].set(d2 * V[ar, ar, ar, ar])
            return out.at[a, b].set(h).at[b, a].set(h)

        res.append((val, J, hess))
    return res


_DEG = {2: 96, 3: 64, 4: 20}
_DEG_TUPLE = 12


def _four_point(act, K):
    """S4 = <s s s s>, X = <s s s' s'>, Y = <s' s' s' s'> at K, each (N, N, N, N)."""
    N = K.shape[0]
    s, ds = act.sigma, act.dsigma

    def prods(z):  # z: (P, N) -> three (P, N, N, N, N) tensors, or contracted with weights
        a, d = s(z), ds(z)
        return a, d

    if N == 1:
        k = K[0, 0]
        vals = [dense_expectation(lambda z: s(z) ** 4, k), dense_expectation(lambda z: (s(z) * ds(z)) ** 2, k),
                dense_expectation(lambda z: ds(z) ** 4, k)]
        return tuple(v.reshape(1, 1, 1, 1) for v in vals)
    if act.scale_invariant and N == 2:
        def f(deg_pair):
            def g(z):
                a, d = prods(z)
                u, v = deg_pair
                return jnp.einsum("pa,pb,pc,pd->pabcd", u(a, d), u(a, d), v(a, d), v(a, d))
            return g
        S = lambda a, d: a  # noqa: E731
        Dd = lambda a, d: d  # noqa: E731
        return (scale_invariant_expectation2(f((S, S)), K, 4), scale_invariant_expectation2(f((S, Dd)), K, 2),
                scale_invariant_expectation2(f((Dd, Dd)), K, 0))
    if N <= 4:
        X, W = _grid_np(N, _DEG[N])
        z = jnp.asarray(X, K.dtype) @ psd_factor(K).T
        w = jnp.asarray(W, K.dtype)
        a, d = s(z), ds(z)
        aa = jnp.einsum("p,pa,pb->pab", w, a, a)
        dd = jnp.einsum("pa,pb->pab", d, d)
        return (jnp.einsum("pab,pcd->abcd", aa, jnp.einsum("pa,pb->pab", a, a)),
                jnp.einsum("pab,pcd->abcd", aa, dd),
                jnp.einsum("p,pab,pcd->abcd", w, dd, dd))
    return _four_point_tuples(act, K)


def _four_point_tuples(act, K):
    """N > 4: each entry from the 4 x 4 sub-kernel of its indices (pairs a <= b, c <= d)."""
    N = K.shape[0]
    pairs = [(a, b) for a in range(N) for b in range(a, N)]
    idx = np.array([p + q for p in pairs for q in pairs])            # (T, 4)
    X, W = _grid_np(4, _DEG_TUPLE)
    Xj, Wj = jnp.asarray(X, K.dtype), jnp.asarray(W, K.dtype)

    def one(t):
        sub = K[t[:, None], t[None, :]]
        z = Xj @ psd_factor(sub).T                                   # (P, 4)
        a, d = act.sigma(z), act.dsigma(z)
        return jnp.stack([Wj @ (a[:, 0] * a[:, 1] * a[:, 2] * a[:, 3]),
                          Wj @ (a[:, 0] * a[:, 1] * d[:, 2] * d[:, 3]),
                          Wj @ (d[:, 0] * d[:, 1] * d[:, 2] * d[:, 3])])

    vals = jax.lax.map(one, jnp.asarray(idx), batch_size=64)         # (T, 3)
    out = jnp.zeros((3, N, N, N, N), K.dtype)
    a_, b_, c_, d_ = (idx[:, k] for k in range(4))
    for (i, j), (k, l) in itertools.product(((a_, b_), (b_, a_)), ((c_, d_), (d_, c_))):
        out = out.at[:, i, j, k, l].set(vals.T)
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------- recursion

def _step(act, N):
    n2 = N * N

    def step(carry, par):
        K, Th, V, D, F, A, B, G1, H1 = carry
        C_b, C_W, lb, lw = par
        (ph, Jf, Hf), (ps, Js, Hs) = _pair_derivatives(act, K)
        Jf, Js = Jf.reshape(n2, n2), Js.reshape(n2, n2)
        S4, X4, Y4 = _four_point(act, K)
        phv, psv, thv = ph.ravel(), ps.ravel(), Th.ravel()
        Vm, Dm, Am = V.reshape(n2, n2), D.reshape(n2, n2), A.reshape(n2, n2)
        # one-neuron (Gaussian) covariances and two-neuron ones through layer-ell fluctuations
        Cuu = S4.reshape(n2, n2) - jnp.outer(phv, phv) + Jf @ Vm @ Jf.T
        Jv_g = thv[:, None] * Js                                     # d E[v] / d G-hat
        Cvu = (thv[:, None] * (X4.reshape(n2, n2).T - jnp.outer(psv, phv))
               + (psv[:, None] * Dm + Jv_g @ Vm) @ Jf.T)
        Cvv = (jnp.outer(thv, thv) * (Y4.reshape(n2, n2) - jnp.outer(psv, psv))
               + (psv[:, None] * Am * psv[None, :]) + psv[:, None] * Dm @ Jv_g.T
               + Jv_g @ Dm.T * psv[None, :] + Jv_g @ Vm @ Jv_g.T)
        Vn = C_W**2 * Cuu
        Dn = (lw / C_W) * Vn + C_W**2 * Cvu
        An = lw**2 * Cuu + lw * C_W * (Cvu + Cvu.T) + C_W**2 * Cvv
        # E1[p, q, a] = <d_a (s'_p s_q)> = (2 - delta_pq) dPhi_pq / dK_ap (heat equation)
        E1 = (2.0 - jnp.eye(N, dtype=K.dtype))[:, :, None] * jnp.einsum("pqap->pqa", Jf.reshape(N, N, N, N))
        Fn = C_W**2 * (jnp.einsum("cdab,ab->acbd", X4, Th)
                       + jnp.einsum("axby,acx,bdy->acbd", F, E1, E1))
        Bn = C_W**2 * (jnp.einsum("ab,cd,abcd->acbd", Th, Th, Y4) + jnp.einsum("ac,bd,acbd->acbd", ps, ps, B))
        Kn = C_b + C_W * ph
        Thn = lb + lw * ph + C_W * Th * ps
        G1f = Jf @ G1.ravel() + 0.5 * Hf(V).ravel()
        G1n = (C_W * G1f).reshape(N, N)
        Js4 = Js.reshape(N, N, N, N)
        H1n = ((lw / C_W) * G1n.ravel() + C_W * (H1.ravel() * psv + thv * (Js @ G1.ravel() + 0.5 * Hs(V).ravel())
                                          + jnp.sum(Js * Dm, axis=1)
                                          + 2.0 * jnp.einsum("cdab,cadb->cd", Js4, F).ravel()))
        new = (Kn, Thn, Vn.reshape(V.shape), Dn.reshape(V.shape), Fn, An.reshape(V.shape), Bn, G1n, H1n.reshape(N, N))
        return new, new

    return step


@partial(jax.jit, static_argnames=("name",))
def _scan_chunk(carry, pars, name):
    """A fixed number of layer steps (the length of ``pars``): compiled once per (N, activation, length)."""
    act = get_activation(name)
    return jax.lax.scan(_step(act, carry[0].shape[0]), carry, pars)


def _run(K1, Th1, pars, name):
    """All layers, in chunks of 8 (64 beyond 512 layers) steps so that one compilation serves every depth;
    the last chunk is padded by repeating the last layer's parameters and trimmed."""
    N = K1.shape[0]
    z4 = jnp.zeros((N,) * 4, K1.dtype)
    z2 = jnp.zeros_like(K1)
    carry = (K1, Th1, z4, z4, z4, z4, z4, z2, z2)
    steps = pars[0].shape[0]
    chunk = 64 if steps >= 512 else 8
    outs, done = [], 0
    while done < steps:
        take = min(chunk, steps - done)
        sl = [jnp.concatenate([p[done:done + take], jnp.repeat(p[done + take - 1:done + take], chunk - take)])
              for p in pars]
        new_carry, rows = _scan_chunk(carry, tuple(sl), name)
        rows = tuple(r[:take] for r in rows)
        carry = new_carry if take == chunk else tuple(r[-1] for r in rows)
        outs.append(rows)
        done += take
    first = (K1, Th1, z4, z4, z4, z4, z4, z2, z2)
    return tuple(jnp.concatenate([f[None]] + [o[k] for o in outs]) for k, f in enumerate(first))


@_checks.warns_nonfinite("recursion")
def ntk_statistics(x, *, C_b, C_W, L: int, activation="relu", lambda_b=1.0, lambda_W=1.0) -> NTKStatistics:
    r"""Leading-order K, Θ, V, D, F, A, B, G¹, H¹ of an MLP for N inputs, layers 1..L (module docstring).

    Args:
      x: inputs ``(N, n0)`` (distinct inputs: the kernels must stay positive definite).
      C_b, C_W: initialization variances, scalars or per-layer sequences of length L (layer 1 uses the first).
      L: depth (>= 1).
      activation: registry name.
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L (>= 0); the weights
        of layer ell+1 have rate ``lambda_W / n_ell``.
    Returns:
      :class:`NTKStatistics`; V, D, F, A, B, G1, H1 are the coefficients of 1/n (equal hidden widths n).
    Raises:
      PDLTValueError: bad shapes or values, before any compute.
    """
    fn = "ntk_statistics"
    act = get_activation(activation, fn)
    if not (act.scale_invariant or act.smooth):
        raise _checks.PDLTValueError(f"{fn}: `activation` must be smooth or scale-invariant, got {act.name!r}")
    _checks.positive_int(fn, L=L)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise _checks.PDLTValueError(f"{fn}: `x` must be inputs of shape (N, n0), got {x.shape}")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise _checks.PDLTValueError(f"{fn}: `x` has non-finite entries")
    Cb, Cw = _checks.per_layer_variances(fn, C_b, C_W, L)
    lb, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, L)
    g0 = x @ x.T / x.shape[1]
    K1 = Cb[0] + Cw[0] * g0
    Th1 = lb[0] + lw[0] * g0
    dt = K1.dtype
    pars = tuple(jnp.asarray(p[1:], dt) for p in (Cb, Cw, lb, lw))
    out = _run(K1, Th1, pars, act.name)
    return NTKStatistics(*out)
