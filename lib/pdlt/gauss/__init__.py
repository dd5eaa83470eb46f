"""Activations and Gaussian expectations: one- and several-variable Gaussian averages, kernel maps, Wick contractions.

The names are re-exported from the private modules listed for ``gauss`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "gauss")
