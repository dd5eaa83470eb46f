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
import math
import numbers
import os
import re
from typing import Any, Callable, NamedTuple

from ._activations import ACTIVATIONS

__all__ = ["ParameterError", "ParamSpec", "RULES", "Rule", "Specs", "GRAMMAR", "parse_parameters_cell", "parse_value",
           "load_parameters_file", "validate", "validate_value"]


class ParameterError(ValueError):
    """A chapter parameter that is unknown, of the wrong type or impossible."""


#: largest integer parameter (int64; JAX keys and array sizes are 64-bit at most)
INT_MAX = 2**63 - 1


class ParamSpec(NamedTuple):
    name: str
    type: str       # 'int', 'float', 'bool', 'str', 'list'
    default: Any
    help: str


def _int_ge(k, hi=None):
    hi = INT_MAX if hi is None else hi
    def rule(v):
        ok = isinstance(v, numbers.Integral) and not isinstance(v, bool) and k <= v <= hi
        return ok, f"an integer >= {k}" + (f" and <= {hi}" if hi != INT_MAX else f" (and < 2^63)")
    return rule


def _num(pred, text):
    def rule(v):
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v)) and pred(float(v))
        return ok, f"a finite {text[2:] if text.startswith('a ') else text}"
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
    "seed": _int_ge(0, 2**63 - 1),
    "K": _pos,
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


def _type_ok(want: str, value) -> bool:
    return {
        "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
        "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, (list, tuple)),
    }.get(want, True)


def _fallback_rule(spec: ParamSpec | None):
    """The rule of a parameter outside the vocabulary: by its type (ints in int64, numbers finite)."""
    want = None if spec is None else spec.type
    if want == "int":
        return _int_ge(-INT_MAX)
    if want == "float":
        return _num(lambda x: True, "a number")
    if want == "list":
        def rule(v):
            ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(
                not isinstance(x, float) or math.isfinite(x) for x in v)
            return ok, "a non-empty list of finite values"
        return rule
    return None


def validate_value(name: str, value, spec: ParamSpec | None = None):
    """Check one value: its type against the spec (if given), then the vocabulary rule (or, for a
    parameter outside the vocabulary, the rule of its type: integers within int64, finite numbers)."""
    if spec is not None and not _type_ok(spec.type, value):
        raise ParameterError(
            f"parameter `{name}` must be of type {spec.type} (default {spec.default!r}), got {value!r} "
            f"of type {type(value).__name__}")
    rule = RULES.get(name) or _fallback_rule(spec)
    if rule is None and isinstance(value, float):
        rule = _num(lambda x: True, "a number")
    if rule is not None:
        good, allowed = rule(value)
        if not good:
            raise ParameterError(f"parameter `{name}` must be {allowed}, got {value!r}")


def validate(values: dict, specs: dict[str, ParamSpec] | None = None, *, memory: bool = True) -> None:
    """Check every value; with ``specs``, also reject names that the chapter does not have, and check the
    chapter's cross-parameter rules and peak-memory estimate (``# rule:`` / ``# memory:`` lines of its
    parameters cell) on the values merged with the defaults."""
    for name, value in values.items():
        if specs is not None and name not in specs:
            raise ParameterError(
                f"unknown parameter `{name}`; this chapter has: {', '.join(specs) or '(none)'}")
        validate_value(name, value, None if specs is None else specs[name])
    rules = getattr(specs, "rules", ())
    if rules:
        merged = {s.name: s.default for s in specs.values()} | dict(values)
        for r in rules:
            if r.kind == "rule" or memory:
                r.check(merged)


# ---------------------------------------------------------------- cross-parameter rules
_SAFE_FUNCS = {f.__name__: f for f in (len, min, max, all, any, sum, abs, sorted, set, int, float, round, range)}
_SAFE_NODES = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load,
               ast.Constant, ast.List, ast.Tuple, ast.comprehension, ast.GeneratorExp, ast.ListComp, ast.IfExp,
               ast.Subscript, ast.Slice, ast.Store, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)


def _memory_limit() -> tuple[int, str]:
    """Bytes a run may use: ``$PDLT_MEMORY_LIMIT`` (e.g. ``64G``) or the machine's physical memory."""
    env = os.environ.get("PDLT_MEMORY_LIMIT", "").strip()
    if env:
        m = re.fullmatch(r"([0-9.]+)\s*([kKmMgGtT]?)i?[bB]?", env)
        if not m:
            raise ParameterError(f"PDLT_MEMORY_LIMIT must be a size like 64G, got {env!r}")
        return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")), "PDLT_MEMORY_LIMIT"
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory"
    except (ValueError, OSError, AttributeError):
        return 2**62, "unknown"


class Rule(NamedTuple):
    """A ``# rule: <expression> | <message>`` (must hold) or ``# memory: <bytes expression> | <what>``
    (estimated peak memory, refused above the memory limit) line of a parameters cell."""

    kind: str         # 'rule' or 'memory'
    expr: str
    message: str
    names: tuple      # the parameters the expression reads

    def value(self, values: dict):
        code = compile(ast.parse(self.expr, mode="eval"), "<rule>", "eval")
        ns = dict(_SAFE_FUNCS)
        ns.update(values)
        ns["__builtins__"] = {}
        return eval(code, ns)  # noqa: S307 (nodes restricted by parse_rule)

    def check(self, values: dict) -> None:
        names = ", ".join(f"`{n}`" for n in self.names)
        shown = ", ".join(f"{n}={values.get(n)!r}" for n in self.names)
        try:
            v = self.value(values)
        except Exception as e:  # a value of the wrong shape for the rule (e.g. a list where a number is)
            raise ParameterError(f"parameters {names}: {self.message} ({self.expr}) cannot be evaluated "
                                 f"for {shown}: {type(e).__name__}: {e}") from None
        if self.kind == "rule":
            if not v:
                raise ParameterError(f"parameters {names}: {self.message} ({self.expr}); got {shown}")
            return
        limit, where = _memory_limit()
        if float(v) > limit:
            raise ParameterError(
                f"parameters {names}: estimated peak memory {float(v) / 2**30:.1f} GiB ({self.message or self.expr}) "
                f"exceeds {where} ({limit / 2**30:.1f} GiB); got {shown} (PDLT_MEMORY_LIMIT overrides the limit)")


def parse_rule(line: str) -> Rule | None:
    """A :class:`Rule` from one comment line ``# rule: expr | message`` or ``# memory: expr | what``."""
    m = re.match(r"\s*#\s*(rule|memory)\s*:\s*(.+?)\s*$", line)
    if not m:
        return None
    expr, _, msg = m.group(2).partition(" | ")
    expr = expr.strip()
    tree = ast.parse(expr, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            raise SyntaxError(f"parameters cell: `{node.__class__.__name__}` is not allowed in the rule {expr!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _SAFE_FUNCS):
            raise SyntaxError(f"parameters cell: only {', '.join(_SAFE_FUNCS)} may be called in the rule {expr!r}")
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names = tuple(dict.fromkeys(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                                and isinstance(n.ctx, ast.Load) and n.id not in _SAFE_FUNCS and n.id not in bound))
    return Rule(m.group(1), expr, msg.strip(), names)


class Specs(dict):
    """``{name: ParamSpec}`` of a parameters cell, with its cross-parameter :class:`Rule` s in ``.rules``."""

    rules: tuple = ()


# ---------------------------------------------------------------- the grammar of parameter values
GRAMMAR = """\
integers: decimal (400000) or exact scientific notation (1e6, 2.5e3); no leading zeros, no octal or 1:30
floats: 0.5, 1e-3, 2 (finite only: no nan/inf); booleans: true/false; strings: as typed ('quoted' optional)
lists: [a, b, c] with entries of the default's type"""

_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_LEADING0 = re.compile(r"[+-]?0[0-9]+")
_SCI = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?[eE]\+?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _unquote(t: str) -> str:
    return t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t


def _split_list(t: str) -> list[str]:
    inner, depth, cur, out = t[1:-1], 0, "", []
    for c in inner:
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (c == "[") - (c == "]")
        cur += c
    if cur.strip() or out:
        out.append(cur)
    return [s.strip() for s in out]


def _elem_type(default) -> str | None:
    types = {type(x).__name__ for x in (default or [])}
    return types.pop() if len(types) == 1 else ("float" if types == {"int", "float"} else None)


def parse_value(name: str, text, want: str | None, default=None):
    """One parameter value from the command line (or a YAML scalar) by the grammar :data:`GRAMMAR`,
    as the type ``want`` ('int', 'float', 'bool', 'str', 'list'; None infers). Raises ParameterError."""
    if isinstance(text, list):  # a YAML sequence (from a -f file): its entries by the same grammar
        if want not in (None, "list"):
            raise ParameterError(f"parameter `{name}` must be of type {want}, got the list {text!r}")
        et = _elem_type(default)
        return [parse_value(name, x, et) for x in text]
    if isinstance(text, dict):
        raise ParameterError(f"parameter `{name}`: a mapping is not a parameter value, got {text!r}")
    t = str(text).strip()
    if want == "str":
        return _unquote(t)
    if want == "list" or (want is None and t.startswith("[")):
        if not (t.startswith("[") and t.endswith("]")):
            raise ParameterError(f"parameter `{name}` must be a list written [a, b, ...], got {t!r}")
        et = _elem_type(default)
        return [parse_value(name, x, et) for x in _split_list(t)]
    if want == "bool" or (want is None and t.lower() in ("true", "false")):
        if t.lower() not in ("true", "false"):
            raise ParameterError(f"parameter `{name}` must be true or false, got {t!r}")
        return t.lower() == "true"
    if _LEADING0.fullmatch(t):
        raise ParameterError(f"parameter `{name}`: {t!r} has a leading zero (octal is not accepted); "
                             f"write {int(t)}")
    if want in ("int", None):
        if _INT.fullmatch(t):
            return int(t)
        if _SCI.fullmatch(t):
            from decimal import Decimal

            d = Decimal(t)
            if d == d.to_integral_value():
                return int(d)
            if want == "int":
                raise ParameterError(f"parameter `{name}` must be an integer, got {t!r} = {d.normalize()}")
        elif want == "int":
            raise ParameterError(f"parameter `{name}` must be of type int: an integer (decimal like 400000 or "
                                 f"exact scientific notation like 1e6), got {t!r}")
    if want in ("float", None):
        if _FLOAT.fullmatch(t):
            v = float(t)
            if not math.isfinite(v):
                raise ParameterError(f"parameter `{name}` must be a finite number, got {t!r}")
            return v
        if want == "float":
            raise ParameterError(f"parameter `{name}` must be of type float: a finite number (like 0.5, 1e-3 "
                                 f"or 2), got {t!r}")
    if want is None:
        return _unquote(t)
    import yaml  # a parameter of another annotated type: YAML as the last resort

    return yaml.safe_load(t)


def load_parameters_file(path) -> dict:
    """``{name: raw value}`` of a YAML parameters file, scalars kept as text for :func:`parse_value`.

    Raises ParameterError (one line) if the file is missing, malformed, not a mapping or repeats a name.
    """
    import yaml

    class _Loader(yaml.BaseLoader):
        pass

    def mapping(loader, node):
        seen = {}
        for k, v in node.value:
            key = loader.construct_object(k)
            if key in seen:
                raise ParameterError(f"{path}: parameter `{key}` is given twice (lines {seen[key]} and "
                                     f"{k.start_mark.line + 1})")
            seen[key] = k.start_mark.line + 1
        return loader.construct_mapping(node, deep=True)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        text = open(path).read()
    except OSError as e:
        raise ParameterError(f"cannot read parameters file {path}: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParameterError(f"parameters file {path}{where} is not valid YAML: "
                             f"{getattr(e, 'problem', None) or e}") from None
    if data is None or data == "":
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path} must be a mapping of `name: value` lines, "
                             f"got a {type(data).__name__}")
    return data


def parse_parameters_cell(source: str) -> Specs:
    """Names, types, defaults and help text of a ``parameters`` cell (annotated assignments), and its
    ``# rule:`` / ``# memory:`` comment lines (``.rules``; see :class:`Rule`)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    specs = Specs()
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
    rules = [r for r in map(parse_rule, lines) if r is not None]
    for r in rules:
        unknown = [n for n in r.names if n not in specs]
        if unknown:
            raise SyntaxError(f"parameters cell: the rule {r.expr!r} reads {', '.join(unknown)}, not parameters")
    specs.rules = tuple(rules)
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
