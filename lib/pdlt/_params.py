"""Chapter parameters: the parameters cell, its types, and the rules every value must obey.

A chapter's ``parameters`` cell is a list of annotated assignments with a help comment, the
form ``papermill --help-notebook`` understands::

    seed: int = 0            # PRNG seed for every ensemble
    widths: list = [16, 64]  # hidden-layer widths n

:func:`parse_parameters_cell` reads that cell (names, types, defaults, help). :func:`validate`
checks a proposed set of values against it *before any compute*: an unknown name, a wrong
type or an impossible value raises :class:`ParameterError` with one line naming the parameter
and what is allowed. Value rules come from :data:`RULES`, a vocabulary shared by all chapters
(``width`` must be an integer >= 1 wherever it appears, ``activation`` a registry name, ...).
"""
from __future__ import annotations

import ast
import numbers
from typing import Any, Callable, NamedTuple

from ._activations import ACTIVATIONS

__all__ = ["ParameterError", "ParamSpec", "RULES", "parse_parameters_cell", "validate", "validate_value"]


class ParameterError(ValueError):
    """A chapter parameter that is unknown, of the wrong type or impossible."""


class ParamSpec(NamedTuple):
    name: str
    type: str       # 'int', 'float', 'bool', 'str', 'list'
    default: Any
    help: str


def _int_ge(k):
    def rule(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= k, f"an integer >= {k}"
    return rule


def _num(pred, text):
    def rule(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and pred(float(v)), text
    return rule


def _list_of(rule):
    def r(v):
        ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(rule(x)[0] for x in v)
        return ok, f"a non-empty list, each entry {rule(None)[1]}"
    return r


def _choice(options):
    def rule(v):
        return v in options, f"one of {', '.join(map(str, options))}"
    return rule


_pos_int = _int_ge(1)
_pos = _num(lambda x: x > 0, "a number > 0")
_nonneg = _num(lambda x: x >= 0, "a number >= 0")
_unit = _num(lambda x: 0 <= x <= 1, "a number in [0, 1]")
_activation = _choice(tuple(ACTIVATIONS))

#: name -> rule(value) -> (ok, description of what is allowed)
RULES: dict[str, Callable] = {
    "seed": _int_ge(0),
    # widths and depths
    "n": _pos_int, "width": _pos_int, "n0": _pos_int, "n_out": _pos_int, "n_inputs": _pos_int,
    "widths": _list_of(_pos_int), "L": _pos_int, "depth": _pos_int, "depths": _list_of(_pos_int),
    "L_max": _pos_int,
    # ensemble sizes
    "n_nets": _pos_int, "samples": _pos_int, "n_samples": _pos_int, "chunk": _pos_int,
    "steps": _pos_int, "n_train": _pos_int, "n_test": _pos_int,
    # initialization and learning-rate hyperparameters
    "C_b": _nonneg, "C_W": _pos, "lambda_b": _nonneg, "lambda_W": _nonneg, "eta": _pos,
    "activation": _activation, "activations": _list_of(_activation),
    "dtype": _choice(("float32", "float64")),
    "z": _pos, "fast": _choice((True, False)),
    # Appendices A and B (information; residual networks)
    "r_values": _list_of(_pos), "n_A": _pos_int, "n_B": _pos_int, "n_groups": _int_ge(2),
    "gamma2s": _list_of(_num(lambda x: 0 < x <= 1, "a number in (0, 1]")),
}
RULES["n_small"] = _pos_int  # core (ch04): width of the small second-layer ensembles
RULES["readout_widths"] = _list_of(_pos_int)  # core (ch04): hidden widths of the readout ensembles

# beyond the book, items 4-6 (Saxe dynamics, length distortion, shaped attention)
RULES.update({
    "u0": _pos, "s_values": _list_of(_pos), "hidden": _pos_int, "n_seeds": _pos_int, "eta0": _pos,
    "scan_depths": _list_of(_pos_int), "scan_steps": _pos_int, "points": _pos_int, "tau0": _pos,
    "ratios": _list_of(_pos), "n_tokens": _int_ge(2), "rho0": _num(lambda x: -1 < x < 1, "a number in (-1, 1)"),
    "gamma2": _num(lambda x: 0 < x < 1, "a number in (0, 1)"),
})

# beyond the book, items 1-3 (engineer beyond1): branch exponents, weight ensembles, parametrizations
RULES.update({
    "alphas": _list_of(_num(lambda x: x >= 0, "a number >= 0")), "alpha": _num(lambda x: x >= 0, "a number >= 0"),
    "n_nets_control": _pos_int, "linear_widths": _list_of(_int_ge(2)), "linear_L": _pos_int,
    "linear_nets": _pos_int, "mlp_width": _pos_int, "mlp_depth": _pos_int, "mlp_nets": _pos_int,
    "density": _num(lambda x: 0 < x <= 1, "a number in (0, 1]"),
    "rank_fraction": _num(lambda x: 0 < x <= 1, "a number in (0, 1]"), "control_rank": _pos_int,
    "n_seeds": _pos_int, "base_width": _pos_int, "eta_grid": _list_of(_num(lambda x: x > 0, "a number > 0")),
})


def validate_value(name: str, value, spec: ParamSpec | None = None):
    """Check one value: its type against the spec (if given), then the vocabulary rule."""
    if spec is not None:
        want = spec.type
        ok = {
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "list": isinstance(value, (list, tuple)),
        }.get(want, True)
        if not ok:
            raise ParameterError(
                f"parameter `{name}` must be of type {want} (default {spec.default!r}), got {value!r} "
                f"of type {type(value).__name__}")
    rule = RULES.get(name)
    if rule is not None:
        good, allowed = rule(value)
        if not good:
            raise ParameterError(f"parameter `{name}` must be {allowed}, got {value!r}")


def validate(values: dict, specs: dict[str, ParamSpec] | None = None) -> None:
    """Check every value; with ``specs``, also reject names that the chapter does not have."""
    for name, value in values.items():
        if specs is not None and name not in specs:
            raise ParameterError(
                f"unknown parameter `{name}`; this chapter has: {', '.join(specs) or '(none)'}")
        validate_value(name, value, None if specs is None else specs[name])


def parse_parameters_cell(source: str) -> dict[str, ParamSpec]:
    """Names, types, defaults and help text of a ``parameters`` cell (annotated assignments)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    specs: dict[str, ParamSpec] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            typ = ast.unparse(node.annotation)
            default = ast.literal_eval(node.value) if node.value is not None else None
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            default = ast.literal_eval(node.value)
            typ = type(default).__name__
        else:
            continue
        line = lines[node.lineno - 1]
        help_ = line.split("#", 1)[1].strip() if "#" in line else ""
        specs[name] = ParamSpec(name, typ, default, help_)
    return specs

# chapters 7-9 (NTK): learning-rate grids, hidden widths for fluctuation ensembles, depths, tilde rates
RULES.update({
    "etas": _list_of(_pos), "ns": _list_of(_pos_int), "relu_ns": _list_of(_pos_int), "tanh_ns": _list_of(_pos_int),
    "relu_L": _pos_int, "tanh_L": _pos_int, "relu_nets": _pos_int, "tanh_nets": _list_of(_pos_int),
    "mean_nets": _pos_int, "mean_ns": _list_of(_pos_int), "equiv_depths": _list_of(_pos_int), "equiv_n": _pos_int,
    "equiv_nets": _pos_int, "lambda_b_tilde": _nonneg, "lambda_W_tilde": _nonneg, "C_W_off": _pos,
    "deep_L": _pos_int, "var_ns": _list_of(_pos_int), "var_L": _pos_int, "var_nets": _pos_int,
})

# learning chapters (6, 10, 11, ∞, epilogue)
RULES.update({
    "eta_scale": _num(lambda x: 0 < x < 2, "a number in (0, 2) (η times λ_max of the NTK on the training set)"),
    "noise": _nonneg, "y2": _pos,
    "train_widths": _list_of(_pos_int), "train_depths": _list_of(_pos_int), "train_nets": _pos_int,
    "n_hebb": _list_of(_pos_int), "L_hebb": _pos_int, "eta_ratio": _num(lambda x: 0 < x < 1, "a number in (0, 1)"),
})
