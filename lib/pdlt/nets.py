r"""Descriptions of the networks the book studies, and the adapters that hand them to every consumer.

A description is a frozen, hashable dataclass (so it can be a static argument of ``jax.jit``),
validated once when it is built: a bad field raises :class:`pdlt.PDLTValueError` naming the field
and what is allowed, before anything is computed.

* :class:`MLP` -- the book's multilayer perceptron (PDLT §2.1),
* :class:`ResidualMLP` -- the residual MLP of PDLT Appendix B, with skip multiplier :math:`\xi` and
  branch multiplier :math:`\gamma`; the plain MLP is its special case :math:`\xi = 0`, :math:`\gamma = 1`
  (``MLP`` is the subclass that fixes them),
* :class:`WeightLaw` -- the law of the weight matrices (Gaussian, Haar-orthogonal, sparse, low rank),
* :class:`LearningRates` -- the book's learning-rate tensor :math:`(\lambda_b^{(\ell)}, \lambda_W^{(\ell)})`,
  with :func:`parametrized` for SP, NTK and muP.

Depth and the per-layer convention (one meaning everywhere in this module)
---------------------------------------------------------------------------
``L`` is the number of layers with weights, the output layer included: the network maps
:math:`x = z^{(0)}` to :math:`z^{(1)}, \dots, z^{(L)}` and :math:`z^{(L)}` is the output,

.. math::
   z^{(1)} = b^{(1)} + W^{(1)} x,\qquad
   z^{(\ell+1)} = \xi\,z^{(\ell)} + \gamma\big[b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})\big],

:math:`b^{(\ell)}_i \sim \mathcal N(0, C_b^{(\ell)})`, :math:`E[W^{(\ell)2}_{ij}] = C_W^{(\ell)}/n_{\ell-1}`.
``widths = (n_1, ..., n_L)``. ``C_b`` and ``C_W`` are given as a scalar (the same at every layer) or
as one value per layer :math:`\ell = 1..L`; a description always stores the tuple of L values.
Learning rates follow the same rule: :math:`\lambda_b^{(\ell)}` for the biases of layer
:math:`\ell` and :math:`\lambda_W^{(\ell)}/n_{\ell-1}` for its weights, :math:`\ell = 1..L`.

Where the older keyword functions count differently (the adapters below translate):

* :func:`pdlt.kernel_recursion` takes ``K1`` and ``L`` layers; its per-layer ``C_b``, ``C_W`` have
  **L-1** entries (layers 2..L; layer 1's variances are already inside ``K1``).
* :func:`pdlt.ntk_recursion`, :func:`pdlt.ensemble_metrics`, :func:`pdlt.init_mlp` and
  :func:`pdlt.empirical_ntk` use the convention above (L entries).
* :mod:`pdlt`'s ``residual_*`` functions (Appendix B): ``L`` layers = one affine input layer plus
  L-1 residual layers, as here; scalar ``C_b``, ``C_W`` shared by every layer.
* ``resnet_*`` (large-depth ResNets, :func:`pdlt.resnet_kernel_recursion`): ``L`` counts residual
  **blocks** after the input layer :math:`y^{(0)}` (variances ``C_W0``, ``C_b0``), so a ResNet of
  ``L`` blocks is a :class:`ResidualMLP` of ``L + 1`` layers, with :math:`\gamma = L_{\rm blocks}^{-\alpha}`.
* :func:`pdlt.parametrization` counts ``hidden`` n x n layers between an input and an output
  layer: ``L = hidden + 2``.

Defaults: ``C_b`` and ``C_W`` left out mean the critical initialization of the activation
(:func:`pdlt.critical_point`, PDLT §5.2-§5.3); an activation without one (sigmoid, softplus,
step) then raises, asking for explicit values. There is no off-critical default.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

from . import _checks
from ._activations import get_activation

__all__ = ["WeightLaw", "ResidualMLP", "MLP", "LearningRates", "parametrized", "to_parametrization",
           "resnet", "kernels", "ntk", "statistics", "dntk", "init", "apply", "sample", "ntk_samples",
           "empirical_ntk", "weight_sampler_of"]

WEIGHT_KINDS = ("gaussian", "orthogonal", "sparse", "low_rank")


def _err(cls, msg):
    return _checks.PDLTValueError(f"{cls}: {msg}")


def _real(cls, name, v, *, lo=None, lo_open=False, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise _err(cls, f"`{name}` must be a finite number, got {v!r}")
    v = float(v)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise _err(cls, f"`{name}` must be {'>' if lo_open else '>='} {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise _err(cls, f"`{name}` must be <= {hi}, got {v!r}")
    return v


def _per_layer(cls, name, value, L, *, positive):
    """A scalar or L numbers -> a tuple of L floats (> 0 if ``positive`` else >= 0)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        vals = (value,) * L
    else:
        try:
            vals = tuple(value)
        except TypeError:
            raise _err(cls, f"`{name}` must be a number or a sequence of {L} numbers (layers 1..L), "
                            f"got {value!r}") from None
        if len(vals) != L:
            raise _err(cls, f"`{name}` has {len(vals)} entries but L={L}: give one per layer ell = 1..L "
                            f"(the output layer included), or a scalar")
    return tuple(_real(cls, name, v, lo=0.0, lo_open=positive) for v in vals)


# --------------------------------------------------------------------------- weight law

@dataclass(frozen=True)
class WeightLaw:
    r"""The law of every weight matrix, with the book's second moment :math:`E[W_{ij}^2] = C_W/n_{\rm in}`.

    Attributes:
      kind: ``"gaussian"`` (the book), ``"orthogonal"`` (Haar), ``"sparse"`` (Bernoulli(``density``)
        mask times Gaussian entries), ``"low_rank"`` (a product of two Gaussian factors).
      density: keep probability of the sparse mask, in (0, 1].
      rank: fixed rank of ``low_rank`` weights (0: use ``rank_fraction``).
      rank_fraction: rank as a fraction of ``min(n_out, n_in)``, in (0, 1].
      input_kind: law of the first layer, whose fan-in n0 does not grow with the width (default:
        ``kind``; Gaussian is the usual choice for sparse or low-rank hidden layers).

    The samplers themselves are :func:`pdlt.sample_weights` (see :mod:`pdlt._weights`).
    """

    kind: str = "gaussian"
    density: float = 1.0
    rank: int = 0
    rank_fraction: float = 1.0
    input_kind: str | None = None

    def __post_init__(self):
        c = "WeightLaw"
        if self.kind not in WEIGHT_KINDS:
            raise _err(c, f"unknown `kind` {self.kind!r}; valid: {', '.join(WEIGHT_KINDS)}")
        if self.input_kind is not None and self.input_kind not in WEIGHT_KINDS:
            raise _err(c, f"unknown `input_kind` {self.input_kind!r}; valid: {', '.join(WEIGHT_KINDS)} or None")
        object.__setattr__(self, "density", _real(c, "density", self.density, lo=0.0, lo_open=True, hi=1.0))
        object.__setattr__(self, "rank_fraction",
                           _real(c, "rank_fraction", self.rank_fraction, lo=0.0, lo_open=True, hi=1.0))
        if isinstance(self.rank, bool) or not isinstance(self.rank, numbers.Integral) or self.rank < 0:
            raise _err(c, f"`rank` must be an integer >= 0 (0: use rank_fraction), got {self.rank!r}")
        object.__setattr__(self, "rank", int(self.rank))

    @property
    def is_gaussian(self) -> bool:
        return self.kind == "gaussian" and self.input_kind in (None, "gaussian")


def weight_sampler_of(law: WeightLaw, *, input_layer: bool = False):
    """The :class:`pdlt.WeightSampler` of ``law`` (of its first layer if ``input_layer``)."""
    from ._weights import WeightSampler

    kind = (law.input_kind or law.kind) if input_layer else law.kind
    return WeightSampler(kind, law.density, law.rank, law.rank_fraction)


# --------------------------------------------------------------------------- networks

@dataclass(frozen=True)
class ResidualMLP:
    r"""A residual MLP (PDLT Appendix B): :math:`z^{(1)} = b^{(1)} + W^{(1)}x` and, for :math:`\ell \ge 1`,
    :math:`z^{(\ell+1)} = \xi z^{(\ell)} + \gamma[b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})]`.

    Attributes:
      n0: input dimension (integer >= 1).
      widths: ``(n_1, ..., n_L)``, integers >= 1; ``L = len(widths)`` counts every layer with weights,
        the output layer included. With a skip connection (``xi != 0``) all widths must be equal.
      activation: a name in ``pdlt.ACTIVATIONS``.
      C_b, C_W: scalar or one value per layer ell = 1..L (stored as a tuple of L floats); C_b >= 0,
        C_W > 0. Left out: the critical point of the activation (:func:`pdlt.critical_point`).
      xi: skip multiplier, >= 0. gamma: branch multiplier, > 0.
      weights: a :class:`WeightLaw` (default Gaussian).
    """

    n0: int
    widths: tuple
    activation: str = "relu"
    C_b: tuple | float | None = None
    C_W: tuple | float | None = None
    xi: float = 0.0
    gamma: float = 1.0
    weights: WeightLaw = field(default_factory=WeightLaw)

    def __post_init__(self):
        c = type(self).__name__
        if isinstance(self.n0, bool) or not isinstance(self.n0, numbers.Integral) or self.n0 < 1:
            raise _err(c, f"`n0` must be an integer >= 1, got {self.n0!r}")
        object.__setattr__(self, "n0", int(self.n0))
        ws = self.widths
        if isinstance(ws, numbers.Integral) and not isinstance(ws, bool):
            ws = (ws,)
        try:
            ws = tuple(ws)
        except TypeError:
            raise _err(c, f"`widths` must be a non-empty sequence of integers >= 1 (n_1..n_L), got {self.widths!r}") from None
        if not ws or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in ws):
            raise _err(c, f"`widths` must be a non-empty sequence of integers >= 1 (n_1..n_L), got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in ws))
        act = get_activation(self.activation, c)
        object.__setattr__(self, "activation", act.name)
        object.__setattr__(self, "xi", _real(c, "xi", self.xi, lo=0.0))
        object.__setattr__(self, "gamma", _real(c, "gamma", self.gamma, lo=0.0, lo_open=True))
        if self.xi != 0 and len(set(self.widths)) != 1:
            raise _err(c, f"`widths` must all be equal when `xi` != 0 (the skip adds z^(ell) to z^(ell+1)), "
                          f"got {self.widths}")
        if not isinstance(self.weights, WeightLaw):
            raise _err(c, f"`weights` must be a pdlt.nets.WeightLaw, got {self.weights!r}")
        if self.C_b is None or self.C_W is None:
            from ._criticality import critical_point

            try:
                crit = critical_point(act.name)
            except _checks.PDLTValueError as e:
                raise _err(c, f"`C_b`/`C_W` not given and the default (the critical point) does not exist: {e}; "
                              "pass C_b and C_W explicitly") from None
            Cb = crit.C_b if self.C_b is None else self.C_b
            Cw = crit.C_W if self.C_W is None else self.C_W
        else:
            Cb, Cw = self.C_b, self.C_W
        L = len(self.widths)
        object.__setattr__(self, "C_b", _per_layer(c, "C_b", Cb, L, positive=False))
        object.__setattr__(self, "C_W", _per_layer(c, "C_W", Cw, L, positive=True))

    # ---- derived
    @property
    def L(self) -> int:
        """Number of layers with weights (the output layer included)."""
        return len(self.widths)

    @property
    def n_out(self) -> int:
        return self.widths[-1]

    @property
    def is_plain(self) -> bool:
        """True for the plain MLP (``xi == 0`` and ``gamma == 1``)."""
        return self.xi == 0.0 and self.gamma == 1.0

    @property
    def uniform(self) -> bool:
        """True if every layer has the same ``C_b`` and the same ``C_W``."""
        return len(set(self.C_b)) == 1 and len(set(self.C_W)) == 1

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _scalar_variances(self, consumer: str, layers=None):
        """``(C_b, C_W)`` as scalars for consumers that take one value for all the given layers."""
        sl = slice(None) if layers is None else layers
        cb, cw = set(self.C_b[sl]), set(self.C_W[sl])
        if len(cb) != 1 or len(cw) != 1:
            raise _checks.PDLTValueError(
                f"{consumer}: needs the same `C_b` and `C_W` at every layer of the description, got "
                f"C_b={self.C_b}, C_W={self.C_W}")
        return cb.pop(), cw.pop()


@dataclass(frozen=True)
class MLP(ResidualMLP):
    r"""The book's MLP (PDLT §2.1): :math:`z^{(1)} = b^{(1)} + W^{(1)}x`,
    :math:`z^{(\ell+1)} = b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})`, ``L = len(widths)`` layers.

    A :class:`ResidualMLP` with ``xi = 0`` and ``gamma = 1`` (fixed). Fields as there:
    ``MLP(n0, widths, activation="relu", C_b=None, C_W=None, weights=WeightLaw())``; C_b, C_W left
    out are the critical point of the activation.

    Example: ``MLP(n0=3, widths=(64, 64, 1), activation="tanh")`` has C_b = 0, C_W = 1 at every layer.
    """

    xi: float = field(default=0.0, init=False)
    gamma: float = field(default=1.0, init=False)


def resnet(n0: int, n: int, blocks: int, *, alpha: float = 0.5, skip: float = 1.0, C_W: float, C_b: float = 0.0,
           C_W0: float = 1.0, C_b0: float = 0.0, activation="relu", weights: WeightLaw | None = None) -> ResidualMLP:
    r"""The large-depth ResNet of :func:`pdlt.resnet_ensemble` as a :class:`ResidualMLP`: an input layer
    with variances ``(C_b0, C_W0)`` and ``blocks`` residual blocks with ``(C_b, C_W)``, skip :math:`\xi` =
    ``skip`` and branch multiplier :math:`\gamma = \mathrm{blocks}^{-\alpha}` (so ``L = blocks + 1``).
    ``C_W`` has no default: a ResNet with :math:`\xi = 1` has no critical point to fall back on."""
    from ._resnet_scaling import branch_multiplier

    _checks.positive_int("resnet", n0=n0, n=n, blocks=blocks)
    return ResidualMLP(n0, (n,) * (blocks + 1), activation, C_b=(C_b0,) + (C_b,) * blocks,
                       C_W=(C_W0,) + (C_W,) * blocks, xi=skip, gamma=branch_multiplier(blocks, alpha),
                       weights=weights or WeightLaw())


# --------------------------------------------------------------------------- learning rates

@dataclass(frozen=True)
class LearningRates:
    r"""The book's diagonal learning-rate tensor (PDLT §7.2, §8.0): :math:`\lambda_b^{(\ell)}` for the
    biases of layer :math:`\ell` and :math:`\lambda_W^{(\ell)}/n_{\ell-1}` for its weights.

    Attributes:
      lambda_b, lambda_W: scalars (every layer) or one value per layer ell = 1..L, >= 0.
    The length is checked against a network with :meth:`per_layer`.
    """

    lambda_b: tuple | float = 1.0
    lambda_W: tuple | float = 1.0

    def __post_init__(self):
        c = "LearningRates"
        for name in ("lambda_b", "lambda_W"):
            v = getattr(self, name)
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                object.__setattr__(self, name, _real(c, name, v, lo=0.0))
            else:
                try:
                    vals = tuple(v)
                except TypeError:
                    raise _err(c, f"`{name}` must be a number or a sequence (one per layer ell = 1..L), "
                                  f"got {v!r}") from None
                if not vals:
                    raise _err(c, f"`{name}` must not be empty")
                object.__setattr__(self, name, tuple(_real(c, name, x, lo=0.0) for x in vals))

    def per_layer(self, L: int):
        """``(lambda_b, lambda_W)`` as two tuples of L floats (layers 1..L)."""
        return (_per_layer("LearningRates", "lambda_b", self.lambda_b, L, positive=False),
                _per_layer("LearningRates", "lambda_W", self.lambda_W, L, positive=False))

    def _as_kwargs(self):
        return dict(lambda_b=self.lambda_b, lambda_W=self.lambda_W)


def _hidden_width(net, fn):
    if len(set(net.widths[:-1])) != 1 or net.L < 3:
        raise _checks.PDLTValueError(f"{fn}: needs L >= 3 layers with equal hidden widths "
                                     f"n_1 = ... = n_(L-1), got widths={net.widths}")
    return net.widths[0]


def parametrized(name: str, net: ResidualMLP, *, base_width: int = 64, eta: float = 1.0):
    r"""The network and learning rates of parametrization ``name`` (one of ``pdlt.PARAMETRIZATIONS``)
    in the book's convention, for a bias-free MLP whose widths are ``(n, ..., n, n_out)``.

    With fan-in :math:`n_{\ell-1}` and SGD rate multipliers :math:`\eta_\ell` of
    :func:`pdlt.parametrization` (SP: 1; NTK: :math:`n_b/n_{\ell-1}`; muP: input :math:`n/n_b`,
    hidden 1, output :math:`n_b/n`), a weight's rate :math:`\eta\eta_\ell` is the book's
    :math:`\lambda_W^{(\ell)}/n_{\ell-1}`, so :math:`\lambda_W^{(\ell)} = \eta\,\eta_\ell\,n_{\ell-1}` and
    :math:`\lambda_b^{(\ell)} = 0` (no biases). muP also scales the output variance:
    :math:`C_W^{(L)} \to C_W^{(L)} n_b/n`.

    Returns:
      ``(net, LearningRates)``.
    """
    from ._parametrizations import PARAMETRIZATIONS

    fn = "parametrized"
    _checks.one_of(fn, "name", name, PARAMETRIZATIONS)
    if name == "depth-muP":
        raise _checks.PDLTValueError(f"{fn}: `name` 'depth-muP' describes a residual stream; "
                                     "use pdlt.parametrization directly")
    _checks.positive_int(fn, base_width=base_width)
    _checks.positive(fn, eta=eta)
    n = _hidden_width(net, fn)
    if any(net.C_b):
        raise _checks.PDLTValueError(f"{fn}: the parametrizations are bias-free; `C_b` must be 0, got {net.C_b}")
    fans = (net.n0,) + net.widths[:-1]
    L = net.L
    if name == "SP":
        mult = (1.0,) * L
    elif name == "NTK":
        mult = tuple(base_width / f for f in fans)
    else:
        mult = (n / base_width,) + (1.0,) * (L - 2) + (base_width / n,)
    Cw = net.C_W if name != "muP" else net.C_W[:-1] + (net.C_W[-1] * base_width / n,)
    rates = LearningRates(lambda_b=(0.0,) * L, lambda_W=tuple(eta * m * f for m, f in zip(mult, fans)))
    return net.replace(C_W=Cw), rates


def to_parametrization(name: str, net: ResidualMLP, *, base_width: int = 64):
    """The :class:`pdlt.Parametrization` (for :func:`pdlt.feature_change`, :func:`pdlt.train_losses`)
    of a bias-free description with widths ``(n, ..., n, n_out)``: ``hidden = L - 2``; a residual
    description (``xi = 1``) gives the residual stream with branch multiplier ``gamma``."""
    from ._parametrizations import parametrization

    fn = "to_parametrization"
    n = _hidden_width(net, fn)
    _, C_W = net._scalar_variances(fn)
    if any(net.C_b):
        raise _checks.PDLTValueError(f"{fn}: the parametrizations are bias-free; `C_b` must be 0, got {net.C_b}")
    if not net.is_plain and net.xi != 1.0:
        raise _checks.PDLTValueError(f"{fn}: residual streams need `xi` = 1, got {net.xi}")
    p = parametrization(name, n0=net.n0, n=n, n_out=net.n_out, hidden=net.L - 2, base_width=base_width,
                        C_W=C_W, residual=not net.is_plain)
    return p if net.is_plain else p._replace(branch=float(net.gamma))


# --------------------------------------------------------------------------- consumers

def _check(fn, net):
    if not isinstance(net, ResidualMLP):
        raise _checks.PDLTValueError(f"{fn}: `net` must be a pdlt.nets.MLP or ResidualMLP, got {net!r}")


def kernels(net: ResidualMLP, x, *, deg: int | None = None):
    r"""Infinite-width kernels :math:`K^{(1..L)}` of ``net`` for inputs ``x`` ``(N, n0)``: array ``(L, N, N)``.

    Plain MLP: :func:`pdlt.kernel_recursion` from :func:`pdlt.input_kernel` (layer 1's variances);
    residual: :func:`pdlt.residual_kernel_recursion` (needs the same ``C_b``, ``C_W`` at layers 2..L).
    Every weight law shares these kernels (same second moments).
    """
    from ._gaussian import DEG2
    from ._kernel import input_kernel, kernel_recursion
    from ._residual import residual_kernel_recursion

    fn = "nets.kernels"
    _check(fn, net)
    K1 = input_kernel(x, C_b=net.C_b[0], C_W=net.C_W[0])
    if net.is_plain:
        if net.L == 1:
            return K1[None]
        return kernel_recursion(K1, C_b=net.C_b[1:], C_W=net.C_W[1:], L=net.L, activation=net.activation,
                                deg=deg or DEG2)
    if deg is not None:
        raise _checks.PDLTValueError(f"{fn}: `deg` applies to plain MLPs only")
    Cb, Cw = net._scalar_variances(fn, slice(1, None)) if net.L > 1 else (net.C_b[0], net.C_W[0])
    return residual_kernel_recursion(K1, xi=net.xi, gamma=net.gamma, C_b=Cb, C_W=Cw, L=net.L,
                                     activation=net.activation)


def ntk(net: ResidualMLP, x, rates: LearningRates | None = None, *, deg: int | None = None):
    r"""Infinite-width kernel and frozen NTK :math:`(K^{(\ell)}, \Theta^{(\ell)})`, :math:`\ell = 1..L`,
    each ``(L, N, N)``: :func:`pdlt.ntk_recursion` (plain MLP) or :func:`pdlt.residual_ntk_recursion`
    (residual; scalar variances and rates)."""
    from ._gaussian import DEG2
    from ._ntk import ntk_recursion
    from ._residual import residual_ntk_recursion

    fn = "nets.ntk"
    _check(fn, net)
    rates = rates or LearningRates()
    lb, lw = rates.per_layer(net.L)
    if net.is_plain:
        Cb, Cw = (net.C_b, net.C_W) if not net.uniform else (net.C_b[0], net.C_W[0])
        return ntk_recursion(x, C_b=Cb, C_W=Cw, L=net.L, activation=net.activation, lambda_b=lb, lambda_W=lw,
                             deg=deg or DEG2)
    if deg is not None:
        raise _checks.PDLTValueError(f"{fn}: `deg` applies to plain MLPs only")
    Cb, Cw = net._scalar_variances(fn)
    if len(set(lb)) != 1 or len(set(lw)) != 1:
        raise _checks.PDLTValueError(f"{fn}: residual networks take the same learning rates at every layer, "
                                     f"got lambda_b={lb}, lambda_W={lw}")
    return residual_ntk_recursion(x, xi=net.xi, gamma=net.gamma, C_b=Cb, C_W=Cw, L=net.L,
                                  activation=net.activation, lambda_b=lb[0], lambda_W=lw[0])


def _require_plain(fn, net):
    _check(fn, net)
    if not net.is_plain or not net.weights.is_gaussian:
        raise _checks.PDLTValueError(f"{fn}: plain MLPs with Gaussian weights only, got xi={net.xi}, "
                                     f"gamma={net.gamma}, weights={net.weights}")


def _scalar_rates(rates, L):
    lb, lw = rates.per_layer(L)
    return (lb[0] if len(set(lb)) == 1 else lb), (lw[0] if len(set(lw)) == 1 else lw)


def statistics(net: ResidualMLP, x, rates: LearningRates | None = None):
    r"""Leading-order finite-width statistics of ``net`` for inputs ``x`` ``(N, n0)``: :func:`pdlt.ntk_statistics`.

    K, Θ at infinite width and the coefficients of :math:`1/n` (V, D, F, A, B, G¹, H¹) of every layer
    :math:`\ell = 1..L`, for equal hidden widths n (the widths of the description set the depth only).
    Plain MLPs with Gaussian weights.
    """
    from ._ntk_stats import ntk_statistics

    fn = "nets.statistics"
    _require_plain(fn, net)
    Cb, Cw = (net.C_b[0], net.C_W[0]) if net.uniform else (net.C_b, net.C_W)
    lb, lw = _scalar_rates(rates or LearningRates(), net.L)
    return ntk_statistics(x, C_b=Cb, C_W=Cw, L=net.L, activation=net.activation, lambda_b=lb, lambda_W=lw)


def dntk(net: ResidualMLP, x, rates: LearningRates | None = None, **kw):
    r"""The dNTK tensors P and Q of ``net`` (PDLT §11.2) for inputs ``x``: :func:`pdlt.dntk_statistics`
    (scalar variances and rates; further keywords, e.g. ``kink``, pass through)."""
    from ._dntk_stats import dntk_statistics as _dntk

    fn = "nets.dntk"
    _require_plain(fn, net)
    Cb, Cw = net._scalar_variances(fn)
    lb, lw = _scalar_rates(rates or LearningRates(), net.L)
    return _dntk(x, C_b=Cb, C_W=Cw, L=net.L, activation=net.activation, lambda_b=lb, lambda_W=lw, **kw)


def ntk_samples(net: ResidualMLP, key, x, rates: LearningRates | None = None, *, n_nets: int, **kw):
    r"""Per-network conditional NTK statistics of an ensemble of ``net`` (network i from ``fold_in(key, i)``).

    One input ``x`` ``(n0,)``: :func:`pdlt.ntk_conditional_samples`; several ``(N, n0)``:
    :func:`pdlt.ntk_conditional_samples_multi`. The hidden widths must be equal (``n``); the output
    width drops out (the last layer's statistics are averages over its weights). Scalar variances.
    Further keywords (``chunk``, ``progress``) pass through.
    """
    import numpy as np

    from ._ntk_ensembles import ntk_conditional_samples, ntk_conditional_samples_multi

    fn = "nets.ntk_samples"
    _require_plain(fn, net)
    Cb, Cw = net._scalar_variances(fn)
    if net.L < 2 or len(set(net.widths[:-1])) != 1:
        raise _checks.PDLTValueError(f"{fn}: needs L >= 2 layers with equal hidden widths n_1 = ... = n_(L-1), "
                                     f"got widths={net.widths}")
    lb, lw = _scalar_rates(rates or LearningRates(), net.L)
    f = ntk_conditional_samples if np.ndim(x) == 1 else ntk_conditional_samples_multi
    return f(key, x, n=net.widths[0], L=net.L, C_b=Cb, C_W=Cw, activation=net.activation, lambda_b=lb,
             lambda_W=lw, n_nets=n_nets, **kw)


def init(net: ResidualMLP, key, *, dtype=None):
    r"""One network's parameters, a tuple of L pairs ``(W, b)`` (``W^{(\ell)}`` of shape ``(n_ell, n_{ell-1})``).

    Gaussian weights: :func:`pdlt.init_mlp` (its key layout: ``split(key, 2L)``, W of layer ell from
    entry ``2(ell-1)``, b from ``2ell-1``). Other laws: the layout of :func:`pdlt.mlp_forward_with`
    (layer ell from ``fold_in(key, ell-1)`` split into (weight, bias) keys).
    """
    import jax.numpy as jnp

    from ._mlp import init_mlp
    from ._weights import sampled_params

    _check("nets.init", net)
    if net.weights.is_gaussian:
        return init_mlp(key, net.n0, net.widths, C_b=net.C_b, C_W=net.C_W, dtype=dtype)
    samplers = (weight_sampler_of(net.weights, input_layer=True),) + (weight_sampler_of(net.weights),) * (net.L - 1)
    return sampled_params(key, net.n0, net.widths, samplers, net.C_b, net.C_W, dtype or jnp.result_type(float))


def apply(net: ResidualMLP, params, x):
    """All preactivations ``z^(1)..z^(L)`` of one network (list of ``(N, n_ell)`` arrays), by
    :func:`pdlt.mlp_preactivations` or :func:`pdlt.residual_apply`."""
    from ._mlp import mlp_preactivations
    from ._residual import residual_apply

    _check("nets.apply", net)
    if net.is_plain:
        return mlp_preactivations(params, x, net.activation)
    return residual_apply(params, x, xi=net.xi, gamma=net.gamma, activation=net.activation)


def sample(net: ResidualMLP, key, x, *, n_nets: int, method: str | None = None, **kw):
    r"""Monte Carlo ensemble of ``n_nets`` networks of ``net`` (network i from ``fold_in(key, i)``).

    * plain MLP, Gaussian weights: :func:`pdlt.ensemble_metrics` -> ``(Ghat (n_nets, L, N, N), z (n_nets, N, n_L))``;
      ``method`` "conditional" (default) or "explicit".
    * plain MLP, other weight laws: :func:`pdlt.weights_ensemble_metrics` -> ``Ghat (n_nets, L, N, N)``;
      ``method`` "explicit" (default) or "conditional" (orthogonal).
    * residual MLP (one input ``x`` of shape ``(n0,)``, equal widths, scalar variances):
      :func:`pdlt.residual_ensemble` -> ``(P, Q, z)``.

    Further keywords (``chunk``, ``progress``) pass through.
    """
    from ._ensembles import ensemble_metrics
    from ._residual import residual_ensemble
    from ._weights import weights_ensemble_metrics

    fn = "nets.sample"
    _check(fn, net)
    if net.is_plain and net.weights.is_gaussian:
        return ensemble_metrics(key, x, widths=net.widths, C_b=net.C_b, C_W=net.C_W, activation=net.activation,
                                n_nets=n_nets, method=method or "conditional", **kw)
    if net.is_plain:
        Cb, Cw = net._scalar_variances(fn)
        return weights_ensemble_metrics(key, x, widths=net.widths, sampler=weight_sampler_of(net.weights),
                                        input_sampler=weight_sampler_of(net.weights, input_layer=True),
                                        C_b=Cb, C_W=Cw, activation=net.activation, n_nets=n_nets,
                                        method=method or "explicit", **kw)
    if not net.weights.is_gaussian:
        raise _checks.PDLTValueError(f"{fn}: residual ensembles support Gaussian weights only, got {net.weights}")
    Cb, Cw = net._scalar_variances(fn)
    return residual_ensemble(key, x, n=net.widths[0], L=net.L, xi=net.xi, gamma=net.gamma, C_b=Cb, C_W=Cw,
                             activation=net.activation, n_nets=n_nets, method=method or "conditional", **kw)


def empirical_ntk(net: ResidualMLP, params, x, rates: LearningRates | None = None, *, per_layer: bool = False):
    """Empirical NTK of one plain MLP (:func:`pdlt.empirical_ntk`), ``(n_L, n_L, N, N)``."""
    from ._empirical_ntk import empirical_ntk as _entk

    fn = "nets.empirical_ntk"
    _check(fn, net)
    if not net.is_plain:
        raise _checks.PDLTValueError(f"{fn}: plain MLPs only (xi = 0, gamma = 1), got xi={net.xi}, gamma={net.gamma}")
    rates = rates or LearningRates()
    lb, lw = rates.per_layer(net.L)
    return _entk(params, x, net.activation, lambda_b=lb, lambda_W=lw, per_layer=per_layer)

# validation (the error type): re-exported by the layout table (pdlt._layout.TABLE)
from ._layout import populate as _populate  # noqa: E402

__all__ = __all__ + [n for n in _populate(globals(), "nets") if n not in __all__]
