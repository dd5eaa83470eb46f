"""``python -m pdlt.run``: execute chapters with parameters; the runner itself is ``pdlt._runner``.

This module holds the runner's names (for ``from pdlt.run import ...``) but stays out of
``import pdlt``, so that ``python -m pdlt.run`` executes it fresh.
"""
import sys

from . import _runner

globals().update({k: v for k, v in vars(_runner).items() if not k.startswith("__")})
__all__ = _runner.__all__

if __name__ == "__main__":
    sys.exit(_runner.main())
