"""Monte Carlo networks at initialization: explicit and conditional samplers, non-iid weights, Haar frames, the fast and sharded engines, micro-batching, progress and chunking.

The names are re-exported from the private modules listed for ``ensembles`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "ensembles")
