r"""Non-iid weight ensembles: Haar-orthogonal, sparse and low-rank weights (beyond the book).

Every sampler draws an ``(n_out, n_in)`` matrix with the book's second moment
:math:`E[W_{ij}^2] = C_W/n_{\rm in}` (PDLT eq. (2.19), numbering unverified), so all of them share the
infinite-width kernel recursion; they differ at finite width:

* ``gaussian``: iid :math:`\mathcal N(0, C_W/n_{\rm in})` (the book).
* ``orthogonal``: :math:`\sqrt{C_W\max(n_{\rm out},n_{\rm in})/n_{\rm in}}\,Q` with Q Haar-distributed
  with orthonormal columns (``n_out >= n_in``) or rows (Gram-Schmidt on a Gaussian matrix, :func:`pdlt.haar_frame`,
  which makes Q exactly Haar). Day, Kahn & Roberts (arXiv 2310.07765).
* ``sparse``: iid Bernoulli(``density``) mask times Gaussian entries, rescaled by ``1/sqrt(density)``.
* ``low_rank``: :math:`W = A B\sqrt{C_W/(r\,n_{\rm in})}` with A ``(n_out, r)``, B ``(r, n_in)`` iid
  standard normal; r = ``rank`` or ``ceil(rank_fraction * min(n_out, n_in))``. Nait Saada, Naderi &
  Tanner (arXiv 2310.16597) call such ensembles pseudo-iid; a rank growing with n keeps the
  Gaussian-process limit, a fixed rank does not.

Plus the forward pass and ensemble that take a :class:`WeightSampler`, and the leading-order
four-point vertex recursion for Gaussian and for orthogonal weights (one input).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._haar import haar_frame
from ._gaussian import psd_factor
from ._mlp import forward_pass, network_key
from ._residual import sigma_moments

__all__ = ["WEIGHT_KINDS", "WeightSampler", "weight_sampler", "sample_weights", "mlp_forward_with",
           "weights_ensemble_metrics", "weights_vertex_recursion", "relu_orthogonal_exact", "relu_gaussian_exact"]

WEIGHT_KINDS = ("gaussian", "orthogonal", "sparse", "low_rank")


class WeightSampler(NamedTuple):
    """A validated, hashable description of a weight ensemble (see :func:`weight_sampler`)."""

    kind: str
    density: float = 1.0
    rank: int = 0              # 0: use rank_fraction
    rank_fraction: float = 1.0

    def rank_for(self, n_out: int, n_in: int) -> int:
        if self.rank:
            return min(self.rank, n_out, n_in)
        return max(1, math.ceil(self.rank_fraction * min(n_out, n_in)))


def weight_sampler(kind: str = "gaussian", *, density: float = 1.0, rank: int | None = None,
                   rank_fraction: float = 1.0) -> WeightSampler:
    """Describe a weight ensemble. Raises PDLTValueError for an unknown kind or a bad option.

    Args:
      kind: one of ``WEIGHT_KINDS``.
      density: keep probability of the sparse mask, in (0, 1].
      rank: fixed rank of ``low_rank`` weights (overrides ``rank_fraction``).
      rank_fraction: rank as a fraction of ``min(n_out, n_in)``, in (0, 1].
    """
    fn = "weight_sampler"
    _checks.one_of(fn, "kind", kind, WEIGHT_KINDS)
    if not 0.0 < float(density) <= 1.0:
        raise _checks.PDLTValueError(f"{fn}: `density` must be in (0, 1], got {density!r}")
    if not 0.0 < float(rank_fraction) <= 1.0:
        raise _checks.PDLTValueError(f"{fn}: `rank_fraction` must be in (0, 1], got {rank_fraction!r}")
    if rank is not None:
        _checks.positive_int(fn, rank=rank)
    return WeightSampler(kind, float(density), int(rank or 0), float(rank_fraction))


def _haar(key, n_out, n_in, dtype):
    """Haar-distributed matrix with orthonormal columns (n_out >= n_in) or rows."""
    tall = n_out >= n_in
    Q = haar_frame(key, max(n_out, n_in), min(n_out, n_in), dtype)
    return Q if tall else Q.T


def sample_weights(key, sampler: WeightSampler, n_out: int, n_in: int, *, C_W: float, dtype=None):
    r"""One ``(n_out, n_in)`` weight matrix from ``sampler`` with :math:`E[W_{ij}^2] = C_W/n_{\rm in}`."""
    fn = "sample_weights"
    if not isinstance(sampler, WeightSampler):
        raise _checks.PDLTValueError(f"{fn}: `sampler` must come from pdlt.weight_sampler(...), got {sampler!r}")
    _checks.positive_int(fn, n_out=n_out, n_in=n_in)
    _checks.positive(fn, C_W=C_W)
    return _sample(key, sampler, n_out, n_in, C_W, dtype or jnp.result_type(float))


def _sample(key, s, n_out, n_in, C_W, dtype):
    if s.kind == "gaussian":
        return jax.random.normal(key, (n_out, n_in), dtype) * jnp.sqrt(C_W / n_in)
    if s.kind == "orthogonal":
        return _haar(key, n_out, n_in, dtype) * jnp.sqrt(C_W * max(n_out, n_in) / n_in)
    if s.kind == "sparse":
        k1, k2 = jax.random.split(key)
        mask = jax.random.bernoulli(k1, s.density, (n_out, n_in))
        return jnp.where(mask, jax.random.normal(k2, (n_out, n_in), dtype), 0.0) * jnp.sqrt(C_W / (s.density * n_in))
    r = s.rank_for(n_out, n_in)
    k1, k2 = jax.random.split(key)
    A = jax.random.normal(k1, (n_out, r), dtype)
    B = jax.random.normal(k2, (r, n_in), dtype)
    return (A @ B) * jnp.sqrt(C_W / (r * n_in))


@_checks.warns_nonfinite("samples")
def mlp_forward_with(key, x, *, widths, sampler: WeightSampler, C_b=0.0, C_W, activation="tanh",
                     input_sampler: WeightSampler | None = None):
    r"""Preactivations :math:`z^{(1..L)}` of one MLP whose weights come from ``sampler``.

    :math:`z^{(\ell+1)} = b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})`, biases iid
    :math:`\mathcal N(0, C_b)`, every layer's weights from ``sampler`` (layer ell uses ``fold_in(key, ell)``), except the first,
    which uses ``input_sampler`` if given (the input dimension n0 is fixed, so a rank or density
    that must grow with width cannot apply there).

    Args:
      key: PRNG key. x: inputs ``(N, n0)``. widths: ``(n_1..n_L)``. sampler: the weight law.
      C_b, C_W: scalars. activation: registry name.
      input_sampler: sampler of the first layer (default: ``sampler``).
    Returns:
      list of L arrays, ``z^(ell)`` of shape ``(N, n_ell)``.
    """
    fn = "mlp_forward_with"
    widths = _checks.widths(fn, "widths", widths)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    act = get_activation(activation, fn)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    return _forward(key, x, widths, sampler, float(C_b), float(C_W), act.name, input_sampler or sampler)


def sampled_params(key, n0, widths, samplers, C_b, C_W, dtype):
    r"""Parameters ``((W, b), ...)`` of one MLP, layer ell's weights from ``samplers[ell-1]`` with
    :math:`E[W^2] = C_W^{(\ell)}/n_{\ell-1}` and biases :math:`\mathcal N(0, C_b^{(\ell)})`; key layout:
    layer ell uses ``fold_in(key, ell-1)`` split into (weight, bias) keys. ``C_b``, ``C_W``: one per layer."""
    params, fan_in = [], n0
    for ell, n in enumerate(widths):
        kw, kb = jax.random.split(jax.random.fold_in(key, ell))
        W = _sample(kw, samplers[ell], n, fan_in, C_W[ell], dtype)
        params.append((W, jax.random.normal(kb, (n,), dtype) * jnp.sqrt(C_b[ell])))
        fan_in = n
    return tuple(params)


def _forward(key, x, widths, sampler, C_b, C_W, act, input_sampler):
    L = len(widths)
    params = sampled_params(key, x.shape[1], widths, (input_sampler,) + (sampler,) * (L - 1), (C_b,) * L,
                            (C_W,) * L, x.dtype)
    return forward_pass(params, x, get_activation(act).sigma)


def _metrics_net(key, i, x, *, widths, sampler, C_b, C_W, act, input_sampler):
    """Conditional metrics of network ``i`` with explicit weights (per-network function of :func:`pdlt.ensemble_map`)."""
    sigma = get_activation(act).sigma
    zs = _forward(network_key(key, i), x, widths, sampler, C_b, C_W, act, input_sampler)
    G = [C_b + C_W * (x @ x.T) / x.shape[1]]
    for ell in range(len(widths) - 1):
        s = sigma(zs[ell])
        G.append(C_b + C_W * (s @ s.T) / widths[ell])
    return jnp.stack(G)


def _stiefel_one(key, x, widths, C_W, act):
    """Conditional sampler for Haar-orthogonal weights, C_b = 0, n_1 = ... = n_L = n >= n0.

    Given the previous layer, O sigma^T (n x N) has the law of U R with U a Haar n x N frame and
    R^T R = sigma sigma^T: so z = sqrt(C_W * fan_out/fan_in) * chol(h h^T) U^T with h the layer input.
    """
    sigma = get_activation(act).sigma
    n, L, N = widths[0], len(widths), x.shape[0]

    def layer(h, k, scale):
        return jnp.sqrt(scale) * psd_factor(h @ h.T, jitter=1e-12) @ _haar(k, n, N, h.dtype).T

    k0, kr = jax.random.split(key)
    z = layer(x, k0, C_W * n / x.shape[1])              # semi-orthogonal first layer: E W^2 = C_W / n0

    def step(z, k):
        s = sigma(z)
        Gh = C_W * (s @ s.T) / n
        return layer(s, k, C_W), Gh

    _, Gs = jax.lax.scan(step, z, jax.random.split(kr, L - 1))
    return jnp.concatenate([(C_W * (x @ x.T) / x.shape[1])[None], Gs], axis=0)


def _stiefel_net(key, i, x, *, widths, C_W, act):
    """Conditional metrics of network ``i``, orthogonal weights sampled layer by layer in law."""
    return _stiefel_one(network_key(key, i), x, widths, C_W, act)


@_checks.warns_nonfinite("samples")
def weights_ensemble_metrics(key, x, *, widths, sampler: WeightSampler, C_b=0.0, C_W, activation="tanh",
                             n_nets: int, method: str = "explicit", chunk: int = 512, progress: bool | None = None,
                             input_sampler: WeightSampler | None = None):
    r"""Conditional metrics :math:`\hat G^{(\ell)} = C_b + C_W\sigma(z^{(\ell-1)})\sigma(z^{(\ell-1)})^\top/n`
    of ``n_nets`` networks with weights from ``sampler`` (network i: ``fold_in(key, i)``).

    ``method="explicit"`` samples every weight matrix. ``method="conditional"`` (orthogonal weights,
    ``C_b = 0``, equal widths n >= n0) samples each layer given the previous one exactly in law:
    a Haar matrix applied to the N activation vectors is a uniform n x N frame times their Cholesky
    factor, O(n N^2) per layer instead of an n x n QR.

    Returns:
      array ``(n_nets, L, N, N)``; ``[:, ell-1]`` is :math:`\hat G^{(\ell)}` (``[:, 0]`` the input kernel).
    """
    from ._sharding import ensemble_map

    fn = "weights_ensemble_metrics"
    widths = _checks.widths(fn, "widths", widths)
    if not isinstance(sampler, WeightSampler):
        raise _checks.PDLTValueError(f"{fn}: `sampler` must come from pdlt.weight_sampler(...), got {sampler!r}")
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    act = get_activation(activation, fn)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    _checks.one_of(fn, "method", method, ("explicit", "conditional"))
    if method == "conditional" and (sampler.kind != "orthogonal" or C_b != 0 or len(set(widths)) != 1
                                    or widths[0] < x.shape[1]):
        raise _checks.PDLTValueError(f"{fn}: method='conditional' needs orthogonal weights, C_b = 0 and equal "
                                     f"widths n >= n0; got {sampler.kind}, C_b={C_b}, widths={widths}, n0={x.shape[1]}")
    if method == "conditional":
        fn_net, static = _stiefel_net, (("widths", widths), ("C_W", float(C_W)), ("act", act.name))
    else:
        fn_net, static = _metrics_net, (("widths", widths), ("sampler", sampler), ("C_b", float(C_b)),
                                        ("C_W", float(C_W)), ("act", act.name),
                                        ("input_sampler", input_sampler or sampler))
    return jnp.asarray(ensemble_map(fn_net, key, n_nets, (x,), static=static, chunk=chunk, progress=progress,
                                    desc=f"{sampler.kind} weights"))


@_checks.warns_nonfinite("recursion")
def weights_vertex_recursion(K1: float, *, L: int, C_W: float, C_b: float = 0.0, activation="tanh",
                     weights: str = "gaussian"):
    r"""Leading-order single-input kernel K and four-point vertex V (:math:`n\mathrm{Var}[\hat G^{(\ell)}]`).

    .. math:: K^{(\ell+1)} = C_b + C_W m,\qquad V^{(\ell+1)} = \chi_\parallel^2 V^{(\ell)} + C_W^2\,\Delta,
              \qquad V^{(1)} = 0,

    with :math:`m, d, c_2` from :func:`pdlt.sigma_moments` at :math:`K^{(\ell)}`,
    :math:`\chi_\parallel = C_W d`, and the injected noise :math:`\Delta = c_2` for Gaussian weights (the
    book's recursion, PDLT §4.3/§5.4, numbering unverified) or :math:`\Delta = c_2 - 2K^2 d^2` for
    square Haar-orthogonal weights (our derivation: an orthogonal W maps :math:`\sigma(z)` to a uniform
    point of the sphere of the same radius, so :math:`\hat G` is a Markov chain whose conditional
    variance lacks the radial part; needs ``C_b = 0``). For tanh near criticality
    :math:`\Delta = O(K^4)` for orthogonal weights, so V/K^2 saturates.

    Returns:
      ``(K, V)``, arrays of shape ``(L,)``; entry ell-1 is layer ell.
    """
    import numpy as np

    fn = "weights_vertex_recursion"
    _checks.positive_int(fn, L=L)
    _checks.positive(fn, K1=K1, C_W=C_W)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.one_of(fn, "weights", weights, ("gaussian", "orthogonal"))
    get_activation(activation, fn)
    if weights == "orthogonal" and C_b != 0:
        raise _checks.PDLTValueError(f"{fn}: the orthogonal recursion needs `C_b` = 0, got {C_b!r}")
    K, V = [float(K1)], [0.0]
    for _ in range(L - 1):
        m, d, c2 = sigma_moments(activation, K[-1])
        noise = c2 if weights == "gaussian" else c2 - 2 * K[-1] ** 2 * d**2
        V.append((C_W * d) ** 2 * V[-1] + C_W**2 * noise)
        K.append(C_b + C_W * m)
    return np.array(K), np.array(V)


def relu_gaussian_exact(n: int, L: int):
    r"""Exact :math:`\mathrm{Var}[\hat G^{(\ell)}]/G^2 = (1 + 5/n)^{\ell-1} - 1` (ReLU, C_W = 2, C_b = 0,
    Gaussian weights), ell = 1..L: each layer multiplies :math:`\hat G` by :math:`(2/n)\chi^2_k`,
    k ~ Binomial(n, 1/2). Returns an array ``(L,)``."""
    import numpy as np

    _checks.positive_int("relu_gaussian_exact", n=n, L=L)
    return (1 + 5 / n) ** np.arange(L) - 1.0


def relu_orthogonal_exact(n: int, L: int):
    r"""Exact :math:`\mathrm{Var}[\hat G^{(\ell)}]/G^2 = (1 + 3/(n+2))^{\ell-1} - 1` (ReLU, C_W = 2, C_b = 0,
    Haar-orthogonal weights with n >= n0, square hidden layers): each layer multiplies
    :math:`\hat G` by :math:`2|u_+|^2` for u uniform on the unit sphere, with mean 1 and second moment
    :math:`(n+5)/(n+2)`. Our derivation. Returns an array ``(L,)``."""
    import numpy as np

    _checks.positive_int("relu_orthogonal_exact", n=n, L=L)
    return (1 + 3 / (n + 2)) ** np.arange(L) - 1.0
