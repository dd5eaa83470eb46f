"""Infinite- and finite-width theory: kernel and NTK recursions, criticality, the four-point vertex, NTK fluctuations and dNTK statistics, residual networks and their scaling, the nearly-Gaussian toy model, exact laws.

The names are re-exported from the private modules listed for ``theory`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "theory")
