"""Topics beyond the book's main line: information theory, deep-linear dynamics, length distortion, attention.

The names are re-exported from the private modules listed for ``topics`` in ``pdlt._layout.TABLE``.
"""
from .._layout import populate as _populate

__all__ = _populate(globals(), "topics")
