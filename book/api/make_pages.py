"""Writes the API reference pages (book/api/*.rst) from the public names of ``pdlt``, grouped by concern.

Run ``python book/api/make_pages.py`` after adding public names; ``tests/test_api_docs.py`` fails
when a public name is missing from the pages.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pdlt

GROUPS = [
    ("descriptions", "Network descriptions",
     "Frozen, validated descriptions of networks and learning rates, the adapters that hand them to the "
     "theory and the ensembles, activations and the error type.",
     ["nets", "_activations", "_checks"]),
    ("gaussian", "Gaussian expectations",
     "One- and several-variable Gaussian averages, kernel maps and Wick contractions.",
     ["_gaussian"]),
    ("theory", "Theory",
     "Infinite- and finite-width recursions: kernels, criticality, the four-point vertex, NTK statistics, "
     "residual networks, non-iid weights and the nearly-Gaussian toy model.",
     ["_kernel", "_ntk", "_criticality", "_vertex", "_ntk_fluctuations", "_residual", "_resnet_scaling",
      "_nearly_gaussian"]),
    ("ensembles", "Ensembles",
     "Monte Carlo networks at initialization: explicit and conditional samplers, streamed moments, sharding.",
     ["_mlp", "_ensembles", "_ntk_ensembles", "_weights", "_haar", "_fast", "_sharding", "_compile_cache"]),
    ("learning", "Learning",
     "Empirical tangent kernels, gradient descent, kernel learning, Bayesian inference, parametrizations.",
     ["_empirical_ntk", "_training", "_function_step", "_kernel_learning", "_bayes", "_dntk",
      "_parametrizations"]),
    ("stats", "Statistics", "Estimators with standard errors and fits.", ["_stats"]),
    ("topics", "Topics beyond the book",
     "Information theory, deep-linear dynamics, length distortion, attention.",
     ["_information", "_deep_linear_dynamics", "_length", "_attention"]),
    ("book", "Book machinery", "The results ledger, chapter parameters and the chapter helpers.",
     ["_ledger", "_params", "book"]),
]

NETS_FUNCTIONS = [n for n in pdlt.nets.__all__ if inspect.isfunction(getattr(pdlt.nets, n))]


def public_names():
    return sorted(n for n in dir(pdlt) if not n.startswith("_") and n not in ("annotations",))


def home(name):
    """The module (short name) a public name belongs to, or None for modules and plain data."""
    obj = getattr(pdlt, name)
    if inspect.ismodule(obj):
        return None
    mod = getattr(obj, "__module__", None)
    if mod is None or not isinstance(mod, str) or not mod.startswith("pdlt"):
        for m in (g for grp in GROUPS for g in grp[3]):
            try:
                mobj = __import__(f"pdlt.{m}", fromlist=["x"])
            except ImportError:
                continue
            if getattr(mobj, name, None) is obj:
                return m
        return None
    return mod.split(".", 1)[1] if "." in mod else None


def directive(name):
    obj = getattr(pdlt, name)
    if inspect.isclass(obj):
        return "autoclass", ["   :members:"] if obj.__module__ == "pdlt.nets" else []
    if callable(obj):
        return "autofunction", []
    return "autodata", ["   :annotation:"]


def pages():
    by_mod = {}
    for n in public_names():
        m = home(n)
        if m is not None:
            by_mod.setdefault(m, []).append(n)
    out = {}
    for slug, title, blurb, mods in GROUPS:
        names = [n for m in mods for n in by_mod.get(m, [])]
        lines = [title, "=" * len(title), "", blurb, "", ".. currentmodule:: pdlt", ""]
        if slug == "descriptions":
            lines += [".. automodule:: pdlt.nets", "   :no-members:", ""]
        lines += [".. autosummary::", "   :nosignatures:", ""] + [f"   {n}" for n in names]
        if slug == "descriptions":
            lines += [f"   pdlt.nets.{n}" for n in NETS_FUNCTIONS]
        lines.append("")
        for n in names:
            d, opts = directive(n)
            lines += [f".. {d}:: {n}"] + opts + [""]
        if slug == "descriptions":
            lines += [f".. autofunction:: pdlt.nets.{n}" for n in NETS_FUNCTIONS] + [""]
        out[slug] = "\n".join(lines)
    return out


if __name__ == "__main__":
    here = Path(__file__).parent
    index = ["Library", "=======", "",
             "The public API of ``pdlt``, generated from the docstrings (mathematics included).", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {slug}" for slug, *_ in GROUPS] + [""]
    (here / "index.rst").write_text("\n".join(index))
    for slug, text in pages().items():
        (here / f"{slug}.rst").write_text(text)
    print("wrote", len(GROUPS) + 1, "pages")
