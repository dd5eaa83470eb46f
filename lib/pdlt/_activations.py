r"""The activation functions of PDLT §2.2, with their derivatives and universality data.

Each activation is an :class:`Activation`: the function ``sigma``, its first and second
derivatives, and what the library knows about it in closed form. The scale-invariant family
``sigma(z) = a_+ z Θ(z) + a_- z Θ(-z)`` (linear, ReLU, leaky ReLU; PDLT eq. (2.10)-(2.13),
unverified numbering) carries its slopes ``a_plus``/``a_minus``; they give closed-form kernel
maps (arc-cosine kernels) used instead of quadrature, which is inaccurate at the kink.

The registry ``ACTIVATIONS`` maps a name to its :class:`Activation`; :func:`get_activation`
looks a name up and raises with the list of valid names.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from . import _checks

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "activation_names", "leaky_relu"]


class Activation(NamedTuple):
    """One activation function and what is known about it.

    Attributes:
      name: registry name.
      sigma: elementwise function ``sigma(z)``.
      dsigma: first derivative ``sigma'(z)`` (for the kinked ones, the a.e. derivative).
      d2sigma: second derivative (a.e.; zero for the piecewise-linear family).
      a_plus, a_minus: slopes for the scale-invariant family, else ``None``.
      smooth: True if sigma is infinitely differentiable (quadrature is then spectrally accurate).
      family: 'scale-invariant', 'K*=0', 'half-stable', 'none' (no criticality), or 'step'.
      kernel: optional closed form ``(K_aa, K_ab, K_bb) -> <sigma(z_a) sigma(z_b)>_K`` (elementwise
        arrays); used by :func:`pdlt.kernel_map` instead of quadrature when given.
      dkernel: optional closed form of ``<sigma'(z_a) sigma'(z_b)>_K``, same signature.
    """

    name: str
    sigma: Callable
    dsigma: Callable
    d2sigma: Callable
    a_plus: float | None
    a_minus: float | None
    smooth: bool
    family: str
    kernel: Callable | None = None
    dkernel: Callable | None = None

    @property
    def scale_invariant(self) -> bool:
        return self.a_plus is not None

    def slope_moment(self, k: int) -> float:
        r""":math:`A_k = (a_+^k + a_-^k)/2` of a scale-invariant activation (:math:`\langle\sigma^2\rangle_K = A_2K`,
        critical :math:`C_W = 1/A_2`; PDLT §5.2). Raises PDLTValueError for other activations."""
        if not self.scale_invariant:
            raise _checks.PDLTValueError(f"slope_moment: `activation` {self.name!r} is not scale-invariant ({self.family})")
        return 0.5 * (self.a_plus**k + self.a_minus**k)


def _sigmoid(z):
    return jax.nn.sigmoid(z)


def _phi(z):  # standard normal CDF
    return 0.5 * (1.0 + erf(z / jnp.sqrt(2.0)))


def _pdf(z):
    return jnp.exp(-0.5 * z * z) / jnp.sqrt(2.0 * jnp.pi)


def leaky_relu(a: float, name: str | None = None) -> Activation:
    r"""Scale-invariant activation with slopes :math:`a_+ = 1`, :math:`a_- = a` (PDLT §2.2)."""
    return _scale_invariant(name or f"leaky_relu_{a:g}", 1.0, float(a))


def _scale_invariant(name, ap, am):
    return Activation(
        name=name,
        sigma=lambda z: jnp.where(z > 0, ap * z, am * z),
        dsigma=lambda z: jnp.where(z > 0, ap, am) * jnp.ones_like(z),
        d2sigma=lambda z: jnp.zeros_like(z),
        a_plus=ap,
        a_minus=am,
        smooth=(ap == am),
        family="scale-invariant",
    )


def _smooth(name, f, df, d2f, family):
    return Activation(name, f, df, d2f, None, None, True, family)


ACTIVATIONS: dict[str, Activation] = {
    "linear": _scale_invariant("linear", 1.0, 1.0),
    "relu": _scale_invariant("relu", 1.0, 0.0),
    "leaky_relu": _scale_invariant("leaky_relu", 1.0, 0.1),
    "tanh": _smooth(
        "tanh", jnp.tanh,
        lambda z: 1.0 - jnp.tanh(z) ** 2,
        lambda z: -2.0 * jnp.tanh(z) * (1.0 - jnp.tanh(z) ** 2),
        "K*=0",
    ),
    "sin": _smooth("sin", jnp.sin, jnp.cos, lambda z: -jnp.sin(z), "K*=0"),
    "sigmoid": _smooth(
        "sigmoid", _sigmoid,
        lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)),
        lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)) * (1.0 - 2.0 * _sigmoid(z)),
        "none",
    ),
    "softplus": _smooth(
        "softplus", jax.nn.softplus, _sigmoid,
        lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)),
        "none",
    ),
    "gelu": _smooth(
        "gelu", lambda z: z * _phi(z),
        lambda z: _phi(z) + z * _pdf(z),
        lambda z: (2.0 - z * z) * _pdf(z),
        "half-stable",
    ),
    "swish": _smooth(
        "swish", lambda z: z * _sigmoid(z),
        lambda z: _sigmoid(z) + z * _sigmoid(z) * (1.0 - _sigmoid(z)),
        lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)) * (2.0 + z * (1.0 - 2.0 * _sigmoid(z))),
        "half-stable",
    ),
    "step": Activation(
        "step",
        lambda z: jnp.where(z > 0, 1.0, 0.0) * jnp.ones_like(z),
        lambda z: jnp.zeros_like(z),
        lambda z: jnp.zeros_like(z),
        None, None, False, "step",
    ),
}
ACTIVATIONS["perceptron"] = ACTIVATIONS["step"]._replace(name="perceptron")


def _erf_kernel(kaa, kab, kbb):
    # <erf(z_a) erf(z_b)>_K = (2/pi) arcsin(2 K_ab / sqrt((1 + 2 K_aa)(1 + 2 K_bb)))  (Williams 1997)
    return (2.0 / jnp.pi) * jnp.arcsin(2.0 * kab / jnp.sqrt((1.0 + 2.0 * kaa) * (1.0 + 2.0 * kbb)))


def _erf_dkernel(kaa, kab, kbb):
    # sigma' = (2/sqrt(pi)) exp(-z^2):  <sigma'_a sigma'_b>_K = (4/pi) / sqrt(det(1 + 2K))
    return (4.0 / jnp.pi) / jnp.sqrt((1.0 + 2.0 * kaa) * (1.0 + 2.0 * kbb) - 4.0 * kab * kab)


#: erf: a smooth odd activation of the K*=0 class with closed-form kernels (sigma_1 = 2/sqrt(pi)).
ACTIVATIONS["erf"] = Activation(
    "erf", erf,
    lambda z: (2.0 / jnp.sqrt(jnp.pi)) * jnp.exp(-z * z),
    lambda z: (-4.0 / jnp.sqrt(jnp.pi)) * z * jnp.exp(-z * z),
    None, None, True, "K*=0", _erf_kernel, _erf_dkernel,
)


def activation_names() -> tuple[str, ...]:
    return tuple(ACTIVATIONS)


def get_activation(activation, fn: str = "get_activation") -> Activation:
    """Return the :class:`Activation` for a registry name (or pass an Activation through).

    Raises:
      PDLTValueError: unknown name; the message lists the valid names.
    """
    if isinstance(activation, Activation):
        return activation
    if not isinstance(activation, str):
        raise _checks.PDLTValueError(
            f"{fn}: `activation` must be a name (str), got {type(activation).__name__}; "
            f"valid: {', '.join(ACTIVATIONS)}")
    _checks.one_of(fn, "activation", activation, tuple(ACTIVATIONS))
    return ACTIVATIONS[activation]
