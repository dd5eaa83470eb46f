"""The public layout of ``pdlt``: which private module's names each public subpackage re-exports.

One table (:data:`TABLE`, private module -> subpackage) drives everything: each subpackage's
``__init__`` calls :func:`populate`, which re-exports the public names of its modules (a module's
``__all__``, else its row in :data:`NAMES`); the top-level ``pdlt`` keeps :data:`TOP` and forwards
every other old flat name (``pdlt.kernel_map`` -> ``pdlt.gauss.kernel_map``) through
:func:`flat_index`; ``tools/migrate_api.py`` rewrites call sites from the same table. A new private
module with ``__all__`` needs one row here; ``tests/test_layout.py`` fails for a module without one.

White-box tests of a private helper reach its module as ``pdlt.<subpackage>.internals.<name>``
(the module's name without the underscore), e.g. ``from pdlt.gauss.internals.activations import
_erf_kernel``; chapters use public names only.
"""
from __future__ import annotations

import importlib
import sys
import types

# the public subpackages (and modules), by concern
SUBPACKAGES = ("nets", "gauss", "theory", "ensembles", "learning", "stats", "topics", "book")

# private (or tooling) module -> the subpackage that re-exports its public names
TABLE = {
    # nets: descriptions (the public module itself) and validation
    "nets": "nets",
    "_checks": "nets",
    # gauss: activations and Gaussian expectations
    "_activations": "gauss",
    "_gaussian": "gauss",
    # theory: infinite- and finite-width recursions and exact laws
    "_kernel": "theory",
    "_ntk": "theory",
    "_criticality": "theory",
    "_vertex": "theory",
    "_ntk_fluctuations": "theory",
    "_ntk_stats": "theory",
    "_dntk_stats": "theory",
    "_ddntk_stats": "theory",
    "_residual": "theory",
    "_resnet_scaling": "theory",
    "_nearly_gaussian": "theory",
    # ensembles: Monte Carlo networks, the engines behind them
    "_mlp": "ensembles",
    "_ensembles": "ensembles",
    "_ntk_ensembles": "ensembles",
    "_weights": "ensembles",
    "_haar": "ensembles",
    "_fast": "ensembles",
    "_sharding": "ensembles",
    "_netmap": "ensembles",
    "_progress": "ensembles",
    "_compile_cache": "ensembles",
    # learning: tangent kernels, training, kernel learning, Bayesian inference, predictions
    "_empirical_ntk": "learning",
    "_dntk": "learning",
    "_training": "learning",
    "_function_step": "learning",
    "_kernel_learning": "learning",
    "_bayes": "learning",
    "_parametrizations": "learning",
    "_trained": "learning",
    "_trained_dynamics": "learning",
    "_kink_crossing": "learning",
    # stats: estimators with standard errors, fits
    "_stats": "stats",
    # topics beyond the book's main line
    "_information": "topics",
    "_deep_linear_dynamics": "topics",
    "_length": "topics",
    "_attention": "topics",
    # book: chapter support, ledger, parameters, provenance, runner, launch notebooks
    "_ledger": "book",
    "_params": "book",
    "_provenance": "book",
    "_runner": "book",
    "notebooks": "book",
}

# names a module without ``__all__`` exports
NAMES = {
    "_haar": ("haar_frame", "orthonormalize"),
}

# names left out of a subpackage (a clash of two modules' names there)
SKIP = {("_runner", "main"), ("notebooks", "main")}

# where two subpackages export different objects under one name: the home of the flat name
# (``pdlt.<name>``, the old API's meaning)
FLAT_HOME = {
    "empirical_ntk": "learning",      # pdlt.nets.empirical_ntk is the description-taking adapter
    "warn_nonfinite": "ensembles",    # pdlt.nets.warn_nonfinite is the general helper it wraps
}

# private modules that export nothing (library plumbing)
UNLISTED = ("_layout",)

# the top level: descriptions, errors, the most-used entry points (and the subpackages)
TOP = (
    "MLP", "ResidualMLP", "WeightLaw", "LearningRates",
    "PDLTValueError", "ParameterError",
    "get_activation", "gaussian_expectation", "kernel_map",
    "kernel_recursion", "ntk_recursion", "critical_point", "vertex_recursion", "ntk_fluctuations",
    "ensemble_metrics", "ensemble_moments", "ensemble_ntk",
    "empirical_ntk", "train_ensemble",
    "mean_and_se", "variance_and_se",
    "Ledger",
)


def modules_of(sub: str) -> list[str]:
    """The table's modules of subpackage ``sub``, in table order."""
    return [m for m, s in TABLE.items() if s == sub]


def names_of(module) -> tuple[str, ...]:
    """A module's public names: its ``__all__``, else its row in :data:`NAMES`."""
    short = module.__name__.rsplit(".", 1)[1]
    names = getattr(module, "__all__", None)
    if names is None:
        if short not in NAMES:
            raise ImportError(f"pdlt.{short} has no __all__ and no row in pdlt._layout.NAMES: "
                              "give the module an __all__")
        names = NAMES[short]
    return tuple(n for n in names if (short, n) not in SKIP)


def _load(short: str):
    try:
        return importlib.import_module(f"pdlt.{short}")
    except ModuleNotFoundError as e:  # a row for a module not (yet) on this branch
        if e.name == f"pdlt.{short}":
            return None
        raise


def populate(namespace: dict, sub: str) -> list[str]:
    """Re-export into ``namespace`` (a subpackage's globals) the public names of ``sub``'s modules;
    register ``pdlt.<sub>.internals.<module>`` for white-box tests. Returns the names (for ``__all__``)."""
    internals = types.ModuleType(f"pdlt.{sub}.internals", f"The private modules behind pdlt.{sub} (white-box tests).")
    exported, origin = [], {}
    for short in modules_of(sub):
        mod = _load(short)
        if mod is None or mod.__name__ == namespace.get("__name__"):
            continue
        alias = short.lstrip("_")
        setattr(internals, alias, mod)
        sys.modules[f"pdlt.{sub}.internals.{alias}"] = mod
        for n in names_of(mod):
            obj = getattr(mod, n)
            if (n in origin or n in namespace) and namespace.get(n) is not obj:
                raise ImportError(f"pdlt.{sub}: `{n}` of pdlt.{short} clashes with pdlt.{origin.get(n, sub)}; "
                                  "rename one or add it to pdlt._layout.SKIP")
            if n not in origin:
                origin[n] = short
                exported.append(n)
            namespace[n] = obj
    namespace["internals"] = internals
    sys.modules[internals.__name__] = internals
    return exported


def flat_index() -> dict[str, str]:
    """Every name a subpackage re-exports -> that subpackage (the compatibility map of the old flat API)."""
    out = {}
    # the private modules first: where a public module (pdlt.nets) has a name of its own that a
    # private module also exports, the flat name keeps meaning the private module's (the old API)
    for short, sub in sorted(TABLE.items(), key=lambda row: not row[0].startswith("_")):
        mod = _load(short)
        if mod is None:
            continue
        for n in names_of(mod):
            out.setdefault(n, sub)
    return out | {n: s for n, s in FLAT_HOME.items() if n in out}
