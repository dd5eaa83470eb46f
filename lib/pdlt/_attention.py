r"""A small self-attention block with residual connections, shaped or standard (Noci et al., NeurIPS 2023).

``m`` tokens of width ``n`` form the rows of :math:`Y\in\mathbb R^{m\times n}`. One block is

.. math:: Y_{\ell+1} = \lambda\,Y_\ell + \gamma\,A_\ell\,Y_\ell\,W^V_\ell,\qquad
          A_\ell = \begin{cases} I + {\rm softmax}(S_\ell/\tau) - \tfrac1m\mathbf 1\mathbf 1^T, & \tau = \tau_0\sqrt{n\,n_k}
          \quad\text{(shaped)}\\ {\rm softmax}(S_\ell/\sqrt{n_k}) & \text{(standard)}\end{cases}

with logits :math:`S = (YW^Q)(YW^K)^T`, row-wise softmax, and independent weights
:math:`W^Q, W^K\in\mathbb R^{n\times n_k}`, :math:`W^V\in\mathbb R^{n\times n}` of iid
:math:`\mathcal N(0, 1/n)` entries. Shaping centres the attention matrix at the identity and cools the
logits by a width-dependent temperature, so each block changes the token covariance only by
:math:`O(n^{-1/2})` random and :math:`O(n^{-1})` systematic terms -- the structure that makes the
covariance of a deep, wide stack depend on depth ``L`` and width ``n`` through ``L/n`` only (the paper's
depth-to-width ratio; the book's ``r = L/n``). The standard block averages tokens at every layer and the
token correlations run to 1 ("rank collapse") at a rate set by ``L`` alone. The two defining
modifications follow the paper's abstract; the block's exact normalisation is ours.

Conditional sampler: given :math:`Y_\ell`, the law of :math:`Y_{\ell+1}Y_{\ell+1}^T` depends on
:math:`Y_\ell` only through its Gram matrix (the weights are rotation invariant). Writing
:math:`Y_\ell = [C_\ell,\,0]\,O` with :math:`C_\ell C_\ell^T = Y_\ell Y_\ell^T` and an orthogonal ``O``,
only the first ``m`` rows of :math:`OW^Q, OW^K, OW^V` (again iid) enter, so a layer costs
:math:`O(m n)` random numbers instead of :math:`O(n^2)` -- the attention analogue of the book's
layer-by-layer conditional Gaussian sampling.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

__all__ = ["attention_matrix", "init_attention_stack", "attention_stack", "attention_gram_chain",
           "token_correlations", "equicorrelated_tokens", "mean_token_correlation", "attention_explicit_grams"]


def _check_block(fn, lam, gamma, tau0):
    _checks.nonnegative(fn, lam=lam, gamma=gamma)
    _checks.positive(fn, tau0=tau0)


def attention_matrix(Y, WQ, WK, *, n: int, shaped: bool = True, tau0=1.0):
    r"""The ``(m, m)`` attention matrix of tokens ``Y`` (shaped or standard, see the module docstring).

    Args:
      Y: tokens ``(m, d)`` (``d = n`` for explicit networks; ``d = m`` in the conditional sampler).
      WQ, WK: ``(d, n_k)`` query and key weights. n: the width (sets the shaped temperature).
      shaped: centre at the identity and use :math:`\tau = \tau_0\sqrt{n n_k}`; else standard softmax.
      tau0: temperature constant of the shaped block.
    """
    S = (Y @ WQ) @ (Y @ WK).T
    nk = WQ.shape[1]
    m = Y.shape[0]
    if shaped:
        return jnp.eye(m, dtype=Y.dtype) + jax.nn.softmax(S / (tau0 * jnp.sqrt(n * nk)), axis=-1) - 1.0 / m
    return jax.nn.softmax(S / jnp.sqrt(nk), axis=-1)


def init_attention_stack(key, n: int, n_k: int, L: int, dtype=None):
    r"""Weights of ``L`` blocks: a tuple of ``(WQ, WK, WV)`` with shapes ``(n, n_k)``, ``(n, n_k)``, ``(n, n)``,
    iid :math:`\mathcal N(0, 1/n)`; block ``ell`` uses ``fold_in(key, ell)``.

    Raises:
      PDLTValueError unless ``n``, ``n_k``, ``L`` are integers >= 1.
    """
    _checks.positive_int("init_attention_stack", n=n, n_k=n_k, L=L)
    dtype = dtype or jnp.result_type(float)
    out = []
    for ell in range(L):
        kq, kk, kv = jax.random.split(jax.random.fold_in(key, ell), 3)
        s = 1.0 / np.sqrt(n)
        out.append((jax.random.normal(kq, (n, n_k), dtype) * s, jax.random.normal(kk, (n, n_k), dtype) * s,
                    jax.random.normal(kv, (n, n), dtype) * s))
    return tuple(out)


def attention_stack(params, Y, *, lam, gamma, shaped: bool = True, tau0=1.0):
    r"""Run the residual attention stack on tokens ``Y`` of shape ``(m, n)``; returns all layers ``(L+1, m, n)``.

    Raises:
      PDLTValueError on a shape mismatch or a negative ``lam``/``gamma``/non-positive ``tau0``.
    """
    fn = "attention_stack"
    _check_block(fn, lam, gamma, tau0)
    Y = jnp.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] < 2:
        raise _checks.PDLTValueError(f"{fn}: `Y` must have shape (m, n) with m >= 2 tokens, got {Y.shape}")
    n = Y.shape[1]
    if any(WV.shape != (n, n) or WQ.shape[0] != n for WQ, _, WV in params):
        raise _checks.PDLTValueError(f"{fn}: weights do not match the token width n={n}")
    out = [Y]
    for WQ, WK, WV in params:
        A = attention_matrix(Y, WQ, WK, n=n, shaped=shaped, tau0=tau0)
        Y = lam * Y + gamma * A @ Y @ WV
        out.append(Y)
    return jnp.stack(out)


def token_correlations(G):
    r"""Correlation matrix :math:`\rho_{ab} = G_{ab}/\sqrt{G_{aa}G_{bb}}` of Gram matrices ``(..., m, m)``."""
    d = jnp.sqrt(jnp.diagonal(G, axis1=-2, axis2=-1))
    return G / (d[..., :, None] * d[..., None, :])


def equicorrelated_tokens(m: int, rho0):
    r"""The ``(m, m)`` Gram matrix with unit diagonal and every off-diagonal entry ``rho0``."""
    _checks.positive_int("equicorrelated_tokens", m=m)
    if not (-1.0 / max(m - 1, 1) < float(rho0) < 1.0):
        raise _checks.PDLTValueError(f"equicorrelated_tokens: `rho0` must lie in (-1/(m-1), 1), got {rho0!r}")
    return (1 - rho0) * np.eye(m) + rho0 * np.ones((m, m))


def attention_gram_chain(key, G0, *, n: int, n_k: int, L: int, lam, gamma, shaped: bool = True, tau0=1.0,
                         n_nets: int = 1, chunk: int = 1024, progress: bool | None = None):
    r"""Token Gram matrices :math:`G_\ell = Y_\ell Y_\ell^T/n`, ``ell = 0..L``, of ``n_nets`` independent stacks.

    Exact in law (see the module docstring): each layer draws only ``m x n_k`` query/key and ``m x n``
    value entries. Network ``i`` uses ``fold_in(key, i)``.

    Args:
      key: PRNG key. G0: input Gram matrix ``(m, m)``, positive definite. n: width (``n >= m``).
      n_k: query/key width. L: number of blocks. lam, gamma: residual weights.
      shaped, tau0: attention type and temperature constant. n_nets, chunk: ensemble size and vmap chunk.
    Returns:
      array ``(n_nets, L + 1, m, m)``.
    Raises:
      PDLTValueError on bad arguments, before any compute.
    """
    from ._sharding import ensemble_map

    fn = "attention_gram_chain"
    _checks.positive_int(fn, n=n, n_k=n_k, L=L, n_nets=n_nets, chunk=chunk)
    _check_block(fn, lam, gamma, tau0)
    G0 = np.asarray(G0, float)
    if G0.ndim != 2 or G0.shape[0] != G0.shape[1] or G0.shape[0] < 2:
        raise _checks.PDLTValueError(f"{fn}: `G0` must be an (m, m) matrix with m >= 2, got shape {G0.shape}")
    if not np.allclose(G0, G0.T) or np.linalg.eigvalsh(G0).min() <= 0:
        raise _checks.PDLTValueError(f"{fn}: `G0` must be symmetric positive definite")
    if n < G0.shape[0]:
        raise _checks.PDLTValueError(f"{fn}: the width `n`={n} must be at least the number of tokens m={G0.shape[0]}")
    C0 = jnp.asarray(np.linalg.cholesky(G0 * n))
    return ensemble_map(_chain_one, key, n_nets, (C0, float(lam), float(gamma), float(tau0)),
                        static=(("n", n), ("n_k", n_k), ("L", L), ("shaped", bool(shaped))), chunk=chunk,
                        progress=progress, desc="attention stacks")


def _chain_one(key, i, C0, lam, gamma, tau0, *, n, n_k, L, shaped):
    """Token Gram matrices of stack ``i`` (weights from ``fold_in(key, i)``): ``(L + 1, m, m)``."""
    m = C0.shape[0]
    s = 1.0 / jnp.sqrt(n)
    k = jax.random.fold_in(key, i)

    def layer(C, ell):
        kq, kk, kv = jax.random.split(jax.random.fold_in(k, ell), 3)
        WQ = jax.random.normal(kq, (m, n_k), C.dtype) * s  # first m rows of the rotated weights
        WK = jax.random.normal(kk, (m, n_k), C.dtype) * s
        WV = jax.random.normal(kv, (m, n), C.dtype) * s
        A = attention_matrix(C, WQ, WK, n=n, shaped=shaped, tau0=tau0)
        Y = gamma * A @ C @ WV
        Y = Y.at[:, :m].add(lam * C)                  # lam * [C, 0] + gamma * A C WV
        G = Y @ Y.T
        G = 0.5 * (G + G.T)
        C = jnp.linalg.cholesky(G + 1e-13 * jnp.trace(G) / m * jnp.eye(m, dtype=G.dtype))
        return C, G / n

    _, Gs = jax.lax.scan(layer, C0, jnp.arange(L))
    return jnp.concatenate([(C0 @ C0.T / n)[None], Gs])


def mean_token_correlation(G):
    r"""Mean correlation :math:`\bar\rho` over pairs of distinct tokens, for Gram matrices ``(..., m, m)``."""
    rho = token_correlations(G)
    m = rho.shape[-1]
    return (jnp.sum(rho, axis=(-2, -1)) - m) / (m * (m - 1))


def attention_explicit_grams(key, G0, *, n: int, n_k: int, L: int, lam, gamma, shaped: bool = True, tau0=1.0,
                             n_nets: int = 1):
    r"""Final Gram matrices :math:`Y_LY_L^T/n` of ``n_nets`` stacks with explicit ``n x n`` weights.

    The reference for :func:`attention_gram_chain`: the input tokens are :math:`Y_0 = [C_0, 0]` with
    :math:`C_0C_0^T = nG_0`; stack ``i`` uses :func:`init_attention_stack` with ``fold_in(key, i)``.
    Returns:
      array ``(n_nets, m, m)``.
    """
    fn = "attention_explicit_grams"
    _checks.positive_int(fn, n=n, n_k=n_k, L=L, n_nets=n_nets)
    _check_block(fn, lam, gamma, tau0)
    G0 = np.asarray(G0, float)
    m = G0.shape[0]
    if n < m:
        raise _checks.PDLTValueError(f"{fn}: the width `n`={n} must be at least the number of tokens m={m}")
    Y0 = jnp.zeros((m, n)).at[:, :m].set(np.linalg.cholesky(G0 * n))

    def one(i):
        params = init_attention_stack(jax.random.fold_in(key, i), n, n_k, L)
        Y = attention_stack(params, Y0, lam=lam, gamma=gamma, shaped=shaped, tau0=tau0)[-1]
        return Y @ Y.T / n

    return jax.jit(jax.vmap(one))(jnp.arange(n_nets))
