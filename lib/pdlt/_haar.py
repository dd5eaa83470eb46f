r"""Haar-distributed orthonormal frames, without LAPACK.

If G is an ``(n, k)`` matrix of iid standard normals (k <= n), Gram-Schmidt on its columns gives
the Q of the QR factorization with a positive diagonal of R, and that Q is distributed uniformly
(Haar) on the Stiefel manifold of orthonormal k-frames in R^n: the law of G is invariant under
left multiplication by any orthogonal matrix, and Gram-Schmidt commutes with it.

Why not ``jnp.linalg.qr``: on CPU, jaxlib 0.10.2 runs a batched QR (as produced by ``vmap``) by
splitting the batch over the XLA worker pool and waiting for the pieces. When two such calls are
independent inside one compiled function (say, the weights of two layers, vmapped over networks),
both can occupy the pool's workers while they wait, and the program never finishes. We saw this
hang on a 2-core machine (the CI's size); ``--xla_cpu_multi_thread_eigen=false`` did not help.
Gram-Schmidt written in ``jax.numpy`` compiles to plain matrix-vector products and cannot hang this
way; for the frame sizes of the book (n up to a few hundred) it also costs about the same.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks


def orthonormalize(G):
    r"""Orthonormal columns of ``G`` by Gram-Schmidt with re-orthogonalization (CGS2).

    Returns Q ``(n, k)`` with :math:`Q^\top Q = 1` and ``G = Q R``, R upper triangular with a
    positive diagonal: the QR factor of ``G`` with the sign convention that makes it unique.
    ``G`` must have full column rank (true with probability one for a Gaussian matrix).
    Works under ``jit``, ``vmap`` and ``grad``; uses no LAPACK call.
    """
    G = jnp.asarray(G)
    n, k = G.shape
    idx = jnp.arange(k)

    def column(j, Q):
        v = jax.lax.dynamic_index_in_dim(G, j, axis=1, keepdims=False)
        earlier = (idx < j).astype(G.dtype)
        for _ in range(2):  # a second pass restores orthogonality to rounding level
            v = v - Q @ ((Q.T @ v) * earlier)
        return Q.at[:, j].set(v / jnp.sqrt(jnp.sum(v * v)))

    return jax.lax.fori_loop(0, k, column, jnp.zeros((n, k), G.dtype))


def haar_frame(key, n: int, k: int, dtype=None):
    r"""A Haar-distributed ``(n, k)`` matrix with orthonormal columns, k <= n.

    For k = n this is a Haar orthogonal matrix. Draw an orthonormal-rows ``(k, n)`` matrix as
    ``haar_frame(key, n, k).T``.
    """
    if not (isinstance(n, int) and isinstance(k, int) and 1 <= k <= n):
        raise _checks.PDLTValueError(f"haar_frame: need integers 1 <= k <= n, got n={n!r}, k={k!r}")
    return orthonormalize(jax.random.normal(key, (n, k), dtype or jnp.result_type(float)))
