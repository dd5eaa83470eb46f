"""Estimators with standard errors (means, variances, covariances, kurtosis) and fits.

The names are re-exported from the private modules listed for ``stats`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "stats")
