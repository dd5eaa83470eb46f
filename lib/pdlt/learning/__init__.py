"""Learning: empirical NTK and dNTK per network, gradient-descent training, the function-space step, kernel learning, Bayesian inference, parametrizations, trained predictions.

The names are re-exported from the private modules listed for ``learning`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "learning")
