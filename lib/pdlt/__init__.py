"""pdlt: the library behind the executable companion to *The Principles of Deep Learning Theory*.

The top level holds the network descriptions, the errors and the most-used entry points; the rest
lives in public subpackages by concern:

- ``pdlt.nets``: network descriptions (:class:`MLP`, :class:`ResidualMLP`, :class:`WeightLaw`,
  :class:`LearningRates`) and their adapters to the theory and the ensembles, validation;
- ``pdlt.gauss``: activations and Gaussian expectations;
- ``pdlt.theory``: kernel, NTK, criticality, vertex, NTK and dNTK statistics, residual networks, exact laws;
- ``pdlt.ensembles``: Monte Carlo networks and the engines (fast, sharded, micro-batched) behind them;
- ``pdlt.learning``: empirical NTK/dNTK, training, kernel learning, Bayesian inference, parametrizations;
- ``pdlt.stats``: estimators with standard errors, fits;
- ``pdlt.topics``: information, deep-linear dynamics, length distortion, attention;
- ``pdlt.book``: chapter support, the results ledger, parameters, provenance, runner, launch notebooks.

The subpackages re-export the private modules ``pdlt._x`` by one table (``pdlt._layout.TABLE``).
Old flat names (``pdlt.kernel_map``) still resolve, forwarded to their subpackage, but are not part
of ``__all__``; ``tools/migrate_api.py`` rewrites call sites to the subpackage names.
"""
from . import _layout

__version__ = "0.1.0"

from . import nets as nets  # noqa: E402
from . import gauss as gauss  # noqa: E402
from . import theory as theory  # noqa: E402
from . import ensembles as ensembles  # noqa: E402
from . import learning as learning  # noqa: E402
from . import stats as stats  # noqa: E402
from . import topics as topics  # noqa: E402
from . import book as book  # noqa: E402

_SUBS = {"nets": nets, "gauss": gauss, "theory": theory, "ensembles": ensembles, "learning": learning,
         "stats": stats, "topics": topics, "book": book}
_FLAT = _layout.flat_index()

for _n in _layout.TOP:  # the top-level names, taken from their subpackage
    globals()[_n] = getattr(_SUBS[_FLAT[_n]], _n)
del _n

__all__ = list(_layout.TOP) + list(_layout.SUBPACKAGES)


def __getattr__(name):
    """An old flat name (``pdlt.kernel_map``): forwarded to its subpackage (``pdlt.gauss.kernel_map``)."""
    sub = _FLAT.get(name)
    if sub is None:
        raise AttributeError(f"module 'pdlt' has no attribute {name!r}")
    return getattr(globals()[sub], name)


def __dir__():
    return sorted(set(__all__) | {n for n in globals() if n.startswith("_")})


# network descriptions (frozen, validated; consumed by pdlt.nets.kernels / ntk / init / apply / sample)
from . import nets as nets  # noqa: E402
from .nets import LearningRates as LearningRates  # noqa: E402
from .nets import MLP as MLP  # noqa: E402
from .nets import ResidualMLP as ResidualMLP  # noqa: E402
from .nets import WeightLaw as WeightLaw  # noqa: E402
# multi-input NTK statistics at leading order in 1/n (K, Theta, V, D, F, A, B, G1, H1)
# dNTK statistics P, Q at leading order in 1/n (recursions, closed forms, ensemble estimators)
